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

__all__ = ('BruteForceResult', 'TransitionProblem', 'Transitions', 'brute_force', 'shoot')

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
    ``end`` 0 running, 1 b is in the target, 2 b is back in the start state."""

    cv_from: np.ndarray
    cv_to: np.ndarray
    log_weight: np.ndarray
    end: np.ndarray


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
) -> tuple[PathEnsemble, Transitions]:
    """Run ``paths`` paths from configurations drawn (seeded) from ``starts`` (n, 7, 2), ``walkers`` at a time.

    Each path runs until it enters the target (outcome 1), re-enters the start state (0) or reaches ``max_steps``
    (−1, counted as not reaching the target). ``bias(x)`` adds a drift (σ per step) whose exact weights the
    ensemble carries. Returns the path ensemble (with CV traces, every ``stride`` steps, of the first ``traces``
    paths) and the TD transitions.
    """
    if len(starts) == 0:
        raise ValueError('no start configurations: the brute-force run crossed the interface λ_A zero times')
    if paths < 1 or walkers < 1:
        raise ValueError(f'paths and walkers must be positive, got {paths} and {walkers}')
    generator = torch.Generator().manual_seed(seed)
    settings, potential = problem.settings, lj7_potential(problem.restraint)
    pool = torch.as_tensor(np.asarray(starts), dtype=torch.float64)
    walkers = min(walkers, paths)

    def draw(count: int) -> torch.Tensor:
        return pool[torch.randint(len(pool), (count,), generator=generator)].clone()

    x = draw(walkers)
    path_id = torch.arange(walkers)
    launched = walkers
    age = torch.zeros(walkers, dtype=torch.long)
    log_w = torch.zeros(walkers, dtype=torch.float64)
    segment_w = torch.zeros(walkers, dtype=torch.float64)
    cv_prev = lj7_collective_variables(x)
    outcome = np.full(paths, -1)
    path_log_w = np.zeros(paths)
    path_steps = np.zeros(paths, dtype=int)
    rows: dict[str, list] = {'cv_from': [], 'cv_to': [], 'log_weight': [], 'end': []}
    trace_rows: list[list[np.ndarray]] = [[] for _ in range(traces)]
    force_evals = 0
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
            cv_prev = torch.where(record[:, None], cvs, cv_prev)
            segment_w[record] = 0.0
            traced = record & (path_id < traces)
            for w in torch.nonzero(traced).flatten().tolist():
                trace_rows[path_id[w]].append(cvs[w].numpy())
        finished = torch.nonzero(done).flatten()
        if len(finished):
            ids = path_id[finished].numpy()
            outcome[ids] = np.array([-1, 1, 0])[end[finished].numpy()]
            path_log_w[ids] = log_w[finished].numpy()
            path_steps[ids] = age[finished].numpy()
            refill = finished[: max(0, min(len(finished), paths - launched))]
            if len(refill):  # new paths in the freed slots
                x[refill] = draw(len(refill))
                path_id[refill] = torch.arange(launched, launched + len(refill))
                launched += len(refill)
                age[refill] = 0
                log_w[refill] = 0.0
                segment_w[refill] = 0.0
                cv_prev[refill] = lj7_collective_variables(x[refill])
            if len(refill) < len(finished):  # no paths left to launch: drop the finished slots
                keep = torch.ones(len(x), dtype=torch.bool)
                keep[finished[len(refill) :]] = False
                x, path_id, age, log_w, segment_w, cv_prev = (
                    a[keep] for a in (x, path_id, age, log_w, segment_w, cv_prev)
                )
    length = max((len(trace) for trace in trace_rows), default=0)
    cv_traces = np.full((traces, length, 2), np.nan)
    for p, trace in enumerate(trace_rows):
        if trace:
            cv_traces[p, : len(trace)] = np.array(trace)
    ensemble = PathEnsemble(outcome, path_log_w, path_steps, force_evals, cv_traces if traces else None)
    transitions = Transitions(
        **{k: np.concatenate(v) if v else np.zeros((0, 2) if k.startswith('cv') else 0) for k, v in rows.items()}
    )
    return ensemble, transitions
