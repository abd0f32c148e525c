"""``aiida-rlpath realize``: launch, report, export and restart REALIZE training runs."""

from __future__ import annotations

import pathlib

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

TRAINING, EPISODE = 'RealizeTrainingWorkChain', 'RealizeEpisodeWorkChain'


@click.group('realize')
def cmd_realize():
    """REALIZE: goal-directed RL of O2 dissociation through a-SiO2 on Si(001)."""


def _table(rows: list[dict], columns: list[str]) -> str:
    from tabulate import tabulate

    def fmt(value):
        return f'{value:.3f}' if isinstance(value, float) else ('-' if value is None else value)

    return tabulate([[fmt(row.get(c)) for c in columns] for row in rows], headers=columns)


def _run(builder, daemon: bool, command: str = 'realize'):
    from aiida.engine import run_get_node, submit

    if daemon:
        node = submit(builder)
        echo.echo_success(f'submitted <{node.pk}>; follow it with `verdi process report {node.pk}`')
        return node
    echo.echo_report('running in this process (use --daemon to submit to the daemon instead)')
    _, node = run_get_node(builder)
    if node.is_finished_ok:
        echo.echo_success(f'<{node.pk}> finished; `aiida-rlpath {command} report {node.pk}` for the report')
    else:
        echo.echo_error(f'<{node.pk}> ended with exit status {node.exit_status}: {node.exit_message}')
    return node


@cmd_realize.command('launch')
@click.option('--protocol', type=click.Choice(['fast', 'balanced', 'paper']), default='fast', show_default=True)
@click.option('--seed', type=int, default=0, show_default=True, help='Seed of everything random.')
@click.option('--cycles', type=click.IntRange(min=1), help='Override the protocol: training cycles.')
@click.option('--episodes', type=click.IntRange(min=1), help='Override: episodes per cycle.')
@click.option('--max-steps', type=click.IntRange(min=1), help='Override: steps per episode.')
@click.option('--size', type=click.Choice(['tiny', 'small', 'paper']), help='Override: Si slab size.')
@click.option('--oxide-thickness', type=click.FloatRange(min=0), help='Override: oxide thickness, Å (0: bare Si).')
@click.option('--model', type=click.Choice(['multipole', 'sevennet', 'context-free']), help='Override: policy model.')
@click.option('--policy', 'policy_pk', type=int, help='Start from this stored policy checkpoint (PK) instead.')
@click.option('--evaluate', is_flag=True, help='Evaluation mode: run the cycles with the policy fixed (no updates).')
@click.option('--daemon', is_flag=True, help='Submit to the daemon instead of running here.')
@decorators.with_dbenv()
def cmd_launch(protocol, seed, cycles, episodes, max_steps, size, oxide_thickness, model, policy_pk, evaluate, daemon):
    """Launch a REALIZE training from a protocol preset (it grows its own Si/a-SiO2 start), or with --evaluate
    generate oxidation trajectories from a fixed checkpoint."""
    from aiida import orm

    from aiida_rlpath.data.policy import PolicyCheckpointData
    from aiida_rlpath.workflows.realize.training import RealizeTrainingWorkChain, protocol_overrides

    overrides = protocol_overrides(
        cycles=cycles, episodes=episodes, max_steps=max_steps, size=size, oxide_thickness=oxide_thickness,
        model=model, mode='evaluate' if evaluate else None,
    )  # fmt: skip
    policy = None
    if policy_pk is not None:
        policy = orm.load_node(policy_pk)
        if not isinstance(policy, PolicyCheckpointData):
            raise click.BadParameter(
                f'<{policy_pk}> is a {type(policy).__name__}, not a policy checkpoint', param_hint='--policy'
            )
    builder = RealizeTrainingWorkChain.get_builder_from_protocol(protocol, overrides, seed=seed, policy=policy)
    node = _run(builder, daemon)
    if not daemon and node.is_finished_ok:
        _report(node, None)


def _report(node, output_dir: pathlib.Path | None):
    from aiida_rlpath.analysis import plots, queries

    if node.process_label == EPISODE:
        columns = ['step', 'outcome', 'reward', 'energy_after', 'barrier', 'barrier_method', 'dissociated']
        echo.echo(_table(queries.step_table(node), columns))
        return
    cycles = queries.cycle_table(node)
    echo.echo_report(f'REALIZE training <{node.pk}> ({node.process_state.value}): {len(cycles)} cycle(s) finished')
    columns = ['cycle', 'threshold', 'episodes', 'successes', 'success_rate', 'mean_effective_barrier', 'kept_barrier']
    echo.echo(_table(cycles, [*columns, 'policy']))
    events = queries.event_table(node)
    echo.echo_report(f'{len(events)} oxidation event(s) kept')
    if events:
        echo.echo(_table(events, ['cycle', 'effective_barrier', 'oxygens', 'oo_distance', 'next_structure']))
    barriers = queries.barrier_table(node)
    echo.echo_report(f'{len(barriers)} NEB barrier(s) measured')
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for path in (
            plots.plot_training(cycles, output_dir / f'realize_{node.pk}_training.png'),
            plots.plot_barriers(barriers, output_dir / f'realize_{node.pk}_barriers.png'),
        ):
            echo.echo_success(f'wrote {path}')


def _realize_node(node):
    if node.process_label not in (TRAINING, EPISODE):
        raise click.BadParameter(f'<{node.pk}> is a {node.process_label}, not a REALIZE training or episode')
    return node


@cmd_realize.command('report')
@arguments.PROCESS()
@click.option(
    '--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default='.', show_default=True,
    help='Where the PNG plots go.',
)  # fmt: skip
@click.option('--no-plots', is_flag=True, help='Print the tables only.')
@decorators.with_dbenv()
def cmd_report(process, output_dir, no_plots):
    """Tables (per-cycle success rate and effective barriers, kept events) and PNG plots of a training."""
    _report(_realize_node(process), None if no_plots else output_dir)


@cmd_realize.command('export')
@arguments.PROCESS()
@click.option('--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default='.', show_default=True)
@click.option('--all-episodes', is_flag=True, help='For a training: every episode, not only the kept events.')
@decorators.with_dbenv()
def cmd_export(process, output_dir, all_episodes):
    """Write pathways as extxyz (energies and barriers in eV): an episode's, or a training's kept events'."""
    from aiida_rlpath.analysis import queries
    from aiida_rlpath.analysis.export import export_episode

    node = _realize_node(process)
    output_dir.mkdir(parents=True, exist_ok=True)
    if node.process_label == EPISODE:
        chosen = [(node, f'realize_episode_{node.pk}.extxyz')]
    else:
        kept = {(c, k) for c, k, _ in queries.kept_episodes(node)}
        chosen = [
            (episode, f'realize_{node.pk}_cycle_{c:02d}_episode_{k:02d}.extxyz')
            for c, k, episode in queries.episode_nodes(node)
            if episode.is_finished_ok and (all_episodes or (c, k) in kept)
        ]
    if not chosen:
        echo.echo_warning('nothing to export: no finished episode (or no kept event; try --all-episodes)')
    for episode, name in chosen:
        echo.echo_success(f'wrote {export_episode(episode, output_dir / name)}')


@cmd_realize.command('restart')
@arguments.PROCESS()
@click.option('--cycles', type=click.IntRange(min=1), help='Cycles to run (default: those left, or as many again).')
@click.option('--daemon', is_flag=True, help='Submit to the daemon instead of running here.')
@decorators.with_dbenv()
def cmd_restart(process, cycles, daemon):
    """Continue a finished, failed or killed training from its last checkpoint and environment."""
    from aiida_rlpath.workflows.realize.training import RealizeTrainingWorkChain

    if process.process_label != TRAINING:
        raise click.BadParameter(f'<{process.pk}> is a {process.process_label}, not a REALIZE training')
    if not process.is_terminated:
        raise click.BadParameter(f'<{process.pk}> is still {process.process_state.value}; kill it or let it finish')
    builder = RealizeTrainingWorkChain.get_builder_continue(process, cycles)
    echo.echo_report(
        f'continuing <{process.pk}> at cycle {builder.first_cycle.value} with policy <{builder.policy.pk}>'
    )
    _run(builder, daemon)
