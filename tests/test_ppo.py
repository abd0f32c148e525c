"""The baseline policy and the PPO update (torch only): seeded sampling, exact log-probabilities, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aiida_rlpath.rl.algos.ppo import PPOSettings, Step, advantages, gae, ppo_update
from aiida_rlpath.rl.models import ContextFreePolicy, build_policy


def test_policy_is_seeded_and_rebuilds_from_its_architecture():
    policy = ContextFreePolicy(d_max=1.5)
    first, again, other = policy.act(None, [0, 1], 3), policy.act(None, [0, 1], 3), policy.act(None, [0, 1], 4)
    assert np.array_equal(first.sample, again.sample) and not np.array_equal(first.sample, other.sample)
    recomputed = policy.log_prob([None], torch.tensor(first.sample[None]))
    assert float(recomputed.detach()) == pytest.approx(first.logp, abs=1e-12)
    rebuilt = build_policy(policy.architecture, policy.state_dict())
    assert rebuilt.d_max == 1.5 and np.array_equal(rebuilt.act(None, [0, 1], 3).sample, first.sample)
    with pytest.raises(ValueError, match='unknown policy model'):
        build_policy({'name': 'nonexistent'})


def test_advantages_are_discounted_returns_centred_and_scaled():
    episodes = [[Step(None, [0] * 7, 0.0, 1.0), Step(None, [0] * 7, 0.0, 1.0)], [Step(None, [0] * 7, 0.0, 0.0)]]
    values = advantages(episodes, gamma=0.5)
    returns = np.array([1.5, 1.0, 0.0])
    assert values == pytest.approx((returns - returns.mean()) / returns.std())


def _bandit(policy, seed, count=64):
    """One-step episodes rewarded by the direction's z component: the policy should learn to point up."""
    episodes = []
    for k in range(count):
        out = policy.act(None, [0, 1], seed + k)
        episodes.append([Step(None, out.sample.tolist(), out.logp, float(out.sample[2]))])
    return episodes


def test_ppo_moves_the_policy_towards_rewarded_actions_deterministically():
    policy = ContextFreePolicy()
    episodes = _bandit(policy, seed=100)
    twin = build_policy(policy.architecture, policy.state_dict())
    stats = ppo_update(policy, episodes, seed=5, settings=PPOSettings())
    ppo_update(twin, episodes, seed=5, settings=PPOSettings())
    assert policy.mean[2] > 0.1  # it started at 0
    assert abs(float(policy.mean[0])) < float(policy.mean[2])  # x was not rewarded
    assert stats['steps'] == 64 and stats['approx_kl'] > 0
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), twin.state_dict().values(), strict=True))


def test_gae_by_hand():
    episode = [Step(None, [0] * 7, 0.0, 1.0, value=0.5), Step(None, [0] * 7, 0.0, 2.0, value=1.0)]
    advantage, returns = gae([episode], gamma=0.9, lam=0.8)
    last = 2.0 - 1.0  # terminal: nothing after
    first = (1.0 + 0.9 * 1.0 - 0.5) + 0.9 * 0.8 * last
    assert advantage == pytest.approx([first, last]) and returns == pytest.approx([first + 0.5, last + 1.0])


def test_target_kl_is_a_trust_region_even_for_an_overshooting_first_step():
    """A full-batch Adam step at a large rate overshoots the target KL; the step is shortened to within it."""
    policy = ContextFreePolicy()
    episodes = _bandit(policy, seed=100)
    free = build_policy(policy.architecture, policy.state_dict())
    loose = ppo_update(free, episodes, seed=5, settings=PPOSettings(learning_rate=1.0, epochs=1))
    assert loose['approx_kl'] > 0.5  # unguarded, one step leaves the trust region far behind
    stats = ppo_update(policy, episodes, seed=5, settings=PPOSettings(learning_rate=1.0, epochs=4, target_kl=0.02))
    assert stats['backtracks'] >= 1 and 0 < stats['approx_kl'] <= 0.02
    assert stats['epochs'] >= 1 and policy.mean[2] > 0  # shortened, not undone: still towards the reward
    with pytest.raises(ValueError, match='max_backtracks'):
        PPOSettings(max_backtracks=-1)
