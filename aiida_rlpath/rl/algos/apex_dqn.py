"""Distributed prioritized-replay DQN (Ape-X, Horgan et al., ICLR 2018) for MAP (torch + numpy; no AiiDA import).

The pieces, each a pure function or a small class so both shells run the same code:

- :class:`PrioritizedReplay`: proportional prioritized replay (Schaul et al., ICLR 2016), P(i) = p_i^α / Σ p^α,
  importance weights (N·P(i))^−β normalised by their maximum, stratified draws from a seeded generator.
- :func:`n_step_transitions`: n-step returns R = Σ_{k<m} γ^k r_{t+k} with the bootstrap discount γ^m (0 after a
  terminal step; a time-limit truncation still bootstraps).
- :func:`actor_round`: one actor's round of K environment steps with a fixed Q-network checkpoint and its own ε
  (the ε ladder ε_i = ε^(1 + α·i/(N−1)) of :func:`epsilon_ladder`); it returns its experiences with initial
  priorities computed by the actor, as Ape-X does, and the episodes' traces (energies, positions, actions).
- :class:`ApexLearner`: online and target 3D-CNN Q-networks, double-DQN n-step targets, importance-weighted Huber
  loss, priorities updated to abs(TD error) + ε, hard target copies every ``target_period`` updates.
- :func:`train`: the plain-shell loop (actors run one after another); the AiiDA work chain runs the same actor
  rounds as parallel processes on daemon workers and the learner step as a calculation node.

Why the replay buffer is written here rather than taken from TorchRL: TorchRL's ``PrioritizedReplayBuffer`` needs
its compiled ``_torchrl`` extension, which is built against one torch release; with the torch 2.13 CPU wheel this
project installs, both torchrl 0.14.1 and 0.13.3 fail to load it (undefined C++ symbols) and the prioritized
sampler raises. The buffer below keeps items in insertion order (oldest dropped first), which lets the provenance
shell rebuild it exactly from the stored experience nodes; sampling is O(N) per minibatch (a cumulative sum), which
is negligible at the sizes used here (≤ 10⁵ items).

Units: rewards as the environment gives them; energies eV, lengths Å.
"""

from __future__ import annotations

import dataclasses
import io
import typing as t

import numpy as np
import torch
from torch import nn

from aiida_rlpath.rl.models.cnn3d import build_q_network

__all__ = (
    'FIELDS',
    'ApexLearner',
    'ApexSettings',
    'EpisodeTrace',
    'PrioritizedReplay',
    'actor_round',
    'actor_seed',
    'concat_batches',
    'epsilon_ladder',
    'evaluate',
    'n_step_transitions',
    'train',
)

#: Arrays of an experience batch: ``state`` and ``next_state`` grids, ``action``, n-step ``ret``urn, ``discount``.
FIELDS = ('state', 'action', 'ret', 'next_state', 'discount')


@dataclasses.dataclass(frozen=True)
class ApexSettings:
    """Ape-X hyper-parameters.

    :param actors: actor processes per round (N); ``steps_per_actor``: environment steps per actor round (K).
    :param rounds: training rounds (each: N actor rounds, then one learner step).
    :param n_step: n of the n-step returns; ``gamma``: discount per step.
    :param learning_rate: Adam step size; ``batch_size``: transitions per minibatch; ``updates_per_round``:
        minibatch steps per learner step; ``target_period``: updates between hard target-network copies.
    :param buffer_size: replay capacity (oldest dropped first).
    :param alpha: priority exponent; ``beta``: importance-correction exponent at round 0, annealed linearly to 1 at
        the last round; ``priority_epsilon``: added to abs(TD error).
    :param epsilon, epsilon_alpha: the actors' ε ladder ε_i = epsilon^(1 + epsilon_alpha·i/(N−1)).
    :param hidden: convolution channels of the Q-network; ``max_grad_norm``: gradient clip.
    """

    actors: int = 2
    steps_per_actor: int = 12
    rounds: int = 4
    n_step: int = 3
    gamma: float = 0.9
    learning_rate: float = 1e-3
    batch_size: int = 32
    updates_per_round: int = 128
    target_period: int = 16
    buffer_size: int = 5000
    alpha: float = 0.6
    beta: float = 0.4
    priority_epsilon: float = 1e-3
    epsilon: float = 0.4
    epsilon_alpha: float = 7.0
    hidden: int = 16
    max_grad_norm: float = 10.0

    def __post_init__(self):
        for name in ('actors', 'steps_per_actor', 'n_step', 'batch_size', 'target_period', 'buffer_size', 'hidden'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.rounds < 0 or self.updates_per_round < 0:
            raise ValueError('rounds and updates_per_round must be >= 0')
        if not 0 < self.gamma <= 1 or self.learning_rate <= 0:
            raise ValueError('gamma must be in (0, 1] and learning_rate > 0')
        if not 0 <= self.alpha <= 1 or not 0 <= self.beta <= 1 or self.priority_epsilon <= 0:
            raise ValueError('alpha and beta must be in [0, 1], priority_epsilon > 0')
        if not 0 <= self.epsilon <= 1 or self.epsilon_alpha < 0:
            raise ValueError('epsilon must be in [0, 1] and epsilon_alpha >= 0')

    def beta_at(self, round_index: int) -> float:
        """The importance-correction exponent of round ``round_index`` (0-based): β annealed to 1."""
        if self.rounds <= 1:
            return self.beta
        return self.beta + (1.0 - self.beta) * min(1.0, round_index / (self.rounds - 1))


def settings_from_dict(data: t.Mapping[str, t.Any] | None) -> ApexSettings:
    """:class:`ApexSettings` from a (partial) dictionary; unknown keys raise ``ValueError`` naming them."""
    from aiida_rlpath.physics.properties import reject_unknown_keys

    reject_unknown_keys(data or {}, sorted(f.name for f in dataclasses.fields(ApexSettings)), 'Ape-X settings')
    return ApexSettings(**dict(data or {}))


def epsilon_ladder(actors: int, epsilon: float = 0.4, alpha: float = 7.0) -> list[float]:
    """Exploration rates of ``actors`` actors: ε_i = ε^(1 + α·i/(N−1)) (one actor: ε)."""
    if actors < 1:
        raise ValueError(f'need at least one actor, got {actors}')
    if actors == 1:
        return [float(epsilon)]
    return [float(epsilon ** (1.0 + alpha * i / (actors - 1))) for i in range(actors)]


def actor_seed(seed: int, round_index: int, actor: int) -> int:
    """The seed of actor ``actor`` in round ``round_index`` of a run seeded by ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(round_index), int(actor)]).generate_state(1)[0])


class PrioritizedReplay:
    """Proportional prioritized replay with items kept in insertion order (module docstring).

    :param capacity: most items kept; ``alpha``: priority exponent; ``priority_epsilon``: floor added to abs(δ).
    """

    def __init__(self, capacity: int, alpha: float = 0.6, priority_epsilon: float = 1e-3):
        if capacity < 1:
            raise ValueError(f'replay capacity must be >= 1, got {capacity}')
        self.capacity, self.alpha, self.priority_epsilon = int(capacity), float(alpha), float(priority_epsilon)
        self.data: dict[str, np.ndarray] = {}
        self.priorities = np.zeros(0)

    def __len__(self) -> int:
        return int(self.priorities.size)

    def extend(self, batch: t.Mapping[str, np.ndarray], priorities: np.ndarray | None = None) -> None:
        """Append a batch (arrays of :data:`FIELDS`, equal length); ``priorities`` (abs(δ)-like, before α) default
        to the largest priority held (1 when empty), so new items are sampled at least once soon."""
        count = len(batch['action'])
        if count == 0:
            return
        if priorities is None:
            priorities = np.full(count, self.priorities.max() if len(self) else 1.0)
        priorities = np.asarray(priorities, dtype=float)
        if priorities.shape != (count,) or np.any(~np.isfinite(priorities)) or np.any(priorities <= 0):
            raise ValueError('priorities must be positive and finite, one per item')
        for name in FIELDS:
            value = np.asarray(batch[name])
            self.data[name] = value.copy() if name not in self.data else np.concatenate([self.data[name], value])
        self.priorities = np.concatenate([self.priorities, priorities])
        excess = len(self) - self.capacity
        if excess > 0:
            self.data = {name: value[excess:] for name, value in self.data.items()}
            self.priorities = self.priorities[excess:]

    def probabilities(self) -> np.ndarray:
        """P(i) = p_i^α / Σ_k p_k^α."""
        scaled = self.priorities**self.alpha
        return scaled / scaled.sum()

    def sample(self, size: int, beta: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``size`` indices drawn ∝ P(i), one uniform draw in each of ``size`` equal strata of the cumulative
        mass, and their importance weights (N·P(i))^−β / max_j (N·P(j))^−β."""
        if len(self) == 0:
            raise ValueError('cannot sample from an empty replay buffer')
        probabilities = self.probabilities()
        cumulative = np.cumsum(probabilities)
        targets = (np.arange(size) + rng.random(size)) / size * cumulative[-1]
        indices = np.minimum(np.searchsorted(cumulative, targets, side='right'), len(self) - 1)
        weights = (len(self) * probabilities[indices]) ** (-beta)
        smallest = probabilities.min()
        return indices, weights / (len(self) * smallest) ** (-beta)

    def update(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set the priorities of ``indices`` to abs(δ) + ``priority_epsilon``."""
        self.priorities[np.asarray(indices)] = np.abs(np.asarray(td_errors, dtype=float)) + self.priority_epsilon

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {name: value[indices] for name, value in self.data.items()}


def n_step_transitions(
    states: t.Sequence[np.ndarray],
    actions: t.Sequence[int],
    rewards: t.Sequence[float],
    terminated: bool,
    n: int,
    gamma: float,
) -> dict[str, np.ndarray]:
    """n-step transitions of one episode (or episode piece) with states s_0..s_T, actions and rewards 0..T−1.

    For each t: m = min(n, T − t), ret = Σ_{k<m} γ^k r_{t+k}, next_state = s_{t+m}, discount = γ^m, or 0 when the
    episode ``terminated`` at T and t + m = T (a truncated piece bootstraps from s_T).
    """
    count = len(actions)
    if len(states) != count + 1 or len(rewards) != count:
        raise ValueError(f'need T+1 states for T actions and rewards, got {len(states)}, {count}, {len(rewards)}')
    rets, nexts, discounts = [], [], []
    for step in range(count):
        m = min(n, count - step)
        rets.append(sum(gamma**k * rewards[step + k] for k in range(m)))
        nexts.append(states[step + m])
        discounts.append(0.0 if terminated and step + m == count else gamma**m)
    empty = np.zeros((0, *np.shape(states[0])), dtype=np.float32)
    return {
        'state': np.asarray(states[:count], dtype=np.float32) if count else empty,
        'action': np.asarray(actions, dtype=np.int64),
        'ret': np.asarray(rets, dtype=np.float32),
        'next_state': np.asarray(nexts, dtype=np.float32) if count else empty,
        'discount': np.asarray(discounts, dtype=np.float32),
    }


def concat_batches(batches: t.Sequence[t.Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Experience batches (arrays of :data:`FIELDS`) joined in order."""
    return {name: np.concatenate([b[name] for b in batches]) for name in FIELDS}


def td_errors(q: nn.Module, target: nn.Module, batch: t.Mapping[str, np.ndarray]) -> torch.Tensor:
    """Double-DQN n-step TD errors ret + discount·Q_target(s', argmax_a Q(s', a)) − Q(s, a) (with gradient
    through Q(s, a))."""
    states = torch.as_tensor(batch['state'])
    actions = torch.as_tensor(batch['action'], dtype=torch.long)
    q_taken = q(states).gather(1, actions[:, None]).squeeze(1)
    with torch.no_grad():
        following = torch.as_tensor(batch['next_state'])
        choice = q(following).argmax(dim=1, keepdim=True)
        bootstrap = target(following).gather(1, choice).squeeze(1)
        targets = torch.as_tensor(batch['ret']) + torch.as_tensor(batch['discount']) * bootstrap
    return targets - q_taken


@dataclasses.dataclass
class EpisodeTrace:
    """One episode (or the piece of it an actor round ran): PES ``energies`` (eV) and water-O ``x`` (Å) after each
    step, the start included; ``actions``, ``rewards``; ``positions`` (frames, atoms, 3) in Å; ``terminated``
    (a failed relaxation ended it) and ``complete`` (it ran to its end in this round); ``force_calls``."""

    energies: list[float]
    x: list[float]
    actions: list[int]
    rewards: list[float]
    positions: np.ndarray
    terminated: bool
    complete: bool
    force_calls: int

    @property
    def progress(self) -> float:
        """Water-O displacement along +x over the episode, Å."""
        return float(self.x[-1] - self.x[0])


def _greedy(q: nn.Module, state: np.ndarray) -> int:
    with torch.no_grad():
        return int(q(torch.as_tensor(state[None])).argmax(dim=1)[0])


def actor_round(env, q: nn.Module | None, epsilon: float, steps: int, seed: int, n: int, gamma: float):
    """Run ``steps`` environment steps, ε-greedy on ``q`` (``None``: uniformly random actions), starting new
    episodes from ``env``'s start as they end. Returns (experiences, priorities, traces): the n-step
    transitions of all pieces (arrays of :data:`FIELDS`), their initial priorities abs(δ) from ``q`` (ones if
    ``q`` is ``None``), and one :class:`EpisodeTrace` per episode or piece. Seeded by ``seed`` only."""
    rng = np.random.default_rng(seed)
    pieces, traces = [], []
    done_steps = 0
    while done_steps < steps:
        state, info = env.reset(seed=int(rng.integers(2**31)))
        states, actions, rewards = [state], [], []
        energies, xs, calls = [info['energy']], [info['x']], 0
        terminated = truncated = False
        while not (terminated or truncated) and done_steps < steps:
            explore = q is None or rng.random() < epsilon
            action = int(rng.integers(env.action_space.n)) if explore else _greedy(q, state)
            state, reward, terminated, truncated, step_info = env.step(action)
            record = step_info['record']
            states.append(state)
            actions.append(action)
            rewards.append(reward)
            energies.append(record.energy if record.error is None else energies[-1])
            xs.append(record.x)
            calls += record.force_calls
            done_steps += 1
        pieces.append(n_step_transitions(states, actions, rewards, terminated, n, gamma))
        positions = np.asarray([frame.positions for frame in env.frames])
        traces.append(
            EpisodeTrace(
                energies, xs, actions, rewards, positions, bool(terminated), bool(terminated or truncated), calls
            )
        )
    experiences = concat_batches(pieces)
    if q is None:
        priorities = np.ones(len(experiences['action']))
    else:
        with torch.no_grad():
            priorities = np.abs(td_errors(q, q, experiences).numpy()) + 1e-3
    return experiences, priorities.astype(float), traces


class ApexLearner:
    """The learner: online and target Q-networks and their Adam optimiser.

    :param architecture: :class:`~aiida_rlpath.rl.models.cnn3d.QNetwork3D` options (with ``name``).
    :param seed: initial weights (torch's global generator untouched); ``settings``: :class:`ApexSettings`.
    """

    def __init__(self, architecture: dict[str, t.Any], settings: ApexSettings, seed: int = 0):
        self.settings = settings
        self.architecture = dict(architecture)
        self.q = build_q_network(architecture, seed=seed)
        self.target = build_q_network(architecture, self.q.state_dict())
        for parameter in self.target.parameters():
            parameter.requires_grad_(False)
        self.optimiser = torch.optim.Adam(self.q.parameters(), lr=settings.learning_rate)
        self.updates = 0

    def update(self, replay: PrioritizedReplay, beta: float, rng: np.random.Generator) -> dict[str, t.Any]:
        """``updates_per_round`` prioritized minibatch steps; returns the mean loss, abs(δ) and Q of the steps."""
        s = self.settings
        if len(replay) == 0 or s.updates_per_round == 0:
            return {'updates': 0, 'loss': None, 'td_abs': None, 'q_mean': None}
        losses, deltas, qs = [], [], []
        for _ in range(s.updates_per_round):
            indices, weights = replay.sample(min(s.batch_size, len(replay)), beta, rng)
            batch = replay.batch(indices)
            delta = td_errors(self.q, self.target, batch)
            huber = nn.functional.smooth_l1_loss(delta, torch.zeros_like(delta), reduction='none')
            loss = (torch.as_tensor(weights, dtype=torch.float32) * huber).mean()
            self.optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.q.parameters(), s.max_grad_norm)
            self.optimiser.step()
            replay.update(indices, delta.detach().numpy())
            self.updates += 1
            if self.updates % s.target_period == 0:
                self.target.load_state_dict(self.q.state_dict())
            losses.append(float(loss.detach()))
            deltas.append(float(delta.detach().abs().mean()))
            with torch.no_grad():
                qs.append(float(self.q(torch.as_tensor(batch['state'])).mean()))
        return {
            'updates': len(losses),
            'loss': float(np.mean(losses)),
            'td_abs': float(np.mean(deltas)),
            'q_mean': float(np.mean(qs)),
        }

    def state_to_bytes(self, replay: PrioritizedReplay | None = None) -> bytes:
        """The learner's state beyond the online weights: target weights, optimiser, update count and, if given,
        the replay priorities (``torch.save`` bytes, loadable with ``weights_only=True``)."""
        state = {'target': self.target.state_dict(), 'optimiser': self.optimiser.state_dict(), 'updates': self.updates}
        if replay is not None:
            state['priorities'] = torch.as_tensor(replay.priorities)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def load_state_bytes(self, data: bytes) -> np.ndarray | None:
        """Restore :meth:`state_to_bytes` output (online weights are loaded separately); returns the priorities."""
        state = torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
        self.target.load_state_dict(state['target'])
        self.optimiser.load_state_dict(state['optimiser'])
        self.updates = int(state['updates'])
        priorities = state.get('priorities')
        return None if priorities is None else priorities.numpy().astype(float)


def learner_step(
    learner: ApexLearner,
    replay: PrioritizedReplay,
    new: t.Sequence[tuple[dict[str, np.ndarray], np.ndarray]],
    round_index: int,
    seed: int,
) -> dict[str, t.Any]:
    """Add the actors' ``new`` (experiences, priorities) to ``replay`` in order, then one learner update at round
    ``round_index``'s β, seeded by ``seed``. Returns the update's metrics with the replay size."""
    for experiences, priorities in new:
        replay.extend(experiences, priorities)
    metrics = learner.update(replay, learner.settings.beta_at(round_index), np.random.default_rng(seed))
    return {**metrics, 'replay_size': len(replay), 'beta': learner.settings.beta_at(round_index)}


def learner_seed(seed: int, round_index: int) -> int:
    """The learner's seed in round ``round_index`` (disjoint from the actors' :func:`actor_seed`)."""
    return actor_seed(seed, round_index, 10**6)


def round_summary(round_index: int, traces: t.Sequence[t.Sequence[EpisodeTrace]], metrics: dict) -> dict:
    """One round's record: steps, mean reward per step, mean progress of the complete episodes (Å), the learner
    metrics."""
    flat = [trace for actor in traces for trace in actor]
    rewards = [r for trace in flat for r in trace.rewards]
    complete = [trace.progress for trace in flat if trace.complete]
    return {
        'round': round_index,
        'steps': len(rewards),
        'mean_reward': float(np.mean(rewards)) if rewards else None,
        'mean_progress': float(np.mean(complete)) if complete else None,
        'force_calls': int(sum(trace.force_calls for trace in flat)),
        **metrics,
    }


def train(env_factory: t.Callable[[], t.Any], settings: ApexSettings, seed: int, architecture: dict[str, t.Any]):
    """The plain-shell Ape-X loop: per round, each actor i runs :func:`actor_round` with ε_i from the ladder on
    a fresh environment (``env_factory()``: a LAMMPS instance carries charge-equilibration guesses from call to
    call, so reusing one would change the numbers at the 1e-6 eV level), then one :func:`learner_step`. Actors
    run one after another here; the work chain runs them as parallel processes, with the same seeds and numbers.

    Returns (learner, replay, history, traces): the history holds one :func:`round_summary` per round, the traces
    every actor round's episodes (round-major, then actor).
    """
    learner = ApexLearner(architecture, settings, seed)
    replay = PrioritizedReplay(settings.buffer_size, settings.alpha, settings.priority_epsilon)
    epsilons = epsilon_ladder(settings.actors, settings.epsilon, settings.epsilon_alpha)
    history, all_traces = [], []
    for r in range(settings.rounds):
        q = build_q_network(architecture, learner.q.state_dict())
        new, round_traces = [], []
        for i in range(settings.actors):
            env = env_factory()  # a fresh environment per actor round, as each actor process builds its own
            experiences, priorities, traces = actor_round(
                env, q, epsilons[i], settings.steps_per_actor, actor_seed(seed, r, i), settings.n_step, settings.gamma
            )
            new.append((experiences, priorities))
            round_traces.append(traces)
        metrics = learner_step(learner, replay, new, r, learner_seed(seed, r))
        history.append(round_summary(r, round_traces, metrics))
        all_traces.append(round_traces)
    return learner, replay, history, all_traces


def evaluate(env, q: nn.Module | None, episodes: int, seed: int, epsilon: float = 0.0) -> list[EpisodeTrace]:
    """``episodes`` complete episodes, greedy on ``q`` (with ``epsilon`` exploration), or random with ``q=None``."""
    traces = []
    for episode in range(episodes):
        steps = env.settings.max_steps
        _, _, pieces = actor_round(env, q, epsilon, steps, actor_seed(seed, episode, 2**20), 1, 1.0)
        traces.append(pieces[0])
    return traces
