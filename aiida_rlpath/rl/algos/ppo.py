"""Proximal policy optimisation (clipped surrogate) over finished episodes; torch only, no AiiDA import.

The update sees whole episodes: each step's raw action sample, the log-probability it was drawn with, and its
reward. Advantages are discounted returns-to-go minus the batch mean, scaled by their standard deviation (a
critic, when the policy has one, replaces the mean; the context-free baseline has none).
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np
import torch

__all__ = ('PPOSettings', 'Step', 'advantages', 'ppo_update')


@dataclasses.dataclass(frozen=True)
class PPOSettings:
    """PPO hyper-parameters.

    :param learning_rate: Adam step size.
    :param epochs: passes over the batch per update.
    :param clip: ratio clip ε of the surrogate objective.
    :param gamma: discount per environment step.
    :param entropy: weight of the entropy bonus.
    :param max_grad_norm: gradient-norm clip.
    :param target_kl: stop the epochs early once the approximate KL divergence from the behaviour policy exceeds
        this (nats; ``None``: never).
    """

    learning_rate: float = 0.05
    epochs: int = 10
    clip: float = 0.2
    gamma: float = 0.99
    entropy: float = 0.0
    max_grad_norm: float = 1.0
    target_kl: float | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One environment step as the update needs it: ``state`` (whatever the policy reads; may be ``None``), the raw
    action ``sample`` (7 numbers), its behaviour ``logp`` (nats) and the ``reward``."""

    state: t.Any
    sample: t.Sequence[float]
    logp: float
    reward: float


def advantages(episodes: t.Sequence[t.Sequence[Step]], gamma: float) -> np.ndarray:
    """Discounted returns-to-go of every step, episode after episode, centred and scaled over the batch."""
    returns = []
    for episode in episodes:
        running, backwards = 0.0, []
        for step in reversed(episode):
            running = step.reward + gamma * running
            backwards.append(running)
        returns.extend(reversed(backwards))
    values = np.asarray(returns, dtype=float)
    if len(values) == 0:
        return values
    centred = values - values.mean()
    scale = centred.std()
    return centred / scale if scale > 1e-12 else centred


def ppo_update(policy: torch.nn.Module, episodes: t.Sequence[t.Sequence[Step]], seed: int, settings: PPOSettings):
    """Update ``policy`` in place on ``episodes``; returns statistics (loss, approx. KL, clip fraction, entropy).

    Deterministic for a given ``seed`` (full-batch Adam; the seed fixes torch's global generator for policies
    that draw during the update).
    """
    torch.manual_seed(int(seed))
    steps = [step for episode in episodes for step in episode]
    stats = {'steps': len(steps), 'episodes': len(episodes), 'loss': None, 'approx_kl': 0.0, 'clip_fraction': 0.0}
    if not steps:
        return stats
    states = [step.state for step in steps]
    samples = torch.tensor(np.array([step.sample for step in steps], dtype=float), dtype=torch.float64)
    old = torch.tensor([step.logp for step in steps], dtype=torch.float64)
    advantage = torch.tensor(advantages(episodes, settings.gamma), dtype=torch.float64)
    optimiser = torch.optim.Adam(policy.parameters(), lr=settings.learning_rate)
    epochs = 0
    for _ in range(settings.epochs):
        logp, entropy = policy.evaluate(states, samples)
        ratio = torch.exp(logp - old)
        if settings.target_kl is not None and float(((ratio - 1) - (logp - old)).mean()) > settings.target_kl:
            break
        epochs += 1
        surrogate = torch.min(ratio * advantage, ratio.clamp(1 - settings.clip, 1 + settings.clip) * advantage)
        loss = -surrogate.mean() - settings.entropy * entropy.mean()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.max_grad_norm)
        optimiser.step()
    with torch.no_grad():
        logp, entropy = policy.evaluate(states, samples)
        ratio = torch.exp(logp - old)
        stats.update(
            loss=float(loss),
            approx_kl=float(((ratio - 1) - (logp - old)).mean()),  # k3 estimator: never negative
            clip_fraction=float(((ratio - 1).abs() > settings.clip).double().mean()),
            entropy=float(entropy.mean()),
            epochs=epochs,
        )
    return stats
