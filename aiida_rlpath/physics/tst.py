"""Transition-state theory: Eyring and harmonic rates, diffusion times, and splitting energy profiles.

Energies in eV, temperatures in K, times in s, rates in 1/s.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy.signal import find_peaks

__all__ = (
    'BOLTZMANN_EV_PER_K',
    'PLANCK_EV_S',
    'Segment',
    'diffusion_time',
    'eyring_rate',
    'harmonic_rate',
    'split_profile',
)

BOLTZMANN_EV_PER_K = 8.617333262e-5  # CODATA 2018, eV/K
PLANCK_EV_S = 4.135667696e-15  # CODATA 2018, eV·s


def eyring_rate(barrier: float | np.ndarray, temperature: float) -> float | np.ndarray:
    """Eyring rate k = k_B T / h · exp(−E / k_B T) in 1/s for a barrier ``E`` (eV) at ``temperature`` (K)."""
    if temperature <= 0:
        raise ValueError(f'temperature must be positive, got {temperature} K')
    kt = BOLTZMANN_EV_PER_K * temperature
    return kt / PLANCK_EV_S * np.exp(-np.asarray(barrier) / kt)


def harmonic_rate(
    barrier: float, temperature: float, minimum_frequencies: np.ndarray, saddle_frequencies: np.ndarray
) -> float:
    """Vineyard harmonic-TST rate (1/s): Π ν_min / Π ν_saddle · exp(−E / k_B T).

    ``minimum_frequencies`` (3N−k real modes) and ``saddle_frequencies`` (the same count minus the unstable
    mode) in Hz; ``barrier`` in eV; ``temperature`` in K.
    """
    nu_min = np.asarray(minimum_frequencies, dtype=float)
    nu_sad = np.asarray(saddle_frequencies, dtype=float)
    if nu_min.size != nu_sad.size + 1:
        raise ValueError(f'need one more minimum mode than saddle modes, got {nu_min.size} and {nu_sad.size}')
    prefactor = float(np.exp(np.sum(np.log(nu_min)) - np.sum(np.log(nu_sad))))
    return prefactor * float(np.exp(-barrier / (BOLTZMANN_EV_PER_K * temperature)))


def diffusion_time(barriers: np.ndarray | list[float], temperature: float) -> float:
    """Diffusion time τ = Σ_i h / (k_B T) · exp(E_i / k_B T) in s: the sum of inverse Eyring rates."""
    values = np.asarray(barriers, dtype=float)
    return float(np.sum(1.0 / eyring_rate(values, temperature)))


@dataclasses.dataclass(frozen=True)
class Segment:
    """One minimum–maximum–minimum piece of an energy profile (indices into the profile; energies in eV)."""

    start: int
    peak: int
    end: int
    forward_barrier: float
    backward_barrier: float


def split_profile(energies: np.ndarray | list[float], prominence: float = 0.05) -> list[Segment]:
    """Split an energy profile into minimum–maximum–minimum segments.

    Maxima are interior peaks found by :func:`scipy.signal.find_peaks` with at least ``prominence`` (eV);
    between two maxima the segment boundary is the lowest point. The profile's end points bound the first and
    last segments. A profile with no such peak gives no segment.
    """
    values = np.asarray(energies, dtype=float)
    if values.ndim != 1 or values.size < 3:
        return []
    peaks, _ = find_peaks(values, prominence=prominence)
    if peaks.size == 0:
        return []
    bounds = [0]
    for left, right in itertools.pairwise(peaks):
        bounds.append(int(left + np.argmin(values[left : right + 1])))
    bounds.append(values.size - 1)
    segments = []
    for i, peak in enumerate(peaks):
        start, end = bounds[i], bounds[i + 1]
        segments.append(
            Segment(
                start=start,
                peak=int(peak),
                end=end,
                forward_barrier=float(values[peak] - values[start]),
                backward_barrier=float(values[peak] - values[end]),
            )
        )
    return segments
