"""REALIZE training in cycles from a protocol preset, with full provenance.

Run with ``verdi run examples/realize_training.py [--protocol fast] [--cycles N] [--episodes K] [--steps M]
[--size tiny|small|paper] [--oxide-thickness A] [--seed S] [--submit]``. The work chain grows its own start
(Si(001) with an oxide of the given thickness in Å, or bare Si for 0) and trains; ``--submit`` hands it to the
daemon instead of running it here. Afterwards: ``aiida-rlpath realize report PK`` for tables and plots,
``verdi process status PK`` for the tree of cycles, episodes and steps.
"""

import argparse

from aiida.engine import run_get_node, submit

from aiida_rlpath.workflows.realize.training import RealizeTrainingWorkChain, protocol_overrides

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--protocol', default='fast', choices=['fast', 'balanced', 'paper'])
parser.add_argument('--cycles', type=int)
parser.add_argument('--episodes', type=int, help='episodes per cycle')
parser.add_argument('--steps', type=int, help='largest number of steps per episode')
parser.add_argument('--size', choices=['tiny', 'small', 'paper'])
parser.add_argument('--oxide-thickness', type=float, help='Å; 0 for bare Si(001)')
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--submit', action='store_true', help='submit to the daemon')
args = parser.parse_args()

overrides = protocol_overrides(
    cycles=args.cycles,
    episodes=args.episodes,
    max_steps=args.steps,
    size=args.size,
    oxide_thickness=args.oxide_thickness,
)
builder = RealizeTrainingWorkChain.get_builder_from_protocol(args.protocol, overrides, seed=args.seed)
if args.submit:
    print(f'submitted RealizeTrainingWorkChain<{submit(builder).pk}>')
else:
    results, node = run_get_node(builder)
    print(f'RealizeTrainingWorkChain<{node.pk}> exit status {node.exit_status}')
    for label, metrics in sorted(results.get('cycles', {}).items()):
        barrier = metrics['mean_effective_barrier']
        barrier = 'n/a' if barrier is None else f'{barrier:.3f} eV'
        print(f'  {label}: success rate {metrics["success_rate"]:.2f}, mean effective barrier {barrier}')
    print(f'report: aiida-rlpath realize report {node.pk}')
