"""Cost of provenance for REALIZE: the same seeded random-policy episode in the plain and the AiiDA shell.

Usage: ``python benchmarks/provenance_overhead.py [--steps N] [--seed S] [--thickness Å]``

Builds the default Si(001)/a-SiO2 system (quick protocol) with one O2 above it, then runs ``--steps`` steps of
seeded random-policy episodes (episodes seed, seed+1, ... back to back, as episodes end early), first as the
gymnasium environment, then as ``RealizeEpisodeWorkChain`` on a throw-away AiiDA profile (SQLite, no broker;
your profiles are not touched), side by side. The last line is one JSON object: ``plain_s``,
``provenance_s``, ``ratio``, ``identical`` (same outcomes, actions and force calls; energies and barriers equal
to 1e-12 relative) and ``nodes_per_step``; and where the time goes: ``lammps_plain_s``/``lammps_provenance_s``
(time inside the LAMMPS calculator, the same work in both shells) and ``aiida_s_per_step`` (the provenance
shell's extra time per step once LAMMPS time is taken out).
"""

import argparse
import dataclasses
import json
import os
import shutil
import tempfile
import time
import warnings

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--thickness', type=float, default=5.0, help='oxide thickness, Å')
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix='rlpath-bench-')
    os.environ['AIIDA_PATH'] = workdir  # before aiida is imported
    warnings.filterwarnings('ignore')
    try:
        print(json.dumps(run(args.steps, args.seed, args.thickness)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _close(a, b) -> bool:
    if a is None or b is None:
        return (a is None and b is None) or (a is None and np.isnan(b)) or (b is None and np.isnan(a))
    return bool(np.isclose(a, b, rtol=1e-12, atol=1e-12))


def run(steps: int, seed: int, thickness: float) -> dict:
    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.manage.configuration import create_profile, get_config, load_profile
    from ase.calculators import lammpslib

    from aiida_rlpath.envs.oxidation import OxidationEnv, OxidationSettings, RewardWeights, canonical
    from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES
    from aiida_rlpath.systems.si_oxide import build_oxidized_slab, insert_o2
    from aiida_rlpath.workflows.realize.episode import RealizeEpisodeWorkChain

    lammps_time = {'s': 0.0}
    calculate = lammpslib.LAMMPSlib.calculate

    def timed(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return calculate(self, *args, **kwargs)
        finally:
            lammps_time['s'] += time.perf_counter() - start

    lammpslib.LAMMPSlib.calculate = timed

    config = get_config(create=True)
    create_profile(config, name='bench', email='bench@localhost', storage_backend='core.sqlite_dos', storage_config={})
    config.store()
    load_profile('bench', allow_switch=True)

    film = build_oxidized_slab(seed=seed, thickness=thickness)
    atoms, agent = insert_o2(film.atoms, seed=seed)
    atoms = canonical(atoms)
    settings, weights, threshold = OxidationSettings(max_steps=steps), RewardWeights(), 1.5

    # Episodes end early (escape, success): run seeded episodes back to back until `steps` steps are done.
    plain, seeds = [], []
    lammps_time['s'] = 0.0
    start = time.perf_counter()
    while len(plain) < steps:
        episode_seed = seed + len(seeds)
        seeds.append(episode_seed)
        env = OxidationEnv(atoms, agent, threshold, DEFAULT_OXIDATION_PES, settings, weights)
        env.reset(seed=episode_seed)
        while True:
            _, _, terminated, truncated, info = env.step(env.random_action())
            plain.append(info)
            if terminated or truncated or len(plain) >= steps:
                break
    plain_s = time.perf_counter() - start
    lammps_plain_s = lammps_time['s']

    nodes_before = orm.QueryBuilder().append(orm.Node).count()
    stored = []
    lammps_time['s'] = 0.0
    start = time.perf_counter()
    for episode_seed in seeds:
        remaining = OxidationSettings(**{**dataclasses.asdict(settings), 'max_steps': steps - len(stored)})
        builder = RealizeEpisodeWorkChain.get_builder_from_atoms(
            atoms, agent, episode_seed, threshold, settings=remaining
        )
        results, node = run_get_node(builder)
        if not node.is_finished_ok:
            raise RuntimeError(f'RealizeEpisodeWorkChain <{node.pk}> failed with exit status {node.exit_status}')
        stored.extend(results['summary']['steps'])
    provenance_s = time.perf_counter() - start
    lammps_provenance_s = lammps_time['s']
    nodes = orm.QueryBuilder().append(orm.Node).count() - nodes_before

    mismatches = [
        {'step': i, 'field': key, 'plain': mine[key], 'provenance': theirs[key]}
        for i, (mine, theirs) in enumerate(zip(plain, stored, strict=False))
        for key in ('outcome', 'action', 'force_calls', 'energy_before', 'energy_after', 'barrier', 'reward')
        if not (
            mine[key] == theirs[key] if key in ('outcome', 'action', 'force_calls') else _close(mine[key], theirs[key])
        )
    ]
    identical = len(stored) == len(plain) and not mismatches
    return {
        'atoms': len(atoms),
        'steps': len(plain),
        'episodes': len(seeds),
        'outcomes': [step['outcome'] for step in plain],
        'force_calls': sum(step['force_calls'] for step in plain),
        'plain_s': round(plain_s, 2),
        'provenance_s': round(provenance_s, 2),
        'ratio': round(provenance_s / plain_s, 3),
        'identical': identical,
        'mismatches': mismatches[:10],
        'nodes_per_step': round(nodes / max(1, len(stored)), 1),
        'lammps_plain_s': round(lammps_plain_s, 2),
        'lammps_provenance_s': round(lammps_provenance_s, 2),
        'aiida_s_per_step': round(
            ((provenance_s - lammps_provenance_s) - (plain_s - lammps_plain_s)) / max(1, len(stored)), 3
        ),
    }


if __name__ == '__main__':
    main()
