"""The equivariant REALIZE policies (multipole encoder; SevenNet-0 backbone): equivariance of their distributions,
flip symmetry of the axis, exact seeded log-probabilities, checkpoint round trips, per-head PPO diagnostics and an
update that learns on a fixed batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from test_env_oxidation import _o2_over_si_dimer

from aiida_rlpath.rl.algos.ppo import PPOSettings, Step, ppo_update
from aiida_rlpath.rl.models import MultipolePolicy, SevenNetPolicy, build_policy
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


@pytest.mark.parametrize(
    ('model', 'tolerance'), [(MultipolePolicy, 1e-5), (SevenNetPolicy, 1e-4)], ids=['multipole', 'sevennet']
)
def test_distributions_rotate_with_the_structure_and_invariants_stay(state, model, tolerance):
    torch.manual_seed(1)
    policy = model()
    with torch.no_grad():  # actor layers at a trained policy's scale (they start near zero: near-isotropic)
        for layer in (policy.direction_weights, policy.axis_weights):
            torch.nn.init.normal_(layer.weight, std=3.0)
    atoms, agent = state
    points = torch.nn.functional.normalize(torch.randn(64, 3, dtype=torch.float64), dim=1)
    with torch.no_grad():
        before = policy.encode(atoms, agent)
        grid = torch.softmax(policy._direction_logits(before, policy.grid), 0)
        assert grid.max() > 3 * grid.min()  # a distribution with features to rotate, not a flat one
        for seed in range(3):
            rotation = o3.rand_matrix().double()
            if seed == 2 and model is MultipolePolicy:
                rotation = -rotation  # an improper rotation: the multipole policy is O(3)-equivariant
                # (SevenNet-0's irreps carry no parity: with it the policy is SO(3)-equivariant only)
            after = policy.encode(_moved(atoms, rotation.numpy(), np.array([1.3, -2.0, 0.7]) * seed), agent)
            turned = points @ rotation.T
            grid_before = torch.softmax(policy._direction_logits(before, policy.grid), 0)
            grid_after = torch.softmax(policy._direction_logits(after, policy.grid @ rotation.T), 0)
            assert torch.allclose(grid_before, grid_after, atol=tolerance)  # the grid distribution rotates
            assert torch.allclose(policy._direction_logits(before, points), policy._direction_logits(after, turned),
                                  atol=tolerance)  # fmt: skip
            assert torch.allclose(before['h'], after['h'], atol=tolerance)  # invariant features
            assert torch.allclose(before['critic'], after['critic'], atol=tolerance)  # the critic's input
            assert policy.critic(before['critic']).item() == pytest.approx(
                policy.critic(after['critic']).item(), abs=tolerance
            )
            for direction in points[:4]:
                p0 = policy._projections(before, direction)
                p1 = policy._projections(after, rotation @ direction)
                assert torch.allclose(p0, p1, atol=tolerance)
                m0, m1 = policy._magnitude(before, p0), policy._magnitude(after, p1)
                assert torch.allclose(m0.concentration1, m1.concentration1, atol=tolerance)
                assert torch.allclose(m0.concentration0, m1.concentration0, atol=tolerance)
                axis0 = policy._axis_logits(before, p0, direction, points)
                axis1 = policy._axis_logits(after, p1, rotation @ direction, turned)
                assert torch.allclose(axis0, axis1, atol=tolerance)
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


@pytest.mark.parametrize('model', [MultipolePolicy, SevenNetPolicy], ids=['multipole', 'sevennet'])
def test_seeded_actions_exact_log_probabilities_and_round_trip(state, model):
    torch.manual_seed(2)
    policy = model(d_max=1.5)
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
    stats = ppo_update(policy, batch, seed=0, settings=PPOSettings(learning_rate=0.001, epochs=20, target_kl=0.1))
    assert stats['policy_loss'] < stats['policy_loss_before']  # the clipped surrogate improved on the batch
    assert stats['epochs'] >= 1 and stats['approx_kl'] <= 0.1  # within the trust region
    assert down_probability() > before + 0.03
    assert stats['value_loss'] < stats['value_loss_before']  # the critic is fitted to the GAE returns


def test_ppo_reports_each_head_and_its_entropy_bonus_acts_on_that_head(state):
    atoms, agent = state
    torch.manual_seed(4)
    initial = MultipolePolicy().state_dict()

    def update(entropy):
        policy = MultipolePolicy()
        policy.load_state_dict(initial)
        batch = []
        for seed in range(12):  # rewarded for moving down: the update sharpens the direction head
            out = policy.act(atoms, agent, seed)
            batch.append([Step(state, out.sample.tolist(), out.logp, -float(out.sample[2]), out.value)])
        return ppo_update(policy, batch, seed=0, settings=PPOSettings(learning_rate=0.01, epochs=5, entropy=entropy))

    plain, bonus = update(0.0), update({'direction': 2.0})
    assert sorted(plain['heads']) == ['axis', 'direction', 'magnitude']
    for stats in (plain, bonus):
        assert all(head['approx_kl'] >= 0 for head in stats['heads'].values())
    assert plain['heads']['direction']['approx_kl'] > 0
    assert plain['heads']['direction']['entropy'] < plain['heads']['direction']['entropy_before']
    assert bonus['heads']['direction']['entropy'] > plain['heads']['direction']['entropy']  # the bonus held it up
    assert PPOSettings(entropy={'axis': 1.0}).entropy_weight('direction') == 0.0
    assert PPOSettings(entropy=0.1).entropy_weight('axis') == 0.1
    with pytest.raises(ValueError, match='target_kl'):
        PPOSettings(target_kl=0)


def test_sevennet_radius_beyond_the_policy_cutoff_is_refused():
    with pytest.raises(ValueError, match=r'radius must be within \(0, cutoff\].*cutoff = 5.0 Å, got radius = 6.0 Å'):
        SevenNetPolicy(cutoff=5.0, radius=6.0)


def test_policies_act_on_an_o2_with_no_neighbour_in_the_cutoff():
    """An O2 far above the slab (nothing within the cutoff) is a valid state: zero moments, not a crash."""
    from ase import Atoms

    from aiida_rlpath.rl.models import init_policy

    atoms = Atoms('Si2O2', positions=[[0, 0, 0], [2.3, 0, 0], [5, 5, 15], [5, 5, 16.2]], cell=[10, 10, 30], pbc=True)
    for name in ('multipole', 'sevennet'):
        output = init_policy({'name': name}, 1.0, seed=0).act(atoms, [2, 3], seed=0)
        assert np.isfinite(output.logp) and np.isfinite(output.value), name
