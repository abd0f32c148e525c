"""``aiida-rlpath crystal``: RL crystal design against property targets (density g/cm³, bulk modulus GPa, band
gap eV), rewards from CHGNet and GFN1-xTB calculations recorded as cached calculation nodes."""

from __future__ import annotations

import json
import pathlib

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

from aiida_rlpath.cli.realize import _run


def _target(ctx, param, value):
    from aiida_rlpath.envs.crystal_design import parse_target

    try:
        return parse_target(value)
    except ValueError as exception:
        raise click.BadParameter(str(exception)) from exception


def _chgnet_model(ctx, param, value):
    from aiida_rlpath.physics.properties import CHGNET_MODELS

    if value not in CHGNET_MODELS:
        raise click.BadParameter(f'unknown CHGNet model {value!r}; shipped: {", ".join(CHGNET_MODELS)}')
    return value


@click.group('crystal')
def cmd_crystal():
    """RL crystal design: fill prototype sites with elements to hit a property target."""


@cmd_crystal.command('launch')
@click.option('--target', required=True, callback=_target,
              help='PROPERTY=VALUE: density=3.0 (g/cm^3), bulk_modulus=300 (GPa) or band_gap=1.12 (eV).')  # fmt: skip
@click.option('--algorithm', type=click.Choice(['dqn', 'ppo', 'random']), default='dqn', show_default=True)
@click.option('--episodes', type=click.IntRange(min=1), default=48, show_default=True)
@click.option('--episodes-per-round', type=click.IntRange(min=1), default=8, show_default=True,
              help='Episodes per policy update (one checkpoint node per update).')  # fmt: skip
@click.option('--prototype', 'prototypes', multiple=True,
              default=('rocksalt', 'zincblende', 'cesium_chloride', 'fluorite', 'perovskite'), show_default=True,
              help='Prototype names (repeat the option); see `aiida_rlpath.systems.prototypes`.')  # fmt: skip
@click.option('--cif', 'cifs', multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help='Also use this CIF file as a prototype (named by its file stem).')  # fmt: skip
@click.option('--vocabulary', default='small', show_default=True,
              help='small (18 elements), medium (30), large (50), or comma-separated symbols.')  # fmt: skip
@click.option('--no-charge-balance', is_flag=True, help='Do not mask compositions that cannot be charge-balanced.')
@click.option('--fmax', type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help='CHGNet relaxation threshold (eV/Å).')  # fmt: skip
@click.option('--chgnet-model', default='r2scan', show_default=True, callback=_chgnet_model,
              help='CHGNet model: r2scan (fine-tuned on r2SCAN data), 0.3.0 or 0.2.0 (all in the wheel).')  # fmt: skip
@click.option('--seed', type=int, default=0, show_default=True, help='Seed of everything random.')
@click.option('--daemon', is_flag=True, help='Submit to the daemon instead of running here.')
@decorators.with_dbenv()
def cmd_launch(target, algorithm, episodes, episodes_per_round, prototypes, cifs, vocabulary, no_charge_balance,
               fmax, chgnet_model, seed, daemon):  # fmt: skip
    """Launch a crystal-design run (`rlpath.crystal.design`)."""
    from aiida import orm
    from pymatgen.core import Structure

    from aiida_rlpath.workflows.crystal.design import CrystalDesignWorkChain

    words = [w.strip() for w in vocabulary.split(',') if w.strip()]
    builder = CrystalDesignWorkChain.get_builder()
    builder.target = orm.Dict(target.as_dict())
    builder.environment = orm.Dict({
        'prototypes': list(prototypes),
        'vocabulary': words[0] if len(words) == 1 else words,
        'charge_balance': not no_charge_balance,
    })  # fmt: skip
    builder.settings = orm.Dict(
        {'algorithm': algorithm, 'episodes': episodes, 'episodes_per_round': episodes_per_round, 'seed': seed}
    )
    builder.calculator = orm.Dict({'fmax': fmax, 'chgnet_model': chgnet_model})
    structures = {}
    for path in cifs:
        try:
            structures[path.stem] = orm.StructureData(pymatgen=Structure.from_file(str(path)))
        except Exception as exception:
            raise click.BadParameter(f'cannot read {path}: {exception}', param_hint='--cif') from exception
    if structures:
        builder.structures = structures
    builder.metadata.label = f'crystal {algorithm} {target.property}={target.target}'
    node = _run(builder, daemon, 'crystal')
    if not daemon and node.is_terminated:
        _report(node)


def _report(node, as_json: bool = False) -> None:
    from tabulate import tabulate

    if 'summary' not in node.outputs:
        echo.echo_warning(f'<{node.pk}> has no summary ({node.process_state.value})')
        return
    summary = node.outputs.summary.get_dict()
    if as_json:
        echo.echo(json.dumps(summary))
        return
    target = summary['target']
    unit = {'density': 'g/cm^3', 'bulk_modulus': 'GPa', 'band_gap': 'eV'}[target['property']]
    echo.echo(f'target {target["property"]} = {target["target"]} {unit} ({target["kind"]} reward)')
    rows = [[b['formula'], b['prototype'], b['value'], b['reward'], 'yes' if b['within_tolerance'] else 'no',
             'yes' if b['new'] else 'no', b['episode']] for b in summary['best']]  # fmt: skip
    headers = ['formula', 'prototype', f'value ({unit})', 'reward', 'within tol.', 'new', 'episode']
    echo.echo(tabulate(rows, headers=headers, floatfmt='.3f'))
    reached = summary['episodes_to_target']
    echo.echo(
        f'episodes to reach the target: {reached if reached is not None else "not reached"}; '
        f'{summary["property_evaluations"]} property evaluations, {summary["cache_hits"]} cache hits, '
        f'{summary["failed"]} failed; mean reward first half {summary["mean_reward_first_half"]:.3f}, '
        f'second half {summary["mean_reward_second_half"]:.3f}'
    )


@cmd_crystal.command('report')
@arguments.PROCESS()
@click.option('--json', 'as_json', is_flag=True, help='Print the summary as JSON.')
@decorators.with_dbenv()
def cmd_report(process, as_json):
    """Best designs of a crystal-design run with their properties and whether their compositions are new."""
    if process.process_label != 'CrystalDesignWorkChain':
        raise click.BadParameter(f'<{process.pk}> is a {process.process_label}, not a CrystalDesignWorkChain')
    _report(process, as_json)
