"""MAP, plain shell: density-grid state, prioritized replay, n-step returns, the tethered-water environment on
ReaxFF, piecewise NEB, τ, and a short seeded Ape-X training against a random agent."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms

from aiida_rlpath.envs.water_diffusion import (
    GridSettings,
    WaterDiffusionEnv,
    WaterDiffusionSettings,
    density_grid,
    settings_from_dict,
)
from aiida_rlpath.physics.tst import diffusion_time, split_profile
from aiida_rlpath.rl.algos.apex_dqn import (
    ApexSettings,
    PrioritizedReplay,
    epsilon_ladder,
    evaluate,
    n_step_transitions,
    train,
)

ARCHITECTURE = {'name': 'map-q3d', 'channels': 4, 'points': 9, 'hidden': 16, 'actions': 5}
FAST_ENV = WaterDiffusionSettings(relax_steps=8, max_steps=6)


@pytest.fixture(scope='module')
def env_factory(water_glass):
    """New environments sharing one relaxed start (the first reset relaxes it once)."""
    atoms, water, _ = water_glass
    first = WaterDiffusionEnv(atoms, water, settings=FAST_ENV)
    first.reset(seed=0)

    def make():
        env = WaterDiffusionEnv(atoms, water, settings=FAST_ENV)
        env._start = first._start
        return env

    return make


def test_density_grid_by_hand_and_order_invariant():
    grid = GridSettings(points=3, spacing=1.0, sigma=0.5, species=('Si', 'O'))
    cell = np.eye(3) * 20.0
    centre = np.array([10.0, 10.0, 10.0])
    # one Si on the +x voxel, one O half-way between the centre and the -y voxel, water O+H at the centre
    positions = np.array([[11.0, 10.0, 10.0], [10.0, 9.5, 10.0], [10.0, 10.0, 10.0], [10.0, 10.0, 10.96]])
    symbols = ['Si', 'O', 'O', 'H']
    values = density_grid(positions, symbols, cell, [True] * 3, centre, [2, 3], grid)
    assert values.shape == (3, 3, 3, 3)
    g = lambda d2: math.exp(-d2 / (2 * 0.25))  # noqa: E731
    assert values[0, 2, 1, 1] == pytest.approx(g(0.0), rel=1e-6)  # Si sits on voxel (+1, 0, 0)
    assert values[0, 1, 1, 1] == pytest.approx(g(1.0), rel=1e-6)
    assert values[1, 1, 0, 1] == pytest.approx(g(0.25), rel=1e-6)  # O 0.5 Å from the -y voxel
    assert values[1, 1, 1, 1] == pytest.approx(g(0.25), rel=1e-6)
    assert values[2, 1, 1, 1] == pytest.approx(g(0.0) + g(0.96**2), rel=1e-6)  # the water channel: O and H
    assert values[:2].sum() > 0 and values[0, 0].max() < 1e-2
    # a permutation of the atoms (with the water indices following) gives the same grid
    order = np.array([3, 1, 0, 2])
    permuted = density_grid(positions[order], [symbols[i] for i in order], cell, [True] * 3, centre, [3, 0], grid)
    assert np.array_equal(values, permuted)
    # across the periodic boundary: an atom at x = 0.5 seen from a centre at x = 19.5 is 1 Å along +x
    wrapped = density_grid(np.array([[0.5, 10.0, 10.0]]), ['Si'], cell, [True] * 3, [19.5, 10.0, 10.0], [], grid)
    assert wrapped[0, 2, 1, 1] == pytest.approx(1.0, rel=1e-6)


def test_prioritized_sampling_follows_priorities():
    replay = PrioritizedReplay(capacity=4, alpha=1.0)
    batch = {
        'state': np.zeros((4, 1)),
        'action': np.arange(4),
        'ret': np.zeros(4),
        'next_state': np.zeros((4, 1)),
        'discount': np.ones(4),
    }
    replay.extend(batch, np.array([1.0, 2.0, 3.0, 4.0]))
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    for _ in range(500):
        indices, weights = replay.sample(40, beta=1.0, rng=rng)
        counts += np.bincount(indices, minlength=4)
        # (N P(i))^-1 normalised by the largest weight (the smallest priority's): 1/p_i relative to 1/1
        assert np.allclose(weights, 1.0 / replay.priorities[indices])
    assert np.allclose(counts / counts.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.01)
    # alpha flattens the distribution; updates set |delta| + epsilon; overflow drops the oldest
    replay.alpha = 0.0
    assert np.allclose(replay.probabilities(), 0.25)
    replay.update(np.array([0]), np.array([-5.0]))
    assert replay.priorities[0] == pytest.approx(5.0 + replay.priority_epsilon)
    replay.extend({k: v[:2] for k, v in batch.items()}, np.array([7.0, 8.0]))
    assert len(replay) == 4 and list(replay.data['action']) == [2, 3, 0, 1]
    assert list(replay.priorities) == [3.0, 4.0, 7.0, 8.0]
    with pytest.raises(ValueError, match='positive'):
        replay.extend({k: v[:1] for k, v in batch.items()}, np.array([0.0]))


def test_n_step_returns_and_epsilon_ladder():
    states = [np.full(2, float(i)) for i in range(5)]
    data = n_step_transitions(states, [0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], terminated=True, n=3, gamma=0.5)
    assert data['ret'] == pytest.approx([1 + 1 + 0.75, 2 + 1.5 + 1, 3 + 2, 4])
    assert data['discount'] == pytest.approx([0.125, 0.0, 0.0, 0.0])
    assert [s[0] for s in data['next_state']] == [3, 4, 4, 4]
    truncated = n_step_transitions(states, [0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], terminated=False, n=3, gamma=0.5)
    assert truncated['discount'] == pytest.approx([0.125, 0.125, 0.25, 0.5])
    ladder = epsilon_ladder(3, 0.4, 7.0)
    assert ladder == pytest.approx([0.4, 0.4**4.5, 0.4**8])
    assert epsilon_ladder(1) == [0.4]


def test_tau_by_hand_at_350_celsius():
    temperature = 623.15
    kt = 8.617333262e-5 * temperature  # eV
    hand = sum(4.135667696e-15 / kt * math.exp(e / kt) for e in (0.5, 0.8))
    assert diffusion_time([0.5, 0.8], temperature) == pytest.approx(hand, rel=1e-12)
    assert diffusion_time([0.5, 0.8], temperature) == pytest.approx(
        2.282e-7, rel=1e-3
    )  # 7.70e-14 s·(e^9.311 + e^14.898)


def test_settings_errors_name_the_problem():
    with pytest.raises(ValueError, match=r'unknown water-diffusion settings \[.stepsize.\]'):
        settings_from_dict({'stepsize': 1.0})
    with pytest.raises(ValueError, match=r'unknown weights settings \[.speed.\]'):
        settings_from_dict({'weights': {'speed': 1.0}})
    with pytest.raises(ValueError, match='odd'):
        GridSettings(points=4)
    with pytest.raises(ValueError, match='tether_k must be > 0'):
        WaterDiffusionSettings(tether_k=0.0)
    with pytest.raises(ValueError, match='actors must be >= 1'):
        ApexSettings(actors=0)
    with pytest.raises(ValueError, match='water must index one O and two H'):
        WaterDiffusionEnv(Atoms('SiO2', positions=np.eye(3), cell=[8] * 3, pbc=True), [0, 1, 2])


def test_environment_moves_the_water_and_sums_its_reward_terms(water_glass, env_factory):
    _, water, metadata = water_glass
    assert metadata['density'] == pytest.approx(2.2, abs=1e-6) and metadata['fmax'] <= 0.05
    env = env_factory()
    state, info = env.reset(seed=0)
    assert state.shape == env.observation_space.shape == (4, 9, 9, 9)
    assert state[-1].max() > 0.9  # the water's own channel peaks at the agent
    x0 = info['x']
    total = 0.0
    for _ in range(3):
        state, reward, terminated, _, step = env.step(0)  # +x
        record = step['record']
        assert record.error is None and not terminated
        assert reward == pytest.approx(sum(record.terms.values()))
        assert record.force_calls <= FAST_ENV.relax_steps + 1
        total += record.terms['progress']
    assert env.progress() > 0.5  # the tether pulled the water along +x (3 x 0.5 Å asked)
    assert total == pytest.approx(env.atoms.positions[water[0], 0] - x0)
    assert np.isfinite(env.energies).all() and len(env.frames) == 4
    with pytest.raises(ValueError, match=r'action must be in 0\.\.4'):
        env.step(5)


def test_short_seeded_training_moves_the_water_farther_than_random(env_factory):
    """Four rounds of two actors (24 steps each round) train the 3D-CNN Q-network; the greedy agent then pushes
    the water farther along +x than a random agent over the same episodes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = ApexSettings(actors=2, steps_per_actor=12, rounds=4, updates_per_round=128)
        learner, replay, history, _ = train(env_factory, settings, 0, ARCHITECTURE)
        greedy = evaluate(env_factory(), learner.q, 3, seed=1)
        random = evaluate(env_factory(), None, 3, seed=1)
    finally:
        torch.set_num_threads(threads)
    assert len(replay) == 4 * 24 and [h['steps'] for h in history] == [24] * 4
    assert all(h['updates'] == 128 for h in history)
    greedy_x = np.mean([t.progress for t in greedy])
    random_x = np.mean([t.progress for t in random])
    print(f'mean final x advance: greedy {greedy_x:.2f} Å, random {random_x:.2f} Å')
    assert greedy_x > random_x + 0.3


def test_piecewise_neb_on_a_synthetic_two_hop_profile():
    """An EMT Al adatom hopping twice between hollow sites: the profile splits into two segments and each NEB
    barriers are equal (the two hops are the same by symmetry) and physical."""
    from ase.build import add_adsorbate, fcc100

    from aiida_rlpath.physics.neb import segment_neb
    from aiida_rlpath.physics.pes import PESSpec

    slab = fcc100('Al', size=(3, 3, 2), vacuum=6.0)
    add_adsorbate(slab, 'Al', 1.6, 'hollow')
    from ase.constraints import FixAtoms

    slab.set_constraint(FixAtoms(indices=list(range(9))))
    pes = PESSpec('emt')
    a = slab.cell[0, 0] / 3
    frames, energies = [], []
    calc = pes.calculator()
    for shift in np.linspace(0.0, 2 * a, 9):  # two hollow-to-hollow hops along x
        frame = slab.copy()
        frame.positions[-1, 0] += shift
        frames.append(frame)
        probe = frame.copy()
        probe.calc = calc
        energies.append(probe.get_potential_energy())
    segments = split_profile(energies, prominence=0.05)
    assert [(s.start, s.end) for s in segments] == [(0, 4), (4, 8)]
    barriers = []
    for segment in segments:
        result = segment_neb(
            frames, segment.start, segment.end, energies, pes, watch=len(slab) - 1, n_images=3, fmax=0.05, max_steps=100
        )
        assert result.neb.converged and not result.merged
        assert result.profile_barrier == pytest.approx(segment.forward_barrier)
        barriers.append(result.barrier)
    assert 0.05 < barriers[0] < 1.5
    assert barriers[1] == pytest.approx(barriers[0], abs=0.02)
