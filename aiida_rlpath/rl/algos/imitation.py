"""Imitation warm start of the relaxation actor: DAgger on hindsight minima (torch, no AiiDA).

TD3 from an untrained actor learns a step size, not curvature (``docs/topics/relaxation.md``). This warm start
gives the actor a target it can learn by regression before TD3 fine-tunes it. Each round:

1. **Roll out** the current actor on the training environment for ``episodes`` episodes (with probability
   ``noise_prob`` per step, Gaussian noise of ``noise`` Å on every atom's move), to max|F| ≤ ``eps1`` eV/Å or
   ``max_steps`` steps. The states are the actor's own (DAgger, Ross et al. 2011), history vectors included.
2. **Label in hindsight.** The episode's end structure is relaxed with BFGS to ``target_fmax`` eV/Å. Every state
   of the episode is labelled with the displacement that reaches that minimum, d* = x* − x (Å, per atom, the
   structure's mean removed, since a rigid translation is a zero mode). An episode whose BFGS relaxation does not
   converge gives no labels.
3. **Fit** the actor to every label collected so far by ``updates`` Adam steps on a relative squared error per
   structure, Σ‖d − d*‖² / (Σ‖d*‖² + N·``floor``²). States close to the minimum count as much as distorted
   ones: the rate at which repeated learned steps converge is set by their *relative* error.

The labels are the environment's own minima, so no classical optimizer is imitated. BFGS only finds where
each episode was heading.
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np
import torch

from aiida_rlpath.physics.relax import relax
from aiida_rlpath.rl.models.tfn import collate

__all__ = ('Demonstration', 'ImitationSettings', 'collect', 'fit', 'imitation_loss')


@dataclasses.dataclass(frozen=True)
class ImitationSettings:
    """Settings of the imitation warm start (lengths in Å, forces in eV/Å).

    :param rounds: imitation rounds before TD3 starts (0: none).
    :param episodes: roll-outs per round.
    :param updates: Adam steps per round, on batches of ``batch_size`` states drawn from all labels so far.
    :param learning_rate: Adam learning rate of the fit.
    :param noise: standard deviation of the exploration noise on a move (Å), applied with probability
        ``noise_prob`` per step.
    :param eps1: a roll-out ends when max|F| ≤ ``eps1`` (eV/Å), or after ``max_steps`` steps.
    :param target_fmax: BFGS relaxes each episode's end structure to this max|F| (eV/Å) for the labels.
    :param floor: the length (Å) below which a label counts as converged in the relative loss.
    """

    rounds: int = 0
    episodes: int = 30
    updates: int = 400
    batch_size: int = 32
    learning_rate: float = 1e-3
    noise: float = 0.03
    noise_prob: float = 0.3
    eps1: float = 0.05
    max_steps: int = 60
    target_fmax: float = 1e-4
    floor: float = 0.01

    def __post_init__(self):
        for name in ('rounds', 'episodes', 'updates', 'batch_size', 'max_steps'):
            minimum = 0 if name == 'rounds' else 1
            if not isinstance(getattr(self, name), int) or getattr(self, name) < minimum:
                raise ValueError(f'imitation `{name}` must be an integer ≥ {minimum}, got {getattr(self, name)!r}')
        for name in ('learning_rate', 'eps1', 'target_fmax', 'floor'):
            if not getattr(self, name) > 0:
                raise ValueError(f'imitation `{name}` must be positive, got {getattr(self, name)}')
        if self.noise < 0 or not 0 <= self.noise_prob <= 1:
            raise ValueError('imitation `noise` must be ≥ 0 Å and `noise_prob` within [0, 1]')


@dataclasses.dataclass
class Demonstration:
    """A state (crystal graph) and its label: the displacement to the episode's minimum (Å, shape (N, 3))."""

    graph: t.Any
    target: np.ndarray


def collect(actor: torch.nn.Module, env, rng: np.random.Generator, settings: ImitationSettings):
    """Roll ``actor`` out for ``settings.episodes`` episodes on ``env`` and label every state in hindsight.

    Returns the demonstrations and a dict of statistics: ``episodes``, ``labelled`` (episodes whose end relaxed),
    ``steps`` (mean episode length), ``converged`` (fraction of roll-outs that reached ``eps1``), ``force_calls``
    (roll-outs plus labelling).
    """
    saved = (env.eps1, env.settings)
    env.eps1 = settings.eps1
    env.settings = dataclasses.replace(env.settings, max_steps=settings.max_steps)
    demonstrations, lengths, reached, labelled, calls = [], [], [], 0, 0
    try:
        for _ in range(settings.episodes):
            _, info = env.reset(seed=int(rng.integers(2**31)))
            graphs, positions = [info['graph']], [env.atoms.positions.copy()]
            done = info['fmax'] <= env.eps1
            while not done:
                with torch.no_grad():
                    action = actor(collate([info['graph']])).double().numpy()
                if settings.noise > 0 and rng.random() < settings.noise_prob:
                    action = action + rng.normal(0.0, settings.noise, action.shape)
                _, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
                graphs.append(info['graph'])
                positions.append(env.atoms.positions.copy())
            lengths.append(len(graphs) - 1)
            reached.append(info['fmax'] <= env.eps1)
            calls += info['force_calls']
            result = relax(env.atoms, env._calculator(env.atoms), fmax=settings.target_fmax, max_steps=1000)
            calls += result.force_calls
            if not result.converged:
                continue
            labelled += 1
            for graph, x in zip(graphs, positions, strict=True):
                target = result.atoms.positions - x
                demonstrations.append(Demonstration(graph, (target - target.mean(axis=0)).astype(np.float32)))
    finally:
        env.eps1, env.settings = saved
    stats = {
        'episodes': settings.episodes,
        'labelled': labelled,
        'steps': float(np.mean(lengths)),
        'converged': float(np.mean(reached)),
        'force_calls': calls,
    }
    return demonstrations, stats


def imitation_loss(actor: torch.nn.Module, demonstrations: t.Sequence[Demonstration], floor: float) -> torch.Tensor:
    """Mean over structures of Σ‖d − d*‖² / (Σ‖d*‖² + N·floor²): the actor's relative error on the labels."""
    batch = collate([demo.graph for demo in demonstrations])
    target = torch.as_tensor(np.concatenate([demo.target for demo in demonstrations]), dtype=torch.float32)
    error = ((actor(batch) - target) ** 2).sum(dim=-1)
    scale = (target**2).sum(dim=-1) + floor**2
    zeros = error.new_zeros(batch.n_graphs)
    return (zeros.index_add(0, batch.node_graph, error) / zeros.index_add(0, batch.node_graph, scale)).mean()


def fit(
    actor: torch.nn.Module,
    demonstrations: t.Sequence[Demonstration],
    rng: np.random.Generator,
    settings: ImitationSettings,
) -> float:
    """``settings.updates`` Adam steps (a fresh optimiser) of :func:`imitation_loss` on batches drawn with ``rng``
    from ``demonstrations``; returns the mean loss of the last quarter of the steps."""
    if not demonstrations:
        raise ValueError('no labelled demonstrations to fit (no roll-out ended at a BFGS-converged minimum)')
    optimizer = torch.optim.Adam(actor.parameters(), lr=settings.learning_rate)
    losses = []
    for _ in range(settings.updates):
        picks = rng.integers(len(demonstrations), size=settings.batch_size)
        loss = imitation_loss(actor, [demonstrations[i] for i in picks], settings.floor)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses[-max(1, len(losses) // 4) :]))
