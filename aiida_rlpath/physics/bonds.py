"""Bond analysis: neighbour lists, the O–O bond of the agent, Si–O coordination, verified dissociation.

Lengths in Å, energies in eV. Neighbours are found with ASE's periodic neighbour list.
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.neighborlist import neighbor_list

from .pes import PESSpec, as_calculator
from .relax import relax

__all__ = (
    'BOND_CUTOFFS',
    'OOBond',
    'Verification',
    'bonded_neighbours',
    'coordination',
    'largest_void',
    'o2_bond',
    'verify_dissociation',
)

#: Pair cut-offs (Å) for "bonded": Si–O 2.0 (bond 1.61, next shell > 3), O–O 1.6 (O2 1.21–1.27, peroxy
#: ~1.5, tetrahedral O···O 2.6), Si–Si 2.7 (bond 2.35), O–H 1.2, Si–H 1.8.
BOND_CUTOFFS: dict[tuple[str, str], float] = {
    ('Si', 'O'): 2.0,
    ('O', 'O'): 1.6,
    ('Si', 'Si'): 2.7,
    ('O', 'H'): 1.2,
    ('Si', 'H'): 1.8,
    ('H', 'H'): 0.9,
}


def _cutoffs(overrides: dict[tuple[str, str], float] | None) -> dict[tuple[str, str], float]:
    merged = dict(BOND_CUTOFFS)
    for (a, b), value in (overrides or {}).items():
        merged[(a, b)] = value
        merged.pop((b, a), None)
    return merged


def bonded_neighbours(
    atoms: Atoms, index: int, species: str | None = None, cutoffs: dict[tuple[str, str], float] | None = None
) -> list[int]:
    """Indices of the atoms bonded to atom ``index`` (optionally only of chemical ``species``)."""
    i, j = neighbor_list('ij', atoms, _cutoffs(cutoffs))
    found = sorted(set(j[i == index].tolist()))
    symbols = atoms.get_chemical_symbols()
    return [k for k in found if species is None or symbols[k] == species]


def coordination(
    atoms: Atoms, center: str, neighbour: str, cutoffs: dict[tuple[str, str], float] | None = None
) -> np.ndarray:
    """Number of ``neighbour`` atoms bonded to each atom; entries for atoms not of species ``center`` are -1."""
    symbols = np.array(atoms.get_chemical_symbols())
    i, j = neighbor_list('ij', atoms, _cutoffs(cutoffs))
    keep = symbols[j] == neighbour
    counts = np.bincount(i[keep], minlength=len(atoms))
    return np.where(symbols == center, counts, -1)


def largest_void(
    atoms: Atoms, rng: np.random.Generator, candidates: int, z_range: tuple[float, float] | None = None
) -> np.ndarray:
    """The point (Å) farthest from every atom among ``candidates`` random points in the cell drawn from ``rng``
    (heights uniform in ``z_range``, Å, if given): the centre of the largest void found."""
    points = rng.random((candidates, 3)) @ atoms.cell.array
    if z_range is not None:
        points[:, 2] = rng.uniform(*z_range, candidates)
    probe = atoms + Atoms('X' * candidates, positions=points)
    n = len(atoms)
    nearest = [probe.get_distances(n + k, list(range(n)), mic=True).min() for k in range(candidates)]
    return points[int(np.argmax(nearest))]


@dataclasses.dataclass(frozen=True)
class OOBond:
    """State of the agent's O–O pair: ``distance`` (Å, minimum image) and ``bonded`` (below the cut-off)."""

    distance: float
    bonded: bool


def o2_bond(atoms: Atoms, agent: t.Sequence[int], cutoff: float = BOND_CUTOFFS[('O', 'O')]) -> OOBond:
    """The O–O bond of the agent (two atom indices), with periodic minimum-image distance."""
    first, second = agent
    distance = float(atoms.get_distance(first, second, mic=True))
    return OOBond(distance, distance <= cutoff)


@dataclasses.dataclass
class Verification:
    """Evidence for or against a dissociation of the agent O2.

    :param dissociated: all three criteria hold: O–O beyond ``separation``, each O bonded to Si, and both
        still hold after a seeded perturb-and-relax.
    :param oo_distance: O–O distance before the check, Å.
    :param si_neighbours: Si neighbours of each agent O before the check.
    :param oo_distance_after: O–O distance after perturb-and-relax, Å (``nan`` if not run).
    :param si_neighbours_after: Si neighbours of each agent O after perturb-and-relax.
    :param energy_before: energy of the given structure, eV; ``energy_after`` of the perturbed-relaxed one.
    :param force_calls: energy+force evaluations spent.
    :param reasons: why it is not a dissociation (empty when it is).
    """

    dissociated: bool
    oo_distance: float
    si_neighbours: list[list[int]]
    oo_distance_after: float = float('nan')
    si_neighbours_after: list[list[int]] = dataclasses.field(default_factory=list)
    energy_before: float = float('nan')
    energy_after: float = float('nan')
    force_calls: int = 0
    reasons: list[str] = dataclasses.field(default_factory=list)


def _criteria(atoms: Atoms, agent, separation: float, cutoffs) -> tuple[float, list[list[int]], list[str]]:
    distance = o2_bond(atoms, agent).distance
    neighbours = [bonded_neighbours(atoms, index, 'Si', cutoffs) for index in agent]
    reasons = []
    if distance <= separation:
        reasons.append(f'O–O distance {distance:.3f} Å is not beyond {separation} Å')
    for index, found in zip(agent, neighbours, strict=True):
        if not found:
            reasons.append(f'O {index} is bonded to no Si')
    return distance, neighbours, reasons


def verify_dissociation(
    atoms: Atoms,
    agent: t.Sequence[int],
    pes: PESSpec | Calculator,
    seed: int,
    separation: float = 2.0,
    perturbation: float = 0.05,
    fmax: float = 0.1,
    max_steps: int = 300,
    cutoffs: dict[tuple[str, str], float] | None = None,
) -> Verification:
    """Is the agent O2 (indices ``agent``) dissociated, and does that persist?

    Criteria: the O–O distance exceeds ``separation`` (Å); each O is bonded to at least one Si; and after
    displacing every free atom by Gaussian noise of ``perturbation`` Å (drawn from ``seed``) and relaxing to
    ``fmax`` (eV/Å), both still hold. The perturb-and-relax runs only when the first two hold.
    """
    distance, neighbours, reasons = _criteria(atoms, agent, separation, cutoffs)
    result = Verification(False, distance, neighbours, reasons=reasons)
    if reasons:
        return result
    calc = as_calculator(pes, atoms)
    probe = atoms.copy()
    probe.calc = calc
    result.energy_before = float(probe.get_potential_energy())
    rng = np.random.default_rng(seed)
    probe.set_positions(probe.positions + rng.normal(0.0, perturbation, probe.positions.shape))  # respects FixAtoms
    relaxed = relax(probe, calc, fmax=fmax, max_steps=max_steps)
    result.force_calls = relaxed.force_calls + 1
    result.energy_after = relaxed.energy
    if relaxed.error:
        result.reasons.append(f'perturb-and-relax failed: {relaxed.error}')
        return result
    distance_after, neighbours_after, reasons_after = _criteria(relaxed.atoms, agent, separation, cutoffs)
    result.oo_distance_after, result.si_neighbours_after = distance_after, neighbours_after
    result.reasons.extend(f'after perturb-and-relax: {reason}' for reason in reasons_after)
    result.dissociated = not result.reasons
    return result
