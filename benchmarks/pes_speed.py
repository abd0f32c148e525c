"""Speed of each PES on the oxidation systems, and the cost of an O2 move's NEB with and without the pre-screen.

Usage: ``python benchmarks/pes_speed.py [--seed S] [--moves N] [--threshold EV] [--fmax F] [--calls K] [--skip-slow]``

1. Builds the default Si(001)/a-SiO2 system (96 Si, ~5 Å oxide, quick protocol) with one O2 above it, and the
   paper-size system (384 Si) by tiling it 2×2 laterally (same film, four times the area).
2. Times energy+force calls (median of ``--calls``, after one warm-up) for every PES that covers Si and O.
3. Puts an O2 in the film's largest void and, for ``--moves`` seeded O2 moves (a rigid translation of
   0.8–1.8 Å in a random direction plus a new bond axis; both end points relaxed on the default PES to
   ``--fmax``; moves that relax back into the starting basin are redrawn) runs (a) the climbing-image NEB
   directly and (b) the pre-screened barrier with ``--threshold`` eV; reports force calls and seconds of
   each, and whether the pre-screen's decision (skip: loose-band barrier above threshold + margin) agrees
   with the CI-NEB barrier (judged only where the CI-NEB converged): a false skip would report a wrong answer,
   a missed skip only costs force calls.

The last line printed is one JSON object.
"""

import argparse
import json
import statistics
import time

import numpy as np

from aiida_rlpath.physics.bonds import largest_void
from aiida_rlpath.physics.neb import barrier, neb
from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES, PESSpec
from aiida_rlpath.physics.relax import relax
from aiida_rlpath.systems.si_oxide import build_oxidized_slab, insert_o2

PES_CANDIDATES = {
    'reaxff_021 (default)': DEFAULT_OXIDATION_PES,
    'reaxff_2011X4': PESSpec('reaxff', 'ffield.reax.2011X4.CHONSSi'),
    'reaxff_SiOH_nayir': PESSpec('reaxff', 'ffield.reax.SiOH', ('Si', 'O', 'H')),
    'tersoff_SiO': PESSpec('tersoff'),
    'comb': PESSpec('comb'),
    'sevennet_0': PESSpec('sevennet'),
}
SLOW = {'comb', 'sevennet_0'}


def time_calls(atoms, spec: PESSpec, calls: int) -> float:
    """Median milliseconds per energy+force call (positions rattled by 0.005 Å so nothing is cached)."""
    calc = spec.calculator(atoms.get_chemical_symbols())
    probe = atoms.copy()
    probe.calc = calc
    probe.get_forces()
    times = []
    for seed in range(calls):
        probe.set_positions(atoms.positions + np.random.default_rng(seed).normal(0, 0.005, atoms.positions.shape))
        start = time.perf_counter()
        probe.get_potential_energy()
        probe.get_forces()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def o2_in_largest_void(film, oxide, seed: int, candidates: int = 3000):
    """``film`` with an O2 centred in the largest void between the interface and the surface (a typical agent
    position inside the oxide), and the O2's indices."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    centre = largest_void(film, rng, candidates, (oxide.interface_z, oxide.surface_z))
    n = len(film)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    pair = [centre - 0.6325 * axis, centre + 0.6325 * axis]
    return film + Atoms('O2', positions=pair), [n, n + 1]


def o2_move(atoms, agent, seed: int):
    """A rigid O2 move: centre translated 0.8–1.8 Å in a random direction, bond axis re-drawn."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    moved = atoms.copy()
    centre = moved.positions[agent].mean(axis=0) + rng.uniform(0.8, 1.8) * direction
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    half = moved.get_distance(*agent) / 2
    moved.positions[agent[0]] = centre - half * axis
    moved.positions[agent[1]] = centre + half * axis
    return moved


def neb_comparison(start, agent, moves: int, threshold: float, seed: int, fmax: float) -> list[dict]:
    calc = DEFAULT_OXIDATION_PES.calculator(start.get_chemical_symbols())
    initial = relax(start, calc, fmax=fmax, max_steps=1000)
    rows, attempt = [], 0
    while len(rows) < moves and attempt < 10 * moves:
        attempt += 1
        final = relax(o2_move(initial.atoms, agent, seed + attempt), calc, fmax=fmax, max_steps=1000)
        shift = np.linalg.norm(final.atoms.positions[agent].mean(0) - initial.atoms.positions[agent].mean(0))
        if final.error or shift < 0.3:  # relaxed back into the start's basin: no transition to measure
            continue
        t0 = time.perf_counter()
        direct = neb(initial.atoms, final.atoms, calc, n_images=5, fmax=fmax, max_steps=500)
        t1 = time.perf_counter()
        screened = barrier(initial.atoms, final.atoms, calc, threshold=threshold, n_images=5, fmax=fmax, max_steps=500)
        t2 = time.perf_counter()
        rows.append(
            {
                'move': attempt,
                'o2_shift_A': round(float(shift), 3),
                'reaction_energy_eV': round(final.energy - initial.energy, 4),
                'ci_neb_barrier_eV': round(direct.forward_barrier, 4),
                'ci_neb_converged': direct.converged,
                'ci_neb_force_calls': direct.force_calls,
                'ci_neb_s': round(t1 - t0, 2),
                'prescreen_method': screened.method,
                'prescreen_barrier_eV': round(screened.prescreen_barrier, 4),
                'reported_barrier_eV': round(screened.barrier, 4),
                'prescreen_converged': screened.converged,
                'prescreen_force_calls': screened.force_calls,
                'prescreen_s': round(t2 - t1, 2),
                'skipped': screened.method == 'prescreen',
                # only a converged CI-NEB is the reference: an unconverged band's maximum can be anything
                'ci_neb_above_threshold': bool(direct.forward_barrier > threshold) if direct.converged else None,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--moves', type=int, default=6)
    parser.add_argument('--threshold', type=float, default=1.0, help='barrier threshold, eV')
    parser.add_argument('--calls', type=int, default=5)
    parser.add_argument('--fmax', type=float, default=0.1, help='relaxation and NEB force threshold, eV/Å')
    parser.add_argument('--skip-slow', action='store_true', help='skip COMB and SevenNet timings')
    args = parser.parse_args()

    t0 = time.perf_counter()
    oxide = build_oxidized_slab(seed=args.seed)
    build_s = time.perf_counter() - t0
    default, _ = insert_o2(oxide.atoms, seed=args.seed)
    paper = oxide.atoms.repeat((2, 2, 1))
    paper, _ = insert_o2(paper, seed=args.seed)
    print(f'default system: {len(default)} atoms; paper-size: {len(paper)} atoms; oxide built in {build_s:.0f} s')

    timings = {}
    for name, spec in PES_CANDIDATES.items():
        if args.skip_slow and name in SLOW:
            continue
        calls = 3 if name in SLOW else args.calls
        timings[name] = {'default_ms': time_calls(default, spec, calls), 'paper_ms': time_calls(paper, spec, calls)}
        print(name, timings[name], flush=True)

    inside, inside_agent = o2_in_largest_void(oxide.atoms, oxide, args.seed)
    rows = neb_comparison(inside, inside_agent, args.moves, args.threshold, args.seed, args.fmax)
    judged = [row for row in rows if row['ci_neb_above_threshold'] is not None]
    summary = {
        'atoms': {'default': len(default), 'paper': len(paper)},
        'oxide': oxide.metadata(),
        'ms_per_call': timings,
        'neb_threshold_eV': args.threshold,
        'neb_fmax_eV_per_A': args.fmax,
        'ci_neb_converged': sum(row['ci_neb_converged'] for row in rows),
        'prescreened_converged': sum(row['prescreen_converged'] for row in rows),
        'neb_moves': rows,
        'ci_neb_force_calls_total': sum(row['ci_neb_force_calls'] for row in rows),
        'prescreen_force_calls_total': sum(row['prescreen_force_calls'] for row in rows),
        'ci_neb_s_total': round(sum(row['ci_neb_s'] for row in rows), 2),
        'prescreen_s_total': round(sum(row['prescreen_s'] for row in rows), 2),
        'prescreen_skipped': sum(row['prescreen_method'] == 'prescreen' for row in rows),
        # agreement: skipped exactly when the CI-NEB barrier is above the threshold
        'prescreen_agreement': round(
            sum(row['skipped'] == row['ci_neb_above_threshold'] for row in judged) / len(judged), 3
        )
        if judged
        else None,
        'false_skips': sum(row['skipped'] and not row['ci_neb_above_threshold'] for row in judged),
        'missed_skips': sum(not row['skipped'] and row['ci_neb_above_threshold'] for row in judged),
    }
    summary['force_call_ratio_prescreen_over_ci_neb'] = round(
        summary['prescreen_force_calls_total'] / max(1, summary['ci_neb_force_calls_total']), 3
    )
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
