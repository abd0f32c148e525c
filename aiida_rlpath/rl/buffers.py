"""Replay buffers (numpy; no AiiDA): uniform replay of graph transitions for TD3 and SAC."""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np

__all__ = ('GraphReplayBuffer', 'Transition')


@dataclasses.dataclass
class Transition:
    """One environment step: ``state`` and ``next_state`` graphs, the per-atom ``action`` (Å), ``reward``, ``done``."""

    state: t.Any
    action: np.ndarray
    reward: float
    next_state: t.Any
    done: bool


class GraphReplayBuffer:
    """A ring buffer of :class:`Transition` with variable-size graph states, sampled uniformly from a seeded RNG."""

    def __init__(self, capacity: int, seed: int):
        if capacity < 1:
            raise ValueError(f'replay capacity must be ≥ 1, got {capacity}')
        self.capacity = int(capacity)
        self.items: list[Transition] = []
        self.position = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, transition: Transition) -> None:
        if len(self.items) < self.capacity:
            self.items.append(transition)
        else:
            self.items[self.position] = transition
        self.position = (self.position + 1) % self.capacity

    def sample(self, size: int) -> list[Transition]:
        if not self.items:
            raise ValueError('cannot sample from an empty replay buffer')
        return [self.items[i] for i in self.rng.integers(len(self.items), size=size)]
