"""RealizeTrainingWorkChain: cycles, kept events, policy checkpoints, annealing, validation, continuation, and a
daemon worker killed mid-training that loses and duplicates no step."""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from test_env_oxidation import _o2_over_si_dimer

from aiida_rlpath.data.policy import PolicyCheckpointData, state_dict_sha256
from aiida_rlpath.envs.oxidation import OxidationSettings, TrainingSettings
from aiida_rlpath.rl.models import ContextFreePolicy
from aiida_rlpath.workflows.realize.episode import RealizeEpisodeWorkChain
from aiida_rlpath.workflows.realize.training import RealizeTrainingWorkChain
from aiida_rlpath.workflows.utils import INTERRUPTED

SETTINGS = OxidationSettings(neb_images=3, neb_max_steps=150, max_steps=3)
SEED = 3  # on the 24-Si test slab, cycle 0 of this seed has a verified oxidation to keep


def _policy(d_max=SETTINGS.d_max):
    model = ContextFreePolicy(d_max)
    return PolicyCheckpointData.get_or_create(model.state_dict(), model.architecture)[0]


def _builder(cycles=2, episodes=2, settings=SETTINGS, seed=SEED):
    atoms, agent, _ = _o2_over_si_dimer(size='tiny')
    episode = RealizeEpisodeWorkChain.get_builder_from_atoms(atoms, agent, seed=0, settings=settings)
    builder = RealizeTrainingWorkChain.get_builder()
    for key in ('structure', 'system', 'pes', 'settings', 'weights'):
        builder[key] = episode[key]
    builder.policy = _policy(settings.d_max)
    builder.seed = orm.Int(seed)
    builder.training = orm.Dict(dataclasses.asdict(TrainingSettings(cycles=cycles, episodes_per_cycle=episodes)))
    return builder


def _calls(node, link_type=LinkType.CALL_CALC):
    return {link.link_label: link.node for link in node.base.links.get_outgoing(link_type=link_type).all()}


@pytest.fixture(scope='module')
def trained(aiida_profile):
    """A finished 2-cycle training on the 24-Si slab (about a minute), shared by the tests that read it."""
    builder = _builder()
    results, node = run_get_node(builder)
    return builder, results, node


def test_training_keeps_events_updates_the_policy_and_anneals(trained):
    builder, results, node = trained
    assert node.is_finished_ok, node.exit_status
    cycles = results['cycles']
    assert sorted(cycles) == ['cycle_00', 'cycle_01']
    assert [cycles[c]['threshold'] for c in ('cycle_00', 'cycle_01')] == pytest.approx([2.0, 1.8])

    calls, episodes = _calls(node), _calls(node, LinkType.CALL_WORK)
    assert sorted(episodes) == [f'cycle_{c:02d}_episode_{k:02d}' for c in range(2) for k in range(2)]
    for c in range(2):  # the metrics agree with the episodes they summarise
        summaries = [episodes[f'cycle_{c:02d}_episode_{k:02d}'].outputs.summary for k in range(2)]
        metrics = cycles[f'cycle_{c:02d}']
        assert metrics['successes'] == sum(s['outcome'] == 'success' for s in summaries)
        assert metrics['steps'] == sum(len(s['steps']) for s in summaries)
        assert all(step['logp'] is not None for s in summaries for step in s['steps'])  # the policy acted

    # cycle 0 kept an event: cycle 1 starts from the evolved structure (the kept O atoms and a fresh O2)
    assert cycles['cycle_00']['kept'] is not None and 'cycle_00' in results['events']
    evolved = calls['cycle_00_event'].outputs.structure
    assert len(evolved.sites) == len(builder.structure.sites) + 2
    for k in range(2):
        assert episodes[f'cycle_01_episode_{k:02d}'].inputs.structure.uuid == evolved.uuid
    kept = results['events']['cycle_00']
    assert kept['oxygens'] == builder.system['agent'] and all(kept['si_neighbours'])

    # the policy chain: initial -> update 0 -> update 1 -> output, each a new checkpoint of new weights
    first, second = calls['cycle_00_update'], calls['cycle_01_update']
    assert first.inputs.policy.uuid == builder.policy.uuid
    assert second.inputs.policy.uuid == first.outputs.policy.uuid
    assert results['policy'].uuid == second.outputs.policy.uuid
    assert len({builder.policy.sha256, first.outputs.policy.sha256, second.outputs.policy.sha256}) == 3
    assert first.outputs.stats['steps'] == cycles['cycle_00']['steps']
    weights = results['policy'].load_state_dict()
    assert state_dict_sha256(weights) == results['policy'].sha256

    # continuing: from the last cycle's policy and environment, next threshold, numbering (and seeds) continued
    more = RealizeTrainingWorkChain.get_builder_continue(node, cycles=1)
    assert more.first_cycle.value == 2 and more.threshold.value == pytest.approx(1.62)
    assert more.policy.uuid == results['policy'].uuid and more.structure.uuid == results['structure'].uuid
    assert more.training['cycles'] == 1
    again = node.get_builder_restart()  # AiiDA's own: the same inputs
    assert again.seed.value == SEED and again.policy.uuid == builder.policy.uuid


def test_cli_report_export_and_restart(trained, tmp_path):
    from ase.io import read
    from click.testing import CliRunner

    from aiida_rlpath.cli import cmd_root

    _, results, node = trained
    runner = CliRunner()
    report = runner.invoke(cmd_root, ['realize', 'report', str(node.pk), '--output-dir', str(tmp_path)])
    assert report.exit_code == 0, report.output
    assert '2 cycle(s) finished' in report.output and 'oxidation event(s) kept' in report.output
    assert (tmp_path / f'realize_{node.pk}_training.png').stat().st_size > 1000
    assert (tmp_path / f'realize_{node.pk}_barriers.png').stat().st_size > 1000

    exported = runner.invoke(cmd_root, ['realize', 'export', str(node.pk), '--output-dir', str(tmp_path)])
    assert exported.exit_code == 0, exported.output
    files = sorted(tmp_path.glob('*.extxyz'))
    assert len(files) == len(results['events'])  # one pathway per kept event
    frames = read(files[0], index=':')
    assert frames[-1].info['outcome'] == 'success' and frames[-1].info['barrier'] >= 0
    assert all(np.isfinite(frame.get_potential_energy()) for frame in frames)  # ASE reads energy into a calculator

    episode = next(iter(_calls(node, LinkType.CALL_WORK).values()))
    steps = runner.invoke(cmd_root, ['realize', 'report', str(episode.pk)])
    assert steps.exit_code == 0 and 'outcome' in steps.output, steps.output
    wrong = runner.invoke(cmd_root, ['realize', 'report', str(_calls(node)['cycle_00_update'].pk)])
    assert wrong.exit_code != 0 and 'not a REALIZE training' in wrong.output

    label = {'attributes.process_label': 'RealizeTrainingWorkChain'}
    query = orm.QueryBuilder().append(orm.WorkChainNode, filters=label)
    before = {n.pk for n in query.all(flat=True)}
    restarted = runner.invoke(cmd_root, ['realize', 'restart', str(node.pk), '--cycles', '1'])
    assert restarted.exit_code == 0, restarted.output
    query = orm.QueryBuilder().append(
        orm.WorkChainNode, filters={'attributes.process_label': 'RealizeTrainingWorkChain'}
    )
    (new,) = [n for n in query.all(flat=True) if n.pk not in before]
    assert new.is_finished_ok, new.exit_status
    assert sorted(new.outputs.cycles) == ['cycle_02']  # numbering continues
    assert new.outputs.cycles['cycle_02']['threshold'] == pytest.approx(1.62)
    assert _calls(new)['cycle_02_update'].inputs.policy.uuid == results['policy'].uuid


def test_invalid_training_inputs_are_refused_before_anything_runs(aiida_profile_clean):
    builder = _builder()
    before = orm.QueryBuilder().append(orm.ProcessNode).count()

    model = ContextFreePolicy()
    tampered = PolicyCheckpointData.from_state_dict(model.state_dict(), model.architecture)
    tampered.base.attributes.set('sha256', '0' * 64)
    tampered.store()
    inputs = {key: builder[key] for key in builder if key != 'metadata'}
    with pytest.raises(ValueError, match='weights hash to'):  # at submission ...
        run_get_node(RealizeTrainingWorkChain, **{**inputs, 'policy': tampered})
    with pytest.raises(ValueError, match='weights hash to'):  # ... and already in the builder
        builder.policy = tampered
    unknown = PolicyCheckpointData.from_state_dict(model.state_dict(), {'name': 'no-such-model'}).store()
    with pytest.raises(ValueError, match='unknown model'):
        run_get_node(RealizeTrainingWorkChain, **{**inputs, 'policy': unknown})

    with pytest.raises(ValueError, match='`threshold` must be positive'):
        run_get_node(RealizeTrainingWorkChain, **{**inputs, 'threshold': orm.Float(-0.5)})
    training = builder.training.get_dict()
    with pytest.raises(ValueError, match='cycles and episodes_per_cycle'):
        run_get_node(RealizeTrainingWorkChain, **{**inputs, 'training': orm.Dict({**training, 'cycles': 0})})
    with pytest.raises(ValueError, match='learning_rat'):
        bad_ppo = orm.Dict({**training, 'ppo': {'learning_rat': 0.1}})
        run_get_node(RealizeTrainingWorkChain, **{**inputs, 'training': bad_ppo})
    episode = RealizeEpisodeWorkChain.get_builder_from_atoms(*_o2_over_si_dimer(size='tiny')[:2], seed=0)
    with pytest.raises(ValueError, match='weights hash to'):
        run_get_node(
            RealizeEpisodeWorkChain, **{key: episode[key] for key in episode if key != 'metadata'}, policy=tampered
        )
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before  # nothing ran, nothing stored


def _descendants(node):
    for child in node.called:
        yield child
        yield from _descendants(child)


@pytest.mark.daemon
def test_killed_daemon_worker_loses_and_duplicates_no_step(started_daemon_client, submit_and_await):
    """SIGKILL the daemon worker while an episode step runs; circus starts a new worker, the broker requeues the
    processes, they resume from their checkpoints, and each step ends up finished exactly once."""
    from aiida.engine import submit

    node = submit(_builder(cycles=2, episodes=2, settings=dataclasses.replace(SETTINGS, max_steps=2)))
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until a step is running inside an episode
        running = [n for n in _descendants(node) if n.process_label == 'realize_step' and not n.is_terminated]
        if running:
            break
        time.sleep(0.5)
    assert running, 'no step started within 300 s'
    time.sleep(2)  # let the step get into its calculations
    pids = [int(pid) for pid in started_daemon_client.get_worker_info()['info']]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    node = submit_and_await(node, timeout=540)
    assert node.is_finished_ok, node.exit_status
    interrupted = 0
    for episode in _calls(node, LinkType.CALL_WORK).values():
        assert episode.is_finished_ok
        steps = episode.base.links.get_outgoing(link_type=LinkType.CALL_WORK, link_label_filter='step_%').all()
        finished = sorted(link.link_label for link in steps if link.node.is_finished_ok)
        count = len(episode.outputs.summary['steps'])
        assert finished == [f'step_{k:02d}' for k in range(count)]  # each step once, none lost
        for link in steps:
            if not link.node.is_finished_ok:  # a lost attempt is marked, not left 'running'
                assert link.node.is_killed and link.node.process_status == INTERRUPTED
                interrupted += 1
    assert not [n for n in _descendants(node) if not n.is_terminated]
    assert interrupted >= 1  # the kill did hit a running step


def test_protocols_merge_overrides_and_grow_their_own_start(aiida_profile_clean):
    from aiida_rlpath.calculations.functions.systems import oxidation_system
    from aiida_rlpath.workflows.protocols import list_protocols

    assert set(list_protocols('realize')) == {'fast', 'balanced', 'paper'}
    builder = RealizeTrainingWorkChain.get_builder_from_protocol(
        'fast', {'training': {'cycles': 5}, 'system': {'size': 'tiny'}}, seed=11
    )
    assert builder.training['cycles'] == 5 and builder.training['episodes_per_cycle'] == 2  # merged, not replaced
    assert builder.build['size'] == 'tiny' and builder.build['oxide_thickness'] == 3.0 and builder.build['seed'] == 11
    assert 'structure' not in builder and builder.settings['neb_images'] == 3
    assert builder.policy.architecture['name'] == 'sevennet'  # the default agent, initialised from the seed
    again = RealizeTrainingWorkChain.get_builder_from_protocol('fast', seed=11)
    assert again.policy.uuid == builder.policy.uuid  # the same initialisation, stored once
    other = RealizeTrainingWorkChain.get_builder_from_protocol('fast', {'policy': {'name': 'multipole'}}, seed=12)
    assert other.policy.architecture['name'] == 'multipole'
    paper = RealizeTrainingWorkChain.get_builder_from_protocol('paper')
    assert paper.build['size'] == 'paper' and paper.settings['neb_fmax'] == 0.05
    with pytest.raises(ValueError, match='unknown realize protocol'):
        RealizeTrainingWorkChain.get_builder_from_protocol('fastest')
    with pytest.raises(ValueError, match='unknown system parameters'):
        RealizeTrainingWorkChain.get_builder_from_protocol('fast', {'system': {'sise': 'tiny'}})

    built = oxidation_system(orm.Dict({'size': 'tiny', 'oxide_thickness': 0.0, 'seed': 1}))
    atoms, system = built['structure'].get_ase(), built['system']
    assert atoms.get_chemical_symbols()[-2:] == ['O', 'O'] and system['agent'] == [24, 25]
    assert len(system['fixed']) == 8 and system['film_top'] < atoms.positions[24:, 2].min()

    incomplete = {key: builder[key] for key in builder if key not in ('metadata', 'build')}
    with pytest.raises(ValueError, match='or `build`'):
        run_get_node(RealizeTrainingWorkChain, **incomplete)


def test_training_with_the_sevennet_policy_then_evaluation_mode(aiida_profile_clean):
    """The default agent (SevenNet-0 backbone) trains through the work chain: one checkpoint per update, per-head
    diagnostics in the update's stats and report; then evaluation mode runs the trained checkpoint unchanged."""
    from aiida.cmdline.utils.common import get_workchain_report

    from aiida_rlpath.workflows.realize.training import initial_policy

    builder = _builder(cycles=1, episodes=2, settings=dataclasses.replace(SETTINGS, max_steps=2))
    builder.policy = initial_policy({'name': 'sevennet'}, SETTINGS.d_max, seed=0)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_status
    update = _calls(node)['cycle_00_update']
    assert results['policy'].architecture['name'] == 'sevennet'
    assert results['policy'].sha256 != builder.policy.sha256  # PPO changed the weights
    assert update.outputs.stats['steps'] == results['cycles']['cycle_00']['steps'] > 0
    assert update.outputs.stats['skipped_steps'] == 0  # every step was drawn by this policy, in its own state
    heads = update.outputs.stats['heads']
    assert sorted(heads) == ['axis', 'direction', 'magnitude']
    assert all(head['approx_kl'] >= 0 and np.isfinite(head['entropy']) for head in heads.values())
    assert 'direction H' in get_workchain_report(node, 'REPORT')  # logged each update
    assert update.outputs.stats['value_loss'] is not None  # the critic's values came through the step records: GAE

    evaluation = _builder(cycles=1, episodes=2, settings=dataclasses.replace(SETTINGS, max_steps=2), seed=5)
    evaluation.policy = results['policy']
    evaluation.training = orm.Dict({**evaluation.training.get_dict(), 'mode': 'evaluate'})
    evaluated, eval_node = run_get_node(evaluation)
    assert eval_node.is_finished_ok, eval_node.exit_status
    assert evaluated['policy'].uuid == results['policy'].uuid  # no update: the same checkpoint node
    assert not any(label.endswith('_update') for label in _calls(eval_node))
    episodes = _calls(eval_node, LinkType.CALL_WORK)
    assert all(e.inputs.policy.uuid == results['policy'].uuid for e in episodes.values())
