"""Molecular dynamics and minimisation run inside the in-process LAMMPS library (no ASE stepping).

Temperatures in K, times in fs, positions in Å, energies in eV. Used by the system builders (oxide growth,
melt-quench); for production MD on remote machines the workflows use aiida-lammps CalcJobs instead.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.io.lammpsdata import write_lammps_data

from .pes import LAMMPS_KINDS, MASSES, PESSpec
from .runtime import new_lammps

__all__ = ('MDResult', 'lammps_md')

KCAL_PER_MOL_IN_EV = 0.0433641043


@dataclasses.dataclass
class MDResult:
    """Outcome of :func:`lammps_md`: final ``atoms`` (constraints kept), potential ``energy`` (eV), ``steps``
    run, final ``temperature`` (K), and ``error`` (``None`` if LAMMPS finished)."""

    atoms: Atoms
    energy: float
    steps: int
    temperature: float
    error: str | None = None


def _fixed_indices(atoms: Atoms) -> list[int]:
    fixed: list[int] = []
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            fixed.extend(int(i) for i in constraint.index)
    return sorted(set(fixed))


def _check_cell(atoms: Atoms) -> None:
    cell = atoms.cell.array
    if not np.allclose(cell - np.diag(np.diag(cell)), 0.0):
        raise ValueError('lammps_md needs an orthogonal cell (slabs and cubic boxes)')
    for axis in np.flatnonzero(~atoms.pbc):
        low, high = atoms.positions[:, axis].min(), atoms.positions[:, axis].max()
        if low < 0 or high >= cell[axis, axis]:
            raise ValueError(
                f'atoms span {low:.2f}..{high:.2f} Å along non-periodic axis {"xyz"[axis]}, outside the cell '
                f'(0..{cell[axis, axis]:.2f} Å): add vacuum'
            )


def lammps_md(
    atoms: Atoms,
    pes: PESSpec,
    temperature: float,
    steps: int,
    seed: int,
    timestep: float = 0.25,
    final_temperature: float | None = None,
    damping: float = 100.0,
    minimize_steps: int = 0,
    velocities: dict[int, np.ndarray] | None = None,
    unthermostatted: list[int] | None = None,
) -> MDResult:
    """Langevin MD of ``atoms`` on a LAMMPS PES, optionally ramping the target to ``final_temperature``.

    :param temperature: thermostat target at the start, K (velocities are drawn from ``seed`` at this T).
    :param steps: MD steps; ``timestep`` in fs (0.25 fs suits ReaxFF with O2), ``damping`` in fs.
    :param final_temperature: linear ramp target at the end (a quench), K; ``None`` keeps ``temperature``.
    :param minimize_steps: conjugate-gradient minimisation steps after the MD (0: none).
    :param velocities: extra velocity (Å/fs) added to given atoms after thermalisation, e.g. a deposited O2.
    :param unthermostatted: atoms integrated without the thermostat (ballistic arrivals); the rest is damped.

    Atoms fixed by :class:`~ase.constraints.FixAtoms` do not move. The input is not modified.
    """
    if pes.kind not in LAMMPS_KINDS:
        raise ValueError(f'lammps_md needs a LAMMPS PES, not `{pes.kind}`')
    _check_cell(atoms)
    pes.check_species(atoms.get_chemical_symbols())
    header, commands = pes.lammps_setup()
    real_units = header[0] == 'units real'
    time_unit = 1.0 if real_units else 1.0e-3  # LAMMPS time: fs (real) or ps (metal)
    velocity_unit = 1.0 if real_units else 1.0e3  # Å/fs -> Å/fs (real) or Å/ps (metal)
    fixed = _fixed_indices(atoms)
    lmp = new_lammps()
    with tempfile.TemporaryDirectory(prefix='rlpath-md-') as folder:
        data = os.path.join(folder, 'structure.data')
        inside = atoms.copy()
        inside.wrap()  # read_data rejects atoms outside the periodic box
        write_lammps_data(
            data, inside, specorder=list(pes.elements), atom_style=header[1].split()[1], masses=False, units='metal'
        )
        try:
            for line in header:
                lmp.command(line)
            # a non-periodic z (slabs) is shrink-wrapped, so an atom leaving into vacuum is not lost
            lmp.command('boundary p p p' if all(atoms.pbc) else 'boundary p p m')
            lmp.command(f'read_data {data}')
            for i, symbol in enumerate(pes.elements, start=1):
                lmp.command(f'mass {i} {MASSES.get(symbol, 1.0)}')
            for line in commands:
                lmp.command(line)
            lmp.command('neighbor 2.0 bin')
            lmp.command('neigh_modify every 1 delay 0 check yes')
            lmp.command(f'timestep {timestep * time_unit}')
            if fixed:
                lmp.command(f'group frozen id {" ".join(str(i + 1) for i in fixed)}')
                lmp.command('group mobile subtract all frozen')
                lmp.command('fix freeze frozen setforce 0.0 0.0 0.0')
            else:
                lmp.command('group mobile union all all')
            end_t = temperature if final_temperature is None else final_temperature
            if steps > 0:
                lmp.command(f'velocity mobile create {temperature} {seed % 900_000_000 + 1} dist gaussian mom yes')
                for index, velocity in (velocities or {}).items():
                    vx, vy, vz = np.asarray(velocity) * velocity_unit
                    lmp.command(f'group kick{index} id {index + 1}')
                    lmp.command(f'velocity kick{index} set {vx} {vy} {vz} sum yes units box')
                lmp.command('fix integrate mobile nve')
                damp = damping * time_unit
                bath = 'mobile'
                if unthermostatted:
                    lmp.command(f'group ballistic id {" ".join(str(i + 1) for i in unthermostatted)}')
                    lmp.command('group bath subtract mobile ballistic')
                    bath = 'bath'
                lmp.command(f'fix thermostat {bath} langevin {temperature} {end_t} {damp} {seed % 900_000_000 + 7}')
                lmp.command('compute mobile_t mobile temp')
                lmp.command('thermo_style custom step pe c_mobile_t')
                lmp.command(f'run {steps}')
                lmp.command('unfix thermostat')
                lmp.command('unfix integrate')
            if minimize_steps > 0:
                lmp.command('min_style cg')
                lmp.command(f'minimize 0.0 1.0e-4 {minimize_steps} {10 * minimize_steps}')
            lmp.command('run 0')
            energy = lmp.get_thermo('pe') * (KCAL_PER_MOL_IN_EV if real_units else 1.0)
            final_t = float(lmp.extract_compute('mobile_t', 0, 0)) if steps > 0 else 0.0  # global scalar
            positions = np.array(lmp.gather_atoms('x', 1, 3), dtype=float).reshape(-1, 3)
            error = None
        except Exception as exception:  # lost atoms, bond/ghost errors, ...
            positions, energy, final_t, error = atoms.positions, float('nan'), float('nan'), str(exception)
        finally:
            lmp.close()
    result = atoms.copy()
    result.set_positions(positions, apply_constraint=False)
    result.wrap()
    return MDResult(result, float(energy), steps, final_t, error)
