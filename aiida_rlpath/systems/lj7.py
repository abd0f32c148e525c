"""The 2D Lennard-Jones 7 cluster (ε = σ = 1): minima and the (μ2, μ3) collective variables.

Energies in ε, lengths in σ. The four lowest minima are -12.535 (hexagon with a centre atom), -11.501,
-11.477 and -11.403 ε (Dellago, Bolhuis and Chandler, J. Chem. Phys. 108, 9236 (1998)).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.optimize import minimize

from aiida_rlpath.physics.pes import lj2d_energy_forces

__all__ = (
    'STATE_CVS',
    'LJ7Minimum',
    'collective_variables',
    'coordination_numbers',
    'find_minima',
    'hexagon',
    'minimum_positions',
    'relax_2d',
)

N_ATOMS = 7
R0, N_SWITCH, M_SWITCH = 1.5, 8, 16

#: (μ2, μ3) of the four lowest minima C0…C3 (energies −12.535, −11.501, −11.477, −11.403 ε), from
#: ``find_minima(seed=0)``; the metastable states of the Langevin sampler are balls around them.
STATE_CVS = {
    'C0': (0.74719, 1.31838),
    'C1': (0.95803, 0.29860),
    'C2': (0.75530, 0.35104),
    'C3': (0.59175, -0.11604),
}


def hexagon(bond: float = 2 ** (1 / 6)) -> np.ndarray:
    """Centred hexagon, the global minimum's shape (7×2 positions, σ), before relaxation."""
    angles = np.arange(6) * np.pi / 3
    ring = bond * np.column_stack([np.cos(angles), np.sin(angles)])
    return np.vstack([[0.0, 0.0], ring])


def relax_2d(xy: np.ndarray, gtol: float = 1e-10) -> tuple[np.ndarray, float]:
    """Relax 2D positions with L-BFGS on the analytic LJ gradient; return (positions, energy in ε)."""

    def fun(flat):
        energy, forces = lj2d_energy_forces(flat.reshape(-1, 2))
        return energy, -forces.ravel()

    result = minimize(fun, np.asarray(xy, float).ravel(), jac=True, method='L-BFGS-B', options={'gtol': gtol})
    positions = result.x.reshape(-1, 2)
    return positions - positions.mean(axis=0), float(result.fun)


def coordination_numbers(xy: np.ndarray) -> np.ndarray:
    """c_i = Σ_j (1 − (r_ij/r0)^8) / (1 − (r_ij/r0)^16), r0 = 1.5 σ (rational switching function)."""
    delta = xy[:, None, :] - xy[None, :, :]
    ratio = np.sqrt(np.einsum('ijk,ijk->ij', delta, delta)) / R0
    np.fill_diagonal(ratio, np.inf)
    with np.errstate(invalid='ignore', divide='ignore'):
        switch = (1 - ratio**N_SWITCH) / (1 - ratio**M_SWITCH)
    switch = np.where(np.isclose(ratio, 1.0), N_SWITCH / M_SWITCH, switch)  # the limit at r = r0
    switch = np.where(np.isinf(ratio), 0.0, switch)
    return switch.sum(axis=1)


def collective_variables(xy: np.ndarray) -> tuple[float, float]:
    """(μ2, μ3): second and third central moments of the coordination numbers."""
    c = coordination_numbers(np.asarray(xy, float))
    deviation = c - c.mean()
    return float(np.mean(deviation**2)), float(np.mean(deviation**3))


@dataclasses.dataclass(frozen=True)
class LJ7Minimum:
    """A local minimum: ``positions`` (7×2, σ, centred), ``energy`` (ε) and its ``mu2``, ``mu3``."""

    positions: np.ndarray
    energy: float
    mu2: float
    mu3: float


def _random_cluster(rng: np.random.Generator, radius: float = 1.6, min_distance: float = 0.9) -> np.ndarray:
    points: list[np.ndarray] = []
    while len(points) < N_ATOMS:
        candidate = rng.uniform(-radius, radius, 2)
        if np.linalg.norm(candidate) <= radius and all(np.linalg.norm(candidate - p) >= min_distance for p in points):
            points.append(candidate)
    return np.array(points)


def find_minima(seed: int = 0, trials: int = 300, count: int = 4, tolerance: float = 1e-3) -> list[LJ7Minimum]:
    """The ``count`` lowest distinct minima found by relaxing ``trials`` random clusters drawn from ``seed``.

    Minima are distinct when their energies differ by more than ``tolerance`` ε. Sorted by energy.
    """
    rng = np.random.default_rng(seed)
    found: dict[float, LJ7Minimum] = {}
    for start in [hexagon()] + [_random_cluster(rng) for _ in range(trials)]:
        positions, energy = relax_2d(start)
        if any(abs(energy - known) <= tolerance for known in found):
            continue
        found[energy] = LJ7Minimum(positions, energy, *collective_variables(positions))
    return [found[key] for key in sorted(found)][:count]


@functools.lru_cache(maxsize=1)
def _lowest_minima() -> tuple[LJ7Minimum, ...]:
    return tuple(find_minima(seed=0, trials=100))


def minimum_positions(state: str) -> np.ndarray:
    """Positions (7×2, σ, centred) of the minimum of state ``state`` (``C0``…``C3``, by increasing energy)."""
    if state not in STATE_CVS:
        raise ValueError(f'unknown LJ7 state {state!r}; known: {", ".join(STATE_CVS)}')
    return _lowest_minima()[list(STATE_CVS).index(state)].positions.copy()
