"""Rare transitions of the 2D LJ7 cluster under overdamped Langevin dynamics: states, brute force, shooting.

No AiiDA here. Reduced LJ units: energies ε, lengths σ, times τ, ``beta`` in 1/ε, rates in 1/τ.

The metastable states are balls of radius ``state_radius`` in the (μ2, μ3) plane around the four lowest minima
(:data:`aiida_rlpath.systems.lj7.STATE_CVS`). A transition rate k(A→B) is measured two ways:

- **brute force** (:func:`brute_force`): walkers start in A and run the plain dynamics; a walker that enters B
  counts one event and restarts from A's minimum. k = events / total simulated time, with the Poisson standard
  error k/√events. The same run counts the *flux* Φ: crossings of the interface λ_A (CV distance
  ``interface_radius`` from A's centre) by walkers that have visited A since their last counted crossing, per
  unit time, and stores the configurations just after each crossing.
- **flux × probability** (:func:`shoot`): paths started from those crossing configurations run until they reach
  B (success) or fall back into A; k = Φ · P(B before A). The paths may be driven by a biased drift; their exact
  weights (:mod:`aiida_rlpath.physics.langevin`) keep P unbiased. In the rare-event limit both estimate the same
  rate (transition interface sampling, van Erp, Moroni & Bolhuis, J. Chem. Phys. 118, 7762 (2003)).

A force evaluation is one walker-step.
"""

from __future__ import annotations

import dataclasses
import functools
import typing as t

import numpy as np
import torch

from aiida_rlpath.physics.langevin import (
    LangevinSettings,
    PathEnsemble,
    lj7_collective_variables,
    lj7_potential,
    step,
)
from aiida_rlpath.systems.lj7 import STATE_CVS, minimum_positions

__all__ = (
    'BruteForceResult',
    'FreeEnergyMap',
    'TransitionProblem',
    'Transitions',
    'brute_force',
    'free_energy_map',
    'shoot',
)

Bias = t.Callable[[torch.Tensor], torch.Tensor]
"""positions (W, 7, 2) → bias displacement (W, 7, 2), σ."""


@dataclasses.dataclass(frozen=True)
class TransitionProblem:
    """A transition between two LJ7 states at inverse temperature ``beta`` (1/ε).

    ``start`` and ``target`` name states of ``STATE_CVS`` (``C0``…``C3``); ``state_radius`` and
    ``interface_radius`` are distances in the (μ2, μ3) plane (dimensionless); ``dt`` in τ; ``restraint`` the
    centre-of-mass spring (ε/σ²).
    """

    beta: float
    start: str = 'C0'
    target: str = 'C3'
    dt: float = 0.001
    state_radius: float = 0.1
    interface_radius: float = 0.25
    restraint: float = 1.0

    def __post_init__(self):
        for name in (self.start, self.target):
            if name not in STATE_CVS:
                raise ValueError(f'unknown LJ7 state {name!r}; known: {", ".join(STATE_CVS)}')
        if self.start == self.target:
            raise ValueError(f'start and target are the same state {self.start!r}')
        if not 0 < self.state_radius < self.interface_radius:
            raise ValueError(
                f'need 0 < state_radius < interface_radius, got {self.state_radius} and {self.interface_radius}'
            )
        LangevinSettings(self.beta, self.dt)  # validates beta and dt

    @property
    def settings(self) -> LangevinSettings:
        return LangevinSettings(beta=self.beta, dt=self.dt)

    @functools.cached_property
    def _centres(self) -> torch.Tensor:
        return torch.tensor([STATE_CVS[self.start], STATE_CVS[self.target]], dtype=torch.float64)

    def distances(self, cvs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CV distances (W,) of walkers' (μ2, μ3) ``cvs`` (W, 2, float64) to the start and the target state centres."""
        start, target = self._centres
        return (cvs - start).norm(dim=1), (cvs - target).norm(dim=1)

    def start_positions(self, walkers: int) -> torch.Tensor:
        """``walkers`` copies of the start state's minimum (W, 7, 2), σ, float64."""
        return torch.tensor(minimum_positions(self.start), dtype=torch.float64)[None].repeat(walkers, 1, 1)


@dataclasses.dataclass
class BruteForceResult:
    """Plain dynamics from the start state: ``rate`` ± ``rate_err`` (1/τ) from ``events`` arrivals in the target
    over ``time`` (τ, summed over walkers); ``flux`` ± ``flux_err`` (1/τ) from ``crossings`` of λ_A;
    ``crossing_positions`` (crossings, 7, 2) σ; ``force_evals`` walker-steps."""

    rate: float
    rate_err: float
    events: int
    flux: float
    flux_err: float
    crossings: int
    time: float
    force_evals: int
    crossing_positions: np.ndarray


def brute_force(
    problem: TransitionProblem, walkers: int, steps: int, seed: int, keep_crossings: int = 10_000
) -> BruteForceResult:
    """Run ``walkers`` walkers for ``steps`` steps of plain dynamics from ``problem.start`` (seeded by ``seed``).

    Counts arrivals in the target (each restarts its walker from the start minimum) and crossings of the
    interface λ_A; keeps the first ``keep_crossings`` crossing configurations. When there is no event the rate is
    0 and ``rate_err`` is the 95 % upper bound 3/time (no arrival in that time).
    """
    if walkers < 1 or steps < 1:
        raise ValueError(f'walkers and steps must be positive, got {walkers} and {steps}')
    generator = torch.Generator().manual_seed(seed)
    settings, potential = problem.settings, lj7_potential(problem.restraint)
    x = problem.start_positions(walkers)
    home = problem.start_positions(1)[0]
    armed = torch.ones(walkers, dtype=torch.bool)  # visited A since the last counted crossing
    events = crossings = 0
    kept: list[torch.Tensor] = []
    for _ in range(steps):
        _, forces = potential(x)
        x, _ = step(x, forces, settings, generator)
        d_start, d_target = problem.distances(lj7_collective_variables(x))
        armed |= d_start < problem.state_radius
        crossed = armed & (d_start >= problem.interface_radius)
        if crossed.any():
            crossings += int(crossed.sum())
            if len(kept) < keep_crossings:
                kept.extend(x[crossed].clone())
            armed &= ~crossed
        arrived = d_target < problem.state_radius
        if arrived.any():
            events += int(arrived.sum())
            x[arrived] = home
            armed[arrived] = True
    time = walkers * steps * problem.dt
    rate = events / time
    flux = crossings / time
    return BruteForceResult(
        rate=rate,
        rate_err=rate / np.sqrt(events) if events else 3.0 / time,
        events=events,
        flux=flux,
        flux_err=flux / np.sqrt(crossings) if crossings else 3.0 / time,
        crossings=crossings,
        time=time,
        force_evals=walkers * steps,
        crossing_positions=torch.stack(kept[:keep_crossings]).numpy() if kept else np.zeros((0, 7, 2)),
    )


@dataclasses.dataclass
class Transitions:
    """TD data of a shooting run, one row per stored transition a → b (every ``stride`` steps and at the end):
    ``cv_from`` / ``cv_to`` (rows, 2) in (μ2, μ3), ``log_weight`` the log path weight accumulated from a to b,
    ``end`` 0 running, 1 b is in the target, 2 b is back in the start state; ``path`` the leaf (path or branched
    copy) each row belongs to. A leaf's rows are in time order and chain (one's b is the next one's a); a copy's
    rows start where it split from its parent."""

    cv_from: np.ndarray
    cv_to: np.ndarray
    log_weight: np.ndarray
    end: np.ndarray
    path: np.ndarray

    @classmethod
    def concatenate(cls, parts: t.Sequence[Transitions]) -> Transitions:
        """The rows of all ``parts`` in order; the leaves of each part are renumbered after the previous parts'."""
        offsets = np.cumsum([0] + [int(p.path.max()) + 1 if len(p.path) else 0 for p in parts[:-1]])
        columns = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in dataclasses.fields(cls)
            if f.name != 'path'
        }
        return cls(**columns, path=np.concatenate([p.path + offset for p, offset in zip(parts, offsets, strict=True)]))


def shoot(
    problem: TransitionProblem,
    starts: np.ndarray,
    paths: int,
    walkers: int,
    seed: int,
    bias: Bias | None = None,
    max_steps: int = 20_000,
    stride: int = 10,
    traces: int = 0,
    start_probabilities: np.ndarray | None = None,
    log_value: t.Callable[[torch.Tensor], torch.Tensor] | None = None,
    split: float = 2.0,
    max_copies: int = 4,
) -> tuple[PathEnsemble, Transitions]:
    """Run ``paths`` paths from configurations drawn (seeded) from ``starts`` (n, 7, 2), ``walkers`` at a time.

    The starts are drawn uniformly, or with ``start_probabilities`` p (n,) when given: then each path starts with
    the weight 1/(n·p) of its start, so the ensemble still estimates the average over uniformly drawn starts
    (importance sampling of the start; p must be positive wherever a start may matter).

    Each path runs until it enters the target (outcome 1), re-enters the start state (0) or reaches ``max_steps``
    (−1, counted as not reaching the target). ``bias(x)`` adds a drift (σ per step) whose exact weights the
    ensemble carries. Returns the path ensemble (with CV traces, every ``stride`` steps, of the first ``traces``
    paths) and the TD transitions.

    With ``log_value`` (positions (W, 7, 2) → log V (W,)) the paths branch (a branching random walk): every
    ``stride`` steps a path whose ratio r = w·V(x)/(w₀·V(x₀)) to its expected weight exceeds ``split`` is split
    into min(⌊r⌋, ``max_copies``) copies that share its weight, and one under 1/``split`` plays Russian
    roulette: it survives with probability r and then weighs w/r (outcome −2 when killed). Both keep every
    average unbiased and hold the weights near their expected value; the ensemble's leaves then carry their
    ``root`` path, and P averages the per-root sums.
    """
    if len(starts) == 0:
        raise ValueError('no start configurations: the brute-force run crossed the interface λ_A zero times')
    if paths < 1 or walkers < 1:
        raise ValueError(f'paths and walkers must be positive, got {paths} and {walkers}')
    if not split > 1 or max_copies < 2:
        raise ValueError(f'need split > 1 and max_copies ≥ 2, got {split} and {max_copies}')
    generator = torch.Generator().manual_seed(seed)
    settings, potential = problem.settings, lj7_potential(problem.restraint)
    pool = torch.as_tensor(np.asarray(starts), dtype=torch.float64)
    walkers = min(walkers, paths)

    if start_probabilities is None or np.all(np.asarray(start_probabilities) == np.asarray(start_probabilities)[0]):
        start_log_w = torch.zeros(len(pool), dtype=torch.float64)  # uniform: weights exactly 1
        cumulative = None
    else:
        p = torch.as_tensor(np.asarray(start_probabilities), dtype=torch.float64)
        if p.shape != (len(pool),) or not torch.all(p > 0) or not torch.isfinite(p).all():
            raise ValueError(f'start_probabilities must be {len(pool)} positive numbers, one per start')
        p = p / p.sum()
        start_log_w = -torch.log(len(pool) * p)
        cumulative = torch.cumsum(p, 0)

    def draw_index(count: int) -> torch.Tensor:
        if cumulative is None:
            return torch.randint(len(pool), (count,), generator=generator)
        u = torch.rand(count, generator=generator, dtype=torch.float64) * cumulative[-1]
        return torch.searchsorted(cumulative, u, right=True).clamp_max(len(pool) - 1)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = draw_index(count)
        return pool[index].clone(), start_log_w[index].clone()

    x, log_w = draw(walkers)
    leaf = torch.arange(walkers)  # originals are leaves 0…paths−1, in launch order; copies come after
    root = leaf.clone()
    launched, next_copy = walkers, paths
    age = torch.zeros(walkers, dtype=torch.long)
    segment_w = torch.zeros(walkers, dtype=torch.float64)
    cv_prev = lj7_collective_variables(x)
    ref = log_w + log_value(x) if log_value is not None else log_w.clone()  # log w₀V(x₀) of each path
    results: dict[int, tuple[int, int, float, int]] = {}  # leaf → (root, outcome, log weight, steps)
    rows: dict[str, list] = {'cv_from': [], 'cv_to': [], 'log_weight': [], 'end': [], 'path': []}
    trace_rows: list[list[np.ndarray]] = [[] for _ in range(traces)]
    force_evals = 0
    codes = np.array([-1, 1, 0, -2])  # end code → outcome: running-but-cut, target, start, killed
    while len(x):
        if bias is not None:
            with torch.enable_grad():
                u = bias(x)
        else:
            u = None
        _, forces = potential(x)
        x, dlog = step(x, forces, settings, generator, u)
        force_evals += len(x)
        age += 1
        log_w += dlog
        segment_w += dlog
        cvs = lj7_collective_variables(x)
        d_start, d_target = problem.distances(cvs)
        end = torch.zeros(len(x), dtype=torch.long)
        end[d_start < problem.state_radius] = 2
        end[d_target < problem.state_radius] = 1
        cut = (age >= max_steps) & (end == 0)
        done = (end > 0) | cut
        record = ((age % stride == 0) | done) & ~cut
        if record.any():
            rows['cv_from'].append(cv_prev[record].numpy())
            rows['cv_to'].append(cvs[record].numpy())
            rows['log_weight'].append(segment_w[record].numpy())
            rows['end'].append(end[record].numpy())
            rows['path'].append(leaf[record].numpy())
            cv_prev = torch.where(record[:, None], cvs, cv_prev)
            segment_w[record] = 0.0
            traced = record & (leaf < traces)
            for w in torch.nonzero(traced).flatten().tolist():
                trace_rows[leaf[w]].append(cvs[w].numpy())
        if log_value is not None:
            check = torch.nonzero((age % stride == 0) & ~done).flatten()
            if len(check):
                log_r = log_w[check] + log_value(x[check]) - ref[check]
                low = log_r < -np.log(split)
                if low.any():  # Russian roulette: survive with probability r, then weigh w/r
                    lucky = torch.rand(int(low.sum()), generator=generator, dtype=torch.float64) < torch.exp(log_r[low])
                    survivors, killed = check[low][lucky], check[low][~lucky]
                    log_w[survivors] -= log_r[low][lucky]
                    end[killed] = 3
                    done[killed] = True
                high = log_r > np.log(split)
                if high.any():  # splitting: n copies of weight w/n
                    parents = check[high]
                    counts = torch.floor(torch.exp(log_r[high])).clamp(max=max_copies).long()
                    log_w[parents] -= torch.log(counts.double())
                    source = torch.repeat_interleave(parents, counts - 1)
                    if len(source):
                        new_leaves = torch.arange(next_copy, next_copy + len(source))
                        next_copy += len(source)
                        x, age, log_w, segment_w, cv_prev, ref, root, end, done = (
                            torch.cat([a, a[source]]) for a in (x, age, log_w, segment_w, cv_prev, ref, root, end, done)
                        )
                        leaf = torch.cat([leaf, new_leaves])
        finished = torch.nonzero(done).flatten()
        if len(finished):
            outcomes = codes[end[finished].numpy()]
            for i, o, lw, st, r in zip(
                leaf[finished].tolist(), outcomes.tolist(), log_w[finished].tolist(), age[finished].tolist(),
                root[finished].tolist(), strict=True,
            ):  # fmt: skip
                results[i] = (r, o, lw, st)
            running = len(x) - len(finished)
            refill = finished[: max(0, min(len(finished), paths - launched, walkers - running))]
            if len(refill):  # new paths in the freed slots
                x[refill], log_w[refill] = draw(len(refill))
                leaf[refill] = torch.arange(launched, launched + len(refill))
                root[refill] = leaf[refill]
                launched += len(refill)
                age[refill] = 0
                segment_w[refill] = 0.0
                cv_prev[refill] = lj7_collective_variables(x[refill])
                ref[refill] = log_w[refill] + (log_value(x[refill]) if log_value is not None else 0.0)
            if len(refill) < len(finished):  # no paths to launch in these slots: drop them
                keep = torch.ones(len(x), dtype=torch.bool)
                keep[finished[len(refill) :]] = False
                x, leaf, root, age, log_w, segment_w, cv_prev, ref = (
                    a[keep] for a in (x, leaf, root, age, log_w, segment_w, cv_prev, ref)
                )
    order = sorted(results)
    roots, outcome, path_log_w, path_steps = (np.array([results[i][k] for i in order]) for k in range(4))
    length = max((len(trace) for trace in trace_rows), default=0)
    cv_traces = np.full((traces, length, 2), np.nan)
    for p, trace in enumerate(trace_rows):
        if trace:
            cv_traces[p, : len(trace)] = np.array(trace)
    ensemble = PathEnsemble(
        outcome.astype(int), path_log_w.astype(float), path_steps.astype(int), force_evals,
        cv_traces if traces else None, roots.astype(int) if log_value is not None else None, paths,
    )  # fmt: skip
    transitions = Transitions(
        **{
            k: np.concatenate(v) if v else np.zeros((0, 2) if k.startswith('cv') else 0, int if k == 'path' else float)
            for k, v in rows.items()
        }
    )
    return ensemble, transitions


@dataclasses.dataclass
class FreeEnergyMap:
    """F(μ2, μ3) (ε) on a grid: ``free_energy`` (len(mu3) − 1, len(mu2) − 1), NaN where nothing was sampled, zero
    at its minimum; bin edges ``mu2``, ``mu3``; at ``beta`` (1/ε) from samples drawn at ``sample_beta``."""

    mu2: np.ndarray
    mu3: np.ndarray
    free_energy: np.ndarray
    beta: float
    sample_beta: float


def free_energy_map(
    beta: float,
    seed: int,
    sample_beta: float = 3.0,
    walkers: int = 200,
    steps: int = 4000,
    stride: int = 10,
    bins: int = 40,
    dt: float = 0.001,
    restraint: float = 1.0,
) -> FreeEnergyMap:
    """The LJ7 free energy in the (μ2, μ3) plane at ``beta`` (1/ε), for plots.

    ``walkers`` walkers, a quarter started in each of C0…C3, run ``steps`` steps of plain dynamics at the hotter
    ``sample_beta``, where they cross between the basins; every ``stride``-th configuration after the first
    quarter of the run is histogrammed with the Boltzmann reweighting exp(−(β − β_s)·U) to ``beta``, and
    F = −ln(histogram)/β. Far from the basins at ``beta`` the map is noisy: it is a background for paths, not a
    measurement.
    """
    if walkers < 1 or steps < 4 or stride < 1:
        raise ValueError(f'need walkers ≥ 1, steps ≥ 4, stride ≥ 1; got {walkers}, {steps}, {stride}')
    settings, potential = LangevinSettings(beta=sample_beta, dt=dt), lj7_potential(restraint)
    generator = torch.Generator().manual_seed(seed)
    names = list(STATE_CVS)
    x = torch.stack(
        [torch.tensor(minimum_positions(names[w % len(names)]), dtype=torch.float64) for w in range(walkers)]
    )
    cvs, energies = [], []
    for i in range(steps):
        energy, forces = potential(x)
        if i >= steps // 4 and i % stride == 0:
            cvs.append(lj7_collective_variables(x).numpy())
            energies.append(energy.numpy())
        x, _ = step(x, forces, settings, generator)
    cv, energy = np.concatenate(cvs), np.concatenate(energies)
    log_w = -(beta - sample_beta) * energy
    weights = np.exp(log_w - log_w.max())
    mu2 = np.linspace(0.0, 1.6, bins + 1)
    mu3 = np.linspace(-0.6, 2.0, bins + 1)
    histogram, _, _ = np.histogram2d(cv[:, 1], cv[:, 0], bins=(mu3, mu2), weights=weights)
    with np.errstate(divide='ignore'):
        free = -np.log(histogram) / beta
    free[~np.isfinite(free)] = np.nan
    return FreeEnergyMap(mu2, mu3, free - np.nanmin(free), beta, sample_beta)
