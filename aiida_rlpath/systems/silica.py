"""Silica glass by melt-quench, and water insertion, for the water-diffusion (MAP) method.

Lengths in Å, temperatures in K, density in g/cm³. The glass is made at fixed volume (so its density is the
requested one): random SiO2 placement, melt at 5000 K and linear quench to 300 K on Munetoh's Tersoff
potential (``SiO.tersoff``, fitted to SiO2, about 20× cheaper than ReaxFF), then a short 300 K MD and a
minimisation on the target PES (ReaxFF by default), so that the structure is a minimum of the PES used later.
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np
from ase import Atoms

from aiida_rlpath.physics.md import lammps_md
from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES, MASSES, PESSpec

__all__ = (
    'MeltQuench',
    'SilicaGlass',
    'build_silica_glass',
    'build_water_in_glass',
    'insert_h2o',
    'silica_units_for_box',
)

AMU_PER_A3_IN_G_PER_CM3 = 1.66053907
SIO2_MASS = MASSES['Si'] + 2 * MASSES['O']
MELT_QUENCH_PES = PESSpec('tersoff', 'SiO.tersoff', ('Si', 'O'))


@dataclasses.dataclass(frozen=True)
class MeltQuench:
    """Melt ``melt_steps`` fs at ``melt_temperature`` K, quench linearly to 300 K in ``quench_steps`` fs (Tersoff,
    1 fs steps), then ``settle_steps`` MD steps of 0.25 fs at 300 K and ``minimize_steps`` CG steps on the PES."""

    melt_temperature: float = 5000.0
    melt_steps: int = 10_000
    quench_steps: int = 40_000
    settle_steps: int = 1000
    minimize_steps: int = 500


@dataclasses.dataclass
class SilicaGlass:
    """A glass: ``atoms``, its ``density`` (g/cm³), the fraction of Si with four O neighbours, the seed."""

    atoms: Atoms
    density: float
    fourfold_si_fraction: float
    seed: int


def silica_units_for_box(length: float, density: float = 2.2) -> int:
    """SiO2 formula units that fill a cubic box of side ``length`` (Å) at ``density`` (g/cm³)."""
    return round(density / AMU_PER_A3_IN_G_PER_CM3 * length**3 / SIO2_MASS)


def _random_placement(symbols: list[str], length: float, rng: np.random.Generator, min_distance: float = 1.6):
    positions: list[np.ndarray] = []
    while len(positions) < len(symbols):
        candidate = rng.random(3) * length
        if positions:
            delta = np.asarray(positions) - candidate
            delta -= length * np.round(delta / length)
            if np.min(np.einsum('ij,ij->i', delta, delta)) < min_distance**2:
                continue
        positions.append(candidate)
    return Atoms(symbols, positions=positions, cell=[length] * 3, pbc=True)


def melt_quench_start(seed: int, units: int, density: float = 2.2) -> tuple[Atoms, list[int]]:
    """The random SiO2 placement a melt-quench starts from (cubic box at ``density`` g/cm³, no pair closer than
    1.6 Å) and the seeds of its three MD stages (melt, quench, settle), all drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    length = (units * SIO2_MASS / (density / AMU_PER_A3_IN_G_PER_CM3)) ** (1 / 3)
    atoms = _random_placement(['Si'] * units + ['O'] * (2 * units), length, rng)
    return atoms, [int(rng.integers(2**31)) for _ in range(3)]


def melt_quench_script(schedule: MeltQuench, seeds: t.Sequence[int], data: str = 'start.data',
                       potential: str = 'SiO.tersoff', output: str = 'glass.data') -> str:  # fmt: skip
    """A LAMMPS input (metal units) for the melt and the quench of :func:`build_silica_glass` on Munetoh's Tersoff
    potential, as ``lammps_md`` runs them (1 fs steps, Langevin thermostat with 0.1 ps damping, velocities and
    thermostat seeded from ``seeds[0]`` and ``seeds[1]``), reading ``data`` and writing ``output``. For an
    aiida-lammps ``lammps.raw`` CalcJob; the last line prints the final potential energy (eV)."""
    lines = [
        'units metal', 'atom_style atomic', 'atom_modify map array sort 0 0', 'boundary p p p', f'read_data {data}',
        f'mass 1 {MASSES["Si"]}', f'mass 2 {MASSES["O"]}', 'pair_style tersoff', f'pair_coeff * * {potential} Si O',
        'neighbor 2.0 bin', 'neigh_modify every 1 delay 0 check yes', 'timestep 0.001', 'group mobile union all all',
        'thermo 1000', 'thermo_style custom step temp pe',
    ]  # fmt: skip
    stages = [(schedule.melt_steps, schedule.melt_temperature), (schedule.quench_steps, 300.0)]
    for (steps, final), stage_seed in zip(stages, seeds[:2], strict=True):
        if steps <= 0:
            continue
        start = schedule.melt_temperature
        lines += [
            f'velocity mobile create {start} {stage_seed % 900_000_000 + 1} dist gaussian mom yes',
            'fix integrate mobile nve',
            f'fix thermostat mobile langevin {start} {final} 0.1 {stage_seed % 900_000_000 + 7}',
            f'run {steps}',
            'unfix thermostat',
            'unfix integrate',
        ]
    lines += ['run 0', f'write_data {output}', 'print "RLPATH_ENERGY $(pe)"']
    return '\n'.join(lines) + '\n'


def finish_glass(atoms: Atoms, seed: int, pes: PESSpec, schedule: MeltQuench, glass_seed: int) -> SilicaGlass:
    """The last melt-quench stage: ``settle_steps`` of 0.25 fs MD at 300 K and ``minimize_steps`` CG steps on
    ``pes`` (seed ``seed``), then the glass's density (g/cm³) and four-fold Si fraction."""
    from aiida_rlpath.physics.bonds import coordination

    result = lammps_md(atoms, pes, 300.0, schedule.settle_steps, seed, 0.25, None,
                       minimize_steps=schedule.minimize_steps)  # fmt: skip
    if result.error:
        raise RuntimeError(f'melt-quench failed on {pes.kind}: {result.error}')
    atoms = result.atoms
    si_o = coordination(atoms, 'Si', 'O')
    fourfold = float(np.mean(si_o[si_o >= 0] == 4))
    mass = sum(MASSES[s] for s in atoms.get_chemical_symbols())
    return SilicaGlass(atoms, mass / atoms.get_volume() * AMU_PER_A3_IN_G_PER_CM3, fourfold, glass_seed)


def build_silica_glass(
    seed: int,
    units: int = 72,
    density: float = 2.2,
    pes: PESSpec = DEFAULT_OXIDATION_PES,
    schedule: MeltQuench | None = None,
) -> SilicaGlass:
    """Amorphous SiO2 of ``units`` formula units (default 72: 216 atoms) in a cubic box at ``density`` g/cm³.

    The paper-size box (30.48 Å) holds ``silica_units_for_box(30.48)`` = 624 units (1,872 atoms) at 2.2 g/cm³.
    """
    schedule = schedule or MeltQuench()
    atoms, seeds = melt_quench_start(seed, units, density)
    steps = [
        (schedule.melt_temperature, schedule.melt_steps, None),
        (schedule.melt_temperature, schedule.quench_steps, 300.0),
    ]
    for (temperature, count, final), seed_md in zip(steps, seeds[:2], strict=True):
        result = lammps_md(atoms, MELT_QUENCH_PES, temperature, count, seed_md, 1.0, final)
        if result.error:
            raise RuntimeError(f'melt-quench failed on {MELT_QUENCH_PES.kind}: {result.error}')
        atoms = result.atoms
    return finish_glass(atoms, seeds[2], pes, schedule, seed)


def water_in_glass(glass: SilicaGlass, pes: PESSpec, fmax: float = 0.05, relax_steps: int = 500):
    """One H2O in the largest void of ``glass`` (seeded by the glass's seed + 1), relaxed on ``pes`` to ``fmax``
    eV/Å; returns (atoms, water indices, metadata) as :func:`build_water_in_glass` does."""
    from aiida_rlpath.physics.relax import relax

    atoms, water = insert_h2o(glass.atoms, glass.seed + 1)
    relaxed = relax(atoms, pes, fmax=fmax, max_steps=relax_steps)
    if relaxed.error is not None or not np.isfinite(relaxed.energy):
        raise RuntimeError(f'glass with water did not relax: {relaxed.error}')
    metadata = {
        'density': glass.density,
        'fourfold_si_fraction': glass.fourfold_si_fraction,
        'energy': relaxed.energy,
        'fmax': relaxed.fmax,
        'box': float(atoms.cell.lengths()[0]),
        'atoms': len(atoms),
        'seed': glass.seed,
    }
    return relaxed.atoms, water, metadata


def insert_h2o(atoms: Atoms, seed: int, candidates: int = 2000) -> tuple[Atoms, list[int]]:
    """Return ``atoms`` with one H2O (O–H 0.957 Å, H–O–H 104.5°) in its largest void, and the water's indices.

    The void is the best of ``candidates`` random points (drawn from ``seed``) by distance to the nearest atom;
    the molecule gets a random orientation.
    """
    from aiida_rlpath.physics.bonds import largest_void

    rng = np.random.default_rng(seed)
    centre = largest_void(atoms, rng, candidates)
    n = len(atoms)
    bond, angle = 0.957, np.radians(104.5)
    local = np.array([[0, 0, 0], [bond, 0, 0], [bond * np.cos(angle), bond * np.sin(angle), 0]])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    water = Atoms('OH2', positions=(local - local.mean(axis=0)) @ q.T + centre)
    return atoms + water, [n, n + 1, n + 2]


def build_water_in_glass(
    seed: int,
    units: int = 24,
    density: float = 2.2,
    pes: PESSpec = DEFAULT_OXIDATION_PES,
    schedule: MeltQuench | None = None,
    fmax: float = 0.05,
    relax_steps: int = 500,
) -> tuple[Atoms, list[int], dict]:
    """The MAP start: a melt-quenched glass of ``units`` SiO2 units (default 24: 72 atoms, a 10.3 Å box at 2.2
    g/cm³) with one H2O in its largest void, relaxed on ``pes`` to ``fmax`` eV/Å (FIRE, ``relax_steps`` at most).

    Returns the atoms (water last), the water's indices (O, H, H) and what was measured (density, four-fold Si
    fraction, relaxed energy in eV, residual force, box length in Å). The paper's size is ``units=624``
    (1,872 atoms in 30.48 Å): hours of ReaxFF per step on two cores, so a protocol for clusters.
    """
    glass = build_silica_glass(seed, units, density, pes, schedule)
    return water_in_glass(glass, pes, fmax, relax_steps)
