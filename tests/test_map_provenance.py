"""MAP, provenance shell: the training work chain reproduces the plain shell node by node (actor experiences,
learner weights), analyses its best episode by piecewise NEB, refuses bad inputs before running, and reports
through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from aiida import orm
from aiida.engine import run_get_node

from aiida_rlpath.envs.water_diffusion import WaterDiffusionEnv, settings_from_dict
from aiida_rlpath.rl.algos.apex_dqn import settings_from_dict as apex_from_dict
from aiida_rlpath.rl.algos.apex_dqn import train
from aiida_rlpath.workflows.map.training import MapTrainingWorkChain

OVERRIDES = {
    'apex': {'rounds': 2, 'steps_per_actor': 4, 'updates_per_round': 16, 'batch_size': 8},
    'environment': {'max_steps': 4, 'relax_steps': 6},
    'neb': {'n_images': 3, 'max_steps': 30, 'end_steps': 30, 'fmax': 0.2},
    'prominence': 0.02,
}


@pytest.fixture(scope='module')
def trained(water_glass, aiida_profile):
    atoms, water, _ = water_glass
    builder = MapTrainingWorkChain.get_builder_from_protocol('fast', OVERRIDES, seed=3, structure=atoms, water=water)
    results, node = run_get_node(builder)
    return builder, results, node


def test_work_chain_matches_the_plain_shell(trained, water_glass):
    builder, results, node = trained
    assert node.is_finished_ok, node.exit_message
    _, water, _ = water_glass
    env_settings = settings_from_dict(builder.environment.get_dict())
    settings = apex_from_dict(builder.apex.get_dict())
    stored = builder.structure.get_ase()

    def make():
        return WaterDiffusionEnv(stored, water, settings=env_settings)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        learner, replay, history, traces = train(make, settings, 3, results['checkpoint'].architecture)
    finally:
        torch.set_num_threads(threads)
    from aiida_rlpath.data.policy import state_dict_sha256

    assert results['checkpoint'].sha256 == state_dict_sha256(learner.q.state_dict())
    calls = {link.link_label: link.node for link in node.base.links.get_outgoing().all()}
    assert {
        'round_00_actor_00',
        'round_00_actor_01',
        'round_01_actor_00',
        'round_01_actor_01',
        'learner_00',
        'learner_01',
        'pathway_00',
        'summary',
    } <= set(calls)
    actor = calls['round_01_actor_01']
    experiences = actor.outputs.experiences
    plain = traces[1][1][0]
    assert np.allclose(actor.outputs.traces.get_array('trace_00_energies'), plain.energies)
    assert experiences.get_array('action').tolist() == plain.actions
    assert len(replay) == 16 and calls['learner_01'].outputs.metrics['replay_size'] == 16
    assert calls['learner_01'].outputs.metrics['loss'] == pytest.approx(history[1]['loss'], rel=1e-5)


def test_best_episode_gets_piecewise_neb_and_tau(trained):
    _, results, node = trained
    summary = results['summary'].get_dict()
    assert [r['round'] for r in summary['rounds']] == [0, 1]
    assert len(summary['episodes']) == 1
    episode = summary['episodes'][0]
    from aiida_rlpath.calculations.functions.map import traces_from

    returns = []
    for r in range(2):
        for i in range(2):
            actor = next(c for c in node.called if c.label == f'MAP round {r} actor {i}')
            returns += [sum(t.rewards) for t in traces_from(actor.outputs.traces) if t.complete]
    assert episode['return'] == pytest.approx(max(returns))
    pathway = orm.load_node(episode['pathway'])
    assert pathway.is_finished_ok
    segments = pathway.outputs.segments.get_dict()['segments']
    assert episode['n_segments'] == len(segments) == len(getattr(pathway.outputs, 'nebs', {}))
    tau = pathway.outputs.tau.get_dict()
    if segments:
        from aiida_rlpath.physics.tst import diffusion_time

        assert tau['tau_s'] == pytest.approx(diffusion_time(tau['barriers_eV'], 623.15))
    else:
        assert tau['tau_s'] is None  # no complete hop: undefined, not 0


def test_cli_report_prints_tables_json_and_plots(trained, tmp_path):
    from click.testing import CliRunner

    from aiida_rlpath.cli import cmd_root

    _, _, node = trained
    runner = CliRunner()
    result = runner.invoke(cmd_root, ['map', 'report', str(node.pk), '--output-dir', str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert 'episodes ranked by diffusion time at 623.15 K' in result.output
    assert (tmp_path / f'map_{node.pk}_training.png').is_file()
    assert len(list(tmp_path.glob(f'map_{node.pk}_pathway_*.png'))) == 1
    data = json.loads(runner.invoke(cmd_root, ['map', 'report', str(node.pk), '--json']).output)
    assert len(data['rounds']) == 2 and len(data['episodes']) == 1
    wrong = runner.invoke(cmd_root, ['map', 'report', str(node.called[0].pk)])
    assert wrong.exit_code != 0 and 'not a MapTrainingWorkChain' in wrong.output
    bad = runner.invoke(cmd_root, ['map', 'launch', '--overrides', '{"environment": {"stepsize": 1}}'])
    assert bad.exit_code == 2 and 'unknown water-diffusion settings' in bad.output
    bad = runner.invoke(cmd_root, ['map', 'launch', '--overrides', '{"neb": {"images": 3}}'])
    assert bad.exit_code == 2 and 'invalid `neb`: unknown keys' in bad.output, bad.output
    bad = runner.invoke(cmd_root, ['map', 'launch', '--overrides', 'not json'])
    assert bad.exit_code == 2 and 'not JSON' in bad.output


def test_bad_inputs_are_refused_before_anything_runs(water_glass, aiida_profile):
    atoms, water, _ = water_glass
    builder = MapTrainingWorkChain.get_builder_from_protocol('fast', seed=0, structure=atoms, water=water)
    count = orm.QueryBuilder().append(orm.ProcessNode).count()
    cases = [
        ('environment', orm.Dict({'stepsize': 1.0}), r'invalid `environment`: unknown water-diffusion settings'),
        ('apex', orm.Dict({'actors': 0}), r'invalid `apex`: actors must be >= 1'),
        ('system', orm.Dict({'water': [0, 1, 2]}), r'water must index one O and two H'),
        ('build', orm.Dict({'units': 2}), r'invalid `build`: units must be >= 8'),
        ('neb', orm.Dict({'images': 3}), r'invalid `neb`: unknown keys'),
    ]
    for port, value, message in cases:
        inputs = {key: builder[key] for key in builder if key != 'metadata'}
        inputs[port] = value
        with pytest.raises(ValueError, match=message):
            run_get_node(MapTrainingWorkChain, **inputs)
    without_system = {key: builder[key] for key in builder if key not in ('metadata', 'system')}
    with pytest.raises(ValueError, match='give `structure` and `system` together'):
        run_get_node(MapTrainingWorkChain, **without_system)
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == count


def test_pathway_work_chain_runs_one_neb_per_segment_and_tau():
    """Two hollow-to-hollow hops of an Al adatom on EMT (a trace made by hand): two segments, their NEBs as
    parallel child processes, and τ from the NEB barriers."""
    from ase.build import add_adsorbate, fcc100
    from ase.constraints import FixAtoms

    from aiida_rlpath.calculations.functions.map import traces_node
    from aiida_rlpath.physics.pes import PESSpec
    from aiida_rlpath.physics.tst import diffusion_time
    from aiida_rlpath.rl.algos.apex_dqn import EpisodeTrace
    from aiida_rlpath.workflows.map.pathway import MapPathwayWorkChain

    slab = fcc100('Al', size=(3, 3, 2), vacuum=6.0)
    add_adsorbate(slab, 'Al', 1.6, 'hollow')
    slab.set_constraint(FixAtoms(indices=list(range(9))))
    calc = PESSpec('emt').calculator()
    a = slab.cell[0, 0] / 3
    positions, energies = [], []
    for shift in np.linspace(0.0, 2 * a, 9):
        frame = slab.copy()
        frame.positions[-1, 0] += shift
        frame.calc = calc
        energies.append(frame.get_potential_energy())
        positions.append(frame.positions.copy())
    trace = EpisodeTrace(
        energies, [p[-1, 0] for p in positions], [0] * 8, [0.0] * 8, np.asarray(positions), False, True, 0
    )
    last = len(slab) - 1
    results, node = run_get_node(
        MapPathwayWorkChain,
        structure=orm.StructureData(ase=slab),
        system=orm.Dict({'water': [last, last, last]}),
        traces=traces_node([trace]),
        index=orm.Int(0),
        pes=orm.Dict(PESSpec('emt').to_dict()),
        neb=orm.Dict({'n_images': 3, 'max_steps': 100, 'fmax': 0.05}),
    )
    assert node.is_finished_ok, node.exit_message
    assert [(s['start'], s['end']) for s in results['segments']['segments']] == [(0, 4), (4, 8)]
    assert sorted(results['nebs']) == ['segment_00', 'segment_01']
    barriers = [results['nebs'][k]['barrier'] for k in sorted(results['nebs'])]
    assert all(results['nebs'][k]['converged'] for k in results['nebs'])
    assert results['tau']['barriers_eV'] == pytest.approx(barriers)
    assert results['tau']['tau_s'] == pytest.approx(diffusion_time(barriers, 623.15))
    assert len(results['bands']['segment_00'].get_array('energies')) == 5
    children = [link.link_label for link in node.base.links.get_outgoing().all()]
    assert {'segments', 'segment_00', 'segment_01', 'tau'} <= set(children)
    with pytest.raises(ValueError, match='`index` 3 is not a trace'):
        run_get_node(
            MapPathwayWorkChain,
            **{**{k: node.inputs[k] for k in ('structure', 'system', 'traces', 'pes')}, 'index': orm.Int(3)},
        )


def test_glass_melt_quench_runs_as_an_aiida_lammps_calcjob(lmp_code):
    """With a LAMMPS code the glass's melt and quench are a `lammps.raw` CalcJob in the graph; the ReaxFF settle,
    the water and the relaxation follow as a calcfunction on its retrieved data file."""
    build = {'units': 24, 'melt_steps': 500, 'quench_steps': 1000, 'settle_steps': 50, 'minimize_steps': 100, 'seed': 2}
    builder = MapTrainingWorkChain.get_builder_from_protocol(
        'fast', {'build': build, 'apex': {'rounds': 0}, 'analyse': 0}, seed=2
    )
    builder.code = lmp_code
    results, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
    calls = {link.link_label: link.node for link in links}
    melt = calls['melt_quench']
    assert melt.process_type == 'aiida.calculations:lammps.raw' and melt.is_finished_ok
    assert 'glass.data' in melt.outputs.retrieved.base.repository.list_object_names()
    system = calls['system']
    assert melt.outputs.retrieved in system.base.links.get_incoming().all_nodes()
    atoms = results['structure'].get_ase()
    assert len(atoms) == 75 and atoms.get_chemical_symbols()[-3:] == ['O', 'H', 'H']
    assert results['system']['density'] == pytest.approx(2.2, abs=1e-6)
    assert results['system']['water'] == [72, 73, 74] and np.isfinite(results['system']['energy'])
    assert 0.9 < atoms.get_distance(72, 73, mic=True) < 1.1  # still a water after the relaxation
    assert results['summary']['rounds'] == [] and results['summary']['episodes'] == []
    assert results['system'] == system.outputs.system
