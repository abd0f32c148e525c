"""``aiida-rlpath map``: launch and report MAP trainings (``MapTrainingWorkChain``): water diffusion through silica
glass by Ape-X DQN, piecewise NEB and diffusion times."""

from __future__ import annotations

import json
import pathlib

import click
from aiida.cmdline.params import arguments, types
from aiida.cmdline.utils import decorators, echo

from aiida_rlpath.cli.realize import _run

WORKCHAIN = 'MapTrainingWorkChain'


@click.group('map')
def cmd_map():
    """MAP: an H2O learning diffusion pathways through silica glass (Ape-X DQN, piecewise NEB, τ)."""


def map_overrides(**options) -> dict:
    """MAP protocol overrides from flat options (see :data:`~aiida_rlpath.workflows.protocols.MAP_OVERRIDE_KEYS`);
    ``None`` is left out."""
    from aiida_rlpath.workflows.protocols import MAP_OVERRIDE_KEYS, protocol_overrides

    return protocol_overrides(MAP_OVERRIDE_KEYS, **options)


@cmd_map.command('launch')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'paper']), default='fast', show_default=True)
@click.option('--seed', type=int, default=0, show_default=True, help='Seed of everything random.')
@click.option('--rounds', type=click.IntRange(min=1), help='Override the protocol: training rounds.')
@click.option('--actors', type=click.IntRange(min=1), help='Override: actors per round (parallel processes).')
@click.option('--steps', type=click.IntRange(min=1), help='Override: environment steps per actor round.')
@click.option('--max-steps', type=click.IntRange(min=1), help='Override: actions per episode.')
@click.option('--units', type=click.IntRange(min=8), help='Override: SiO2 units of the glass (24: 72 atoms).')
@click.option('--analyse', type=click.IntRange(min=0), help='Override: episodes given piecewise NEB and τ.')
@click.option('--temperature', type=click.FloatRange(min=0, min_open=True), help='Override: τ temperature, K.')
@click.option(
    '--overrides', 'overrides_json', help='More protocol overrides as JSON, e.g. \'{"neb": {"fmax": 0.05}}\'.'
)
@click.option(
    '--code',
    type=types.CodeParamType(),
    help='A LAMMPS code (e.g. lmp@localhost from `aiida-rlpath setup`): '
    'the glass melt-quench then runs as an aiida-lammps CalcJob.',
)
@click.option('--daemon', is_flag=True, help='Submit to the daemon (its workers run the actors in parallel).')
@click.option(
    '--output-dir',
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default='.',
    show_default=True,
    help='Where the plots go (when run here).',
)
@click.option('--no-plots', is_flag=True, help='Print the tables only.')
@decorators.with_dbenv()
def cmd_launch(
    protocol,
    code,
    seed,
    rounds,
    actors,
    steps,
    max_steps,
    units,
    analyse,
    temperature,
    overrides_json,
    daemon,
    output_dir,
    no_plots,
):
    """Train a MAP agent from a PROTOCOL preset and analyse its best episodes."""
    from aiida_rlpath.workflows.map.training import MapTrainingWorkChain
    from aiida_rlpath.workflows.protocols import recursive_merge

    try:
        extra = json.loads(overrides_json) if overrides_json else {}
    except json.JSONDecodeError as exception:
        raise click.BadParameter(f'not JSON: {exception}', param_hint='--overrides') from exception
    overrides = recursive_merge(
        extra,
        map_overrides(
            rounds=rounds,
            actors=actors,
            steps=steps,
            max_steps=max_steps,
            units=units,
            analyse=analyse,
            temperature=temperature,
        ),
    )
    try:
        builder = MapTrainingWorkChain.get_builder_from_protocol(protocol, overrides, seed=seed)
    except (TypeError, ValueError) as exception:
        raise click.UsageError(str(exception)) from exception
    if code is not None:
        builder.code = code
    try:
        node = _run(builder, daemon, 'map')
    except ValueError as exception:  # the work chain's port validators, before anything runs
        raise click.UsageError(str(exception)) from exception
    if not daemon and node.is_terminated:
        _report(node, None if no_plots else output_dir)


@cmd_map.command('report')
@arguments.PROCESS()
@click.option(
    '--output-dir',
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default='.',
    show_default=True,
    help='Where the plots go.',
)
@click.option('--no-plots', is_flag=True, help='Print the tables only.')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object (rounds and ranked episodes) only.')
@decorators.with_dbenv()
def cmd_report(process, output_dir, no_plots, as_json):
    """Per-round table, the analysed episodes ranked by τ with their NEB barriers, and the plots (training curve;
    energy profile before/after piecewise NEB per analysed episode)."""
    if process.process_label != WORKCHAIN:
        raise click.BadParameter(f'<{process.pk}> is a {process.process_label}, not a {WORKCHAIN}')
    if as_json:
        echo.echo(json.dumps(report_data(process)))
        return
    _report(process, None if no_plots else output_dir)


def _calls(node) -> dict:
    from aiida.common.links import LinkType

    links = node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
    return {link.link_label: link.node for link in links}


def report_data(node) -> dict:
    """Rounds (learner metrics with the actors' progress, Å) and analysed episodes (τ in s, NEB barriers in eV,
    segments with their band energies) of a MAP training, read from its nodes."""
    from aiida_rlpath.calculations.functions.map import round_record, tau_order

    calls = _calls(node)
    rounds = []
    for label in sorted(k for k in calls if k.startswith('learner_')):
        r = label.split('_')[1]
        if not calls[label].is_finished_ok:
            continue
        actors = [calls[k] for k in sorted(calls) if k.startswith(f'round_{r}_actor_') and calls[k].is_finished_ok]
        metrics = [a.outputs.metrics.get_dict() for a in actors]
        rounds.append(round_record(int(r), calls[label].outputs.metrics.get_dict(), metrics))
    episodes = []
    for label in sorted(k for k in calls if k.startswith('pathway_')):
        pathway = calls[label]
        if not pathway.is_finished_ok:
            continue
        segments = pathway.outputs.segments.get_dict()
        nebs = []
        outputs_nebs, outputs_bands = getattr(pathway.outputs, 'nebs', {}), getattr(pathway.outputs, 'bands', {})
        for key in sorted(outputs_nebs):
            result = outputs_nebs[key].get_dict()
            band = outputs_bands.get(key)
            result['energies'] = band.get_array('energies').tolist() if band is not None else []
            nebs.append(result)
        episodes.append(
            {
                'pathway': pathway.pk,
                'label': pathway.label,
                **pathway.outputs.tau.get_dict(),
                'energies': segments['energies'],
                'x': segments['x'],
                'segments': nebs,
            }
        )
    episodes.sort(key=tau_order)
    return {
        'pk': node.pk,
        'state': node.process_state.value,
        'exit_status': node.exit_status,
        'rounds': rounds,
        'episodes': episodes,
    }


def _fmt(value, spec: str = '.4g') -> str:
    return '-' if value is None else format(value, spec)


def _report(node, output_dir: pathlib.Path | None):
    from tabulate import tabulate

    data = report_data(node)
    echo.echo_report(f'MAP training <{node.pk}> ({data["state"]}, exit status {data["exit_status"]})')
    if data['rounds']:
        rows = [
            [
                r['round'],
                r['replay_size'],
                _fmt(r['loss']),
                _fmt(r['td_abs']),
                len(r['progress']),
                _fmt(sum(r['progress']) / len(r['progress']) if r['progress'] else None, '+.2f'),
                _fmt(max(r['progress']) if r['progress'] else None, '+.2f'),
                r['force_calls'],
            ]
            for r in data['rounds']
        ]
        echo.echo(
            tabulate(
                rows,
                headers=['round', 'replay', 'loss', '|TD|', 'episodes', 'mean Δx (Å)', 'best Δx (Å)', 'force calls'],
            )
        )
    if not data['episodes']:
        echo.echo_warning('no finished pathway analysis')
    else:
        rows = [
            [
                e['pathway'],
                e['label'],
                _fmt(e['x'][-1] - e['x'][0], '+.2f'),
                e['n_segments'],
                ', '.join(f'{b:.3f}' for b in e['barriers_eV']) or '-',
                _fmt(e['tau_s']),
            ]
            for e in data['episodes']
        ]
        temperature = data['episodes'][0]['temperature_K']
        echo.echo(f'\nepisodes ranked by diffusion time at {temperature} K:')
        echo.echo(tabulate(rows, headers=['pathway', 'episode', 'Δx (Å)', 'segments', 'NEB barriers (eV)', 'τ (s)']))
    if output_dir is None:
        return
    from aiida_rlpath.analysis.plots import plot_map_pathway, plot_map_training

    output_dir.mkdir(parents=True, exist_ok=True)
    if data['rounds']:
        echo.echo_success(f'wrote {plot_map_training(data["rounds"], output_dir / f"map_{node.pk}_training.png")}')
    for e in data['episodes']:
        path = plot_map_pathway(
            e['energies'],
            e['x'],
            e['segments'],
            output_dir / f'map_{node.pk}_pathway_{e["pathway"]}.png',
            title=f'{e["label"]}: τ = {_fmt(e["tau_s"])} s',
        )
        echo.echo_success(f'wrote {path}')
