"""Cohesive energy of diamond Si with the Tersoff potential, as a calcfunction node.

Run with ``verdi run examples/si_tersoff_energy.py [lattice_constant_Å]`` (default 5.432 Å). It evaluates the
energy with the in-process LAMMPS library (no LD_LIBRARY_PATH needed) and stores the input lattice constant,
the calculation and its energy per atom (eV) in the provenance graph; ``verdi process show PK`` shows them.
Tersoff (1988) gives -4.63 eV/atom at 5.432 Å.
"""

import sys

from aiida import orm
from aiida.engine import calcfunction

from aiida_rlpath.physics.runtime import lammps_potential_path, new_lammps


@calcfunction
def si_tersoff_cohesive_energy(lattice_constant: orm.Float) -> orm.Float:
    """Energy per atom (eV) of diamond Si at ``lattice_constant`` (Å) with LAMMPS' ``Si.tersoff``."""
    lmp = new_lammps()
    try:
        for line in (
            'units metal',
            f'lattice diamond {lattice_constant.value}',
            'region box block 0 1 0 1 0 1',
            'create_box 1 box',
            'create_atoms 1 box',
            'mass 1 28.0855',
            'pair_style tersoff',
            f'pair_coeff * * {lammps_potential_path("Si.tersoff")} Si',
            'run 0',
        ):
            lmp.command(line)
        return orm.Float(lmp.get_thermo('pe') / lmp.get_natoms())
    finally:
        lmp.close()


if __name__ == '__main__':
    a0 = float(sys.argv[1]) if len(sys.argv) > 1 else 5.432
    energy, node = si_tersoff_cohesive_energy.run_get_node(orm.Float(a0))
    print(f'a = {a0:.4f} Å: E = {energy.value:.4f} eV/atom  (calcfunction PK {node.pk}, energy node PK {energy.pk})')
