r"""Does REALIZE learn? A policy trained in cycles against the random policy, on the same environment and seeds.

Plain shell (no AiiDA), the same functions the work chains compose (``envs.oxidation.train`` runs the cycles as
``RealizeTrainingWorkChain`` does). Steps:

1. build the start of a protocol (``--protocol``, with overrides) from ``--seed``;
2. train the protocol's policy model (initialised from the seed) for ``--cycles`` cycles;
3. evaluate on the *start* environment, at the same barrier threshold (``--eval-threshold``, default the
   protocol's starting threshold, eV) and from the same ``--eval-episodes`` episode seeds: the trained policy, its
   untrained initialisation and the isotropic random policy.

Prints one line per cycle and per evaluation, then as its last line one JSON object: ``trained_success_rate``,
``random_success_rate``, ``untrained_success_rate``, ``trained_mean_barrier_eV``, ``random_mean_barrier_eV``
(mean effective barrier of the successful evaluation episodes, eV), ``kept_barriers_eV`` and their mean
``kept_mean_barrier_eV`` (the events kept in training, eV), ``force_calls_per_success_trained`` / ``_random``,
``success_ratio``, exact 95 % intervals of the two success rates (``trained_success_ci95``,
``random_success_ci95``: with a handful of seeds they are wide), ``success_ratio_lower`` (the trained interval's
low end over the random interval's high end: a ratio both intervals allow, so with probability ≥ 90 % the true
ratio is at least this; defined when random never succeeds) and the wall times (s).

    python benchmarks/realize_learning.py                       # the fast protocol (minutes to an hour on 2 cores)
    python benchmarks/realize_learning.py --size tiny --oxide-thickness 0 --cycles 6 --episodes 4

The runs reported against the target (benchmarks/README.md; 16 cycles: 49–64 min each on one core, 10 cycles
before them: 1.3–1.8 h beside other jobs):

    python benchmarks/realize_learning.py --size tiny --cycles 16 --episodes 4 --eval-episodes 48 \
        --skip-untrained --seed 0      # and --seed 1
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time

import numpy as np

from aiida_rlpath.envs.oxidation import (
    OxidationEnv,
    OxidationSettings,
    RewardWeights,
    TrainingSettings,
    evaluate_policy,
)
from aiida_rlpath.envs.oxidation import train as train_cycles
from aiida_rlpath.rl.models import build_policy, init_policy
from aiida_rlpath.systems.si_oxide import build_oxidation_start
from aiida_rlpath.workflows.protocols import get_protocol, protocol_overrides, recursive_merge


def _mean(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def _clopper_pearson(successes: int, trials: int, level: float = 0.95) -> list[float]:
    """The exact (Clopper-Pearson) two-sided interval of a success rate from ``successes`` of ``trials``."""
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = beta.ppf(tail, successes, trials - successes + 1) if successes else 0.0
    high = beta.ppf(1 - tail, successes + 1, trials - successes) if successes < trials else 1.0
    return [round(float(low), 3), round(float(high), 3)]


def _print_episode(label: str, seed: int, result: dict) -> None:
    print(f'{label:9s} seed {seed:10d}: {result["outcome"]:28s} steps {result["steps"]} '
          f'barrier {result["effective_barrier"]:.3f} eV', flush=True)  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--protocol', default='fast')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', choices=['tiny', 'small', 'paper'])
    parser.add_argument('--oxide-thickness', type=float, help='Å (0: bare Si)')
    parser.add_argument('--insert-height', type=float, help='Å above the film')
    parser.add_argument('--max-steps', type=int)
    parser.add_argument('--cycles', type=int)
    parser.add_argument('--episodes', type=int, help='episodes per training cycle')
    parser.add_argument('--eval-episodes', type=int, default=8)
    parser.add_argument('--eval-threshold', type=float, help='eV (default: the protocol threshold_start)')
    parser.add_argument('--model', choices=['multipole', 'sevennet'])
    parser.add_argument('--skip-untrained', action='store_true', help='evaluate only the trained and the random policy')
    parser.add_argument(
        '--override', type=json.loads, default={},
        help='JSON merged into the protocol last, e.g. \'{"training": {"ppo": {"learning_rate": 0.003}}}\'',
    )  # fmt: skip
    args = parser.parse_args()

    overrides = protocol_overrides(
        size=args.size, oxide_thickness=args.oxide_thickness, insert_height=args.insert_height,
        max_steps=args.max_steps, cycles=args.cycles, episodes=args.episodes, model=args.model,
    )  # fmt: skip
    preset = get_protocol('realize', args.protocol, recursive_merge(overrides, args.override))
    system = {'seed': args.seed, **preset['system']}
    settings = OxidationSettings(**preset['settings'])
    training = TrainingSettings(**preset['training'])
    weights = RewardWeights(**preset.get('weights', {}))
    threshold = args.eval_threshold if args.eval_threshold is not None else training.threshold_start
    print(f'protocol {args.protocol}: system {system}, settings {dataclasses.asdict(settings)}, training '
          f'{dataclasses.asdict(training)}', flush=True)  # fmt: skip

    clock = time.perf_counter()
    atoms, agent, _ = build_oxidation_start(**system)
    build_s = time.perf_counter() - clock
    print(f'start: {len(atoms)} atoms ({build_s:.0f} s)', flush=True)

    policy = init_policy(preset['policy'], settings.d_max, args.seed)
    untrained = build_policy(policy.architecture, {k: v.clone() for k, v in policy.state_dict().items()})

    clock = time.perf_counter()
    env = OxidationEnv(atoms, agent, training.threshold_start, settings=settings, weights=weights)

    def log(record):
        stats = record['stats'] or {}
        heads = ' '.join(
            f'{h}:H={v["entropy"]:.2f},KL={v["approx_kl"]:.1e}' for h, v in (stats.get('heads') or {}).items()
        )
        barrier = record['mean_effective_barrier']
        print(f'cycle {record["cycle"]:2d}: threshold {record["threshold"]:.2f} eV, success '
              f'{record["success_rate"]:.2f}, mean barrier {"n/a" if barrier is None else f"{barrier:.3f} eV"}, '
              f'kept {record["kept"]}, epochs {stats.get("epochs")} {heads}', flush=True)  # fmt: skip

    cycles = train_cycles(env, policy, training, args.seed, log)
    train_s = time.perf_counter() - clock

    seeds = [int(s) for s in np.random.default_rng([args.seed, 99]).integers(2**31, size=args.eval_episodes)]
    clock = time.perf_counter()
    evaluation = {}
    actors = {'trained': policy, 'random': None} | ({} if args.skip_untrained else {'untrained': untrained})
    for label, actor in actors.items():
        env = OxidationEnv(atoms, agent, threshold, settings=settings, weights=weights)
        evaluation[label] = evaluate_policy(env, seeds, actor, functools.partial(_print_episode, label))
    evaluate_s = time.perf_counter() - clock

    trained, random = evaluation['trained'], evaluation['random']
    kept = [c['kept_barrier'] for c in cycles if c['kept_barrier'] is not None]
    intervals = {
        label: _clopper_pearson(evaluation[label]['outcomes'].count('success'), len(seeds)) for label in actors
    }
    result = {
        'protocol': args.protocol,
        'model': policy.name,
        'system': system,
        'cycles': len(cycles),
        'episodes_per_cycle': training.episodes_per_cycle,
        'eval_episodes': args.eval_episodes,
        'eval_threshold_eV': threshold,
        'training_success_rates': [c['success_rate'] for c in cycles],
        'kept_barriers_eV': kept,
        'kept_mean_barrier_eV': _mean(kept),
        'trained_success_rate': trained['success_rate'],
        'random_success_rate': random['success_rate'],
        'untrained_success_rate': evaluation['untrained']['success_rate'] if 'untrained' in evaluation else None,
        'trained_success_ci95': intervals['trained'],
        'random_success_ci95': intervals['random'],
        'success_ratio_lower': round(intervals['trained'][0] / intervals['random'][1], 2),
        'success_ratio': trained['success_rate'] / random['success_rate'] if random['success_rate'] else None,
        'trained_mean_barrier_eV': trained['mean_barrier_eV'],
        'random_mean_barrier_eV': random['mean_barrier_eV'],
        'force_calls_per_success_trained': trained['force_calls_per_success'],
        'force_calls_per_success_random': random['force_calls_per_success'],
        'build_s': round(build_s, 1),
        'train_s': round(train_s, 1),
        'evaluate_s': round(evaluate_s, 1),
    }
    print(json.dumps(result))


if __name__ == '__main__':
    main()
