"""Deep Q-learning with action masks, a target network and double-DQN targets (torch only, no AiiDA import).

CleanRL-readable and model-agnostic: the Q-network is any module mapping a collated batch of states to
``(q_values (B, A), extra)`` with masked actions already at a very negative value, and ``collate`` turns a list
of states into that batch. One :meth:`DQN.update` call runs ``updates_per_round`` minibatch steps on transitions
drawn uniformly (seeded) from the buffer it is given, then moves the target network by Polyak averaging.
"""

from __future__ import annotations

import copy
import dataclasses
import typing as t

import numpy as np
import torch
from torch import nn

__all__ = ('DQN', 'DQNSettings', 'Transition')


@dataclasses.dataclass(frozen=True)
class DQNSettings:
    """DQN hyper-parameters.

    :param learning_rate: Adam step size.
    :param gamma: discount per step (1: an undiscounted, finite episode).
    :param batch_size: transitions per minibatch; ``updates_per_round``: minibatch steps per :meth:`DQN.update`.
    :param tau: Polyak factor of the target network after each minibatch step (1: hard copy).
    :param double: double-DQN targets (online network picks the next action, target network values it).
    :param epsilon_start, epsilon_end, epsilon_episodes: ε-greedy exploration, linear in episodes.
    :param buffer_size: most transitions kept (oldest dropped first).
    :param max_grad_norm: gradient-norm clip.
    """

    learning_rate: float = 1e-3
    gamma: float = 1.0
    batch_size: int = 64
    updates_per_round: int = 32
    tau: float = 0.1
    double: bool = True
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_episodes: int = 32
    buffer_size: int = 20000
    max_grad_norm: float = 10.0

    def __post_init__(self):
        if self.learning_rate <= 0 or not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise ValueError('learning_rate must be > 0, gamma in (0, 1] and tau in (0, 1]')
        if self.batch_size < 1 or self.updates_per_round < 0 or self.buffer_size < 1:
            raise ValueError('batch_size and buffer_size must be >= 1, updates_per_round >= 0')
        if not 0 <= self.epsilon_end <= self.epsilon_start <= 1 or self.epsilon_episodes < 0:
            raise ValueError('need 0 <= epsilon_end <= epsilon_start <= 1 and epsilon_episodes >= 0')

    def epsilon(self, episode: int) -> float:
        """ε of episode ``episode`` (0-based)."""
        if self.epsilon_episodes == 0:
            return self.epsilon_end
        fraction = min(1.0, episode / self.epsilon_episodes)
        return self.epsilon_start + fraction * (self.epsilon_end - self.epsilon_start)


@dataclasses.dataclass(frozen=True)
class Transition:
    """One step: ``state``, the ``action`` index, ``reward``, ``next_state`` and whether it ended the episode."""

    state: t.Any
    action: int
    reward: float
    next_state: t.Any
    done: bool


class DQN:
    """Online and target Q-networks with their optimiser.

    :param q_network: module, ``collate(states) -> batch``, ``q_network(batch) -> (q (B, A), ...)``.
    :param collate: batches a list of states; each state must carry an ``action_mask`` entry.
    """

    def __init__(self, q_network: nn.Module, collate: t.Callable, settings: DQNSettings = DQNSettings()):
        self.settings = settings
        self.q = q_network
        self.target = copy.deepcopy(q_network)
        for parameter in self.target.parameters():
            parameter.requires_grad_(False)
        self.collate = collate
        self.optimiser = torch.optim.Adam(self.q.parameters(), lr=settings.learning_rate)
        self.updates = 0

    def q_values(self, state) -> np.ndarray:
        """Masked Q-values of one state (masked actions very negative)."""
        with torch.no_grad():
            return self.q(self.collate([state]))[0][0].numpy()

    def act(self, state, epsilon: float, rng: np.random.Generator) -> int:
        """ε-greedy over the allowed actions (``state['action_mask']``), with ``rng`` for both draws."""
        allowed = np.flatnonzero(np.asarray(state['action_mask']))
        if len(allowed) == 0:
            raise ValueError('no allowed action in this state')
        if rng.random() < epsilon:
            return int(rng.choice(allowed))
        q = self.q_values(state)
        return int(allowed[np.argmax(q[allowed])])

    def loss(self, transitions: t.Sequence[Transition]) -> tuple[torch.Tensor, dict]:
        """Huber loss of Q(s, a) against r + γ·Q_target(s', a*) (a* from the online network when double)."""
        batch = self.collate([tr.state for tr in transitions])
        actions = torch.tensor([tr.action for tr in transitions], dtype=torch.long)
        rewards = torch.tensor([tr.reward for tr in transitions], dtype=torch.float32)
        done = torch.tensor([tr.done for tr in transitions], dtype=torch.bool)
        q = self.q(batch)[0].gather(1, actions[:, None]).squeeze(1)
        with torch.no_grad():
            bootstrap = torch.zeros_like(rewards)
            live = [i for i, tr in enumerate(transitions) if not tr.done]
            if live:
                following = self.collate([transitions[i].next_state for i in live])
                target_q = self.target(following)[0]
                if self.settings.double:
                    choice = self.q(following)[0].argmax(dim=1, keepdim=True)
                    best = target_q.gather(1, choice).squeeze(1)
                else:
                    best = target_q.max(dim=1).values
                bootstrap[live] = best
            targets = rewards + self.settings.gamma * bootstrap * (~done)
        loss = nn.functional.smooth_l1_loss(q, targets)
        return loss, {'q_mean': float(q.detach().mean()), 'target_mean': float(targets.mean())}

    def update(self, buffer: t.Sequence[Transition], rng: np.random.Generator) -> dict:
        """``updates_per_round`` minibatch steps on ``buffer`` (uniform draws with ``rng``); returns the mean loss,
        Q and target of the steps, and the number of steps."""
        if not buffer or self.settings.updates_per_round == 0:
            return {'steps': 0, 'loss': None}
        losses, qs, targets = [], [], []
        size = min(self.settings.batch_size, len(buffer))
        for _ in range(self.settings.updates_per_round):
            picked = rng.choice(len(buffer), size=size, replace=len(buffer) < self.settings.batch_size)
            loss, info = self.loss([buffer[int(i)] for i in picked])
            self.optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.q.parameters(), self.settings.max_grad_norm)
            self.optimiser.step()
            with torch.no_grad():
                for online, target in zip(self.q.parameters(), self.target.parameters(), strict=True):
                    target.mul_(1 - self.settings.tau).add_(self.settings.tau * online)
            self.updates += 1
            losses.append(float(loss.detach()))
            qs.append(info['q_mean'])
            targets.append(info['target_mean'])
        return {
            'steps': len(losses),
            'loss': float(np.mean(losses)),
            'q_mean': float(np.mean(qs)),
            'target_mean': float(np.mean(targets)),
        }

    def state_dict(self) -> dict:
        return {
            'q': self.q.state_dict(),
            'target': self.target.state_dict(),
            'optimiser': self.optimiser.state_dict(),
            'updates': self.updates,
        }

    def load_state_dict(self, state: dict):
        self.q.load_state_dict(state['q'])
        self.target.load_state_dict(state['target'])
        self.optimiser.load_state_dict(state['optimiser'])
        self.updates = int(state['updates'])
