"""RL importance sampling of rare Langevin transitions (after Kim & Cai): a value network learned by TD drives the
paths, exact path weights undo the drive.

The value of a configuration x, with reward 1 on entering the target state B, 0 on falling back into the start
state A and no discount, is the committor V(x) = P(B before A | x). It satisfies the Bellman relation
V(x) = E_π[V(y) | x] under the dynamics' kernel π. The kernel boosted by V, π'(y|x) = V(y)/V(x)·π(y|x) (Doob's
h-transform), sends every path to B and, with the exact V, gives each path the same weight. Here:

- ``CommittorNetwork``: log V as a small MLP of the collective variables (μ2, μ3), so V is invariant under rotation,
  translation and permutation of the atoms, and log V ≤ 0.
- the boosted kernel is realised as the Gaussian step with the extra drift u = s²∇log V(x) (s² the step's
  variance; the first-order expansion of V(y)/V(x) around x), capped at ``max_bias``·s per atom; its exact
  weights (:func:`aiida_rlpath.physics.langevin.step`) make every estimate unbiased whatever V is — the network's
  quality only sets the variance.
- ``td_update``: semi-gradient TD on the relative Bellman error 1 − ρ·V(y)/V(x) of the stored transitions
  (ρ the path weight of the transition, which makes it an expectation under π although the paths were drawn
  from π'), with targets 1 in B and 0 in A.
- ``train``: cycles of shooting with the current V and TD updates on what was shot (on-policy RL).
- ``estimate_rate``: k = Φ·P, the flux through λ_A from a short plain run times the weighted probability of
  reaching B from the production paths; the relative errors add in quadrature.

Reduced LJ units: rates in 1/τ, ``beta`` in 1/ε, CVs dimensionless. No AiiDA import.
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np
import torch
from torch import nn

from aiida_rlpath.envs.langevin import TransitionProblem, Transitions, brute_force, shoot
from aiida_rlpath.physics.langevin import PathEnsemble, lj7_collective_variables

__all__ = ('CommittorNetwork', 'SamplerSettings', 'estimate_rate', 'td_update', 'train')


class CommittorNetwork(nn.Module):
    """log V(μ2, μ3) = −softplus(MLP): V ∈ (0, 1]. The output layer starts at zero, so the untrained V is constant
    and the first paths are unbiased. ``seed`` initialises the hidden layers."""

    def __init__(self, hidden: int = 32, seed: int = 0):
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.mlp = nn.Sequential(
            nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        ).double()
        torch.random.set_rng_state(generator_state)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.constant_(self.mlp[-1].bias, -2.0)  # log V = −softplus(−2) = −0.13 everywhere
        self.hidden = hidden

    def forward(self, cvs: torch.Tensor) -> torch.Tensor:
        """log V (W,) of (μ2, μ3) ``cvs`` (W, 2)."""
        return -nn.functional.softplus(self.mlp(cvs)).squeeze(-1)

    def drift(self, x: torch.Tensor, noise: float, max_bias: float) -> torch.Tensor:
        """The boosted kernel's extra displacement s²∇ₓlog V (σ) of walkers ``x`` (W, 7, 2), each atom's capped at
        ``max_bias``·s (s = ``noise``, σ)."""
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self(lj7_collective_variables(x)).sum(), x)
        u = noise * noise * grad
        norm = u.norm(dim=-1, keepdim=True)
        cap = max_bias * noise
        return torch.where(norm > cap, u * (cap / norm.clamp_min(1e-300)), u).detach()


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
    """RL sampler: ``cycles`` of ``paths`` training paths each (``walkers`` at a time), ``td_epochs`` full-batch TD
    steps per cycle at ``learning_rate``; ``max_bias`` caps the drift per atom (units of the step's noise s);
    ``ratio_cap`` caps ρV(y)/V(x) in the TD error; ``production_paths`` for the final estimate; ``flux_walkers`` ×
    ``flux_steps`` for the flux run; ``max_steps`` per path; ``stride`` steps per stored TD transition."""

    cycles: int = 6
    paths: int = 1000
    walkers: int = 200
    td_epochs: int = 200
    learning_rate: float = 0.01
    max_bias: float = 1.0
    ratio_cap: float = 10.0
    production_paths: int = 2000
    flux_walkers: int = 200
    flux_steps: int = 2000
    max_steps: int = 20_000
    stride: int = 10
    hidden: int = 32

    def __post_init__(self):
        for name in ('cycles', 'paths', 'walkers', 'td_epochs', 'production_paths', 'flux_walkers', 'flux_steps'):
            if getattr(self, name) < (0 if name in ('cycles', 'td_epochs') else 1):
                raise ValueError(f'{name} must be positive, got {getattr(self, name)}')


def td_update(
    network: CommittorNetwork,
    optimizer: torch.optim.Optimizer,
    data: Transitions,
    epochs: int,
    ratio_cap: float,
    sweep: int = 20,
) -> float:
    """``epochs`` full-batch TD steps on ``data``; returns the final mean absolute relative TD error.

    For a transition x → y with path weight ρ the Bellman target is ρ·V(y) (1 if y is in B, 0 if y is back in A).
    Every ``sweep`` steps the targets are recomputed with the current network V₀ (a target network); in between,
    the steps minimise the relative squared error (V(x)/V₀(x) − min(target/V₀(x), ``ratio_cap``))², whose
    minimiser is the conditional mean of the (capped) target — the Bellman relation — on every scale of V. The
    returned error is mean(abs(1 − target/V(x))) at the last recomputation.
    """
    if len(data.end) == 0:
        return float('nan')
    cv_from = torch.as_tensor(data.cv_from)
    cv_to = torch.as_tensor(data.cv_to)
    log_w = torch.as_tensor(data.log_weight)
    end = torch.as_tensor(data.end)
    error = float('nan')
    for epoch in range(epochs):
        if epoch % sweep == 0:
            with torch.no_grad():
                log_old = network(cv_from)
                log_next = torch.where(end == 1, torch.zeros_like(log_w), network(cv_to))
                log_target = torch.where(end == 2, torch.full_like(log_w, -torch.inf), log_w + log_next)
                ratio = torch.exp(log_target - log_old).clamp(max=ratio_cap)
                error = float((1.0 - ratio).abs().mean())
        loss = ((torch.exp(network(cv_from) - log_old) - ratio) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return error


def _ensemble_stats(ensemble: PathEnsemble) -> dict:
    probability, error = ensemble.probability()
    reached = ensemble.outcome == 1
    weights = ensemble.weights[reached]
    ess = float(weights.sum() ** 2 / (weights**2).sum()) if reached.any() else 0.0
    return {
        'probability': probability,
        'probability_err': error,
        'reached_fraction': float(reached.mean()),
        'cut_fraction': float((ensemble.outcome == -1).mean()),
        'effective_sample_size': ess,
        'mean_steps': float(ensemble.steps.mean()),
        'force_evals': ensemble.force_evals,
    }


def _shoot_driven(
    problem: TransitionProblem,
    starts: np.ndarray,
    paths: int,
    settings: SamplerSettings,
    seed: int,
    network: CommittorNetwork,
    traces: int = 0,
) -> tuple[PathEnsemble, Transitions]:
    """``shoot`` with the drift of ``network`` and the path settings of ``settings``."""
    noise = problem.settings.noise
    return shoot(
        problem, starts, paths, settings.walkers, seed,
        bias=lambda x: network.drift(x, noise, settings.max_bias),
        max_steps=settings.max_steps, stride=settings.stride, traces=traces,
    )  # fmt: skip


def train(
    problem: TransitionProblem,
    starts: np.ndarray,
    settings: SamplerSettings,
    seed: int,
    network: CommittorNetwork | None = None,
    log: t.Callable[[dict], None] | None = None,
) -> tuple[CommittorNetwork, list[dict]]:
    """Train V over ``settings.cycles`` cycles of shooting from ``starts`` and TD updates (seeded by ``seed``).

    Returns the network and one record per cycle: the cycle's weighted probability of reaching B (and its
    standard error), the fraction of paths that reached B, the effective sample size of their weights, the TD
    error and the force evaluations.
    """
    network = network if network is not None else CommittorNetwork(settings.hidden, seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    seeds = np.random.default_rng([seed, 7]).integers(2**31, size=settings.cycles)
    history = []
    for cycle, cycle_seed in enumerate(seeds):
        ensemble, data = _shoot_driven(problem, starts, settings.paths, settings, int(cycle_seed), network)
        td_error = td_update(network, optimizer, data, settings.td_epochs, settings.ratio_cap)
        record = {'cycle': cycle, **_ensemble_stats(ensemble), 'td_error': td_error}
        history.append(record)
        if log is not None:
            log(record)
    return network, history


def estimate_rate(
    problem: TransitionProblem,
    settings: SamplerSettings,
    seed: int,
    log: t.Callable[[dict], None] | None = None,
    traces: int = 0,
) -> dict:
    """The RL estimate of k(A→B) (1/τ): flux run, ``train``, then production paths with the trained V.

    Returns ``rate``, ``rate_err``, ``flux``/``flux_err``, ``probability``/``probability_err``, the force
    evaluations by phase and in total (``force_evals``), the training ``history``, the ``network``, the production
    ``ensemble`` (with ``traces`` CV traces) and the flux run's crossing configurations ``starts``.
    """
    flux_seed, train_seed, production_seed = (int(s) for s in np.random.default_rng([seed, 3]).integers(2**31, size=3))
    flux = brute_force(problem, settings.flux_walkers, settings.flux_steps, flux_seed)
    network, history = train(problem, flux.crossing_positions, settings, train_seed, log=log)
    ensemble, _ = _shoot_driven(
        problem, flux.crossing_positions, settings.production_paths, settings, production_seed, network, traces
    )
    production = _ensemble_stats(ensemble)
    probability, probability_err = production['probability'], production['probability_err']
    rate = flux.flux * probability
    relative = np.hypot(flux.flux_err / flux.flux, probability_err / probability) if probability > 0 else np.inf
    training_evals = sum(record['force_evals'] for record in history)
    return {
        'rate': rate,
        'rate_err': rate * relative if probability > 0 else float('inf'),
        'flux': flux.flux,
        'flux_err': flux.flux_err,
        'crossings': flux.crossings,
        'probability': probability,
        'probability_err': probability_err,
        'production': production,
        'force_evals_flux': flux.force_evals,
        'force_evals_training': training_evals,
        'force_evals_production': ensemble.force_evals,
        'force_evals': flux.force_evals + training_evals + ensemble.force_evals,
        'history': history,
        'network': network,
        'ensemble': ensemble,
        'starts': flux.crossing_positions,
    }
