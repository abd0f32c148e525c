"""RL relaxation in the provenance shell: training and benchmark work chains, their CLI, and the plain-shell twin."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_rlpath.cli import cmd_root
from aiida_rlpath.envs.relaxation import RelaxationEnv
from aiida_rlpath.rl.algos import td3
from aiida_rlpath.systems.alfe import reference_set, write_cifs
from aiida_rlpath.workflows.relaxation import RelaxBenchmarkWorkChain, RelaxTrainingWorkChain

SETTINGS = {
    'episodes': 4, 'eval_every': 2, 'eval_starts': 2, 'eval_max_steps': 30, 'warmup_steps': 10, 'batch_size': 4,
    'epsilon': {'start': 0.6, 'end': 0.4, 'episodes': 4}, 'reward': {'pretrain': 'log_force', 'final': 'step',
    'switch': 2},
}  # fmt: skip
ENVIRONMENT = {'max_steps': 15}


@pytest.fixture(scope='module')
def trained(aiida_profile):
    builder = RelaxTrainingWorkChain.get_builder()
    builder.settings, builder.environment = orm.Dict(SETTINGS), orm.Dict(ENVIRONMENT)
    builder.train_sizes, builder.validation_sizes = orm.List([6]), orm.List([4])
    builder.per_size, builder.fmax, builder.seed = orm.Int(1), orm.Float(0.4), orm.Int(3)
    _, node = run_get_node(builder)
    return node


def test_training_workchain_matches_the_plain_shell(trained):
    assert trained.is_finished_ok, trained.exit_message
    rounds = trained.outputs.metrics['rounds']
    assert [r['episode'] for r in rounds] == [2, 4]
    checkpoints = [c for c in trained.called if c.process_label == 'relax_training_round']
    assert len(checkpoints) == 2 and all(c.outputs.checkpoint.architecture['name'] == 'tfn' for c in checkpoints)
    # the plain shell on the same structures, settings and seed gives the same rounds and weights
    from aiida_rlpath.calculations.functions.relaxation import env_settings_from, td3_settings_from

    env_settings = env_settings_from(ENVIRONMENT)
    env = RelaxationEnv([m.atoms for m in reference_set([6], 1, 0)], settings=env_settings)
    validation = RelaxationEnv([m.atoms for m in reference_set([4], 1, 1)], settings=env_settings)
    agent, records = td3.train(env, validation, td3_settings_from(SETTINGS), seed=3, fmax=0.4)
    assert [r['evaluation']['force_calls'] for r in records] == [r['evaluation']['force_calls'] for r in rounds]
    stored = trained.outputs.checkpoint.load_state_dict()
    for key, value in agent.actor.state_dict().items():
        assert torch.equal(value, stored[key]), key


def test_training_inputs_are_validated(aiida_profile):
    builder = RelaxTrainingWorkChain.get_builder()
    builder.train_sizes, builder.validation_sizes = orm.List([4, 6]), orm.List([4])
    with pytest.raises(ValueError, match=r'sizes \[4\] are in both'):
        run_get_node(builder)
    builder = RelaxTrainingWorkChain.get_builder()
    with pytest.raises(ValueError, match='invalid `settings`: unknown reward `energy`'):
        builder.settings = orm.Dict({'reward': {'pretrain': 'energy', 'final': 'step', 'switch': 1}})


def test_benchmark_workchain_and_cli(trained, tmp_path):
    write_cifs(reference_set([3], 1, seed=5), tmp_path)
    result = CliRunner().invoke(
        cmd_root,
        ['relax', 'benchmark', '--structures', str(tmp_path), '--checkpoint', str(trained.outputs.checkpoint.pk),
         '--distortions', '2', '--max-steps', '300'],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    node = orm.QueryBuilder().append(RelaxBenchmarkWorkChain, tag='wc').order_by({'wc': {'ctime': 'desc'}}).first()[0]
    assert node.is_finished_ok
    relaxations = [c for c in node.called if c.process_label == 'relax_structure']
    assert len(relaxations) == 2 * 5  # one calculation node per start and method
    summary = node.outputs.summary.get_dict()
    assert set(summary) == {'3', 'all'}
    for method in ('rl', 'bfgs', 'lbfgs', 'fire', 'cg'):
        calls = [c.outputs.result['force_calls'] for c in relaxations if c.inputs.method.value == method]
        assert summary['all'][method] == pytest.approx(np.median(calls))
        assert summary['all'][f'{method}_converged'] == 1.0
    assert 'rl/bfgs' in result.output
    report = CliRunner().invoke(cmd_root, ['relax', 'report', str(node.pk), '--json'])
    assert json.loads(report.output.strip().splitlines()[-1]) == summary
    bad = tmp_path / 'bad'
    bad.mkdir()
    header = 'Lattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"'
    (bad / 'x.extxyz').write_text(f'1\n{header}\nCu 0 0 0\n')
    result = CliRunner().invoke(cmd_root, ['relax', 'benchmark', '--structures', str(bad)])
    assert result.exit_code != 0 and 'Cu' in result.output


def test_benchmark_needs_a_checkpoint_for_rl(aiida_profile):
    from aiida_rlpath.systems.alfe import random_alfe_cell

    builder = RelaxBenchmarkWorkChain.get_builder()
    from pymatgen.io.ase import AseAtomsAdaptor

    builder.structures = {'a': orm.StructureData(ase=AseAtomsAdaptor.get_atoms(random_alfe_cell(2, seed=0)))}
    with pytest.raises(ValueError, match='method `rl` needs a `checkpoint`'):
        run_get_node(builder)
    from ase import Atoms

    builder.methods = orm.List(['bfgs'])
    builder.structures = {'cu': orm.StructureData(ase=Atoms('Cu', cell=[3, 3, 3], pbc=True))}
    with pytest.raises(ValueError, match=r'structure `cu` .*Cu'):
        run_get_node(builder)


def test_training_report_cli(trained):
    result = CliRunner().invoke(cmd_root, ['relax', 'report', str(trained.pk), '--json'])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output.strip().splitlines()[-1])
    assert [r['episode'] for r in rows] == [2, 4] and all(r['checkpoint'] for r in rows)
