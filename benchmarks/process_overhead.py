"""Cost of provenance per call: one LAMMPS energy+force evaluation as a plain function vs as a calcfunction.

Usage: ``python benchmarks/process_overhead.py [--calls N] [--atoms-per-side K]``

Both variants evaluate the same Tersoff energy of a diamond-Si supercell (8·K³ atoms) in the in-process LAMMPS
library, side by side in one run, on a throw-away AiiDA profile (SQLite storage, no broker) that is deleted
afterwards; your own profiles are not touched. The last line is one JSON object:
``plain_ms`` and ``calcfunction_ms`` (median wall time per call, ms), ``overhead_ms`` (their difference),
``ratio`` (calcfunction / plain), ``identical`` (energies agree within 1e-9 eV) and ``max_energy_diff_eV``.
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=20, help='evaluations per variant (default 20)')
    parser.add_argument('--atoms-per-side', type=int, default=3, help='supercell repeats K (8*K^3 atoms)')
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix='rlpath-bench-')
    os.environ['AIIDA_PATH'] = workdir  # before aiida is imported: never touch the user's configuration
    warnings.filterwarnings('ignore', message='Creating AiiDA configuration folder')
    try:
        print(json.dumps(run(args.calls, args.atoms_per_side)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(calls: int, repeats: int) -> dict:
    from aiida import orm
    from aiida.engine import calcfunction
    from aiida.manage.configuration import create_profile, get_config, load_profile
    from ase.build import bulk
    from ase.calculators.lammpslib import LAMMPSlib

    from aiida_rlpath.physics.runtime import ensure_lammps_library, lammps_potential_path

    config = get_config(create=True)
    create_profile(config, name='bench', email='bench@localhost', storage_backend='core.sqlite_dos', storage_config={})
    config.store()
    load_profile('bench', allow_switch=True)
    ensure_lammps_library()

    atoms = bulk('Si', 'diamond', a=5.432, cubic=True).repeat(repeats)
    potential = lammps_potential_path('Si.tersoff')
    atoms.calc = LAMMPSlib(
        lmpcmds=['pair_style tersoff', f'pair_coeff * * {potential} Si'], atom_types={'Si': 1}, keep_alive=True
    )

    def energy(seed: int) -> float:
        """Energy (eV) after a seeded 0.01 Å rattle, so no call is a cache hit inside LAMMPSlib."""
        probe = atoms.copy()
        probe.calc = atoms.calc
        probe.rattle(0.01, seed=seed)
        value = probe.get_potential_energy()
        probe.get_forces()
        return float(value)

    @calcfunction
    def energy_node(seed: orm.Int) -> orm.Float:
        return orm.Float(energy(seed.value))

    energy(0)  # warm up LAMMPS and the neighbour lists
    plain_times, node_times, plain_e, node_e = [], [], [], []
    for seed in range(1, calls + 1):
        start = time.perf_counter()
        plain_e.append(energy(seed))
        plain_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        node_e.append(energy_node(orm.Int(seed)).value)
        node_times.append(time.perf_counter() - start)

    plain_ms = 1000 * statistics.median(plain_times)
    node_ms = 1000 * statistics.median(node_times)
    # LAMMPSlib moves atoms in place between calls, so the last bits can differ with the neighbour-list order.
    max_diff = max(abs(a - b) for a, b in zip(plain_e, node_e, strict=True))
    return {
        'atoms': len(atoms),
        'calls': calls,
        'plain_ms': round(plain_ms, 2),
        'calcfunction_ms': round(node_ms, 2),
        'overhead_ms': round(node_ms - plain_ms, 2),
        'ratio': round(node_ms / plain_ms, 2),
        'identical': max_diff <= 1e-9,
        'max_energy_diff_eV': max_diff,
    }


if __name__ == '__main__':
    main()
