"""RL crystal design in the provenance shell: the work chain, AiiDA caching of property evaluations, its CLI,
and the plain-shell twin."""

from __future__ import annotations

import json

import pytest
import torch
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_rlpath.cli import cmd_root
from aiida_rlpath.envs.crystal_design import CrystalDesignEnv, PropertyCache, parse_target
from aiida_rlpath.rl.algos.design import DesignSettings, run_design
from aiida_rlpath.workflows.crystal import CrystalDesignWorkChain

TINY = ['Na', 'K', 'Cl']  # rocksalt: four charge-balanced structures, so six episodes repeat at least two
SETTINGS = {'algorithm': 'dqn', 'episodes': 6, 'episodes_per_round': 3, 'seed': 2}
CALCULATOR = {'fmax': 0.04}  # differs from other tests' settings: these evaluations are not cached from them


def _invoke(args):
    return CliRunner().invoke(cmd_root, args, catch_exceptions=False)


@pytest.fixture(scope='module')
def designed(aiida_profile):
    builder = CrystalDesignWorkChain.get_builder()
    builder.target = orm.Dict({'property': 'density', 'target': 2.0})
    builder.environment = orm.Dict({'prototypes': ['rocksalt'], 'vocabulary': TINY})
    builder.settings, builder.calculator = orm.Dict(SETTINGS), orm.Dict(CALCULATOR)
    _, node = run_get_node(builder)
    return node


def _calls(node, prefix):
    """The calculations ``node`` called under link labels starting with ``prefix``, in label order."""
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=LinkType.CALL_CALC, link_label_filter=f'{prefix}%').all()
    return [link.node for link in sorted(links, key=lambda link: link.link_label)]


def test_design_workchain_matches_the_plain_shell(designed):
    assert designed.is_finished_ok, designed.exit_message
    summary = designed.outputs.summary.get_dict()
    target = parse_target('density=2.0')
    history = run_design(
        CrystalDesignEnv(['rocksalt'], TINY), PropertyCache('density', CALCULATOR), target,
        DesignSettings.from_dict(SETTINGS),
    )  # fmt: skip
    assert summary['rewards'] == pytest.approx([e.reward for e in history.episodes], abs=1e-9)
    assert summary['cache_hits'] == history.cache_hits >= 2
    assert summary['property_evaluations'] == history.evaluations
    # one node per episode, per evaluation (a cache hit is a clone of the first), per update
    records, evaluations = _calls(designed, 'record_'), _calls(designed, 'evaluate_')
    assert len(records) == len(evaluations) == 6 and len(_calls(designed, 'update_')) == 2
    assert sum(e.base.caching.is_created_from_cache for e in evaluations) == history.cache_hits
    assert [r.outputs.result['formula'] for r in records] == [e.formula for e in history.episodes]
    assert all(e.is_finished_ok for e in evaluations)
    # each evaluation records its complete settings: the given fmax, the defaults, the CHGNet model
    settings = {e.inputs.calculator.pk for e in evaluations if not e.base.caching.is_created_from_cache}
    assert len(settings) == 1
    calculator = evaluations[0].inputs.calculator.get_dict()
    assert calculator['fmax'] == 0.04 and calculator['chgnet_model'] == 'r2scan' and calculator['n_volumes'] == 7
    stored = designed.outputs.checkpoint.load_state_dict()
    for key, value in history.agent.network.state_dict().items():
        assert torch.equal(value, stored[key]), key
    best = max(history.episodes, key=lambda e: e.reward)
    assert summary['best'][0]['formula'] == best.formula and summary['best'][0]['new'] is (best.formula != 'NaCl')
    assert designed.outputs.best_structure.get_pymatgen_structure().composition.reduced_formula == best.formula


def test_a_second_run_is_all_cache_hits_and_the_cli_reports_it(designed):
    """The same run again computes nothing: every evaluation is a clone of the first run's."""
    result = _invoke(['crystal', 'launch', '--target', 'density=2.0', '--prototype', 'rocksalt', '--vocabulary',
                      ','.join(TINY), '--episodes', '6', '--episodes-per-round', '3', '--seed', '2',
                      '--fmax', str(CALCULATOR['fmax'])])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert 'cache hits' in result.output and 'within tol.' in result.output
    again = orm.QueryBuilder().append(CrystalDesignWorkChain, tag='w').order_by({'w': {'id': 'desc'}}).first()[0]
    assert again.pk != designed.pk and again.is_finished_ok
    summary = again.outputs.summary.get_dict()
    assert summary['property_evaluations'] == 0 and summary['cache_hits'] == 6
    assert summary['rewards'] == designed.outputs.summary['rewards']
    report = _invoke(['crystal', 'report', str(again.pk), '--json'])
    assert json.loads(report.output.strip().splitlines()[-1])['cache_hits'] == 6


def test_design_inputs_are_validated(aiida_profile):
    builder = CrystalDesignWorkChain.get_builder()
    with pytest.raises(ValueError, match="invalid `target`: unknown property 'hardness'"):
        builder.target = orm.Dict({'property': 'hardness', 'target': 2.0})
    with pytest.raises(ValueError, match="invalid `settings`: unknown algorithm 'a2c'"):
        builder.settings = orm.Dict({'algorithm': 'a2c'})
    with pytest.raises(ValueError, match="invalid `environment`: unknown prototype 'halite'"):
        builder.environment = orm.Dict({'prototypes': ['halite']})
    with pytest.raises(ValueError, match="invalid `calculator`: unknown property settings \\['steps'\\]"):
        builder.calculator = orm.Dict({'steps': 10})
    result = CliRunner().invoke(cmd_root, ['crystal', 'launch', '--target', 'density'])
    assert result.exit_code == 2 and 'PROPERTY=VALUE' in result.output
    result = CliRunner().invoke(cmd_root, ['crystal', 'launch', '--target', 'density=2', '--chgnet-model', '0.4.0'])
    assert result.exit_code == 2 and "unknown CHGNet model '0.4.0'" in result.output
    with pytest.raises(ValueError, match="invalid `calculator`: unknown chgnet_model 'mace'"):
        builder.calculator = orm.Dict({'chgnet_model': 'mace'})


def test_a_failed_evaluation_is_a_penalty_and_an_exit_code(aiida_profile, tmp_path):
    """A user prototype with an element CHGNet does not cover: the evaluation node fails with exit status 414,
    the episode gets the penalty, and the run ends with ERROR_ALL_EVALUATIONS_FAILED; nothing crashes."""
    from pymatgen.core import Lattice, Structure

    builder = CrystalDesignWorkChain.get_builder()
    builder.target = orm.Dict({'property': 'density', 'target': 2.0, 'penalty': -2.0})
    builder.environment = orm.Dict({'prototypes': [], 'vocabulary': ['Cm', 'Bk'], 'charge_balance': False})
    builder.structures = {'cubic': orm.StructureData(pymatgen=Structure(Lattice.cubic(3.5), ['Cm'], [[0, 0, 0]]))}
    builder.settings = orm.Dict({'algorithm': 'random', 'episodes': 3, 'episodes_per_round': 3})
    _, node = run_get_node(builder)
    assert node.exit_status == CrystalDesignWorkChain.exit_codes.ERROR_ALL_EVALUATIONS_FAILED.status
    evaluations = _calls(node, 'evaluate_')
    assert evaluations and all(e.exit_status == 414 for e in evaluations)
    assert node.outputs.summary['rewards'] == [-2.0, -2.0, -2.0]
    assert node.outputs.summary['failed'] == 3
