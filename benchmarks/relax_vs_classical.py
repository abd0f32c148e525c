"""Learned relaxation (TD3 + tensor-field-network actor) against BFGS, LBFGS, FIRE and CG, side by side.

    python benchmarks/relax_vs_classical.py --structures DIR --fmax 0.1 --distortions 10 --checkpoint CKPT

Every CIF (or extxyz) in DIR is relaxed at fixed cell to its reference minimum (after a seeded 0.02 Å rattle),
then distorted ``--distortions`` times by β·U(−1, 1) Å per coordinate; every distorted start is relaxed by each
method on the same PES (Mendelev Al–Fe EAM by default) to ``--fmax`` eV/Å in at most ``--max-steps`` steps,
counting force calls. ``--write-validation DIR`` first writes the project's validation set (random Al/Fe cells
of N = 2–5, 8, 10, 20 atoms, sizes never used in training) into DIR.

The last line is one JSON object: for each N present and for ``all``, per method the median force calls to
fmax (a start that did not converge counts as ``max_steps + 1``), the fraction converged within
``--max-steps`` steps, and ``rl_over_bfgs`` (ratio of the medians).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from aiida_rlpath.envs.relaxation import force_call_table, read_structures
from aiida_rlpath.physics.relax import relax
from aiida_rlpath.rl.models.tfn import TFNActor
from aiida_rlpath.rl.optimizer import RLOptimizer, load_actor
from aiida_rlpath.systems.alfe import ALFE_PES, VALIDATION_SIZES, distort, reference_minimum, reference_set, write_cifs

CLASSICAL = {'bfgs': 'BFGS', 'lbfgs': 'LBFGS', 'fire': 'FIRE', 'cg': 'CG'}
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / 'aiida_rlpath' / 'rl' / 'checkpoints' / 'relax_tfn.pt'


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--structures', type=Path, required=True, help='folder of CIF/extxyz structures')
    parser.add_argument('--fmax', type=float, default=0.1, help='convergence threshold (eV/Å)')
    parser.add_argument('--distortions', type=int, default=10, help='distorted starts per structure')
    parser.add_argument('--beta', type=float, default=0.2, help='distortion amplitude β (Å)')
    parser.add_argument('--checkpoint', type=Path, default=DEFAULT_CHECKPOINT, help='trained actor checkpoint')
    parser.add_argument('--max-steps', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--write-validation', action='store_true', help='first write the validation set into DIR')
    parser.add_argument('--per-size', type=int, default=2, help='structures per N for --write-validation')
    parser.add_argument('--steepest-descent', type=float, nargs='*', default=[], metavar='ALPHA',
                        help='also steepest descent d = α·F for each α (Å²/eV), as methods sd_α')  # fmt: skip
    args = parser.parse_args(argv)

    if args.write_validation:
        # seed 2: other cells than the training work chain's validation set (data seed + 1), so no benchmark
        # structure took part in training or in choosing the checkpoint
        write_cifs(reference_set(VALIDATION_SIZES, args.per_size, seed=2), args.structures)
    structures = read_structures([args.structures])
    actor = load_actor(str(args.checkpoint))
    methods = {'rl': functools.partial(RLOptimizer, actor=actor), **CLASSICAL}
    for alpha in args.steepest_descent:  # the untrained actor is exactly this step: its output layer is zero
        descent = TFNActor()
        with torch.no_grad():
            descent.log_step.fill_(math.log(alpha))
        methods[f'sd_{alpha:g}'] = functools.partial(RLOptimizer, actor=descent)
    calc = ALFE_PES.calculator()
    results: list[dict] = []
    t0 = time.perf_counter()
    for index, atoms in enumerate(structures):
        minimum = reference_minimum(_as_structure(atoms), seed=args.seed + index)
        calls = {m: [] for m in methods}
        for k in range(args.distortions):
            start = distort(minimum.atoms, args.beta, seed=args.seed * 1_000_003 + index * 1_000 + k)
            for method, optimizer in methods.items():
                result = relax(start, calc, fmax=args.fmax, max_steps=args.max_steps, optimizer=optimizer)
                calls[method].append(result.force_calls if result.converged else args.max_steps + 1)
                results.append({'method': method, 'n_atoms': len(atoms), 'force_calls': result.force_calls,
                                'converged': bool(result.converged)})  # fmt: skip
        line = ', '.join(f'{m} {np.median(calls[m]):.0f}' for m in methods)
        progress = f'[{time.perf_counter() - t0:6.0f} s] N={len(atoms)} ({index + 1}/{len(structures)})'
        print(f'{progress}: {line}', file=sys.stderr)
    report = force_call_table(results, args.max_steps)
    report['fmax'], report['beta'], report['checkpoint'] = args.fmax, args.beta, str(args.checkpoint)
    print(json.dumps(report))
    return report


def _as_structure(atoms):
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(atoms)


if __name__ == '__main__':
    main()
