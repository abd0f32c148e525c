"""The REALIZE environment (no AiiDA): rigid actions, rewards, success, escape, rollback, evolution, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from aiida_rlpath.envs import oxidation
from aiida_rlpath.envs.oxidation import (
    OxidationAction,
    OxidationEnv,
    OxidationSettings,
    RewardWeights,
    apply_action,
    random_action,
    step_reward,
)
from aiida_rlpath.physics.neb import BarrierResult
from aiida_rlpath.physics.pes import UnsupportedSpeciesError
from aiida_rlpath.systems.si_oxide import build_si_slab

FAST = OxidationSettings(neb_images=3, neb_max_steps=150, max_steps=5)


def _o2_over_si_dimer(height: float = 2.5, size: str = 'small') -> tuple[Atoms, list[int], np.ndarray]:
    """Bare Si(001) (96 Si; 24 if ``size='tiny'``) with an O2 ``height`` Å above the midpoint of two neighbouring
    top Si, bond parallel to them; returns the structure, the O2's indices and the unit vector between the two Si."""
    slab = build_si_slab(size)
    z = slab.positions[:, 2]
    tops = np.flatnonzero(z > z.max() - 0.1)
    first = tops[0]
    nearest = tops[np.argsort([slab.get_distance(first, j, mic=True) for j in tops])[1]]
    vector = slab.get_distance(first, nearest, mic=True, vector=True)
    unit = vector / np.linalg.norm(vector)
    centre = slab.positions[first] + vector / 2 + [0, 0, height]
    atoms = slab + Atoms('O2', positions=[centre - 0.63 * unit, centre + 0.63 * unit])
    return atoms, [len(slab), len(slab) + 1], unit


def test_apply_action_moves_the_o2_rigidly():
    atoms, agent, _ = _o2_over_si_dimer()
    action = OxidationAction.from_vector([3, 4, 0, 1.5, 0, 0, 2], d_max=2.0)
    moved = apply_action(atoms, agent, action)
    before = atoms.positions[agent].mean(axis=0)
    after = moved.positions[agent].mean(axis=0)
    assert after - before == pytest.approx([0.9, 1.2, 0.0])
    assert moved.get_distance(*agent) == pytest.approx(atoms.get_distance(*agent))
    bond = moved.positions[agent[1]] - moved.positions[agent[0]]
    assert abs(bond @ [0, 0, 1]) == pytest.approx(np.linalg.norm(bond))
    others = [i for i in range(len(atoms)) if i not in agent]
    assert np.array_equal(moved.positions[others], atoms.positions[others])


def test_action_vectors_are_validated():
    action = OxidationAction.from_vector([0, 0, -2, 9.0, 1, 1, 0], d_max=2.0)
    assert action.magnitude == 2.0
    assert np.linalg.norm(action.direction) == pytest.approx(1.0)
    assert action.to_vector()[3] == 2.0
    with pytest.raises(ValueError, match='direction has zero length'):
        OxidationAction.from_vector([0, 0, 0, 1, 1, 0, 0], d_max=2.0)
    with pytest.raises(ValueError, match='7 finite numbers'):
        OxidationAction.from_vector([0, 0, 1, 1], d_max=2.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        drawn = random_action(rng, 1.5)
        assert 0 <= drawn.magnitude <= 1.5
        # rebuilding from the stored vector gives exactly the same action (the provenance shell does this)
        assert OxidationAction.from_vector(drawn.to_vector(), 1.5) == drawn


def test_step_reward_terms():
    weights = RewardWeights()
    assert step_reward('success', 0.4, 1.0, weights) == pytest.approx(10.0 - 0.1)
    assert step_reward('moved', 1.6, 1.0, weights) == pytest.approx(-0.1 - 0.6)
    assert step_reward('moved', 0.5, 1.0, weights) == pytest.approx(-0.1)
    assert step_reward('dissociated_above_threshold', 2.0, 1.0, weights) == pytest.approx(-0.1 - 1.0)
    assert step_reward('neb_failed', float('nan'), 1.0, weights) == pytest.approx(-1.1)
    assert step_reward('escaped', float('nan'), 1.0, weights) == pytest.approx(-5.1)
    shaped = RewardWeights(progress=0.5)
    assert step_reward('moved', 0.0, 1.0, shaped, descent=2.0) == pytest.approx(-0.1 + 1.0)


def test_a_success_needs_the_whole_pathway_under_the_threshold():
    assert np.isnan(oxidation.path_barrier(float('nan'), float('nan')))
    assert oxidation.path_barrier(float('nan'), 0.7) == 0.7
    assert oxidation.path_barrier(1.9, float('nan')) == 1.9  # a rolled-back step keeps the pathway's barrier
    assert oxidation.path_barrier(1.9, 0.7) == 1.9
    classify = oxidation.classify
    assert classify(False, False, 0.7, True, 1.0) == 'success'
    assert classify(False, False, 0.7, True, 1.0, path_before=0.9) == 'success'
    assert classify(False, False, 0.7, True, 1.0, path_before=1.9) == 'dissociated_above_threshold'
    assert classify(False, False, 1.2, True, 1.0, path_before=0.3) == 'dissociated_above_threshold'
    assert classify(False, False, 1.9, False, 1.0, path_before=0.3) == 'moved'
    assert classify(False, False, float('nan'), True, 1.0) == 'neb_failed'
    assert classify(False, True, 0.2, True, 1.0) == 'escaped'
    assert classify(True, False, 0.2, True, 1.0) == 'relax_failed'


def test_verified_dissociation_is_a_success_and_evolves_the_environment():
    atoms, agent, unit = _o2_over_si_dimer()
    env = OxidationEnv(atoms, agent, threshold=1.5, settings=FAST)
    observation, info = env.reset(seed=0)
    assert observation['positions'].shape == (98, 3) and list(observation['agent']) == agent
    start = env.state
    _, reward, terminated, truncated, info = env.step(np.array([0, 0, -1, 1.5, *unit]))
    assert info['outcome'] == 'success', info
    assert terminated and not truncated
    assert info['barrier'] <= 1.5 and info['dissociated']
    assert info['path_barrier'] == info['barrier'] == info['effective_barrier']  # the first move: its own barrier
    assert reward == pytest.approx(10.0 - 0.1)
    # the same dissociation reached over an earlier 1.6 eV move: the pathway is too slow, no success bonus
    move = OxidationAction.from_vector([0, 0, -1, 1.5, *unit], FAST.d_max)
    slow = oxidation.transition(
        start, agent, move, env.pes, 1.5, env._verify_seed, oxidation.film_top(atoms, agent), FAST, path_before=1.6
    )
    assert slow.outcome == 'dissociated_above_threshold' and slow.terminated and slow.dissociated
    assert slow.barrier == pytest.approx(info['barrier']) and slow.path_barrier == 1.6
    assert slow.reward == pytest.approx(-0.1 - 1.0 * max(0.0, slow.barrier - 1.5))
    evidence = info['record'].verification
    assert evidence.oo_distance_after > 2.0 and all(evidence.si_neighbours_after)
    env.evolve(info['record'].atoms, seed=1)
    assert env.agent == [98, 99]
    assert env.observation_space['positions'].shape == (100, 3)
    observation, _ = env.reset(seed=0)
    assert observation['numbers'][96:].tolist() == [8, 8, 8, 8]  # the kept O atoms and the fresh O2


def test_seeded_episodes_are_identical_and_truncate():
    atoms, agent, unit = _o2_over_si_dimer()
    settings = OxidationSettings(neb_images=3, neb_max_steps=150, max_steps=1)
    results = []
    for _ in range(2):
        env = OxidationEnv(atoms, agent, threshold=1.5, settings=settings)
        env.reset(seed=42)
        observation, reward, terminated, truncated, info = env.step(np.array([1, 0, -0.2, 0.6, *unit]))
        results.append((observation['positions'], reward, info['barrier'], info['energy_after']))
        assert info['outcome'] == 'moved' and truncated and not terminated
    (p1, r1, b1, e1), (p2, r2, b2, e2) = results
    assert np.array_equal(p1, p2) and r1 == r2 and b1 == b2 and e1 == e2


def test_escape_ends_the_episode():
    atoms, agent, unit = _o2_over_si_dimer(height=3.0)
    env = OxidationEnv(atoms, agent, threshold=1.5, settings=OxidationSettings(escape_margin=3.5))
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.array([0, 0, 1, 2.0, *unit]))
    assert info['outcome'] == 'escaped' and terminated
    assert reward == pytest.approx(-0.1 - 5.0)
    assert np.isnan(info['barrier'])  # no NEB is spent on an escaped molecule


def test_failed_neb_rolls_back_with_a_penalty(monkeypatch):
    """Error handling only: the NEB is replaced by one that always fails, as a broken band would."""

    def failing_barrier(*args, **kwargs):
        return BarrierResult(float('nan'), 'prescreen', float('nan'), 7, False, None)

    monkeypatch.setattr(oxidation, 'barrier', failing_barrier)
    atoms, agent, unit = _o2_over_si_dimer()
    env = OxidationEnv(atoms, agent, threshold=1.5, settings=OxidationSettings(max_neb_failures=2))
    start, _ = env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.array([1, 0, 0, 1.0, *unit]))
    assert info['outcome'] == 'neb_failed' and not terminated
    assert reward == pytest.approx(-0.1 - 1.0)
    assert np.array_equal(env.state.positions, start['positions'])  # rolled back
    _, _, terminated, _, _ = env.step(np.array([1, 0, 0, 1.0, *unit]))
    assert terminated  # second failure reaches max_neb_failures


def test_species_outside_the_pes_are_refused():
    atoms, agent, _ = _o2_over_si_dimer()
    atoms[0].symbol = 'Fe'
    with pytest.raises(UnsupportedSpeciesError, match='Fe'):
        OxidationEnv(atoms, agent)
