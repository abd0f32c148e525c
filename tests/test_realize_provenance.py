"""The REALIZE provenance shell reproduces the plain environment exactly, node by node."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from test_env_oxidation import _o2_over_si_dimer

from aiida_rlpath.envs.oxidation import OxidationEnv, OxidationSettings, RewardWeights, canonical
from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES
from aiida_rlpath.workflows.realize.episode import RealizeEpisodeWorkChain

SETTINGS = OxidationSettings(neb_images=3, neb_max_steps=150, max_steps=3)
THRESHOLD, SEED = 1.5, 2024


def _inputs(atoms, agent, **overrides):
    fixed = [int(i) for i in atoms.constraints[0].index]
    film_top = float(np.delete(atoms.positions[:, 2], agent).max())
    inputs = {
        'structure': orm.StructureData(ase=canonical(atoms)),
        'system': orm.Dict({'agent': agent, 'fixed': fixed, 'film_top': film_top}),
        'pes': orm.Dict(DEFAULT_OXIDATION_PES.to_dict()),
        'settings': orm.Dict(dataclasses.asdict(SETTINGS)),
        'weights': orm.Dict(dataclasses.asdict(RewardWeights())),
        'threshold': orm.Float(THRESHOLD),
        'seed': orm.Int(SEED),
    }
    inputs.update(overrides)
    return inputs


def _plain_episode(atoms, agent):
    env = OxidationEnv(atoms, agent, THRESHOLD, DEFAULT_OXIDATION_PES, SETTINGS)
    _, info = env.reset(seed=SEED)
    records, start_energy = [], info['energy']
    while True:
        _, _, terminated, truncated, info = env.step(env.random_action())
        records.append(info)
        if terminated or truncated:
            return start_energy, records


def test_same_seed_same_episode_in_both_shells(aiida_profile_clean):
    atoms, agent, _ = _o2_over_si_dimer()
    start_energy, plain = _plain_episode(atoms, agent)
    results, node = run_get_node(RealizeEpisodeWorkChain, **_inputs(atoms, agent))
    assert node.is_finished_ok, node.exit_status
    stored = results['summary']['steps']
    assert len(stored) == len(plain) >= 1
    stored_float = pytest.approx  # stored numbers keep ~14 significant digits: compare at that precision
    for mine, theirs in zip(plain, stored, strict=True):
        assert mine['outcome'] == theirs['outcome']
        assert mine['force_calls'] == theirs['force_calls']
        assert mine['action'] == theirs['action']  # canonical actions survive storage exactly
        for key in ('energy_before', 'energy_after', 'reward'):
            assert theirs[key] == stored_float(mine[key], rel=1e-13, abs=1e-12), key
        for key in ('barrier', 'path_barrier'):
            if np.isnan(mine[key]):
                assert theirs[key] is None, key
            else:
                assert theirs[key] == stored_float(mine[key], rel=1e-13, abs=1e-12), key
    assert stored[0]['energy_before'] == pytest.approx(start_energy, rel=1e-13)

    # provenance: one workfunction node per step, each calling its calculation nodes
    steps = node.base.links.get_outgoing(link_label_filter='step_%').all()
    assert [link.link_label for link in steps] == [f'step_{i:02d}' for i in range(len(plain))]
    called = {child.process_label for child in steps[0].node.called}
    assert {'sample_action', 'relax_move', 'conclude_step'} <= called


def test_invalid_inputs_are_refused_before_anything_runs(aiida_profile_clean):
    atoms, agent, _ = _o2_over_si_dimer()
    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    with pytest.raises(ValueError, match='does not index an O2'):
        run_get_node(RealizeEpisodeWorkChain, **_inputs(atoms, [0, 1]))
    bad_system = orm.Dict({'agent': agent, 'fixed': []})
    with pytest.raises(ValueError, match='lacks'):
        run_get_node(RealizeEpisodeWorkChain, **_inputs(atoms, agent, system=bad_system))
    bad_settings = orm.Dict({**dataclasses.asdict(SETTINGS), 'd_max': -1.0})
    with pytest.raises(ValueError, match='must be positive'):
        run_get_node(RealizeEpisodeWorkChain, **_inputs(atoms, agent, settings=bad_settings))
    overlapping = atoms.copy()
    overlapping.positions[5] = overlapping.positions[4] + [0.3, 0, 0]
    with pytest.raises(ValueError, match='overlap'):
        run_get_node(RealizeEpisodeWorkChain, **_inputs(overlapping, agent))
    fe = atoms.copy()
    fe[0].symbol = 'Fe'
    with pytest.raises(ValueError, match='Fe'):
        run_get_node(RealizeEpisodeWorkChain, **_inputs(fe, agent))
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before  # nothing ran, nothing stored


def test_caching_reuses_identical_seeded_calculations(aiida_profile_clean):
    from aiida.manage.caching import enable_caching

    atoms, agent, _ = _o2_over_si_dimer(size='tiny')
    inputs = _inputs(atoms, agent, settings=orm.Dict({**dataclasses.asdict(SETTINGS), 'max_steps': 1}))
    _, first = run_get_node(RealizeEpisodeWorkChain, **inputs)
    with enable_caching():  # calcfunctions are cached; work chains and workfunctions always run
        _, second = run_get_node(RealizeEpisodeWorkChain, **inputs)
    assert first.is_finished_ok and second.is_finished_ok

    def calculations(node):
        for child in node.called:
            yield from ([child] if isinstance(child, orm.CalculationNode) else calculations(child))

    reused = [calc for calc in calculations(second) if calc.base.caching.is_created_from_cache]
    assert reused and len(reused) == len(list(calculations(second)))  # every seeded calculation came from cache
    assert second.outputs.summary['steps'] == first.outputs.summary['steps']


def test_a_policy_checkpoint_acts_identically_in_both_shells(aiida_profile_clean):
    import torch

    from aiida_rlpath.data.policy import PolicyCheckpointData
    from aiida_rlpath.rl.models import ContextFreePolicy

    model = ContextFreePolicy(SETTINGS.d_max)
    with torch.no_grad():  # a policy that is not the isotropic start: it prefers to move down
        model.mean.copy_(torch.tensor([0.1, -0.2, -1.0, 1.2, 1.0, 0.0, 0.0], dtype=torch.float64))
    checkpoint = PolicyCheckpointData.get_or_create(model.state_dict(), model.architecture)[0]
    atoms, agent, _ = _o2_over_si_dimer(size='tiny')
    settings = dataclasses.replace(SETTINGS, max_steps=2)
    env = OxidationEnv(atoms, agent, THRESHOLD, DEFAULT_OXIDATION_PES, settings)
    env.reset(seed=SEED)
    plain = []
    while True:
        action, output = env.policy_action(model)
        _, _, terminated, truncated, info = env.step(action)
        plain.append((info, output))
        if terminated or truncated:
            break
    inputs = _inputs(atoms, agent, settings=orm.Dict(dataclasses.asdict(settings)), policy=checkpoint)
    results, node = run_get_node(RealizeEpisodeWorkChain, **inputs)
    stored = results['summary']['steps']
    assert len(stored) == len(plain)
    for (info, output), theirs in zip(plain, stored, strict=True):
        assert theirs['action'] == info['action'] and theirs['outcome'] == info['outcome']
        assert theirs['sample'] == output.sample.tolist() and theirs['logp'] == pytest.approx(output.logp, rel=1e-13)
        assert theirs['energy_after'] == pytest.approx(info['energy_after'], rel=1e-13)
    step = node.base.links.get_outgoing(link_label_filter='step_00').one().node
    sampled = next(child for child in step.called if child.process_label == 'sample_action')
    assert sampled.inputs.policy.uuid == checkpoint.uuid  # the checkpoint is an input of every action it drew
