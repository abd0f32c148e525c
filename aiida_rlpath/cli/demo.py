"""``aiida-rlpath demo``: the REALIZE demo, from nothing to a trained run with its provenance, tables and plots."""

from __future__ import annotations

import json
import pathlib

import click
from aiida.cmdline.utils import echo


def _profile(ctx) -> None:
    """Load the profile given with ``-p`` or the default one; make the embedded one if there is none."""
    from aiida.manage.configuration import load_profile

    profile = ctx.obj.profile if ctx.obj is not None else None
    if profile is not None:
        load_profile(profile.name, allow_switch=True)
        echo.echo_report(f'profile `{profile.name}`')
        return
    from aiida_rlpath.cli.setup import setup_profile

    report = setup_profile()
    echo.echo_success(f'no AiiDA profile yet: made `{report.profile}` (SQLite + ZeroMQ) in {report.config_dir}')


@click.command('demo')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'paper']), default='fast', show_default=True)
@click.option('--cycles', type=click.IntRange(min=1), help='Override the protocol: training cycles.')
@click.option('--episodes', type=click.IntRange(min=1), help='Override the protocol: episodes per cycle.')
@click.option('--seed', type=int, default=0, show_default=True, help='Seed of everything random.')
@click.option(
    '--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default='rlpath-demo', show_default=True,
    help='Where the plots and the kept pathways (extxyz) go.',
)  # fmt: skip
@click.option('--json', 'as_json', is_flag=True, help='End with one JSON line: workchain_pk and per-cycle metrics.')
@click.pass_context
def cmd_demo(ctx, protocol, cycles, episodes, seed, output_dir, as_json):
    """Run the REALIZE demo: grow Si(001)/a-SiO2, train in cycles with full provenance, report and plot.

    Makes the embedded profile first if there is none. On the `fast` protocol it takes a few minutes on 2 cores.
    """
    _profile(ctx)
    from aiida.engine import run_get_node

    from aiida_rlpath.analysis import queries
    from aiida_rlpath.analysis.export import export_episode
    from aiida_rlpath.cli.realize import _report
    from aiida_rlpath.workflows.realize.training import RealizeTrainingWorkChain, protocol_overrides

    overrides = protocol_overrides(cycles=cycles, episodes=episodes)
    builder = RealizeTrainingWorkChain.get_builder_from_protocol(protocol, overrides, seed=seed)
    echo.echo_report(
        f'REALIZE demo ({protocol}): grow the oxide, then {builder.training["cycles"]} cycles of '
        f'{builder.training["episodes_per_cycle"]} episodes; progress follows'
    )
    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        echo.echo_critical(f'training <{node.pk}> ended with exit status {node.exit_status}: {node.exit_message}')
    _report(node, output_dir)
    for cycle, index, episode in queries.kept_episodes(node):
        path = export_episode(episode, output_dir / f'realize_{node.pk}_cycle_{cycle:02d}_episode_{index:02d}.extxyz')
        echo.echo_success(f'wrote {path}')
    echo.echo_report(
        f'explore: verdi process status {node.pk} | verdi process report {node.pk} | '
        f'verdi process show {node.pk} | aiida-rlpath realize export {node.pk} --all-episodes'
    )
    if as_json:
        rows = queries.cycle_table(node)
        events = {row['cycle'] for row in queries.event_table(node)}
        cycles_json = [
            {
                'cycle': row['cycle'],
                'success_rate': row['success_rate'],
                'mean_effective_barrier_eV': row['mean_effective_barrier'],
                'events': int(row['cycle'] in events),
                'threshold_eV': row['threshold'],
            }
            for row in rows
        ]
        click.echo(json.dumps({'workchain_pk': node.pk, 'cycles': cycles_json}))
