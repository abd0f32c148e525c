"""MultipolePolicy: E(3) equivariance of its distributions, flip symmetry of the axis, exact seeded
log-probabilities, checkpoint round trip, and a PPO update that learns on a fixed batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from test_env_oxidation import _o2_over_si_dimer

from aiida_rlpath.rl.algos.ppo import PPOSettings, Step, ppo_update
from aiida_rlpath.rl.models import MultipolePolicy, build_policy
from aiida_rlpath.rl.models.equivariant import fibonacci_sphere


@pytest.fixture(scope='module')
def state():
    atoms, agent, _ = _o2_over_si_dimer(size='tiny')
    return atoms, agent


def _moved(atoms, rotation, shift):
    """``atoms`` rotated (cell and positions) by ``rotation`` and translated by ``shift`` (Å)."""
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    moved.positions = atoms.positions @ rotation.T + shift
    return moved


def test_distributions_rotate_with_the_structure_and_invariants_stay(state):
    torch.manual_seed(1)
    policy = MultipolePolicy()
    atoms, agent = state
    points = torch.nn.functional.normalize(torch.randn(64, 3, dtype=torch.float64), dim=1)
    with torch.no_grad():
        before = policy.encode(atoms, agent)
        for seed in range(3):
            rotation = o3.rand_matrix().double()
            if seed == 2:
                rotation = -rotation  # an improper rotation: the policy is O(3)-equivariant, parity included
            after = policy.encode(_moved(atoms, rotation.numpy(), np.array([1.3, -2.0, 0.7]) * seed), agent)
            turned = points @ rotation.T
            assert torch.allclose(policy._direction_logits(before, points), policy._direction_logits(after, turned),
                                  atol=1e-6)  # fmt: skip
            assert torch.allclose(before['h'], after['h'], atol=1e-6)  # the critic's input: invariant
            assert policy.critic(before['h']).item() == pytest.approx(policy.critic(after['h']).item(), abs=1e-6)
            for direction in points[:4]:
                p0 = policy._projections(before, direction)
                p1 = policy._projections(after, rotation @ direction)
                assert torch.allclose(p0, p1, atol=1e-6)
                m0, m1 = policy._magnitude(before, p0), policy._magnitude(after, p1)
                assert torch.allclose(m0.concentration1, m1.concentration1, atol=1e-6)
                axis0 = policy._axis_logits(before, p0, direction, points)
                assert torch.allclose(axis0, policy._axis_logits(after, p1, rotation @ direction, turned), atol=1e-6)
                assert torch.allclose(axis0, policy._axis_logits(before, p0, direction, -points), atol=1e-12)  # flip


def test_grid_is_uniform_and_distributions_normalised(state):
    grid = fibonacci_sphere(400)
    assert torch.allclose(grid.norm(dim=1), torch.ones(400, dtype=torch.float64), atol=1e-11)
    harmonics = o3.spherical_harmonics([1, 2, 3], grid, True, normalization='component')
    assert harmonics.mean(0).abs().max() < 1e-2  # quasi-uniform: low multipoles of the grid vanish
    policy = MultipolePolicy()
    code = policy.encode(*state)
    with torch.no_grad():
        assert torch.softmax(policy._direction_logits(code, policy.grid), 0).sum().item() == pytest.approx(1.0)


def test_seeded_actions_exact_log_probabilities_and_round_trip(state):
    torch.manual_seed(2)
    policy = MultipolePolicy(d_max=1.5)
    atoms, agent = state
    first, again = policy.act(atoms, agent, 11), policy.act(atoms, agent, 11)
    assert np.array_equal(first.sample, again.sample) and np.isfinite(first.value)
    assert np.linalg.norm(first.sample[:3]) == pytest.approx(1.0) and 0 < first.sample[3] < 1.5
    recomputed = policy.log_prob([state], torch.tensor(first.sample[None])).item()
    assert recomputed == pytest.approx(first.logp, abs=1e-10)
    rebuilt = build_policy(policy.architecture, policy.state_dict())
    assert np.array_equal(rebuilt.act(atoms, agent, 11).sample, first.sample)


def test_ppo_on_a_fixed_batch_raises_the_probability_of_rewarded_directions(state):
    torch.manual_seed(3)
    policy = MultipolePolicy()
    atoms, agent = state
    batch = []
    for seed in range(24):  # one-step episodes rewarded for moving down, towards the surface
        out = policy.act(atoms, agent, seed)
        batch.append([Step(state, out.sample.tolist(), out.logp, -float(out.sample[2]), out.value)])

    def down_probability():
        with torch.no_grad():
            probabilities = torch.softmax(policy._direction_logits(policy.encode(atoms, agent), policy.grid), 0)
            return float(probabilities[policy.grid[:, 2] < -0.5].sum())

    before = down_probability()
    stats = ppo_update(policy, batch, seed=0, settings=PPOSettings(learning_rate=0.003, epochs=20, target_kl=0.05))
    assert stats['policy_loss'] < 0  # the clipped surrogate improved on the batch
    assert 0 < stats['epochs'] < 20  # the step size would overshoot: the target KL stopped it
    assert down_probability() > before + 0.03
    assert stats['value_loss'] < stats['value_loss_before']  # the critic is fitted to the GAE returns
