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
  from π'), with targets 1 in B and 0 in A; optionally TD(λ) on λ-returns along each path (``lambda_returns``).
- ``train``: cycles of shooting with the current V and TD updates on the transitions of the latest cycles (a
  replay of ``replay`` cycles: the path weight ρ makes an old transition a valid Bellman sample under any later
  drive).
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

from aiida_rlpath.envs.langevin import BruteForceResult, TransitionProblem, Transitions, brute_force, shoot
from aiida_rlpath.physics.langevin import PathEnsemble, lj7_collective_variables

__all__ = (
    'CommittorNetwork',
    'SamplerSettings',
    'cycle_problems',
    'cycle_seeds',
    'estimate_rate',
    'flux_run',
    'lambda_returns',
    'production',
    'replay_cycles',
    'run_seeds',
    'start_probabilities',
    'td_update',
    'train',
    'training_cycle',
)


class CommittorNetwork(nn.Module):
    """log V(μ2, μ3) = −(β/β_fit)·softplus(MLP): V ∈ (0, 1]. The output layer starts at zero, so the untrained V is
    constant and the first paths are unbiased. ``seed`` initialises the hidden layers; ``beta`` (1/ε) is the
    inverse temperature the network is for (a buffer, saved with the weights)."""

    def __init__(self, hidden: int = 32, seed: int = 0, beta: float = 1.0):
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
        self.register_buffer('beta', torch.tensor(float(beta), dtype=torch.float64))
        self.register_buffer('beta_fit', torch.tensor(float(beta), dtype=torch.float64))

    def forward(self, cvs: torch.Tensor) -> torch.Tensor:
        """log V (W,) of (μ2, μ3) ``cvs`` (W, 2)."""
        return -(self.beta / self.beta_fit) * nn.functional.softplus(self.mlp(cvs)).squeeze(-1)

    def rescaled(self, beta: float) -> CommittorNetwork:
        """A copy for inverse temperature ``beta`` (1/ε). At a new β the copy's log V is the old one scaled by
        β/β_old — the low-temperature form log V ≈ −β·ΔF(μ2, μ3) of a committor; the MLP stays fitted at
        ``beta_fit`` and further training refines it under the factor β/β_fit."""
        copy = CommittorNetwork(self.hidden, beta=float(self.beta))
        copy.load_state_dict(self.state_dict())
        if float(beta) != float(self.beta):
            with torch.no_grad():
                copy.beta.fill_(float(beta))
        return copy

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
    """RL sampler: ``cycles`` of ``paths`` training paths each (``walkers`` at a time), ``td_epochs`` full-batch
    TD(λ) steps per cycle at ``learning_rate`` with λ = ``td_lambda`` (:func:`lambda_returns`); ``max_bias``
    caps the drift per atom (units of the step's noise s); ``ratio_cap`` caps the target over V(x) in the TD
    error (with λ > 0 most targets are 0 or far above V(x), and a cap of 10 drove log V to about −38 within one
    cycle at β = 5, so raise it, e.g. to 1e6); ``replay`` how many cycles' transitions (the latest) the TD
    updates see; ``production_paths`` for the final estimate; ``flux_walkers`` × ``flux_steps`` for the flux run;
    ``max_steps`` per path; ``stride`` steps per stored TD transition; ``warmup_cycles`` cycles first at the
    higher temperature ``warmup_beta`` (1/ε), where unbiased paths still reach B, so that V has seen the route
    before the cycles at the problem's β (a β curriculum, :meth:`CommittorNetwork.rescaled`); ``start_mixing`` the
    uniform share when the starts are drawn in proportion to V (:func:`start_probabilities`); ``branching``
    splits and prunes the paths by their weight relative to V (:func:`aiida_rlpath.envs.langevin.shoot`)."""

    cycles: int = 6
    paths: int = 1000
    walkers: int = 200
    td_epochs: int = 200
    learning_rate: float = 0.01
    td_lambda: float = 0.0
    max_bias: float = 1.0
    ratio_cap: float = 10.0
    replay: int = 3
    warmup_beta: float = 5.0
    warmup_cycles: int = 0
    start_mixing: float = 0.1
    branching: bool = True
    production_paths: int = 2000
    flux_walkers: int = 200
    flux_steps: int = 2000
    max_steps: int = 20_000
    stride: int = 10
    hidden: int = 32

    def __post_init__(self):
        for name in (
            'cycles', 'paths', 'walkers', 'td_epochs', 'replay', 'production_paths', 'flux_walkers', 'flux_steps',
            'warmup_cycles', 'max_steps', 'stride', 'hidden',
        ):  # fmt: skip
            if getattr(self, name) < (0 if name in ('cycles', 'td_epochs', 'warmup_cycles') else 1):
                raise ValueError(f'{name} must be positive, got {getattr(self, name)}')
        for name in ('learning_rate', 'max_bias', 'ratio_cap', 'warmup_beta'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be positive, got {getattr(self, name)}')
        if not 0 <= self.td_lambda <= 1:
            raise ValueError(f'td_lambda must be within [0, 1], got {self.td_lambda}')
        if not 0 < self.start_mixing <= 1:
            raise ValueError(f'start_mixing must be within (0, 1], got {self.start_mixing}')


def lambda_returns(
    log_weight: np.ndarray, log_value_next: np.ndarray, end: np.ndarray, path: np.ndarray, lam: float
) -> np.ndarray:
    """log of the λ-returns G of transitions x → y (rows of :class:`~aiida_rlpath.envs.langevin.Transitions`).

    ``log_weight`` is each row's log path weight ρ, ``log_value_next`` log V(y), ``end`` its end code and ``path``
    its leaf; a leaf's rows are in time order. G = ρ·((1 − λ)·V(y) + λ·G') with G' the next row's return on the
    same leaf; at the leaf's last row G = ρ·1 in the target, 0 back in the start state, and ρ·V(y) where the leaf
    was cut or pruned (a bootstrap at a stopping time, so still a Bellman target). λ = 0 gives the one-step
    target ρ·V(y); λ = 1 the Monte Carlo return: the weight of the rest of the path if it reached the target.
    """
    log_one_step = np.where(end == 2, -np.inf, log_weight + np.where(end == 1, 0.0, log_value_next))
    if lam == 0 or len(end) == 0:
        return log_one_step
    order = np.argsort(path, kind='stable')
    sorted_path = path[order]
    last = np.append(sorted_path[1:] != sorted_path[:-1], True)
    last_positions = np.flatnonzero(last)
    position = np.arange(len(order))
    from_end = last_positions[np.searchsorted(last_positions, position)] - position  # rows to the leaf's last
    log_w, log_v, one_step = log_weight[order], log_value_next[order], log_one_step[order]
    log_keep, log_rest = np.log(lam), (np.log1p(-lam) if lam < 1 else -np.inf)
    log_g = np.empty(len(order))
    by_distance = np.argsort(from_end, kind='stable')
    first = 0
    for distance, count in enumerate(np.bincount(from_end)):
        rows = by_distance[first : first + count]
        first += count
        if distance == 0:
            log_g[rows] = one_step[rows]
        else:
            log_g[rows] = log_w[rows] + np.logaddexp(log_rest + log_v[rows], log_keep + log_g[rows + 1])
    result = np.empty_like(log_g)
    result[order] = log_g
    return result


def td_update(
    network: CommittorNetwork,
    optimizer: torch.optim.Optimizer,
    data: Transitions,
    epochs: int,
    ratio_cap: float,
    sweep: int = 20,
    lam: float = 0.0,
) -> float:
    """``epochs`` full-batch TD(λ) steps on ``data``; returns the final mean absolute relative TD error.

    For a transition x → y with path weight ρ the one-step Bellman target is ρ·V(y) (1 if y is in B, 0 if y is
    back in A); with ``lam`` > 0 it is the λ-return along the rest of the leaf (:func:`lambda_returns`), which
    carries what the path met later back in one step. Every ``sweep`` steps the targets are recomputed with the
    current network V₀ (a target network); in between, the steps minimise the relative squared error
    (V(x)/V₀(x) − min(target/V₀(x), ``ratio_cap``))², whose minimiser is the conditional mean of the (capped)
    target — the Bellman relation — on every scale of V. The returned error is mean(abs(1 − target/V(x))) at the
    last recomputation.
    """
    if len(data.end) == 0:
        return float('nan')
    cv_from = torch.as_tensor(data.cv_from)
    cv_to = torch.as_tensor(data.cv_to)
    log_w, end, path = np.asarray(data.log_weight), np.asarray(data.end), np.asarray(data.path)
    error = float('nan')
    for epoch in range(epochs):
        if epoch % sweep == 0:
            with torch.no_grad():
                log_old = network(cv_from)
                log_target = torch.as_tensor(lambda_returns(log_w, network(cv_to).numpy(), end, path, lam))
                ratio = torch.exp(log_target - log_old).clamp(max=ratio_cap)
                error = float((1.0 - ratio).abs().mean())
        loss = ((torch.exp(network(cv_from) - log_old) - ratio) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return error


def _ensemble_stats(ensemble: PathEnsemble) -> dict:
    probability, error = ensemble.probability()
    reached, cut = ensemble.outcome == 1, ensemble.outcome == -1
    weights = ensemble.weights[reached]
    ess = float(weights.sum() ** 2 / (weights**2).sum()) if reached.any() else 0.0
    return {
        'probability': probability,
        'probability_err': error,
        'reached_fraction': float(reached.mean()),
        'cut_fraction': float(cut.mean()),
        'leaves': len(ensemble.outcome),
        # a cut path would have added at most its weight: P lies in [probability, probability + cut_weight]
        'cut_weight': float(np.where(cut, ensemble.weights, 0.0).sum() / (ensemble.roots or len(cut))),
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
    """``shoot`` with the drift of ``network``, the path settings of ``settings`` and the starts drawn with
    :func:`start_probabilities`."""
    noise = problem.settings.noise
    return shoot(
        problem, starts, paths, settings.walkers, seed,
        bias=lambda x: network.drift(x, noise, settings.max_bias),
        max_steps=settings.max_steps, stride=settings.stride, traces=traces,
        start_probabilities=start_probabilities(network, starts, settings.start_mixing),
        log_value=(lambda x: network(lj7_collective_variables(x)).detach()) if settings.branching else None,
    )  # fmt: skip


def start_probabilities(network: CommittorNetwork, starts: np.ndarray, mixing: float) -> np.ndarray:
    """How often to draw each start configuration (n, 7, 2): (1 − ``mixing``)·V(x)/ΣV + ``mixing``/n.

    With the exact committor V every successful path then carries the same weight, the average V of the starts;
    the uniform part bounds any weight by n/(``mixing``·n) = 1/``mixing`` at the start.
    """
    with torch.no_grad():
        value = torch.exp(network(lj7_collective_variables(torch.as_tensor(np.asarray(starts))))).numpy()
    return (1.0 - mixing) * value / value.sum() + mixing / len(value)


def cycle_problems(problem: TransitionProblem, settings: SamplerSettings) -> list[TransitionProblem]:
    """The problem each training cycle shoots on: ``warmup_cycles`` at ``warmup_beta``, then ``cycles`` at the
    problem's own β."""
    warm = [dataclasses.replace(problem, beta=settings.warmup_beta)] * settings.warmup_cycles
    return [*warm, *([problem] * settings.cycles)]


def replay_cycles(betas: t.Sequence[float], cycle: int, replay: int) -> list[int]:
    """The earlier cycles whose transitions cycle ``cycle`` replays, oldest first: the latest ``replay`` − 1 of
    those run at its own β (``betas`` per cycle, 1/ε) since the β last changed; transitions at another β are not
    samples of this dynamics."""
    first = cycle
    while first > 0 and first > cycle - (replay - 1) and betas[first - 1] == betas[cycle]:
        first -= 1
    return list(range(first, cycle))


def cycle_seeds(seed: int, count: int) -> list[int]:
    """The seeds of ``count`` training cycles of a run seeded by ``seed``."""
    return [int(s) for s in np.random.default_rng([seed, 7]).integers(2**31, size=count)]


def training_cycle(
    problem: TransitionProblem,
    starts: np.ndarray,
    settings: SamplerSettings,
    seed: int,
    network: CommittorNetwork,
    replay: t.Sequence[Transitions] = (),
) -> tuple[CommittorNetwork, dict, PathEnsemble, Transitions]:
    """One training cycle, a pure function of its inputs: shoot ``settings.paths`` paths from ``starts`` driven by a
    copy of ``network``, then TD-update the copy (fresh Adam) on these transitions and the ``replay`` ones.

    Returns (updated network, cycle record, ensemble, this cycle's transitions). A ``network`` trained at another β
    (its ``beta`` attribute) is first rescaled to ``problem.beta`` (see :meth:`CommittorNetwork.rescaled`).
    """
    network = network.rescaled(problem.beta)
    ensemble, data = _shoot_driven(problem, starts, settings.paths, settings, seed, network)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    td_error = td_update(
        network, optimizer, Transitions.concatenate([*replay, data]), settings.td_epochs, settings.ratio_cap,
        lam=settings.td_lambda,
    )  # fmt: skip
    return network, {'beta': problem.beta, **_ensemble_stats(ensemble), 'td_error': td_error}, ensemble, data


def train(
    problem: TransitionProblem,
    starts: np.ndarray,
    settings: SamplerSettings,
    seed: int,
    network: CommittorNetwork | None = None,
    log: t.Callable[[dict], None] | None = None,
) -> tuple[CommittorNetwork, list[dict]]:
    """Train V over the warm-up and main cycles (:func:`cycle_problems`) of shooting from ``starts`` and TD
    updates, seeded by ``seed``.

    Returns the network (at ``problem.beta``) and one record per cycle: its β, the cycle's weighted probability of
    reaching B (and its standard error), the fraction of paths that reached B or were cut, the effective sample
    size of the successes' weights, the TD error and the force evaluations.
    """
    problems = cycle_problems(problem, settings)
    network = (
        network
        if network is not None
        else CommittorNetwork(settings.hidden, seed, beta=problems[0].beta if problems else problem.beta)
    )
    betas = [p.beta for p in problems]
    history, buffer = [], []
    for cycle, (cycle_problem, cycle_seed) in enumerate(zip(problems, cycle_seeds(seed, len(problems)), strict=True)):
        replay = [buffer[i] for i in replay_cycles(betas, cycle, settings.replay)]
        network, record, _, data = training_cycle(cycle_problem, starts, settings, cycle_seed, network, replay)
        buffer.append(data)
        record = {'cycle': cycle, **record}
        history.append(record)
        if log is not None:
            log(record)
    return network.rescaled(problem.beta), history


def flux_run(problem: TransitionProblem, settings: SamplerSettings, seed: int) -> BruteForceResult:
    """The flux Φ through λ_A and the crossing configurations: ``settings.flux_walkers`` × ``flux_steps`` steps of
    plain dynamics (:func:`aiida_rlpath.envs.langevin.brute_force`)."""
    return brute_force(problem, settings.flux_walkers, settings.flux_steps, seed)


def production(
    problem: TransitionProblem,
    starts: np.ndarray,
    settings: SamplerSettings,
    seed: int,
    network: CommittorNetwork,
    flux: float,
    flux_err: float,
    traces: int = 0,
) -> tuple[dict, PathEnsemble]:
    """``settings.production_paths`` paths driven by the fixed ``network``; k = Φ·P (1/τ) from the flux ``flux`` ±
    ``flux_err`` (1/τ), relative errors in quadrature. Returns (rate record, ensemble with ``traces`` CV traces)."""
    ensemble, _ = _shoot_driven(
        problem, starts, settings.production_paths, settings, seed, network.rescaled(problem.beta), traces
    )
    stats = _ensemble_stats(ensemble)
    probability, probability_err = stats['probability'], stats['probability_err']
    rate = flux * probability
    relative = np.hypot(flux_err / flux, probability_err / probability) if probability > 0 else np.inf
    record = {
        'rate': rate,
        'rate_err': rate * relative if probability > 0 else float('inf'),
        # cut paths could have added at most their weight to P: the rate's upper bound from them
        'rate_upper_cut': flux * (probability + stats['cut_weight']),
        'flux': flux,
        'flux_err': flux_err,
        **stats,
    }
    return record, ensemble


def run_seeds(seed: int) -> tuple[int, int, int]:
    """The (flux, training, production) seeds of a run seeded by ``seed``."""
    flux_seed, train_seed, production_seed = np.random.default_rng([seed, 3]).integers(2**31, size=3)
    return int(flux_seed), int(train_seed), int(production_seed)


def estimate_rate(
    problem: TransitionProblem,
    settings: SamplerSettings,
    seed: int,
    log: t.Callable[[dict], None] | None = None,
    traces: int = 0,
) -> dict:
    """The RL estimate of k(A→B) (1/τ): :func:`flux_run`, :func:`train`, then :func:`production` with the trained V.

    Returns ``rate``, ``rate_err``, ``rate_upper_cut``, ``flux``/``flux_err``, ``probability``/``probability_err``,
    the force evaluations by phase and in total (``force_evals``), the training ``history``, the ``network``, the
    production ``ensemble`` (with ``traces`` CV traces) and the flux run's crossing configurations ``starts``.
    """
    flux_seed, train_seed, production_seed = run_seeds(seed)
    flux = flux_run(problem, settings, flux_seed)
    network, history = train(problem, flux.crossing_positions, settings, train_seed, log=log)
    record, ensemble = production(
        problem, flux.crossing_positions, settings, production_seed, network, flux.flux, flux.flux_err, traces
    )
    training_evals = sum(r['force_evals'] for r in history)
    return {
        **record,
        'crossings': flux.crossings,
        'production': {k: v for k, v in record.items() if not k.startswith(('rate', 'flux'))},
        'force_evals_flux': flux.force_evals,
        'force_evals_training': training_evals,
        'force_evals_production': ensemble.force_evals,
        'force_evals': flux.force_evals + training_evals + ensemble.force_evals,
        'history': history,
        'network': network,
        'ensemble': ensemble,
        'starts': flux.crossing_positions,
    }
