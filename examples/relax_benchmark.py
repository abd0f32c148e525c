"""Relax distorted Al/Fe cells with the learned optimizer and BFGS, LBFGS, FIRE, CG, with full provenance.

Run with ``verdi run examples/relax_benchmark.py [--sizes 3 4] [--per-size 1] [--distortions 3] [--fmax 0.1]
[--beta 0.2] [--checkpoint FILE] [--seed S] [--submit]``. Lengths in Å, forces in eV/Å. Random cells of the given
sizes are made, each relaxed to its reference minimum and distorted ``--distortions`` times; every start is then
relaxed by each method (one ``relax_structure`` calculation node each, with its force calls). The learned actor
is the checkpoint shipped with aiida-rlpath unless ``--checkpoint`` names another file. Afterwards:
``aiida-rlpath relax report PK`` for the table, ``verdi process report PK`` for the log.
"""

import argparse

import torch
from aiida import orm
from aiida.engine import run_get_node, submit
from pymatgen.io.ase import AseAtomsAdaptor

from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.rl.optimizer import SHIPPED_CHECKPOINT
from aiida_rlpath.systems.alfe import random_alfe_cell
from aiida_rlpath.workflows.relaxation import RelaxBenchmarkWorkChain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--sizes', type=int, nargs='+', default=[3, 4], help='atoms per cell')
parser.add_argument('--per-size', type=int, default=1)
parser.add_argument('--distortions', type=int, default=3)
parser.add_argument('--fmax', type=float, default=0.1, help='eV/Å')
parser.add_argument('--beta', type=float, default=0.2, help='distortion amplitude, Å')
parser.add_argument('--checkpoint', default=str(SHIPPED_CHECKPOINT), help='actor checkpoint file')
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--submit', action='store_true', help='submit to the daemon')
args = parser.parse_args()

payload = torch.load(args.checkpoint, weights_only=True, map_location='cpu')
checkpoint, _ = PolicyCheckpointData.get_or_create(payload['actor'], payload['architecture'])
structures = {
    f'N{n}_{k}': orm.StructureData(
        ase=AseAtomsAdaptor.get_atoms(random_alfe_cell(n, seed=1000 * args.seed + 10 * n + k))
    )
    for n in args.sizes
    for k in range(args.per_size)
}
builder = RelaxBenchmarkWorkChain.get_builder()
builder.structures, builder.checkpoint = structures, checkpoint
builder.fmax, builder.beta = orm.Float(args.fmax), orm.Float(args.beta)
builder.distortions, builder.seed = orm.Int(args.distortions), orm.Int(args.seed)
if args.submit:
    node = submit(builder)
    print(f'submitted RelaxBenchmarkWorkChain<{node.pk}>')
else:
    _, node = run_get_node(builder)
    print(f'RelaxBenchmarkWorkChain<{node.pk}> exit status {node.exit_status}')
    if node.is_finished_ok:
        table = node.outputs.summary['all']
        methods = [m for m in ('rl', 'bfgs', 'lbfgs', 'fire', 'cg') if m in table]
        print('median force calls: ' + ', '.join(f'{m} {table[m]:g}' for m in methods))
