"""One REALIZE episode with the seeded random policy, with full provenance.

Run with ``verdi run examples/realize_random_episode.py [--bare] [--steps N] [--seed S] [--threshold EV]``.
Without ``--bare`` a 3 Å oxide is grown on Si(001) first (about a minute on one core); ``--bare`` puts the O2
above bare Si(001) instead (seconds). Then ``verdi process show PK`` and ``verdi process report PK`` show the
steps; each ``realize_step`` node CALLs its ``sample_action``, ``relax_move``, ``neb_barrier``, ``verify`` and
``conclude_step`` nodes.
"""

import argparse

from aiida.engine import run_get_node

from aiida_rlpath.envs.oxidation import OxidationSettings
from aiida_rlpath.systems.si_oxide import build_oxidized_slab, build_si_slab, insert_o2
from aiida_rlpath.workflows.realize.episode import RealizeEpisodeWorkChain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--bare', action='store_true', help='bare Si(001) instead of an oxide film')
parser.add_argument('--steps', type=int, default=5, help='largest number of steps')
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--threshold', type=float, default=1.5, help='barrier threshold, eV')
args = parser.parse_args()

film = build_si_slab() if args.bare else build_oxidized_slab(seed=args.seed, thickness=3.0).atoms
atoms, agent = insert_o2(film, seed=args.seed)
settings = OxidationSettings(max_steps=args.steps, neb_images=3, neb_max_steps=200)
builder = RealizeEpisodeWorkChain.get_builder_from_atoms(atoms, agent, args.seed, args.threshold, settings=settings)
results, node = run_get_node(builder)
summary = results['summary'].get_dict()
print(f'RealizeEpisodeWorkChain<{node.pk}> exit status {node.exit_status}: {len(summary["steps"])} steps')
for i, step in enumerate(summary['steps']):
    barrier = 'n/a' if step['barrier'] is None else f'{step["barrier"]:.3f} eV'
    print(f'  step {i:02d}: {step["outcome"]:<28} barrier {barrier:<10} reward {step["reward"]:+.3f}')
print(f'return {summary["return"]:+.3f}; explore with: verdi process show {node.pk}')
