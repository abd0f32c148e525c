"""MAP pathway: a brief Ape-X training, then piecewise NEB on its best episode, and its diffusion time at 350 °C.

Usage: ``python benchmarks/map_pathway.py [--rounds 4] [--max-steps 12] [--relax-steps 15] [--seed 0]
[--neb-steps 400] [--temperature 623.15] [--plot FILE]``

Runs :class:`~aiida_rlpath.workflows.map.training.MapTrainingWorkChain` (fast protocol, 72-atom glass, ReaxFF)
in this process on a throw-away AiiDA profile (deleted afterwards; your profiles are not touched), with
episodes of ``--max-steps`` actions (``--relax-steps`` FIRE steps after each) and one actor round per episode.
The analysed episode is the one with the highest return among those that moved the water at least 1 Å along
+x. Its segments come from the trajectory's energy profile (peaks of at least 0.05 eV); each is refined by
CI-NEB (5 images, 0.1 eV/Å, ``--neb-steps`` FIRE steps) between its relaxed end points. The last line is one
JSON object: ``n_segments``, ``barriers_eV`` (NEB), ``tau_s`` at ``temperature_K`` (``null`` without a
barrier), the trajectory barriers (``profile_barriers_eV``), the episode's ``progress_A`` along +x, the per-round
mean actor progress (Å), and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=4, help='training rounds (default 4)')
    parser.add_argument('--max-steps', type=int, default=12, help='actions per episode (default 12)')
    parser.add_argument('--relax-steps', type=int, default=15, help='FIRE steps per action (default 15)')
    parser.add_argument('--neb-steps', type=int, default=400, help='FIRE steps of each segment NEB (default 400)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--temperature', type=float, default=623.15, help='K (default 623.15, i.e. 350 °C)')
    parser.add_argument('--plot', help='also write the energy profile before/after NEB to this PNG')
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix='rlpath-bench-')
    os.environ['AIIDA_PATH'] = workdir  # before aiida is imported: never touch the user's configuration
    warnings.filterwarnings('ignore', message='Creating AiiDA configuration folder')
    try:
        print(json.dumps(run(args)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args) -> dict:
    from aiida.engine import run_get_node
    from aiida.manage.configuration import create_profile, get_config, load_profile

    from aiida_rlpath.cli.map import report_data
    from aiida_rlpath.workflows.map.training import MapTrainingWorkChain

    config = get_config(create=True)
    create_profile(config, name='bench', email='bench@localhost', storage_backend='core.sqlite_dos', storage_config={})
    config.set_option('runner.poll.interval', 1, scope='bench')  # the default 60 s would idle between steps
    config.store()
    load_profile('bench', allow_switch=True)

    overrides = {
        'apex': {'rounds': args.rounds, 'steps_per_actor': args.max_steps},
        'environment': {'max_steps': args.max_steps, 'relax_steps': args.relax_steps},
        'neb': {'n_images': 5, 'max_steps': args.neb_steps, 'end_steps': 100, 'fmax': 0.1},
        'temperature': args.temperature,
        'analyse': 1,
    }
    builder = MapTrainingWorkChain.get_builder_from_protocol('fast', overrides, seed=args.seed)
    began = time.perf_counter()
    _, node = run_get_node(builder)
    wall = time.perf_counter() - began
    if not node.is_finished_ok:
        raise SystemExit(f'the training <{node.pk}> failed: exit {node.exit_status} {node.exit_message}')
    data = report_data(node)
    episode = data['episodes'][0]
    base = episode['energies'][0]
    print('profile (eV, relative to the start):', ' '.join(f'{e - base:+.3f}' for e in episode['energies']))
    print('water O x (Å):', ' '.join(f'{x:.2f}' for x in episode['x']))
    for n, segment in enumerate(episode['segments']):
        print(f'segment {n}: frames {segment["start"]}..{segment["end"]}, trajectory barrier '
              f'{segment["profile_barrier"]:.3f} eV, NEB barrier {segment["barrier"]:.3f} eV, converged '
              f'{segment["converged"]}, end points merged {segment["merged"]}')  # fmt: skip
    if args.plot:
        from aiida_rlpath.analysis.plots import plot_map_pathway

        plot_map_pathway(episode['energies'], episode['x'], episode['segments'], args.plot,
                         title=f'{episode["label"]}: τ = {episode["tau_s"]:.3g} s')  # fmt: skip
    rounds = [round(sum(r['progress']) / len(r['progress']), 3) if r['progress'] else None for r in data['rounds']]
    return {
        'n_segments': episode['n_segments'],
        'barriers_eV': [round(b, 4) for b in episode['barriers_eV']],
        'tau_s': episode['tau_s'],
        'temperature_K': episode['temperature_K'],
        'profile_barriers_eV': [round(s['profile_barrier'], 4) for s in episode['segments']],
        'neb_converged': [s['converged'] for s in episode['segments']],
        'end_points_merged': [s['merged'] for s in episode['segments']],
        'progress_A': round(episode['x'][-1] - episode['x'][0], 3),
        'mean_progress_per_round_A': rounds,
        'episode': episode['label'],
        'wall_s': round(wall, 1),
    }


if __name__ == '__main__':
    main()
