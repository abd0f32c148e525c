"""Proximal policy optimisation (clipped surrogate) over finished episodes; torch only, no AiiDA import.

The update sees whole episodes: each step's raw action sample, the log-probability it was drawn with, its reward
and, when the policy has a critic, the value it estimated. With values, advantages are GAE(γ, λ) and the critic
is fitted to the λ-returns; without (the context-free baseline), advantages are discounted returns-to-go minus
the batch mean. Advantages are then scaled by their standard deviation. An episode's end is treated as terminal
(REALIZE episodes are short; a truncated episode is not bootstrapped).
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np
import torch

__all__ = ('PPOSettings', 'Step', 'advantages', 'gae', 'ppo_update')


@dataclasses.dataclass(frozen=True)
class PPOSettings:
    """PPO hyper-parameters.

    :param learning_rate: Adam step size.
    :param epochs: passes over the batch per update.
    :param clip: ratio clip ε of the surrogate objective.
    :param gamma: discount per environment step; ``lam``: the GAE λ.
    :param entropy: weight of the entropy bonus; ``value``: weight of the critic's squared error.
    :param max_grad_norm: gradient-norm clip.
    :param target_kl: stop the epochs early once the approximate KL divergence from the behaviour policy exceeds
        this (nats; ``None``: never).
    """

    learning_rate: float = 0.05
    epochs: int = 10
    clip: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    entropy: float = 0.0
    value: float = 0.5
    max_grad_norm: float = 1.0
    target_kl: float | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One environment step as the update needs it: ``state`` (whatever the policy reads; may be ``None``), the raw
    action ``sample`` (7 numbers), its behaviour ``logp`` (nats), the ``reward`` and the critic's ``value`` of the
    state when the step was taken (``None``: no critic)."""

    state: t.Any
    sample: t.Sequence[float]
    logp: float
    reward: float
    value: float | None = None


def gae(episodes: t.Sequence[t.Sequence[Step]], gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and λ-returns of every step (episode ends are terminal: V = 0 after)."""
    advantage, returns = [], []
    for episode in episodes:
        running, next_value, backwards = 0.0, 0.0, []
        for step in reversed(episode):
            delta = step.reward + gamma * next_value - step.value
            running = delta + gamma * lam * running
            backwards.append((running, running + step.value))
            next_value = step.value
        for a, r in reversed(backwards):
            advantage.append(a)
            returns.append(r)
    return np.asarray(advantage, dtype=float), np.asarray(returns, dtype=float)


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
    """Update ``policy`` in place on ``episodes``; returns statistics (loss, approx. KL, clip fraction, entropy,
    epochs run and, with a critic, its squared error before and after).

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
    critic = all(step.value is not None and np.isfinite(step.value) for step in steps)
    if critic:
        raw, targets = gae(episodes, settings.gamma, settings.lam)
        scale = raw.std()
        advantage = torch.tensor(raw / scale if scale > 1e-12 else raw, dtype=torch.float64)
        targets = torch.tensor(targets, dtype=torch.float64)
    else:
        advantage = torch.tensor(advantages(episodes, settings.gamma), dtype=torch.float64)
    optimiser = torch.optim.Adam(policy.parameters(), lr=settings.learning_rate)
    epochs = 0
    for _ in range(settings.epochs):
        logp, entropy, values = policy.evaluate(states, samples)
        ratio = torch.exp(logp - old)
        if settings.target_kl is not None and float(((ratio - 1) - (logp - old)).mean()) > settings.target_kl:
            break
        epochs += 1
        surrogate = torch.min(ratio * advantage, ratio.clamp(1 - settings.clip, 1 + settings.clip) * advantage)
        policy_loss = -surrogate.mean()
        loss = policy_loss - settings.entropy * entropy.mean()
        if critic and values is not None:
            value_loss = 0.5 * ((values - targets) ** 2).mean()
            stats.setdefault('value_loss_before', float(value_loss))
            loss = loss + settings.value * value_loss
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), settings.max_grad_norm)
        optimiser.step()
    with torch.no_grad():
        logp, entropy, values = policy.evaluate(states, samples)
        ratio = torch.exp(logp - old)
        if critic and values is not None:
            stats['value_loss'] = float(0.5 * ((values - targets) ** 2).mean())
        stats.update(
            loss=float(loss),
            policy_loss=float(policy_loss),
            approx_kl=float(((ratio - 1) - (logp - old)).mean()),  # k3 estimator: never negative
            clip_fraction=float(((ratio - 1).abs() > settings.clip).double().mean()),
            entropy=float(entropy.mean()),
            epochs=epochs,
        )
    return stats
