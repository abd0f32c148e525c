"""MAP actor throughput on AiiDA daemon workers: experiences per second with 1, 2, ... workers, side by side.

Usage: ``python benchmarks/map_apex.py [--workers 1 2] [--actors 8] [--steps 12] [--units 24] [--slots 1]
[--seed 0]``

On a throw-away AiiDA profile (SQLite storage, ZeroMQ broker; deleted afterwards, your profiles are not touched)
the script builds the fast protocol's glass with one water (in this process, once), stores an untrained
Q-network, then for each worker count W starts a daemon with W workers and submits the same ``--actors``
:class:`~aiida_rlpath.workflows.map.training.MapActorWorkChain` rounds of ``--steps`` environment steps at once
(what one training round submits; ε from the ladder, seeds as a training's round 0). Experiences per second is
the number of n-step transitions the actors returned divided by the wall time from submission to the last
actor's end. Each worker runs one actor at a time on one core (torch and LAMMPS single-threaded), so on a
2-core machine more than 2 workers cannot help.

The last line is one JSON object: ``experiences_per_s`` per worker count, ``ratio`` (each against the first
count), ``wall_s``, ``experiences``, ``identical`` (every worker count produced the same experiences, bit for bit).
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
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2], help='daemon worker counts (default 1 2)')
    parser.add_argument('--actors', type=int, default=8, help='actor rounds submitted at once (default 8)')
    parser.add_argument('--steps', type=int, default=12, help='environment steps per actor round (default 12)')
    parser.add_argument('--units', type=int, default=24, help='SiO2 units of the glass (default 24: 72 atoms)')
    parser.add_argument('--slots', type=int, default=1, help='daemon.worker_process_slots (default 1)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix='rlpath-bench-')
    os.environ['AIIDA_PATH'] = workdir  # before aiida is imported: never touch the user's configuration
    os.environ['OMP_NUM_THREADS'] = '1'  # inherited by the daemon workers
    warnings.filterwarnings('ignore', message='Creating AiiDA configuration folder')
    try:
        print(json.dumps(run(args)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args) -> dict:
    import hashlib

    from aiida import orm
    from aiida.engine import run_get_node, submit
    from aiida.manage import get_manager
    from aiida.manage.configuration import create_profile, get_config, load_profile
    from aiida.plugins import BrokerFactory

    from aiida_rlpath.calculations.functions.map import initial_q_checkpoint, map_system
    from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES
    from aiida_rlpath.rl.algos.apex_dqn import ApexSettings, actor_seed, epsilon_ladder
    from aiida_rlpath.rl.models.cnn3d import q_architecture
    from aiida_rlpath.workflows.map.training import MapActorWorkChain
    from aiida_rlpath.workflows.protocols import get_protocol

    config = get_config(create=True)
    create_profile(
        config, name='bench', email='bench@localhost', storage_backend='core.sqlite_dos', storage_config={},
        broker_backend='core.zeromq', broker_config=BrokerFactory('core.zeromq').get_default_config(),
    )  # fmt: skip
    config.set_option('runner.poll.interval', 1, scope='bench')
    # each worker takes one actor at a time: with the default 200 slots one worker may accept most of the queue
    # while the other idles (measured: 3 of 4 actors on one worker). A training work chain on the daemon needs
    # one more slot per worker for itself (see docs/topics/map.md).
    config.set_option('daemon.worker_process_slots', args.slots, scope='bench')
    config.store()
    load_profile('bench', allow_switch=True)

    protocol = get_protocol('map', 'fast')
    pes = orm.Dict(DEFAULT_OXIDATION_PES.to_dict())
    started = time.perf_counter()
    parameters = orm.Dict({**protocol['build'], 'units': args.units, 'seed': args.seed})
    built, _ = run_get_node(map_system, parameters=parameters, pes=pes)
    print(f'glass with water: {built["system"]["atoms"]} atoms, built in {time.perf_counter() - started:.0f} s')
    apex = ApexSettings(**{**protocol['apex'], 'actors': args.actors, 'steps_per_actor': args.steps})
    environment = orm.Dict(protocol['environment'])
    architecture = q_architecture(4, 9, apex.hidden)
    checkpoint = initial_q_checkpoint(architecture, args.seed)
    epsilons = epsilon_ladder(apex.actors, apex.epsilon, apex.epsilon_alpha)
    import dataclasses

    apex_node = orm.Dict(dataclasses.asdict(apex))

    client = get_manager().get_daemon_client()
    # one daemon for the whole run (the ZeroMQ broker lives inside it: restarting it would strand this process's
    # connection); the worker count is changed between measurements
    client.start_daemon(number_workers=args.workers[0])
    results = {}
    try:
        for workers in args.workers:
            _set_workers(client, workers)
            began = time.perf_counter()
            nodes = [
                submit(MapActorWorkChain, structure=built['structure'], system=built['system'],
                       environment=environment, pes=pes, apex=apex_node, checkpoint=checkpoint,
                       epsilon=orm.Float(epsilons[i]), seed=orm.Int(actor_seed(args.seed, 0, i)))
                for i in range(apex.actors)
            ]  # fmt: skip
            while not all(node.is_terminated for node in nodes):
                if time.perf_counter() - began > 1800:
                    raise SystemExit(f'the actors did not finish in 30 min with {workers} worker(s)')
                time.sleep(0.5)
            wall = time.perf_counter() - began
            failed = [node.pk for node in nodes if not node.is_finished_ok]
            if failed:
                raise SystemExit(f'actor processes {failed} failed with {workers} worker(s)')
            count = sum(node.outputs.experiences.base.attributes.get('count') for node in nodes)
            digest = hashlib.sha256()
            for node in nodes:
                digest.update(node.outputs.experiences.get_array('state').tobytes())
                digest.update(node.outputs.experiences.get_array('ret').tobytes())
            results[workers] = {'wall_s': wall, 'experiences': count, 'digest': digest.hexdigest()}
            print(f'{workers} worker(s): {count} experiences in {wall:.1f} s = {count / wall:.3f} per s')
    finally:
        try:
            client.stop_daemon(wait=True, timeout=60)
        except Exception as exception:  # a busy circus may not answer in time: the throw-away folder goes anyway
            print(f'could not stop the daemon cleanly: {exception}')

    first = args.workers[0]
    rate = {w: r['experiences'] / r['wall_s'] for w, r in results.items()}
    return {
        'experiences_per_s': {str(w): round(v, 4) for w, v in rate.items()},
        'ratio': {str(w): round(v / rate[first], 3) for w, v in rate.items()},
        'wall_s': {str(w): round(r['wall_s'], 2) for w, r in results.items()},
        'experiences': {str(w): r['experiences'] for w, r in results.items()},
        'identical': len({r['digest'] for r in results.values()}) == 1,
        'actors': apex.actors,
        'steps_per_actor': apex.steps_per_actor,
        'atoms': built['system']['atoms'],
    }


def _set_workers(client, count: int) -> None:
    """Run exactly ``count`` daemon workers, waiting until they are up."""
    current = client.get_numprocesses()['numprocesses']
    if count > current:
        client.increase_workers(count - current)
    elif count < current:
        client.decrease_workers(current - count)
    for _ in range(120):
        if len(client.get_worker_info()['info']) == count:
            break
        time.sleep(0.5)
    else:
        raise SystemExit(f'the daemon did not reach {count} worker(s)')
    time.sleep(2.0)  # let new workers connect to the broker


if __name__ == '__main__':
    main()
