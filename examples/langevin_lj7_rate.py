"""The LJ7 C0 -> C3 transition rate by RL importance sampling, with full provenance.

Run with ``verdi run examples/langevin_lj7_rate.py [--beta 6] [--from C0] [--to C3] [--cycles N]
[--warmup-cycles N] [--paths P] [--production-paths P] [--max-steps S] [--seed S] [--submit]``. Reduced LJ units:
``--beta`` in 1/ε, the rate in 1/τ. The work chain measures the flux out of the start state, trains the value
network in cycles (each cycle's checkpoint, paths and TD transitions are nodes) and estimates k = Φ·P from
driven paths whose exact weights keep it unbiased. Afterwards: ``aiida-rlpath langevin report PK`` for the table
and the (μ2, μ3) path plot, ``verdi process report PK`` for the log.
"""

import argparse

from aiida.engine import run_get_node, submit

from aiida_rlpath.envs.langevin import TransitionProblem
from aiida_rlpath.rl.algos.value_is import SamplerSettings
from aiida_rlpath.workflows.langevin.sampling import LangevinSamplingWorkChain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--beta', type=float, default=6.0, help='1/ε')
parser.add_argument('--from', dest='start', default='C0')
parser.add_argument('--to', dest='target', default='C3')
parser.add_argument('--cycles', type=int, default=2, help='training cycles at --beta')
parser.add_argument('--warmup-cycles', type=int, default=2, help='training cycles first at β = 5')
parser.add_argument('--paths', type=int, default=300, help='paths per training cycle')
parser.add_argument('--production-paths', type=int, default=1000)
parser.add_argument('--max-steps', type=int, default=30_000, help='steps (of 0.001 τ) per path')
parser.add_argument('--seed', type=int, default=0)
parser.add_argument('--submit', action='store_true', help='submit to the daemon')
args = parser.parse_args()

problem = TransitionProblem(beta=args.beta, start=args.start, target=args.target)
sampler = SamplerSettings(
    cycles=args.cycles,
    warmup_cycles=args.warmup_cycles,
    paths=args.paths,
    production_paths=args.production_paths,
    max_steps=args.max_steps,
)
builder = LangevinSamplingWorkChain.get_builder_from_settings(problem, sampler, seed=args.seed)
if args.submit:
    node = submit(builder)
    print(f'submitted LangevinSamplingWorkChain<{node.pk}>')
else:
    outputs, node = run_get_node(builder)
    print(f'LangevinSamplingWorkChain<{node.pk}> exit status {node.exit_status}')
    if not node.is_finished_ok:
        print(f'not measured: {node.exit_message}')
    else:
        rate = node.outputs.rate
        print(f'k = {rate["rate"]:.4g} ± {rate["rate_err"]:.2g} 1/tau (P = {rate["probability"]:.3g}, '
              f'flux = {rate["flux"]:.4g} 1/tau)')  # fmt: skip
