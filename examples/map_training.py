"""MAP: a water molecule learning to diffuse through silica glass (Ape-X DQN), with piecewise NEB and τ.

Run with ``verdi run examples/map_training.py [--protocol fast] [--rounds N] [--actors N] [--steps K]
[--max-steps S] [--units U] [--analyse N] [--temperature K] [--seed S] [--submit]``. The work chain melt-quenches
a glass of U SiO2 units (24: 72 atoms) with one H2O, trains the Q-network in rounds of N actors (K environment
steps each; with ``--submit`` and ``verdi daemon start N`` they run in parallel) and a learner step, then splits
the farthest-reaching episodes into segments, runs NEB on each and reports the diffusion time τ (s) at the
temperature (K, 623.15 = 350 °C). Afterwards: ``aiida-rlpath map report PK`` for the tables and plots,
``verdi process status PK`` for the tree of actors, learner steps and pathways.
"""

import argparse

from aiida.engine import run_get_node, submit

from aiida_rlpath.cli.map import map_overrides
from aiida_rlpath.workflows.map.training import MapTrainingWorkChain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--protocol', default='fast', choices=['fast', 'balanced', 'paper'])
parser.add_argument('--rounds', type=int, help='training rounds')
parser.add_argument('--actors', type=int, help='actors per round')
parser.add_argument('--steps', type=int, help='environment steps per actor round')
parser.add_argument('--max-steps', type=int, help='actions per episode')
parser.add_argument('--units', type=int, help='SiO2 units of the glass')
parser.add_argument('--analyse', type=int, help='episodes given piecewise NEB and τ')
parser.add_argument('--temperature', type=float, help='τ temperature, K')
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--submit', action='store_true', help='submit to the daemon')
args = parser.parse_args()

overrides = map_overrides(rounds=args.rounds, actors=args.actors, steps=args.steps, max_steps=args.max_steps,
                          units=args.units, analyse=args.analyse, temperature=args.temperature)  # fmt: skip
builder = MapTrainingWorkChain.get_builder_from_protocol(args.protocol, overrides, seed=args.seed)
if args.submit:
    node = submit(builder)
    print(f'submitted MapTrainingWorkChain<{node.pk}>')
else:
    outputs, node = run_get_node(builder)
    print(f'MapTrainingWorkChain<{node.pk}> exit status {node.exit_status}')
    if node.is_finished_ok:
        summary = outputs['summary'].get_dict()
        for r in summary['rounds']:
            mean = sum(r['progress']) / len(r['progress'])
            print(f'round {r["round"]}: mean progress {mean:+.2f} Å, loss {r["loss"]:.4g}')
        for e in summary['episodes']:
            barriers = ', '.join(f'{b:.3f}' for b in e['barriers_eV']) or 'none'
            print(f'episode round {e["round"]} actor {e["actor"]}: progress {e["progress"]:+.2f} Å, '
                  f'barriers [{barriers}] eV, tau = {e["tau_s"]} s')  # fmt: skip
