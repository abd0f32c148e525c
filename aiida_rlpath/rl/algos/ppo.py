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
    :param entropy: weight of the entropy bonus, one number for every head or a mapping head → weight (heads of
        the equivariant policies: ``direction``, ``magnitude``, ``axis``; unnamed heads get 0);
        ``value``: weight of the critic's squared error.
    :param max_grad_norm: gradient-norm clip.
    :param target_kl: trust region, nats (``None``: none). The epochs stop once the approximate KL divergence
        from the behaviour policy exceeds it, and the step that crossed it is shortened (halved up to
        ``max_backtracks`` times, else undone) until the KL is back within it: one full-batch Adam step can
        otherwise overshoot by orders of magnitude (measured: 6.4 nats with the SevenNet policy's first step).
    """

    learning_rate: float = 0.05
    epochs: int = 10
    clip: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95
    entropy: float | dict[str, float] = 0.0
    value: float = 0.5
    max_grad_norm: float = 1.0
    target_kl: float | None = None
    max_backtracks: int = 10

    def __post_init__(self):
        if self.learning_rate <= 0 or self.epochs < 1 or not (0 < self.clip < 1):
            raise ValueError('learning_rate must be > 0, epochs >= 1 and clip in (0, 1)')
        if not (0 < self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError('gamma must be in (0, 1] and lam in [0, 1]')
        if self.target_kl is not None and self.target_kl <= 0:
            raise ValueError('target_kl must be positive (or None)')
        if self.max_backtracks < 0:
            raise ValueError('max_backtracks must be >= 0')

    def entropy_weight(self, head: str) -> float:
        """The entropy-bonus weight of ``head``."""
        if isinstance(self.entropy, dict):
            return float(self.entropy.get(head, 0.0))
        return float(self.entropy)


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


def _evaluate(policy, states, samples):
    """Per-head log-probabilities and entropies (nats) and values; a policy without heads is one head, ``action``."""
    if hasattr(policy, 'evaluate_heads'):
        return policy.evaluate_heads(states, samples)
    logp, entropy, values = policy.evaluate(states, samples)
    return {'action': logp}, {'action': entropy}, values


def _parameter_groups(policy, learning_rate: float):
    """Adam's parameter groups: the policy's own (e.g. a fine-tuned backbone at a lower rate) or all parameters."""
    if hasattr(policy, 'parameter_groups'):
        return policy.parameter_groups(learning_rate)
    return [{'params': [p for p in policy.parameters() if p.requires_grad], 'lr': learning_rate}]


def _backtrack(policy, params, previous, states, samples, old, target_kl: float, tries: int) -> int:
    """Shorten the last step (``previous`` → current ``params``) by halves until the approximate KL from the
    behaviour policy is within ``target_kl`` (nats); undo it if ``tries`` halvings are not enough. Returns the
    halvings made (``tries + 1``: undone)."""
    with torch.no_grad():
        for halvings in range(1, tries + 1):
            for param, before in zip(params, previous, strict=True):
                param.copy_(before + 0.5 * (param - before))
            if _k3(sum(_evaluate(policy, states, samples)[0].values()), old) <= target_kl:
                return halvings
        for param, before in zip(params, previous, strict=True):
            param.copy_(before)
    return tries + 1


def _clipped_loss(ratio: torch.Tensor, advantage: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped surrogate objective, negated (a loss), from probability ratios and advantages."""
    return -torch.min(ratio * advantage, ratio.clamp(1 - clip, 1 + clip) * advantage).mean()


def _k3(new: torch.Tensor, old: torch.Tensor) -> float:
    """The k3 estimator of KL(old ‖ new) from log-probabilities of samples drawn from old (never negative)."""
    ratio = torch.exp(new - old)
    return float(((ratio - 1) - (new - old)).mean())


def ppo_update(policy: torch.nn.Module, episodes: t.Sequence[t.Sequence[Step]], seed: int, settings: PPOSettings):
    """Update ``policy`` in place on ``episodes``; returns statistics: loss, policy loss, approximate KL from the
    behaviour policy (nats), clip fraction, entropy (nats), epochs run, per head its entropy before and after and
    its approximate KL (``heads``), and with a critic its squared error before and after.

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
    optimiser = torch.optim.Adam(_parameter_groups(policy, settings.learning_rate))
    params = [p for p in policy.parameters() if p.requires_grad]
    epochs, behaviour, entropy_before, previous = 0, None, None, None
    stats['backtracks'] = 0
    checks = settings.target_kl is not None
    for _ in range(settings.epochs + checks):  # with a target KL, a last pass only checks the last step's KL
        with torch.set_grad_enabled(epochs < settings.epochs):
            head_logp, head_entropy, values = _evaluate(policy, states, samples)
        if behaviour is None:  # the policy before the update: per-head reference for the diagnostics
            behaviour = {head: logp.detach() for head, logp in head_logp.items()}
            entropy_before = {head: float(entropy.detach().mean()) for head, entropy in head_entropy.items()}
        logp = sum(head_logp.values())
        if checks and previous is not None and _k3(logp.detach(), old) > settings.target_kl:
            stats['backtracks'] = _backtrack(
                policy, params, previous, states, samples, old, settings.target_kl, settings.max_backtracks
            )
            epochs -= stats['backtracks'] > settings.max_backtracks  # the step was undone
            break
        if epochs == settings.epochs:
            break
        epochs += 1
        policy_loss = _clipped_loss(torch.exp(logp - old), advantage, settings.clip)
        stats.setdefault('policy_loss_before', float(policy_loss.detach()))
        bonus = sum(settings.entropy_weight(head) * entropy.mean() for head, entropy in head_entropy.items())
        loss = policy_loss - bonus
        if critic and values is not None:
            value_loss = 0.5 * ((values - targets) ** 2).mean()
            stats.setdefault('value_loss_before', float(value_loss.detach()))
            loss = loss + settings.value * value_loss
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        previous = [p.detach().clone() for p in params]
        optimiser.step()
    with torch.no_grad():
        head_logp, head_entropy, values = _evaluate(policy, states, samples)
        logp = sum(head_logp.values())
        ratio = torch.exp(logp - old)
        if critic and values is not None:
            stats['value_loss'] = float(0.5 * ((values - targets) ** 2).mean())
        stats.update(
            loss=float(loss) if epochs else None,
            # of the updated policy; below policy_loss_before if it improved
            policy_loss=float(_clipped_loss(ratio, advantage, settings.clip)),
            approx_kl=_k3(logp, old),
            clip_fraction=float(((ratio - 1).abs() > settings.clip).double().mean()),
            entropy=float(sum(head_entropy.values()).mean()),
            epochs=epochs,
            heads={
                head: {
                    'entropy_before': entropy_before[head],
                    'entropy': float(head_entropy[head].mean()),
                    'approx_kl': _k3(head_logp[head], behaviour[head]),
                }
                for head in head_logp
            },
        )
    return stats
