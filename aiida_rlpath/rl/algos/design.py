"""Crystal-design agents (DQN, PPO, random) and the training loop both shells share (no AiiDA import).

Training runs in rounds of ``episodes_per_round`` episodes sampled from the same policy:

1. :func:`sample_episode` fills a prototype with the current policy (seeded by ``(seed, episode)``) and returns
   a :class:`DesignEpisode` and the designed structure, reward pending;
2. the structure's property is evaluated (plain shell: a :class:`~aiida_rlpath.envs.crystal_design.PropertyCache`;
   AiiDA shell: a cached calcfunction) and :func:`finish_episode` sets the reward from the target;
3. :meth:`DesignAgent.learn` updates the policy on the round's episodes (PPO: on-policy, clipped surrogate from
   :mod:`aiida_rlpath.rl.algos.ppo`; DQN: every stored episode is replayed into transitions, reward at the last
   step, double-DQN from :mod:`aiida_rlpath.rl.algos.dqn`; random: nothing).

Episodes store only their actions: observations are rebuilt with ``env.replay``, so an agent's whole state
(:func:`agent_to_bytes`) is the network weights, the optimiser, counters and the episode list as JSON.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import typing as t

import numpy as np
import torch

from aiida_rlpath.physics.properties import reject_unknown_keys
from aiida_rlpath.rl.algos.dqn import DQN, DQNSettings, Transition
from aiida_rlpath.rl.algos.ppo import PPOSettings, Step, ppo_update
from aiida_rlpath.rl.models.design import DesignGNN, collate_design

__all__ = (
    'ALGORITHMS',
    'DesignAgent',
    'DesignEpisode',
    'DesignHistory',
    'DesignSettings',
    'agent_from_bytes',
    'agent_to_bytes',
    'episode_seed',
    'finish_episode',
    'make_agent',
    'run_design',
    'sample_episode',
)

ALGORITHMS = ('dqn', 'ppo', 'random')
DEFAULT_DQN = DQNSettings()
DEFAULT_PPO = PPOSettings(learning_rate=3e-3, epochs=8, gamma=1.0, lam=0.95, entropy=0.01, target_kl=0.05)


@dataclasses.dataclass(frozen=True)
class DesignSettings:
    """Training settings.

    :param algorithm: ``dqn``, ``ppo`` or ``random`` (uniform over allowed elements: the baseline).
    :param episodes: episodes in all; ``episodes_per_round``: episodes per policy update.
    :param seed: seeds the network initialisation, every episode's draws and every update.
    :param hidden, layers: size of the :class:`~aiida_rlpath.rl.models.design.DesignGNN`.
    :param dqn: :class:`~aiida_rlpath.rl.algos.dqn.DQNSettings` (or a mapping of its fields).
    :param ppo: :class:`~aiida_rlpath.rl.algos.ppo.PPOSettings` (or a mapping of its fields).
    """

    algorithm: str = 'dqn'
    episodes: int = 48
    episodes_per_round: int = 8
    seed: int = 0
    hidden: int = 64
    layers: int = 3
    dqn: DQNSettings = DEFAULT_DQN
    ppo: PPOSettings = DEFAULT_PPO

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f'unknown algorithm {self.algorithm!r}; known: {", ".join(ALGORITHMS)}')
        if self.episodes < 1 or self.episodes_per_round < 1:
            raise ValueError('episodes and episodes_per_round must be >= 1')
        if isinstance(self.dqn, dict):
            object.__setattr__(self, 'dqn', DQNSettings(**self.dqn))
        if isinstance(self.ppo, dict):
            object.__setattr__(self, 'ppo', dataclasses.replace(DEFAULT_PPO, **self.ppo))

    @classmethod
    def from_dict(cls, values: t.Mapping[str, t.Any] | None) -> DesignSettings:
        """Settings from a (JSON) mapping; unknown keys are a ``ValueError`` that names them."""
        values = dict(values or {})
        reject_unknown_keys(values, sorted(f.name for f in dataclasses.fields(cls)), 'design settings')
        try:
            return cls(**values)
        except TypeError as exception:
            raise ValueError(f'bad design settings: {exception}') from exception

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        return json.loads(json.dumps(out))

    @property
    def rounds(self) -> int:
        return math.ceil(self.episodes / self.episodes_per_round)


@dataclasses.dataclass
class DesignEpisode:
    """One episode: its ``index``, ``seed``, ``prototype``, the ``actions`` (vocabulary indices, in site order),
    the behaviour ``logps`` and ``values`` (PPO; else empty), the designed ``formula`` and, once evaluated, the
    property ``value`` (its unit), ``ok``, ``exit_status``, ``cache_hit``, ``reward`` and, when the evaluation
    failed, its ``message``."""

    index: int
    seed: int
    prototype: str
    actions: list[int]
    elements: list[str]
    logps: list[float]
    values: list[float]
    formula: str
    value: float | None = None
    ok: bool | None = None
    exit_status: int | None = None
    cache_hit: bool | None = None
    reward: float | None = None
    message: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: t.Mapping) -> DesignEpisode:
        return cls(**dict(values))


class _PPOPolicy(torch.nn.Module):
    """:func:`~aiida_rlpath.rl.algos.ppo.ppo_update`'s view of a :class:`DesignGNN`: a categorical policy over
    the allowed elements and a critic."""

    def __init__(self, network: DesignGNN):
        super().__init__()
        self.network = network

    def evaluate(self, states, samples):
        logits, values = self.network(collate_design(states))
        distribution = torch.distributions.Categorical(logits=logits.double())
        actions = samples[:, 0].long()
        return distribution.log_prob(actions), distribution.entropy(), values.double()


class DesignAgent:
    """A crystal-design agent: :meth:`act`, :meth:`learn`, and its state for checkpoints.

    :param n_node_features, n_actions: from the environment (``env.n_node_features``, ``env.n_actions``).
    """

    def __init__(self, n_node_features: int, n_actions: int, settings: DesignSettings):
        self.settings = settings
        self.n_node_features, self.n_actions = int(n_node_features), int(n_actions)
        self.episodes: list[DesignEpisode] = []  # everything learned from (DQN replays them all)
        self.rounds = 0
        self.network = None
        if settings.algorithm != 'random':
            self.network = DesignGNN(
                n_node_features, n_actions, hidden=settings.hidden, layers=settings.layers, seed=settings.seed
            )
        if settings.algorithm == 'dqn':
            self.dqn = DQN(self.network, collate_design, settings.dqn)
        elif settings.algorithm == 'ppo':
            self.policy = _PPOPolicy(self.network)

    # -- acting --------------------------------------------------------------------------------------------------
    def act(self, observation: dict, rng: np.random.Generator, episode: int) -> tuple[int, float, float]:
        """The action for ``observation`` and, for PPO, its log-probability (nats) and the critic's value."""
        allowed = np.flatnonzero(np.asarray(observation['action_mask']))
        if len(allowed) == 0:
            raise ValueError('no element is allowed on this site')
        if self.settings.algorithm == 'random':
            return int(rng.choice(allowed)), float(-math.log(len(allowed))), float('nan')
        if self.settings.algorithm == 'dqn':
            return self.dqn.act(observation, self.settings.dqn.epsilon(episode), rng), float('nan'), float('nan')
        with torch.no_grad():
            logits, value = self.network(collate_design([observation]))
        probabilities = torch.softmax(logits[0].double(), dim=0).numpy()
        action = int(rng.choice(len(probabilities), p=probabilities / probabilities.sum()))
        return action, float(np.log(probabilities[action])), float(value[0])

    def greedy(self, observation: dict) -> int:
        """The most preferred allowed action (highest Q or probability); random agents have none."""
        if self.network is None:
            raise ValueError('a random agent has no greedy action')
        with torch.no_grad():
            out, _ = self.network(collate_design([observation]))
        return int(out[0].argmax())

    # -- learning ------------------------------------------------------------------------------------------------
    def learn(self, episodes: t.Sequence[DesignEpisode], env) -> dict:
        """Update on a round of finished ``episodes`` (rewards set); ``env`` rebuilds their observations."""
        for episode in episodes:
            if episode.reward is None:
                raise ValueError(f'episode {episode.index} has no reward yet')
        self.episodes.extend(episodes)
        seed = int(np.random.SeedSequence([self.settings.seed, 7919, self.rounds]).generate_state(1)[0])
        self.rounds += 1
        if self.settings.algorithm == 'random':
            return {'algorithm': 'random', 'round': self.rounds}
        if self.settings.algorithm == 'ppo':
            batch = []
            for episode in episodes:
                observations = env.replay(episode.prototype, episode.actions)
                steps = []
                for k, action in enumerate(episode.actions):
                    reward = float(episode.reward) if k == len(episode.actions) - 1 else 0.0
                    steps.append(Step(observations[k], [action], episode.logps[k], reward, episode.values[k]))
                batch.append(steps)
            stats = ppo_update(self.policy, batch, seed, self.settings.ppo)
            stats.pop('heads', None)
            return {'algorithm': 'ppo', 'round': self.rounds, **stats}
        buffer = self._transitions(env)
        stats = self.dqn.update(buffer, np.random.default_rng(seed))
        return {'algorithm': 'dqn', 'round': self.rounds, 'transitions': len(buffer), **stats}

    def _transitions(self, env) -> list[Transition]:
        transitions = []
        for episode in self.episodes:
            observations = env.replay(episode.prototype, episode.actions)
            last = len(episode.actions) - 1
            for k, action in enumerate(episode.actions):
                reward = float(episode.reward) if k == last else 0.0
                transitions.append(Transition(observations[k], action, reward, observations[k + 1], k == last))
        return transitions[-self.settings.dqn.buffer_size :]

    # -- state ---------------------------------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """The policy network's state dict (empty for the random agent)."""
        return {} if self.network is None else dict(self.network.state_dict())

    def state_dict(self) -> dict:
        state = {
            'settings': json.dumps(self.settings.as_dict(), sort_keys=True),
            'n_node_features': self.n_node_features,
            'n_actions': self.n_actions,
            'rounds': self.rounds,
            'episodes': json.dumps([e.as_dict() for e in self.episodes]),
        }
        if self.settings.algorithm == 'dqn':
            state['dqn'] = self.dqn.state_dict()
        elif self.settings.algorithm == 'ppo':
            state['network'] = self.network.state_dict()
        return state

    def load_state_dict(self, state: dict):
        self.rounds = int(state['rounds'])
        self.episodes = [DesignEpisode.from_dict(e) for e in json.loads(state['episodes'])]
        if self.settings.algorithm == 'dqn':
            self.dqn.load_state_dict(state['dqn'])
        elif self.settings.algorithm == 'ppo':
            self.network.load_state_dict(state['network'])


def make_agent(env, settings: DesignSettings) -> DesignAgent:
    """A fresh agent for ``env``."""
    return DesignAgent(env.n_node_features, env.n_actions, settings)


def agent_to_bytes(agent: DesignAgent) -> bytes:
    """The agent's whole state as ``torch.save`` bytes (loadable with ``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    return buffer.getvalue()


def agent_from_bytes(data: bytes) -> DesignAgent:
    """The agent :func:`agent_to_bytes` wrote."""
    state = torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
    settings = DesignSettings.from_dict(json.loads(state['settings']))
    agent = DesignAgent(state['n_node_features'], state['n_actions'], settings)
    agent.load_state_dict(state)
    return agent


def episode_seed(seed: int, episode: int) -> int:
    """The seed of episode ``episode`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(episode)]).generate_state(1)[0])


def sample_episode(agent: DesignAgent, env, episode: int):
    """Fill a prototype with ``agent`` (episode ``episode``, seeded from the run's seed); the environment must
    defer evaluation (``evaluator=None``). Returns the :class:`DesignEpisode` (reward pending) and the designed
    pymatgen structure."""
    if env.evaluator is not None:
        raise ValueError('sample_episode needs an environment without an evaluator (evaluation is deferred)')
    seed = episode_seed(agent.settings.seed, episode)
    rng = np.random.default_rng(seed)
    observation, info = env.reset(seed=seed)
    actions, logps, values, done = [], [], [], False
    while not done:
        action, logp, value = agent.act(observation, rng, episode)
        actions.append(action)
        logps.append(logp)
        values.append(value)
        observation, _, done, _, step_info = env.step(action)
    structure = step_info['structure']
    record = DesignEpisode(
        index=int(episode),
        seed=seed,
        prototype=info['prototype'],
        actions=actions,
        elements=[env.vocabulary[a] for a in actions],
        logps=logps,
        values=values,
        formula=structure.composition.reduced_formula,
    )
    return record, structure


def finish_episode(episode: DesignEpisode, value, ok: bool, exit_status: int, cache_hit: bool, target):
    """Set the evaluation's outcome and the reward from ``target`` (a
    :class:`~aiida_rlpath.envs.crystal_design.PropertyTarget`) on ``episode``; returns it."""
    finite = value is not None and math.isfinite(value)
    episode.value = float(value) if finite else None
    episode.ok, episode.exit_status, episode.cache_hit = bool(ok), int(exit_status), bool(cache_hit)
    episode.reward = target.reward(episode.value, episode.ok)
    return episode


@dataclasses.dataclass
class DesignHistory:
    """A run's episodes (in order), per-round learning statistics, the evaluator's counts and the trained
    ``agent``."""

    episodes: list[DesignEpisode]
    rounds: list[dict]
    evaluations: int
    cache_hits: int
    agent: DesignAgent | None = None

    def summary(self, target) -> dict:
        """Best reward, its episode and formula, the first episode within the target's tolerance (``None``:
        never), property evaluations spent and cache hits."""
        rewards = [e.reward for e in self.episodes]
        best = int(np.argmax(rewards))
        reached = [e.index for e in self.episodes if target.within(e.value)]
        return {
            'best_reward': float(rewards[best]),
            'best_formula': self.episodes[best].formula,
            'best_prototype': self.episodes[best].prototype,
            'best_value': self.episodes[best].value,
            'episodes_to_target': (reached[0] + 1) if reached else None,
            'property_evaluations': self.evaluations,
            'cache_hits': self.cache_hits,
            'failed': sum(1 for e in self.episodes if not e.ok),
            'mean_reward_first_half': float(np.mean(rewards[: len(rewards) // 2 or 1])),
            'mean_reward_second_half': float(np.mean(rewards[len(rewards) // 2 :])),
        }


def run_design(env, cache, target, settings: DesignSettings, progress: t.Callable | None = None) -> DesignHistory:
    """Train (or, for ``random``, just sample) for ``settings.episodes`` episodes on ``env`` (evaluation deferred)
    with the property evaluator ``cache`` (a :class:`~aiida_rlpath.envs.crystal_design.PropertyCache`) and
    ``target``. ``progress(episode)`` is called after each evaluated episode."""
    agent = make_agent(env, settings)
    episodes, rounds = [], []
    for start in range(0, settings.episodes, settings.episodes_per_round):
        batch = []
        for index in range(start, min(start + settings.episodes_per_round, settings.episodes)):
            episode, structure = sample_episode(agent, env, index)
            record = cache(structure)
            finish_episode(episode, record.value, record.ok, record.exit_status, record.cache_hit, target)
            episode.message = record.message or None if not record.ok else None
            batch.append(episode)
            if progress is not None:
                progress(episode)
        rounds.append(agent.learn(batch, env))
        episodes.extend(batch)
    return DesignHistory(episodes, rounds, cache.evaluations, cache.hits, agent)
