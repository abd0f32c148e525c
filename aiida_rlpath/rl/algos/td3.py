"""TD3 for RL crystal relaxation (Fujimoto et al. 2018), CleanRL-readable; torch, no AiiDA.

Twin critics, delayed policy updates and target-policy smoothing, on graph states of variable size. The action
is a displacement vector per atom (Å). Exploration perturbs the *state* in a way that keeps the symmetry: one
random rotation and one length scaling applied to every per-atom vector the actor sees (an equivariant actor
then moves all atoms by a consistently rotated, rescaled step); when the agent stalls — forces still large but
moves tiny for a few steps — it explores "greedily" with large Gaussian moves.

:func:`train` runs episodes on a :class:`~aiida_rlpath.envs.relaxation.RelaxationEnv` with the ε1 and reward
schedules, evaluates the deterministic actor every ``eval_every`` episodes on fixed validation starts, and keeps
a checkpoint (state dicts) per evaluation round.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import typing as t

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from aiida_rlpath.envs.relaxation import EpsilonSchedule, RelaxationEnv, RewardSchedule
from aiida_rlpath.rl.algos.imitation import Demonstration, ImitationSettings, collect, fit
from aiida_rlpath.rl.buffers import GraphReplayBuffer, Transition
from aiida_rlpath.rl.models.tfn import ACTORS, CRITICS, collate

__all__ = (
    'OffPolicyAgent',
    'TD3Agent',
    'TD3Settings',
    'TrainingState',
    'evaluate',
    'run_episode',
    'save_checkpoint',
    'start_training',
    'state_from_bytes',
    'state_noise',
    'state_to_bytes',
    'train',
    'train_round',
)


@dataclasses.dataclass(frozen=True)
class TD3Settings:
    """Hyper-parameters of TD3 and of its training loop (lengths in Å, forces in eV/Å).

    :param model: ``tfn`` (equivariant) or ``cgcnn`` (baseline); ``model_options`` go to both actor and critic.
    :param algorithm: ``td3`` or ``sac`` (:mod:`aiida_rlpath.rl.algos.sac`, which reads these settings too).
    :param alpha_lr: SAC's temperature learning rate; ``init_alpha`` its start; ``target_entropy`` per atom
        (nats; −3 is SAC's usual −dim(action) for one atom's 3D step).
    :param step_lr: learning rate of the actor's global step size log α (the rest learns at ``actor_lr``).
    :param rotation_noise: standard deviation of the exploration rotation angle (rad).
    :param scale_noise: standard deviation of the log of the exploration length scaling.
    :param actor_options: options for the actor only (after ``model_options``), e.g. ``hidden`` and ``lmax``.
    :param imitation: the imitation warm start (:class:`~aiida_rlpath.rl.algos.imitation.ImitationSettings`):
        its ``rounds`` come before the TD3 episodes, each one evaluation round with its own checkpoint.
    :param stall_steps: consecutive tiny steps (mean move below ``stall_move`` Å) with max|F| above
        ``stall_force`` eV/Å that trigger greedy exploration with Gaussian moves of ``greedy_noise`` Å.
    """

    algorithm: str = 'td3'
    model: str = 'tfn'
    model_options: tuple[tuple[str, t.Any], ...] = ()
    actor_options: tuple[tuple[str, t.Any], ...] = ()
    d_max: float = 0.3
    gamma: float = 0.95
    tau: float = 0.01
    actor_lr: float = 3e-4
    step_lr: float = 3e-3
    critic_lr: float = 1e-3
    batch_size: int = 32
    buffer_size: int = 20_000
    warmup_steps: int = 200
    updates_per_step: int = 1
    policy_delay: int = 2
    target_noise: float = 0.01
    target_noise_clip: float = 0.03
    rotation_noise: float = 0.3
    scale_noise: float = 0.3
    stall_steps: int = 3
    stall_move: float = 2e-3
    stall_force: float = 0.5
    greedy_noise: float = 0.05
    alpha_lr: float = 3e-4
    init_alpha: float = 0.01
    target_entropy: float = -3.0
    episodes: int = 60
    eval_every: int = 10
    eval_starts: int = 16
    eval_max_steps: int = 200
    epsilon: EpsilonSchedule = dataclasses.field(default_factory=lambda: EpsilonSchedule(0.5, 0.1, 30))
    reward: RewardSchedule = dataclasses.field(default_factory=lambda: RewardSchedule('log_force', 'step', 40))
    imitation: ImitationSettings = dataclasses.field(default_factory=ImitationSettings)


def state_noise(vectors: np.ndarray, rng: np.random.Generator, rotation_sd: float, scale_sd: float) -> np.ndarray:
    """Per-atom ``vectors`` (N, K, 3) rotated by one random rotation (angle ~ N(0, ``rotation_sd``) rad about a
    uniformly random axis) and scaled by one factor exp(N(0, ``scale_sd``)): the same for every atom and vector."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    rotation = Rotation.from_rotvec(axis * rng.normal(0.0, rotation_sd)).as_matrix()
    return np.exp(rng.normal(0.0, scale_sd)) * vectors @ rotation.T


class OffPolicyAgent:
    """What TD3 and SAC share: actor and twin critics (weights from ``seed``), the critics' targets, the optimisers
    (the actor's global step size log α, α in Å²/eV, at its own rate ``step_lr``), a seeded torch generator, and
    the critic regression and Polyak averaging of an update."""

    def __init__(self, n_vectors: int, settings: TD3Settings, seed: int):
        self.settings = settings
        options = {'n_vectors': n_vectors, 'd_max': settings.d_max, **dict(settings.model_options)}
        with torch.random.fork_rng():
            torch.manual_seed(int(seed))
            self.actor = ACTORS[settings.model](**{**options, **dict(settings.actor_options)})
            self.critics = torch.nn.ModuleList(CRITICS[settings.model](**options) for _ in range(2))
        self.critic_targets = copy.deepcopy(self.critics)
        self.critic_targets.requires_grad_(False)
        # the step size learns faster than the network around it: it must travel from the cautious initial α
        # over a few hundred updates, not tens of thousands
        step = [p for name, p in self.actor.named_parameters() if name == 'log_step']
        rest = [p for name, p in self.actor.named_parameters() if name != 'log_step']
        self.actor_optimizer = torch.optim.Adam(
            [{'params': rest, 'lr': settings.actor_lr}, {'params': step, 'lr': settings.step_lr}]
        )
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=settings.critic_lr)
        self.generator = torch.Generator().manual_seed(int(seed) + 1)
        self.updates = 0

    def act(self, graph) -> np.ndarray:
        """The deterministic action (N × 3 displacements, Å) for one crystal graph."""
        with torch.no_grad():
            return self.actor(collate([graph])).double().numpy()

    @staticmethod
    def batch(transitions: t.Sequence[Transition]):
        """States and next states (graph batches), actions (Å), rewards and done flags of a batch as tensors."""
        states = collate([tr.state for tr in transitions])
        next_states = collate([tr.next_state for tr in transitions])
        actions = torch.as_tensor(np.concatenate([tr.action for tr in transitions]), dtype=torch.float32)
        rewards = torch.tensor([tr.reward for tr in transitions], dtype=torch.float32)
        done = torch.tensor([float(tr.done) for tr in transitions])
        return states, next_states, actions, rewards, done

    def critic_step(self, states, actions, target) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step of both critics towards ``target``; returns the loss and the first critic's Q."""
        q1, q2 = (critic(states, actions) for critic in self.critics)
        critic_loss = torch.nn.functional.mse_loss(q1, target) + torch.nn.functional.mse_loss(q2, target)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        return critic_loss.detach(), q1.detach()

    def polyak(self, *pairs) -> None:
        """Move each target module towards its online twin by τ."""
        tau = self.settings.tau
        with torch.no_grad():
            for online, target_net in pairs:
                for p, p_target in zip(online.parameters(), target_net.parameters(), strict=True):
                    p_target.mul_(1 - tau).add_(tau * p)

    def state_dict(self) -> dict[str, t.Any]:
        """The actor's checkpoint payload: ``architecture`` and ``actor`` (its state dict)."""
        return {'architecture': self.actor.architecture, 'actor': self.actor.state_dict()}


class TD3Agent(OffPolicyAgent):
    """TD3: the shared actor and twin critics plus an actor target; weights initialised from ``seed``."""

    MODULES = ('actor', 'critics', 'actor_target', 'critic_targets', 'actor_optimizer', 'critic_optimizer')

    def __init__(self, n_vectors: int, settings: TD3Settings, seed: int):
        super().__init__(n_vectors, settings, seed)
        self.actor_target = copy.deepcopy(self.actor)
        self.actor_target.requires_grad_(False)

    def explore(self, graph, rng: np.random.Generator) -> np.ndarray:
        """The exploring action: the actor's move for the state with its vectors rotated and rescaled."""
        s = self.settings
        return self.act(graph.with_vectors(state_noise(graph.vectors, rng, s.rotation_noise, s.scale_noise)))

    def _smoothed_target_action(self, batch) -> torch.Tensor:
        s = self.settings
        action = self.actor_target(batch)
        noise = torch.randn(action.shape, generator=self.generator) * s.target_noise
        action = action + noise.clamp(-s.target_noise_clip, s.target_noise_clip)
        norm = action.norm(dim=-1, keepdim=True).clamp(min=1e-9)
        return action * torch.clamp(s.d_max / norm, max=1.0)

    def update(self, transitions: t.Sequence[Transition]) -> dict[str, float]:
        """One TD3 update on a batch: both critics, and every ``policy_delay`` updates the actor and targets."""
        s = self.settings
        states, next_states, actions, rewards, done = self.batch(transitions)
        with torch.no_grad():
            next_action = self._smoothed_target_action(next_states)
            next_q = torch.minimum(*(critic(next_states, next_action) for critic in self.critic_targets))
            target = rewards + s.gamma * (1 - done) * next_q
        critic_loss, q = self.critic_step(states, actions, target)
        info = {'critic_loss': float(critic_loss), 'q': float(q.mean())}
        self.updates += 1
        if self.updates % s.policy_delay == 0:
            actor_loss = -self.critics[0](states, self.actor(states)).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            self.polyak((self.actor, self.actor_target), (self.critics, self.critic_targets))
            info['actor_loss'] = float(actor_loss.detach())
        return info


def save_checkpoint(agent_or_payload, path_or_file) -> None:
    """Write the actor (architecture and state dict) so :func:`aiida_rlpath.rl.optimizer.load_actor` reads it."""
    payload = agent_or_payload if isinstance(agent_or_payload, dict) else agent_or_payload.state_dict()
    torch.save(payload, path_or_file)


def evaluate(actor, env: RelaxationEnv, seeds: t.Sequence[int], fmax: float, max_steps: int) -> dict[str, t.Any]:
    """Relax one distorted start per seed with the deterministic ``actor`` to ``fmax`` (eV/Å).

    Returns per start the force calls used (``max_steps + 1`` counted for a start that did not converge), the
    converged fraction and the median force calls.
    """
    calls, converged, final = [], [], []
    saved = (env.eps1, env.reward_kind, env.settings)
    env.eps1 = fmax
    env.settings = dataclasses.replace(env.settings, max_steps=max_steps)
    try:
        for seed in seeds:
            _, info = env.reset(seed=int(seed))
            done = info['fmax'] <= fmax
            while not done:
                with torch.no_grad():
                    action = actor(collate([info['graph']])).double().numpy()
                _, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            ok = info['fmax'] <= fmax
            converged.append(ok)
            calls.append(info['force_calls'] if ok else max_steps + 1)
            final.append(info['fmax'])
    finally:
        env.eps1, env.reward_kind, env.settings = saved
    return {
        'force_calls': calls,
        'converged': converged,
        'final_fmax': final,
        'median_force_calls': float(np.median(calls)),
        'converged_fraction': float(np.mean(converged)),
    }


@dataclasses.dataclass
class TrainingState:
    """Everything a TD3 training needs to carry on: agent, replay buffer, RNG, counters and recent statistics, and
    the imitation warm start's rounds done and labelled states."""

    agent: TD3Agent
    buffer: GraphReplayBuffer
    rng: np.random.Generator
    seed: int
    episode: int = 0
    total_steps: int = 0
    returns: list[float] = dataclasses.field(default_factory=list)
    end_fmax: list[float] = dataclasses.field(default_factory=list)
    imitation_round: int = 0
    demonstrations: list[Demonstration] = dataclasses.field(default_factory=list)

    @property
    def eval_seeds(self) -> list[int]:
        """The fixed validation starts (seeds), the same in every round."""
        count = self.agent.settings.eval_starts
        return [int(x) for x in np.random.default_rng(self.seed + 3).integers(2**31, size=count)]


def start_training(n_vectors: int, settings: TD3Settings, seed: int) -> TrainingState:
    """A fresh :class:`TrainingState`: untrained agent (weights from ``seed``), empty replay buffer."""
    if settings.algorithm == 'sac':
        from aiida_rlpath.rl.algos.sac import SACAgent

        agent = SACAgent(n_vectors, settings, seed)
    elif settings.algorithm == 'td3':
        agent = TD3Agent(n_vectors, settings, seed)
    else:
        raise ValueError(f'unknown algorithm `{settings.algorithm}`; choose td3 or sac')
    return TrainingState(agent, GraphReplayBuffer(settings.buffer_size, seed + 2), np.random.default_rng(seed), seed)


def run_episode(state: TrainingState, env: RelaxationEnv) -> None:
    """One exploring training episode on ``env`` (schedules applied), with agent updates after the warm-up."""
    s, agent, rng = state.agent.settings, state.agent, state.rng
    env.eps1, env.reward_kind = s.epsilon(state.episode), s.reward(state.episode)
    _, info = env.reset(seed=int(rng.integers(2**31)))
    graph, episode_return, stalled, done = info['graph'], 0.0, 0, info['fmax'] <= env.eps1
    while not done:
        action = agent.explore(graph, rng)
        if stalled >= s.stall_steps:  # greedy exploration: large forces, tiny moves
            action = action + rng.normal(0.0, s.greedy_noise, action.shape)
            stalled = 0
        _, reward, terminated, truncated, info = env.step(action)
        moved = np.linalg.norm(env.last_displacement, axis=1).mean()
        stalled = stalled + 1 if (moved < s.stall_move and info['fmax'] > s.stall_force) else 0
        state.buffer.add(Transition(graph, env.last_displacement.copy(), reward, info['graph'], terminated))
        graph, episode_return, state.total_steps = info['graph'], episode_return + reward, state.total_steps + 1
        done = terminated or truncated
        if state.total_steps >= s.warmup_steps:
            for _ in range(s.updates_per_step):
                agent.update(state.buffer.sample(s.batch_size))
    state.returns.append(episode_return)
    state.end_fmax.append(info['fmax'])
    state.episode += 1


def train_round(
    state: TrainingState,
    env: RelaxationEnv,
    validation: RelaxationEnv,
    fmax: float = 0.1,
    log: t.Callable[[str], None] | None = None,
) -> dict[str, t.Any]:
    """Episodes up to the next evaluation (every ``eval_every`` episodes, and after the last), then the
    evaluation of the deterministic actor on ``validation`` to ``fmax`` (eV/Å).

    Returns the round's record: ``episode``, ``eps1`` (eV/Å), ``reward``, ``updates``, mean training return and
    end-of-episode max|F| (eV/Å) over the round, the :func:`evaluate` dict, and ``checkpoint`` (the actor's
    architecture and state dict).
    """
    s = state.agent.settings
    if state.imitation_round < s.imitation.rounds:
        return _imitation_round(state, env, validation, fmax, log)
    first = state.episode
    while state.episode < s.episodes:
        run_episode(state, env)
        if state.episode % s.eval_every == 0:
            break
    record = _evaluated_record(
        state, validation, fmax, eps1=env.eps1, reward=env.reward_kind,
        train_return=float(np.mean(state.returns[first:])) if state.episode > first else None,
        train_end_fmax=float(np.mean(state.end_fmax[first:])) if state.episode > first else None,
    )  # fmt: skip
    result = record['evaluation']
    if log:
        log(
            f'episode {state.episode}: eps1 {env.eps1:.3f} eV/Å, reward {env.reward_kind}, {state.agent.updates} '
            f'updates, validation median force calls {result["median_force_calls"]:.1f}, '
            f'converged {result["converged_fraction"]:.2f}'
        )
    return record


def _evaluated_record(state: TrainingState, validation, fmax: float, **fields) -> dict[str, t.Any]:
    """A round's record: ``episode`` and ``updates`` so far, ``fields``, the :func:`evaluate` dict of the
    deterministic actor on ``validation`` to ``fmax`` (eV/Å) and the actor's ``checkpoint``."""
    agent = state.agent
    return {
        'episode': state.episode,
        'updates': agent.updates,
        **fields,
        'evaluation': evaluate(agent.actor, validation, state.eval_seeds, fmax, agent.settings.eval_max_steps),
        'checkpoint': copy.deepcopy(agent.state_dict()),
    }


def _imitation_round(state: TrainingState, env, validation, fmax: float, log) -> dict[str, t.Any]:
    """One round of the imitation warm start (:mod:`aiida_rlpath.rl.algos.imitation`), then the evaluation; the
    actor's target follows the actor, so that TD3 starts from the imitated policy."""
    s, agent = state.agent.settings, state.agent
    demonstrations, stats = collect(agent.actor, env, state.rng, s.imitation)
    state.demonstrations.extend(demonstrations)
    stats['loss'] = fit(agent.actor, state.demonstrations, state.rng, s.imitation)
    stats['demonstrations'] = len(state.demonstrations)
    state.imitation_round += 1
    if hasattr(agent, 'actor_target'):
        agent.actor_target.load_state_dict(agent.actor.state_dict())
    record = _evaluated_record(
        state, validation, fmax, eps1=s.imitation.eps1, reward='imitation', train_return=None, train_end_fmax=None,
        imitation=stats,
    )  # fmt: skip
    result = record['evaluation']
    if log:
        log(
            f'imitation round {state.imitation_round}: {stats["labelled"]}/{stats["episodes"]} episodes labelled, '
            f'{stats["demonstrations"]} states, loss {stats["loss"]:.3f}; validation median force calls '
            f'{result["median_force_calls"]:.1f}, converged {result["converged_fraction"]:.2f}'
        )
    return record


def train(
    env: RelaxationEnv,
    validation: RelaxationEnv,
    settings: TD3Settings,
    seed: int,
    fmax: float = 0.1,
    log: t.Callable[[str], None] | None = None,
) -> tuple[TD3Agent, list[dict[str, t.Any]]]:
    """Train TD3 on ``env`` (after ``settings.imitation.rounds`` imitation rounds) for ``settings.episodes``
    episodes from ``seed``; evaluate on ``validation`` to ``fmax``
    (eV/Å) every ``eval_every`` episodes. Returns the agent and the records of :func:`train_round`."""
    state = start_training(env.settings.n_vectors, settings, seed)
    records = []
    while state.imitation_round < settings.imitation.rounds or state.episode < settings.episodes:
        records.append(train_round(state, env, validation, fmax, log))
    return state.agent, records


# --- serialisation of a training state (torch.save, loadable with weights_only=True) -------------------------


def _graphs_to_tensors(graphs) -> dict[str, torch.Tensor]:
    # float32 and int32: what the networks see after collate(), so a resumed training is exact
    return {
        'numbers': torch.as_tensor(np.concatenate([g.numbers for g in graphs]).astype(np.int16)),
        'vectors': torch.as_tensor(np.concatenate([g.vectors for g in graphs]).astype(np.float32)),
        'src': torch.as_tensor(np.concatenate([g.src for g in graphs]).astype(np.int32)),
        'dst': torch.as_tensor(np.concatenate([g.dst for g in graphs]).astype(np.int32)),
        'edge_vectors': torch.as_tensor(np.concatenate([g.edge_vectors for g in graphs]).astype(np.float32)),
        'n_atoms': torch.as_tensor([g.n_atoms for g in graphs]),
        'n_edges': torch.as_tensor([len(g.src) for g in graphs]),
    }


def _graphs_from_tensors(data: dict[str, torch.Tensor]) -> list:
    from aiida_rlpath.envs.relaxation import CrystalGraph

    atoms = np.cumsum([0, *data['n_atoms'].tolist()])
    edges = np.cumsum([0, *data['n_edges'].tolist()])
    arrays = {key: value.numpy() for key, value in data.items()}
    return [
        CrystalGraph(
            arrays['numbers'][atoms[i] : atoms[i + 1]],
            arrays['vectors'][atoms[i] : atoms[i + 1]],
            arrays['src'][edges[i] : edges[i + 1]],
            arrays['dst'][edges[i] : edges[i + 1]],
            arrays['edge_vectors'][edges[i] : edges[i + 1]],
        )
        for i in range(len(atoms) - 1)
    ]


def state_to_bytes(state: TrainingState) -> bytes:
    """The whole training state as ``torch.save`` bytes (networks, optimisers, replay buffer, RNG states)."""
    agent, items = state.agent, state.buffer.items
    graphs, index = [], {}  # each graph once: a step's next state is the following step's state
    for graph in [g for tr in items for g in (tr.state, tr.next_state)]:
        if id(graph) not in index:
            index[id(graph)] = len(graphs)
            graphs.append(graph)
    payload = {
        'settings_seed': state.seed,
        'episode': state.episode,
        'total_steps': state.total_steps,
        'returns': list(state.returns),
        'end_fmax': list(state.end_fmax),
        'rng': _jsonable(state.rng.bit_generator.state),
        'buffer_rng': _jsonable(state.buffer.rng.bit_generator.state),
        'buffer_position': state.buffer.position,
        'updates': agent.updates,
        'imitation_round': state.imitation_round,
        'demonstrations': {
            'graphs': _graphs_to_tensors([d.graph for d in state.demonstrations]) if state.demonstrations else {},
            'targets': torch.as_tensor(np.concatenate([d.target for d in state.demonstrations]).astype(np.float32))
            if state.demonstrations
            else torch.zeros(0, 3),
        },
        'generator': agent.generator.get_state(),
        'modules': {name: getattr(agent, name).state_dict() for name in agent.MODULES},
        'transitions': {
            'graphs': _graphs_to_tensors(graphs) if items else {},
            'states': torch.as_tensor([index[id(tr.state)] for tr in items], dtype=torch.long),
            'next_states': torch.as_tensor([index[id(tr.next_state)] for tr in items], dtype=torch.long),
            'actions': torch.as_tensor(np.concatenate([tr.action for tr in items]).astype(np.float32))
            if items
            else torch.zeros(0, 3),
            'rewards': torch.as_tensor([tr.reward for tr in items], dtype=torch.float64),
            'done': torch.as_tensor([tr.done for tr in items], dtype=torch.bool),
        },
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def state_from_bytes(data: bytes, n_vectors: int, settings: TD3Settings) -> TrainingState:
    """The :class:`TrainingState` :func:`state_to_bytes` wrote (loaded with ``weights_only=True``)."""
    payload = torch.load(io.BytesIO(data), weights_only=True, map_location='cpu')
    state = start_training(n_vectors, settings, int(payload['settings_seed']))
    agent = state.agent
    for name, value in payload['modules'].items():
        getattr(agent, name).load_state_dict(value)
    agent.updates = int(payload['updates'])
    agent.generator.set_state(payload['generator'])
    state.rng.bit_generator.state = payload['rng']
    state.buffer.rng.bit_generator.state = payload['buffer_rng']
    state.episode, state.total_steps = int(payload['episode']), int(payload['total_steps'])
    state.returns, state.end_fmax = list(payload['returns']), list(payload['end_fmax'])
    stored = payload['transitions']
    if stored['graphs']:
        graphs = _graphs_from_tensors(stored['graphs'])
        states = [graphs[i] for i in stored['states'].tolist()]
        nexts = [graphs[i] for i in stored['next_states'].tolist()]
        sizes = np.cumsum([0, *[g.n_atoms for g in states]])
        actions = stored['actions'].numpy()
        state.buffer.items = [
            Transition(states[i], actions[sizes[i] : sizes[i + 1]], float(stored['rewards'][i]), nexts[i],
                       bool(stored['done'][i]))
            for i in range(len(states))
        ]  # fmt: skip
    state.buffer.position = int(payload['buffer_position'])
    state.imitation_round = int(payload.get('imitation_round', 0))
    demos = payload.get('demonstrations', {'graphs': {}})
    if demos['graphs']:
        graphs = _graphs_from_tensors(demos['graphs'])
        sizes = np.cumsum([0, *[g.n_atoms for g in graphs]])
        targets = demos['targets'].numpy()
        state.demonstrations = [Demonstration(g, targets[sizes[i] : sizes[i + 1]]) for i, g in enumerate(graphs)]
    return state


def _jsonable(value):
    """A bit-generator state with its numpy integers as Python ints (what ``weights_only`` loading accepts)."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value
