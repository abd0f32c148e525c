"""Silica glass by melt-quench, and water insertion, for the water-diffusion (MAP) method.

Lengths in Å, temperatures in K, density in g/cm³. The glass is made at fixed volume (so its density is the
requested one): random SiO2 placement, melt at 5000 K and linear quench to 300 K on Munetoh's Tersoff
potential (``SiO.tersoff``, fitted to SiO2, about 20× cheaper than ReaxFF), then a short 300 K MD and a
minimisation on the target PES (ReaxFF by default), so that the structure is a minimum of the PES used later.
"""

from __future__ import annotations

import dataclasses

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
    from aiida_rlpath.physics.bonds import coordination

    schedule = schedule or MeltQuench()
    rng = np.random.default_rng(seed)
    length = (units * SIO2_MASS / (density / AMU_PER_A3_IN_G_PER_CM3)) ** (1 / 3)
    atoms = _random_placement(['Si'] * units + ['O'] * (2 * units), length, rng)
    steps = [
        (MELT_QUENCH_PES, schedule.melt_temperature, schedule.melt_steps, 1.0, None, 0),
        (MELT_QUENCH_PES, schedule.melt_temperature, schedule.quench_steps, 1.0, 300.0, 0),
        (pes, 300.0, schedule.settle_steps, 0.25, None, schedule.minimize_steps),
    ]
    for spec, temperature, count, timestep, final, minimize in steps:
        seed_md = int(rng.integers(2**31))
        result = lammps_md(atoms, spec, temperature, count, seed_md, timestep, final, minimize_steps=minimize)
        if result.error:
            raise RuntimeError(f'melt-quench failed on {spec.kind}: {result.error}')
        atoms = result.atoms
    si_o = coordination(atoms, 'Si', 'O')
    fourfold = float(np.mean(si_o[si_o >= 0] == 4))
    mass = sum(MASSES[s] for s in atoms.get_chemical_symbols())
    return SilicaGlass(atoms, mass / atoms.get_volume() * AMU_PER_A3_IN_G_PER_CM3, fourfold, seed)


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
    from aiida_rlpath.physics.relax import relax

    glass = build_silica_glass(seed, units, density, pes, schedule)
    atoms, water = insert_h2o(glass.atoms, seed + 1)
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
        'seed': seed,
    }
    return relaxed.atoms, water, metadata
