"""``aiida-rlpath relax``: train the RL relaxation actor and benchmark it against BFGS, LBFGS, FIRE and CG."""

from __future__ import annotations

import json
import pathlib

import click
from aiida.cmdline.params import arguments
from aiida.cmdline.utils import decorators, echo

from aiida_rlpath.cli.realize import _run

SIZES = click.IntRange(min=1, max=64)


@click.group('relax')
def cmd_relax():
    """RL crystal-structure relaxation at fixed cell (TD3, tensor-field networks; Å, eV, eV/Å)."""


@cmd_relax.command('train')
@click.option('--episodes', type=click.IntRange(min=1), default=60, show_default=True)
@click.option('--eval-every', type=click.IntRange(min=1), default=10, show_default=True,
              help='Episodes per round; each round stores a checkpoint and its validation metrics.')  # fmt: skip
@click.option('--train-sizes', type=SIZES, multiple=True, default=(6, 7, 9), show_default=True)
@click.option('--validation-sizes', type=SIZES, multiple=True, default=(4, 8), show_default=True)
@click.option('--per-size', type=click.IntRange(min=1), default=3, show_default=True, help='Structures per size.')
@click.option('--model', type=click.Choice(['tfn', 'cgcnn']), default='tfn', show_default=True)
@click.option('--fmax', type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help='Validation threshold (eV/Å).')  # fmt: skip
@click.option(
    '--imitation-rounds',
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help='Imitation warm-start rounds (DAgger on hindsight minima) before the TD3 episodes.',
)
@click.option(
    '--imitation-episodes',
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help='Roll-outs per imitation round.',
)
@click.option(
    '--actor-lmax',
    type=click.IntRange(min=1, max=3),
    default=1,
    show_default=True,
    help="Degree of the actor's edge spherical harmonics (2 adds l = 2 hidden features).",
)
@click.option(
    '--warmup-steps',
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help='TD3 environment steps before the first update.',
)
@click.option('--seed', type=int, default=0, show_default=True, help='Seed of the training.')
@click.option('--data-seed', type=int, default=0, show_default=True, help='Seed of the structures.')
@click.option('--save', type=click.Path(dir_okay=False, path_type=pathlib.Path),
              help='Also write the best checkpoint to this file (for RLOptimizer, the benchmark script).')  # fmt: skip
@click.option('--daemon', is_flag=True, help='Submit to the daemon instead of running here.')
@decorators.with_dbenv()
def cmd_train(episodes, eval_every, train_sizes, validation_sizes, per_size, model, fmax, imitation_rounds,
              imitation_episodes, actor_lmax, warmup_steps, seed, data_seed, save, daemon):  # fmt: skip
    """Train a TD3 relaxation actor on random Al/Fe cells (Mendelev EAM), optionally after an imitation warm
    start; validate on other cell sizes."""
    from aiida import orm

    from aiida_rlpath.workflows.relaxation.training import RelaxTrainingWorkChain

    builder = RelaxTrainingWorkChain.get_builder()
    settings = {'episodes': episodes, 'eval_every': eval_every, 'model': model, 'warmup_steps': warmup_steps}
    if imitation_rounds:
        settings['imitation'] = {'rounds': imitation_rounds, 'episodes': imitation_episodes}
    if actor_lmax != 1:
        if model != 'tfn':
            raise click.BadParameter('only the tfn actor has spherical harmonics', param_hint='--actor-lmax')
        settings['actor_options'] = {'lmax': actor_lmax, 'hidden': '16x0e + 8x1o + 4x2e'}
    builder.settings = orm.Dict(settings)
    builder.train_sizes = orm.List(list(train_sizes))
    builder.validation_sizes = orm.List(list(validation_sizes))
    builder.per_size, builder.fmax = orm.Int(per_size), orm.Float(fmax)
    builder.seed, builder.data_seed = orm.Int(seed), orm.Int(data_seed)
    builder.metadata.label = f'relax TD3 {model} {episodes} episodes'
    node = _run(builder, daemon, 'relax')
    if not daemon and node.is_terminated:
        _report(node)
        if save and 'best_checkpoint' in node.outputs:
            _save(node.outputs.best_checkpoint, save)


def _save(checkpoint, path: pathlib.Path) -> None:
    from aiida_rlpath.rl.algos.td3 import save_checkpoint

    save_checkpoint({'architecture': checkpoint.architecture, 'actor': checkpoint.load_state_dict()}, path)
    echo.echo_success(f'wrote checkpoint <{checkpoint.pk}> to {path}')


@cmd_relax.command('benchmark')
@click.option('--structures', 'folder', type=click.Path(exists=True, path_type=pathlib.Path), required=True,
              help='Folder (or file) of CIF/extxyz Al/Fe structures.')  # fmt: skip
@click.option('--checkpoint', 'checkpoint_pk', type=int, help='PK of a stored actor checkpoint.')
@click.option('--checkpoint-file', type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help='An actor checkpoint file instead (e.g. the one shipped with aiida-rlpath).')  # fmt: skip
@click.option('--fmax', type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True, help='eV/Å.')
@click.option('--distortions', type=click.IntRange(min=1), default=10, show_default=True)
@click.option('--beta', type=click.FloatRange(min=0), default=0.2, show_default=True, help='Distortion β (Å).')
@click.option('--max-steps', type=click.IntRange(min=1), default=1000, show_default=True)
@click.option('--seed', type=int, default=0, show_default=True)
@click.option('--daemon', is_flag=True, help='Submit to the daemon instead of running here.')
@decorators.with_dbenv()
def cmd_benchmark(folder, checkpoint_pk, checkpoint_file, fmax, distortions, beta, max_steps, seed, daemon):
    """Relax distorted copies of each structure with the learned actor and BFGS, LBFGS, FIRE, CG; one
    calculation node per relaxation. Without a checkpoint only the classical optimizers run."""
    from aiida import orm

    from aiida_rlpath.data.policy import PolicyCheckpointData
    from aiida_rlpath.envs.relaxation import read_structures
    from aiida_rlpath.workflows.relaxation.benchmark import METHODS, RelaxBenchmarkWorkChain

    try:
        structures = read_structures([folder])
    except (ValueError, FileNotFoundError) as exception:
        raise click.BadParameter(str(exception), param_hint='--structures') from exception
    builder = RelaxBenchmarkWorkChain.get_builder()
    builder.structures = {f's{i:03d}': orm.StructureData(ase=atoms) for i, atoms in enumerate(structures)}
    checkpoint = None
    if checkpoint_pk is not None:
        checkpoint = orm.load_node(checkpoint_pk)
    elif checkpoint_file is not None:
        import torch

        payload = torch.load(checkpoint_file, weights_only=True, map_location='cpu')
        checkpoint = PolicyCheckpointData.get_or_create(payload['actor'], payload['architecture'])[0]
    if checkpoint is not None:
        builder.checkpoint = checkpoint
    builder.methods = orm.List(list(METHODS) if checkpoint is not None else [m for m in METHODS if m != 'rl'])
    builder.fmax, builder.beta = orm.Float(fmax), orm.Float(beta)
    builder.distortions, builder.max_steps, builder.seed = orm.Int(distortions), orm.Int(max_steps), orm.Int(seed)
    builder.metadata.label = f'relax benchmark {len(structures)} structures x {distortions}'
    node = _run(builder, daemon, 'relax')
    if not daemon and node.is_finished_ok:
        _report(node)


@cmd_relax.command('report')
@arguments.PROCESS()
@click.option('--json', 'as_json', is_flag=True, help='Print the table as one JSON object.')
@decorators.with_dbenv()
def cmd_report(process, as_json):
    """Per-round table of a training run, or the force-call table of a benchmark."""
    if process.process_label not in ('RelaxTrainingWorkChain', 'RelaxBenchmarkWorkChain'):
        raise click.BadParameter(f'<{process.pk}> is a {process.process_label}, not a relaxation work chain')
    _report(process, as_json)


def _report(node, as_json: bool = False) -> None:
    from tabulate import tabulate

    if node.process_label == 'RelaxBenchmarkWorkChain':
        if 'summary' not in node.outputs:
            echo.echo_warning(f'<{node.pk}> has no summary ({node.process_state.value})')
            return
        summary = node.outputs.summary.get_dict()
        if as_json:
            echo.echo(json.dumps(summary))
            return
        methods = [m for m in ('rl', 'bfgs', 'lbfgs', 'fire', 'cg') if m in summary['all']]
        rows = [[n, summary[n]['starts'], *(f'{summary[n][m]:.1f} ({summary[n][m + "_converged"]:.2f})'
                 for m in methods), summary[n].get('rl_over_bfgs')] for n in summary]  # fmt: skip
        echo.echo('median force calls to fmax (fraction converged)')
        echo.echo(tabulate(rows, headers=['N', 'starts', *methods, 'rl/bfgs'], floatfmt='.2f'))
        return
    rows = []
    from aiida.common.links import LinkType

    calls = {link.link_label: link.node for link in node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all()}
    for label in sorted(k for k in calls if k.startswith('round_')):
        call = calls[label]
        if not call.is_finished_ok:
            continue
        m = call.outputs.metrics.get_dict()
        e = m['evaluation']
        rows.append([label, m['episode'], m['eps1'], m['reward'], m['updates'], m['train_end_fmax'],
                     e['median_force_calls'], e['converged_fraction'], call.outputs.checkpoint.pk])  # fmt: skip
    if as_json:
        keys = ['round', 'episode', 'eps1', 'reward', 'updates', 'train_end_fmax', 'median_force_calls',
                'converged_fraction', 'checkpoint']  # fmt: skip
        echo.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]))
        return
    headers = ['round', 'episode', 'eps1 eV/Å', 'reward', 'updates', 'train end max|F|', 'valid median calls',
               'valid converged', 'checkpoint']  # fmt: skip
    echo.echo(tabulate(rows, headers=headers, floatfmt='.3g'))
    if 'best_checkpoint' in node.outputs:
        echo.echo_report(f'best checkpoint <{node.outputs.best_checkpoint.pk}>')
