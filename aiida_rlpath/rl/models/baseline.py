"""``ContextFreePolicy``: the REALIZE baseline policy, a learnable Gaussian over the raw 7-vector action.

It ignores the structure (no encoder), so it learns only *which moves pay on average*: a preferred direction,
step length and bond axis. At initialisation it is the isotropic random policy (a standard normal direction is
uniform on S² once normalised). It exists so that the training workflows, checkpoints and the PPO update can be
exercised end to end without the equivariant model; it is not the REALIZE agent.

Action layout: ``[dx, dy, dz, magnitude (Å), ax, ay, az]``; the environment normalises the direction and axis and
clips the magnitude to [0, d_max] Å. Log-probabilities refer to the raw (unnormalised, unclipped) sample.
"""

from __future__ import annotations

import typing as t

import numpy as np
import torch

__all__ = ('ContextFreePolicy', 'PolicyOutput')

SAMPLE_DECIMALS = 12  # as the environment's ACTION_DECIMALS


class PolicyOutput(t.NamedTuple):
    """One sampled action: the raw 7-vector, its log-probability (nats) and the critic's value (``nan``: none)."""

    sample: np.ndarray
    logp: float
    value: float


class ContextFreePolicy(torch.nn.Module):
    """Diagonal Gaussian over the raw action, independent of the state (float64 for exact re-evaluation).

    :param d_max: largest step, Å; the magnitude's mean starts at ``d_max / 2`` with standard deviation ``d_max / 4``.
    """

    name = 'context-free'

    def __init__(self, d_max: float = 2.0):
        super().__init__()
        self.d_max = float(d_max)
        mean = torch.zeros(7, dtype=torch.float64)
        mean[3] = self.d_max / 2
        log_std = torch.zeros(7, dtype=torch.float64)
        log_std[3] = float(np.log(self.d_max / 4))
        self.mean = torch.nn.Parameter(mean)
        self.log_std = torch.nn.Parameter(log_std)

    @property
    def architecture(self) -> dict[str, t.Any]:
        """What :func:`aiida_rlpath.rl.models.build_policy` needs to rebuild this model."""
        return {'name': self.name, 'd_max': self.d_max}

    def distribution(self, count: int = 1) -> torch.distributions.Normal:
        """The action distribution, batched ``count`` times."""
        return torch.distributions.Normal(self.mean.expand(count, 7), self.log_std.exp().expand(count, 7))

    def act(self, atoms, agent: t.Sequence[int], seed: int) -> PolicyOutput:
        """Sample an action for the state ``atoms`` (ignored) from the generator seeded with ``seed``.

        The sample is rounded to 1e-12 before its log-probability is taken: stored provenance keeps about 14
        significant digits, so the rounded sample is the one both shells and the update see.
        """
        generator = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            noise = torch.randn(7, generator=generator, dtype=torch.float64)
            sample = np.round((self.mean + self.log_std.exp() * noise).numpy(), SAMPLE_DECIMALS)
            logp = self.distribution().log_prob(torch.from_numpy(sample)[None]).sum()
        return PolicyOutput(sample, float(logp), float('nan'))

    def log_prob(self, states: t.Sequence[t.Any], samples: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (nats) of raw ``samples`` (n×7) taken in ``states`` (ignored here)."""
        return self.distribution(len(samples)).log_prob(samples).sum(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the action distribution, nats."""
        return self.distribution().entropy().sum()

    def evaluate(self, states: t.Sequence[t.Any], samples: torch.Tensor):
        """Log-probabilities (nats) of ``samples``, the entropy in each state (the same everywhere), and ``None``
        for the values (no critic)."""
        return self.log_prob(states, samples), self.entropy().expand(len(samples)), None
