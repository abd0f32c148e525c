"""Design crystals by RL against a property target, every episode and CHGNet/xTB evaluation a (cached) node.

Run with ``verdi run examples/crystal_design.py [--target density=3.0] [--algorithm dqn|ppo|random]
[--episodes 8] [--episodes-per-round 4] [--prototypes rocksalt zincblende] [--vocabulary small] [--seed S]
[--submit]``. Units: density g/cm³, bulk modulus GPa, band gap eV. Afterwards: ``aiida-rlpath crystal report
PK`` for the best designs, ``verdi process report PK`` for the per-episode log.
"""

import argparse

from aiida import orm
from aiida.engine import run_get_node, submit

from aiida_rlpath.envs.crystal_design import parse_target
from aiida_rlpath.workflows.crystal import CrystalDesignWorkChain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--target', default='density=3.0', help='PROPERTY=VALUE')
parser.add_argument('--algorithm', default='dqn', choices=['dqn', 'ppo', 'random'])
parser.add_argument('--episodes', type=int, default=8)
parser.add_argument('--episodes-per-round', type=int, default=4)
parser.add_argument('--prototypes', nargs='+', default=['rocksalt', 'zincblende'])
parser.add_argument('--vocabulary', default='small', help='small, medium, large or comma-separated symbols')
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--submit', action='store_true', help='submit to the daemon')
args = parser.parse_args()

words = [w for w in args.vocabulary.split(',') if w]
builder = CrystalDesignWorkChain.get_builder()
builder.target = orm.Dict(parse_target(args.target).as_dict())
builder.environment = orm.Dict({'prototypes': args.prototypes, 'vocabulary': words[0] if len(words) == 1 else words})
builder.settings = orm.Dict({'algorithm': args.algorithm, 'episodes': args.episodes,
                             'episodes_per_round': args.episodes_per_round, 'seed': args.seed})  # fmt: skip
if args.submit:
    node = submit(builder)
    print(f'submitted CrystalDesignWorkChain<{node.pk}>')
else:
    _, node = run_get_node(builder)
    print(f'CrystalDesignWorkChain<{node.pk}> exit status {node.exit_status}')
    if node.is_finished_ok:
        summary = node.outputs.summary.get_dict()
        best = summary['best'][0]
        print(f'best: {best["formula"]} ({best["prototype"]}) {best["value"]:.3f}, reward {best["reward"]:.3f}; '
              f'{summary["property_evaluations"]} evaluations, {summary["cache_hits"]} cache hits')  # fmt: skip
