"""``aiida-rlpath langevin``: run and report LJ7 transition-rate sampling (``LangevinSamplingWorkChain``)."""

from __future__ import annotations

import pathlib

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

from aiida_rlpath.cli.realize import _run

WORKCHAIN = 'LangevinSamplingWorkChain'
STATES = click.Choice(['C0', 'C1', 'C2', 'C3'])


@click.group('langevin')
def cmd_langevin():
    """LJ7 Langevin dynamics: transition rates by RL importance sampling (units ε, σ, τ)."""


@cmd_langevin.command('run')
@click.option('--beta', type=click.FloatRange(min=0, min_open=True), default=6.0, show_default=True, help='1/ε.')
@click.option('--from', 'start', type=STATES, default='C0', show_default=True, help='Start state.')
@click.option('--to', 'target', type=STATES, default='C3', show_default=True, help='Target state.')
@click.option('--seed', type=int, default=0, show_default=True, help='Seed of everything random.')
@click.option('--cycles', type=click.IntRange(min=0), default=2, show_default=True, help='Training cycles at --beta.')
@click.option('--warmup-cycles', type=click.IntRange(min=0), default=2, show_default=True,
              help='Training cycles first at --warmup-beta.')  # fmt: skip
@click.option('--warmup-beta', type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help='1/ε of the warm-up cycles.')  # fmt: skip
@click.option('--paths', type=click.IntRange(min=1), default=300, show_default=True, help='Paths per training cycle.')
@click.option('--production-paths', type=click.IntRange(min=1), default=1000, show_default=True)
@click.option('--max-steps', type=click.IntRange(min=1), default=30_000, show_default=True,
              help='Steps per path (dt = 0.001 τ); a cut path counts as not reaching the target.')  # fmt: skip
@click.option('--traces', type=click.IntRange(min=0), default=50, show_default=True,
              help='Production paths whose (μ2, μ3) trace is stored and plotted.')  # fmt: skip
@click.option('--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default='.',
              show_default=True, help='Where the path plot goes.')  # fmt: skip
@click.option('--no-plots', is_flag=True, help='Print the tables only.')
@click.option('--daemon', is_flag=True, help='Submit to the daemon instead of running here.')
@decorators.with_dbenv()
def cmd_run(beta, start, target, seed, cycles, warmup_cycles, warmup_beta, paths, production_paths, max_steps, traces,
            output_dir, no_plots, daemon):  # fmt: skip
    """Sample the LJ7 transition START → TARGET at inverse temperature BETA and report its rate k (1/τ)."""
    from aiida_rlpath.envs.langevin import TransitionProblem
    from aiida_rlpath.rl.algos.value_is import SamplerSettings
    from aiida_rlpath.workflows.langevin.sampling import LangevinSamplingWorkChain

    try:
        problem = TransitionProblem(beta=beta, start=start, target=target)
        sampler = SamplerSettings(
            cycles=cycles, warmup_cycles=warmup_cycles, warmup_beta=warmup_beta, paths=paths,
            production_paths=production_paths, max_steps=max_steps,
        )  # fmt: skip
    except ValueError as exception:
        raise click.UsageError(str(exception)) from exception
    builder = LangevinSamplingWorkChain.get_builder_from_settings(problem, sampler, seed=seed, traces=traces)
    node = _run(builder, daemon, 'langevin')
    if not daemon and node.is_terminated:
        _report(node, None if no_plots else output_dir)


@cmd_langevin.command('report')
@arguments.PROCESS()
@click.option('--output-dir', type=click.Path(file_okay=False, path_type=pathlib.Path), default='.',
              show_default=True, help='Where the path plot goes.')  # fmt: skip
@click.option('--no-plots', is_flag=True, help='Print the tables only.')
@decorators.with_dbenv()
def cmd_report(process, output_dir, no_plots):
    """Per-cycle table, the rate with its error bar, and the (μ2, μ3) path plot of a sampling run."""
    if process.process_label != WORKCHAIN:
        raise click.BadParameter(f'<{process.pk}> is a {process.process_label}, not a {WORKCHAIN}')
    _report(process, None if no_plots else output_dir)


def _report(node, output_dir: pathlib.Path | None):
    from aiida.common.links import LinkType

    calls = {link.link_label: link.node for link in node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all()}
    from aiida_rlpath.calculations.functions.langevin import problem_from

    problem = problem_from(node.inputs.problem)
    echo.echo_report(
        f'LJ7 {problem.start} -> {problem.target} at beta {problem.beta} 1/eps, <{node.pk}> '
        f'({node.process_state.value})'
    )
    rows = []
    for label in sorted(key for key in calls if key.startswith('cycle_')):
        if calls[label].is_finished_ok:
            rows.append({'cycle': int(label.split('_')[1]), **calls[label].outputs.metrics.get_dict(),
                         'value': calls[label].outputs.value.pk})  # fmt: skip
    columns = ['cycle', 'beta', 'probability', 'probability_err', 'reached_fraction', 'cut_fraction',
               'effective_sample_size', 'td_error', 'force_evals', 'value']  # fmt: skip
    if rows:
        from tabulate import tabulate

        echo.echo(tabulate([[row.get(c) for c in columns] for row in rows], headers=columns, floatfmt='.4g'))
    production = calls.get('production')
    if production is None or not production.is_finished_ok:
        echo.echo_warning('no finished production run: no rate')
        return
    rate = production.outputs.rate.get_dict()
    evals = sum(calls[k].outputs.metrics['force_evals'] for k in calls if k.startswith('cycle_'))
    evals += calls['flux'].outputs.flux['force_evals'] + rate['force_evals']

    def fmt(value):
        return '-' if value is None else f'{value:.4g}'

    echo.echo(
        f'k = {fmt(rate["rate"])} ± {fmt(rate["rate_err"])} 1/tau  (flux {fmt(rate["flux"])} ± {fmt(rate["flux_err"])}'
        f' 1/tau, P = {fmt(rate["probability"])} ± {fmt(rate["probability_err"])}; cut paths could add up to '
        f'{fmt(rate["rate_upper_cut"])}); {evals} force evaluations in all'
    )
    if output_dir is None:
        return
    from aiida_rlpath.analysis.plots import plot_langevin_paths
    from aiida_rlpath.envs.langevin import free_energy_map
    from aiida_rlpath.systems.lj7 import STATE_CVS

    ensemble = production.outputs.ensemble
    if 'cvs' not in ensemble.get_arraynames():
        echo.echo_warning('the production run kept no path traces (traces = 0): no plot')
        return
    cvs = ensemble.get_array('cvs')
    landscape = free_energy_map(problem.beta, seed=node.inputs.seed.value)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = plot_langevin_paths(
        cvs, ensemble.get_array('outcome')[: len(cvs)], landscape, STATE_CVS,
        output_dir / f'langevin_{node.pk}_paths.png', title=f'<{node.pk}>: {len(cvs)} production paths',
        radius=problem.state_radius,
    )  # fmt: skip
    echo.echo_success(f'wrote {path}')
