"""SAC for RL crystal relaxation (Haarnoja et al. 2018, with automatic temperature), CleanRL-readable; no AiiDA.

The policy is an equivariant Gaussian: each atom's uncapped step u ~ N(μ, σ² I₃) with μ the actor's vector
(equivariant) and σ an invariant of the atom's environment, so rotating the structure rotates the whole
distribution. The move is the radial cap a = d_max · tanh(‖u‖/d_max) · u/‖u‖ (Å), whose Jacobian is exact
(:func:`~aiida_rlpath.rl.models.tfn.squash_log_det`), so log π(a|s) is exact; a graph's log-probability is the
sum over its atoms, and the entropy target is ``target_entropy`` per atom.

It shares :class:`~aiida_rlpath.rl.algos.td3.TD3Settings`, the replay buffer, the training loop
(:func:`~aiida_rlpath.rl.algos.td3.train` with ``algorithm='sac'``) and the checkpoint format with TD3.
"""

from __future__ import annotations

import math
import typing as t

import numpy as np
import torch

from aiida_rlpath.rl.algos.td3 import OffPolicyAgent
from aiida_rlpath.rl.buffers import Transition
from aiida_rlpath.rl.models.tfn import collate, squash, squash_log_det

__all__ = ('SACAgent', 'log_prob')

LOG_STD_MIN, LOG_STD_MAX = -8.0, -1.0


def log_prob(raw_mean, log_std, u, d_max: float, node_graph, n_graphs: int) -> torch.Tensor:
    """log π(squash(u)) per graph: the isotropic 3D Gaussian density of each atom's ``u`` minus the cap's log
    Jacobian, summed over each graph's atoms."""
    std = torch.exp(log_std)
    per_atom = (
        -1.5 * math.log(2 * math.pi) - 3 * log_std - 0.5 * (((u - raw_mean) / std[:, None]) ** 2).sum(-1)
    ) - squash_log_det(u, d_max)
    return per_atom.new_zeros(n_graphs).index_add_(0, node_graph, per_atom)


class _Temperature(torch.nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(alpha)))


class SACAgent(OffPolicyAgent):
    """Gaussian equivariant actor, twin critics with targets, learned temperature; weights from ``seed``."""

    MODULES = ('actor', 'critics', 'critic_targets', 'actor_optimizer', 'critic_optimizer', 'temperature',
               'alpha_optimizer')  # fmt: skip

    def __init__(self, n_vectors: int, settings, seed: int):
        super().__init__(n_vectors, settings, seed)
        self.temperature = _Temperature(settings.init_alpha)
        self.alpha_optimizer = torch.optim.Adam(self.temperature.parameters(), lr=settings.alpha_lr)

    @property
    def alpha(self) -> torch.Tensor:
        return self.temperature.log_alpha.exp()

    def explore(self, graph, rng: np.random.Generator) -> np.ndarray:
        """A step sampled from the policy, its noise drawn from ``rng``."""
        with torch.no_grad():
            raw, log_std = self.actor.distribution(collate([graph]))
            log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
            noise = torch.as_tensor(rng.normal(size=raw.shape), dtype=raw.dtype)
            return squash(raw + torch.exp(log_std)[:, None] * noise, self.settings.d_max).double().numpy()

    def _sample(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        raw, log_std = self.actor.distribution(batch)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        u = raw + torch.exp(log_std)[:, None] * torch.randn(raw.shape, generator=self.generator)
        logp = log_prob(raw, log_std, u, self.settings.d_max, batch.node_graph, batch.n_graphs)
        return squash(u, self.settings.d_max), logp

    def update(self, transitions: t.Sequence[Transition]) -> dict[str, float]:
        """One SAC update: both critics, the actor, the temperature, and the critic targets (Polyak)."""
        s = self.settings
        states, next_states, actions, rewards, done = self.batch(transitions)
        atoms = torch.bincount(states.node_graph, minlength=states.n_graphs).float()
        next_atoms = torch.bincount(next_states.node_graph, minlength=next_states.n_graphs).float()
        with torch.no_grad():
            next_action, next_logp = self._sample(next_states)
            next_q = torch.minimum(*(critic(next_states, next_action) for critic in self.critic_targets))
            # the entropy bonus per atom, so graphs of different sizes weigh alike
            target = rewards + s.gamma * (1 - done) * (next_q - self.alpha * next_logp / next_atoms)
        critic_loss, _ = self.critic_step(states, actions, target)

        action, logp = self._sample(states)
        q = torch.minimum(*(critic(states, action) for critic in self.critics))
        actor_loss = (self.alpha.detach() * logp / atoms - q).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        alpha_loss = -(self.temperature.log_alpha * (logp.detach() / atoms + s.target_entropy)).mean()
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()
        self.polyak((self.critics, self.critic_targets))
        self.updates += 1
        return {
            'critic_loss': float(critic_loss),
            'actor_loss': float(actor_loss.detach()),
            'alpha': float(self.alpha.detach()),
            'entropy_per_atom': float(-(logp.detach() / atoms).mean()),
        }
