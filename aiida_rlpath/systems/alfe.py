"""Random Al/Fe crystals with fixed cells for RL relaxation: reference minima and distorted starts.

Lengths in Å, energies in eV. Cells are generated with pymatgen; reference minima are relaxed on the Mendelev
Al–Fe EAM (``AlFe_mm.eam.fs``) after a small rattle, so symmetry cannot hold them at a saddle.
"""

from __future__ import annotations

import dataclasses
import typing as t
from pathlib import Path

import numpy as np
from ase import Atoms
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from aiida_rlpath.physics.pes import PESSpec
from aiida_rlpath.physics.relax import relax

__all__ = (
    'ALFE_PES',
    'TRAINING_SIZES',
    'VALIDATION_SIZES',
    'ReferenceMinimum',
    'distort',
    'random_alfe_cell',
    'reference_minimum',
    'reference_set',
    'split_by_size',
    'write_cifs',
)

ALFE_PES = PESSpec('eam/fs', 'AlFe_mm.eam.fs', ('Al', 'Fe'))
VOLUME_PER_ATOM = {'Al': 16.6, 'Fe': 11.8}  # Å³, the elements' bulk values


def random_alfe_cell(n_atoms: int, seed: int, min_distance: float = 1.9, max_tries: int = 10_000) -> Structure:
    """A random Al/Fe crystal (pymatgen ``Structure``) of ``n_atoms`` atoms, drawn from ``seed``.

    The composition is uniform over 0..n Fe atoms; the lattice has lengths and angles varied by up to 15 %
    around a cube holding the elements' bulk volumes; no two atoms come closer than ``min_distance`` Å (1.9 Å
    keeps random sequential placement below its jamming density in Fe-rich cells; 2.2 Å does not).
    """
    rng = np.random.default_rng(seed)
    n_fe = int(rng.integers(0, n_atoms + 1))
    species = ['Fe'] * n_fe + ['Al'] * (n_atoms - n_fe)
    volume = sum(VOLUME_PER_ATOM[s] for s in species)
    lengths = volume ** (1 / 3) * rng.uniform(0.85, 1.15, 3)
    angles = 90.0 * rng.uniform(0.85, 1.15, 3)
    lattice = Lattice.from_parameters(*lengths, *angles)
    lattice = lattice.scale(volume)
    for _ in range(max_tries // 200):  # random sequential placement can jam: start over
        coords: list[np.ndarray] = []
        for _ in range(200 * n_atoms):
            trial = rng.random(3)
            if not coords or lattice.get_all_distances([trial], coords)[0].min() >= min_distance:
                coords.append(trial)
                if len(coords) == n_atoms:
                    return Structure(lattice, species, coords)
    raise RuntimeError(f'could not place {n_atoms} atoms {min_distance} Å apart in {max_tries} tries')


@dataclasses.dataclass
class ReferenceMinimum:
    """A relaxed fixed-cell minimum: ``atoms``, ``energy`` (eV), ``fmax`` (eV/Å), ``converged``."""

    atoms: Atoms
    energy: float
    fmax: float
    converged: bool


def reference_minimum(
    structure: Structure, seed: int, fmax: float = 1e-3, rattle: float = 0.02, pes: PESSpec = ALFE_PES
) -> ReferenceMinimum:
    """Relax ``structure`` at fixed cell to ``fmax`` (eV/Å) on ``pes`` (the Mendelev Al–Fe EAM by default) after a
    seeded ``rattle`` (Å) breaks its symmetry."""
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.rattle(rattle, seed=seed)
    pes.check_species(atoms.get_chemical_symbols())
    calc = pes.calculator(atoms.get_chemical_symbols())
    result = relax(atoms, calc, fmax=fmax, max_steps=2000, optimizer='BFGS')
    if not result.converged:  # BFGS can stall on a bad Hessian estimate; FIRE carries on from there
        result = relax(result.atoms, calc, fmax=fmax, max_steps=5000, optimizer='FIRE')
    return ReferenceMinimum(result.atoms, result.energy, result.fmax, result.converged)


def distort(atoms: Atoms, beta: float, seed: int) -> Atoms:
    """``atoms`` with every coordinate displaced by β·U(−1, 1) Å, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    moved = atoms.copy()
    moved.positions = moved.positions + beta * rng.uniform(-1.0, 1.0, moved.positions.shape)
    return moved


#: Cell sizes of the validation set the relaxation benchmark reports on; training uses the other sizes.
VALIDATION_SIZES = (2, 3, 4, 5, 8, 10, 20)
TRAINING_SIZES = (6, 7, 9, 12)


def split_by_size(sizes: t.Iterable[int]) -> tuple[list[int], list[int]]:
    """Training and validation cell sizes: the split is by number of atoms, so validation cells are never seen."""
    sizes = sorted(set(int(n) for n in sizes))
    return [n for n in sizes if n not in VALIDATION_SIZES], [n for n in sizes if n in VALIDATION_SIZES]


def reference_set(sizes: t.Iterable[int], per_size: int, seed: int) -> list[ReferenceMinimum]:
    """``per_size`` relaxed reference minima for each cell size in ``sizes``, all drawn from ``seed``."""
    minima = []
    for n in sizes:
        for k in range(per_size):
            cell_seed = int(seed) * 100_003 + int(n) * 1_009 + k
            minima.append(reference_minimum(random_alfe_cell(int(n), seed=cell_seed), seed=cell_seed))
    return minima


def write_cifs(minima: t.Iterable[ReferenceMinimum], directory: str | Path) -> list[Path]:
    """Write each minimum as ``alfe_N{n}_{k}.cif`` under ``directory`` (made if missing); return the paths."""
    from ase.io import write

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths, counts = [], {}
    for minimum in minima:
        n = len(minimum.atoms)
        counts[n] = counts.get(n, -1) + 1
        path = directory / f'alfe_N{n}_{counts[n]}.cif'
        write(path, minimum.atoms, format='cif')
        paths.append(path)
    return paths
