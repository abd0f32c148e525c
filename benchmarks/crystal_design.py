"""RL crystal design (DQN, PPO) against the random-policy baseline, on the same prototypes, vocabulary and seed.

    python benchmarks/crystal_design.py --target density=3.0
    python benchmarks/crystal_design.py --target band_gap=1.12
    python benchmarks/crystal_design.py --target bulk_modulus=300

Each algorithm runs ``--episodes`` episodes (policy updates every ``--episodes-per-round``) with its own
property cache, so "property evaluations" counts the CHGNet (and, for the band gap, GFN1-xTB) calculations that
algorithm paid for, and "cache hits" the repeated structures it did not pay for. Units: density g/cm³, bulk
modulus GPa, band gap eV.

The last line is one JSON object: the target and settings, and per algorithm the best reward, its formula,
prototype and value, the episode (1-based) that first came within 5 % of the target (``null``: never), property
evaluations, cache hits, failed evaluations, mean reward of the first and second half of the episodes, and wall
seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from aiida_rlpath.envs.crystal_design import CrystalDesignEnv, PropertyCache, parse_target
from aiida_rlpath.physics.properties import CHGNET_MODELS, PropertySettings
from aiida_rlpath.rl.algos.design import ALGORITHMS, DesignSettings, run_design

PROTOTYPES = ('rocksalt', 'zincblende', 'cesium_chloride', 'fluorite', 'perovskite')


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--target', required=True, help='PROPERTY=VALUE, e.g. density=3.0')
    parser.add_argument('--episodes', type=int, default=64)
    parser.add_argument('--episodes-per-round', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--prototypes', nargs='+', default=list(PROTOTYPES))
    parser.add_argument('--vocabulary', default='small')
    parser.add_argument('--algorithms', nargs='+', default=['dqn', 'ppo', 'random'], choices=ALGORITHMS)
    parser.add_argument('--chgnet-model', default=PropertySettings().chgnet_model, choices=CHGNET_MODELS)
    args = parser.parse_args(argv)
    target = parse_target(args.target)
    warnings.filterwarnings('ignore')
    results = {}
    for algorithm in args.algorithms:
        env = CrystalDesignEnv(args.prototypes, args.vocabulary)
        cache = PropertyCache(target.property, {'chgnet_model': args.chgnet_model})
        settings = DesignSettings(
            algorithm=algorithm, episodes=args.episodes, episodes_per_round=args.episodes_per_round, seed=args.seed
        )
        start = time.perf_counter()

        def progress(episode, algorithm=algorithm):
            value = 'failed' if episode.value is None else f'{episode.value:.3f}'
            hit = ' (cache)' if episode.cache_hit else ''
            print(f'{algorithm} {episode.index:3d} {episode.prototype:16s} {episode.formula:12s} {value}{hit} '
                  f'reward {episode.reward:.3f}', file=sys.stderr, flush=True)  # fmt: skip

        history = run_design(env, cache, target, settings, progress=progress)
        summary = history.summary(target)
        summary['seconds'] = round(time.perf_counter() - start, 1)
        results[algorithm] = summary
    out = {
        'target': target.as_dict(),
        'episodes': args.episodes,
        'episodes_per_round': args.episodes_per_round,
        'seed': args.seed,
        'prototypes': args.prototypes,
        'vocabulary': args.vocabulary,
        'chgnet_model': args.chgnet_model,
        **results,
    }
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
