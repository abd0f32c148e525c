"""Minimum-energy paths and barriers by (climbing-image) NEB, with a cheap pre-screen.

All energies are in eV, forces in eV/Å. Failures (a calculator error, lost atoms, exploding energies, no
convergence) come back as a result with ``converged=False`` and ``error`` set, never as an exception.
"""

from __future__ import annotations

import dataclasses
import io
import typing as t

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.mep import NEB

from .pes import PESSpec, as_calculator
from .relax import count_force_calls

__all__ = ('BarrierResult', 'NEBResult', 'SegmentNEB', 'barrier', 'interpolated_profile', 'neb', 'segment_neb')


@dataclasses.dataclass
class NEBResult:
    """A band between two minima.

    :param forward_barrier: max image energy − initial energy, eV.
    :param backward_barrier: max image energy − final energy, eV.
    :param energies: image energies along the band, eV (initial and final included).
    :param images: the band's structures (calculators detached).
    :param force_calls: energy+force evaluations spent (end points included).
    :param steps: optimizer steps.
    :param converged: the band reached ``fmax`` within ``max_steps`` with no error.
    :param method: what produced the numbers: ``'ci-neb'``, ``'neb'`` or ``'interpolation'``.
    :param error: why the band failed, or ``None``.
    """

    forward_barrier: float
    backward_barrier: float
    energies: list[float]
    images: list[Atoms]
    force_calls: int
    steps: int
    converged: bool
    method: str
    error: str | None = None

    @property
    def saddle_index(self) -> int:
        """Index of the highest image."""
        return int(np.nanargmax(self.energies)) if self.energies else 0


class _ImageCalculator(Calculator):
    """One image's view of a shared backend: caches its own energy and forces.

    ASE's NEB asks every image for its energy, then for its forces; one shared calculator would forget image
    i while computing image i+1 and evaluate everything twice. A proxy per image evaluates each geometry once
    (one LAMMPS instance, however many images).
    """

    implemented_properties: t.ClassVar[list[str]] = ['energy', 'free_energy', 'forces']

    def __init__(self, backend: Calculator):
        super().__init__()
        self.backend = backend

    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        probe = self.atoms.copy()
        probe.calc = self.backend
        energy = float(probe.get_potential_energy())
        self.results = {'energy': energy, 'free_energy': energy, 'forces': probe.get_forces(apply_constraint=False)}


def _make_band(initial: Atoms, final: Atoms, n_images: int, interpolation: str) -> list[Atoms]:
    images = [initial.copy()] + [initial.copy() for _ in range(n_images)] + [final.copy()]
    band = NEB(images, method='improvedtangent')
    band.interpolate(method=interpolation, mic=True, apply_constraint=False)
    return images


def _failed(method: str, error: str, calls: int, steps: int, images: list[Atoms] | None = None) -> NEBResult:
    band = [image.copy() for image in images] if images else []
    return NEBResult(float('nan'), float('nan'), [], band, calls, steps, False, method, error)


def _energies(images: list[Atoms], calc: Calculator) -> list[float]:
    energies = []
    for image in images:
        image.calc = calc
        energies.append(float(image.get_potential_energy()))
    return energies


def _result(images, energies, calls, steps, converged, method, max_barrier) -> NEBResult:
    values = np.asarray(energies)
    if not np.all(np.isfinite(values)):
        return _failed(method, 'non-finite energy along the band', calls, steps, images)
    forward = float(values.max() - values[0])
    backward = float(values.max() - values[-1])
    if forward > max_barrier:
        return _failed(method, f'band energy exploded: barrier {forward:.3g} eV > {max_barrier} eV', calls, steps)
    band = [image.copy() for image in images]
    return NEBResult(forward, backward, list(map(float, values)), band, calls, steps, converged, method)


def interpolated_profile(
    initial: Atoms,
    final: Atoms,
    pes: PESSpec | Calculator,
    n_images: int = 5,
    interpolation: str = 'linear',
    max_barrier: float = 50.0,
) -> NEBResult:
    """Single-point energies along an interpolated path (no relaxation): the cheapest barrier estimate.

    Usually above the true barrier, since the straight path is not the minimum-energy path.
    """
    calc = as_calculator(pes, initial)
    with count_force_calls(calc) as counter:
        try:
            images = _make_band(initial, final, n_images, interpolation)
            energies = _energies(images, calc)
        except Exception as exception:
            return _failed('interpolation', f'{type(exception).__name__}: {exception}', counter.count, 0)
    return _result(images, energies, counter.count, 0, True, 'interpolation', max_barrier)


def neb(
    initial: Atoms,
    final: Atoms,
    pes: PESSpec | Calculator,
    n_images: int = 5,
    climb: bool = True,
    fmax: float = 0.05,
    max_steps: int = 300,
    method: str = 'improvedtangent',
    interpolation: str = 'idpp',
    spring: float = 0.1,
    max_barrier: float = 50.0,
    start_band: list[Atoms] | None = None,
    maxstep: float = 0.05,
) -> NEBResult:
    """Nudged elastic band between two relaxed end points with ASE's NEB.

    :param n_images: interior images.
    :param climb: climbing image (the highest image climbs to the saddle).
    :param fmax: convergence threshold on the band's forces, eV/Å.
    :param max_steps: FIRE steps at most.
    :param method: ASE NEB tangent method, explicit because ASE's default changed ('improvedtangent').
    :param interpolation: ``'idpp'`` or ``'linear'`` initial band (ignored with ``start_band``).
    :param spring: spring constant, eV/Å².
    :param max_barrier: a barrier above this (eV) means the band exploded: reported as failed.
    :param start_band: a band to continue from (e.g. a pre-screen's), end points included.
    :param maxstep: largest FIRE displacement per step, Å. 0.05 Å: on ReaxFF, 0.1–0.2 Å steps threw an image of
        a downhill O2 band to +20–40 eV, while 0.05 Å converged it in 64 steps.
    """
    label = 'ci-neb' if climb else 'neb'
    calc = as_calculator(pes, initial)
    steps = 0
    with count_force_calls(calc) as counter:
        try:
            if start_band is None:
                images = _make_band(initial, final, n_images, interpolation)
            else:
                images = [image.copy() for image in start_band]
            for image in images:
                image.calc = _ImageCalculator(calc)
            converged = False
            if climb and start_band is None:
                # Climbing from an interpolated band is fragile on rough surfaces: relax a plain band first.
                _, steps = _run_band(images, spring, False, method, max(5 * fmax, 0.3), max_steps // 3, maxstep)
            converged, more = _run_band(images, spring, climb, method, fmax, max_steps - steps, maxstep)
            steps += more
            # Every image's proxy holds the energy of its current geometry: no evaluation is repeated.
            energies = [float(image.get_potential_energy()) for image in images]
        except Exception as exception:
            return _failed(label, f'{type(exception).__name__}: {exception}', counter.count, steps)
    return _result(images, energies, counter.count, steps, converged, label, max_barrier)


def _run_band(images, spring, climb, method, fmax, steps, maxstep) -> tuple[bool, int]:
    """Relax the band in place with FIRE (steps of at most ``maxstep`` Å); return (converged, steps taken)."""
    from ase.optimize import FIRE

    band = NEB(images, k=spring, climb=climb, method=method)
    optimizer = FIRE(band, logfile=io.StringIO(), maxstep=maxstep)
    converged = bool(optimizer.run(fmax=fmax, steps=max(steps, 0)))
    return converged, optimizer.nsteps


@dataclasses.dataclass
class BarrierResult:
    """A barrier estimate and how it was obtained.

    :param barrier: forward barrier, eV (``nan`` on failure).
    :param method: ``'prescreen'`` (the loose band showed the barrier is clearly above the threshold, so the
        climbing-image NEB was skipped), ``'ci-neb'``, or ``'interpolation-bound'`` (the CI-NEB did not converge
        and ended above the interpolated path, whose maximum is then reported as an upper estimate).
    :param prescreen_barrier: the loose band's barrier, eV.
    :param force_calls: total evaluations (pre-screen included).
    :param converged: the reported number comes from a converged calculation (or a decisive pre-screen).
    :param band: the final band's result.
    """

    barrier: float
    method: str
    prescreen_barrier: float
    force_calls: int
    converged: bool
    band: NEBResult


def barrier(
    initial: Atoms,
    final: Atoms,
    pes: PESSpec | Calculator,
    threshold: float,
    margin: float = 0.5,
    n_images: int = 5,
    prescreen_steps: int = 100,
    prescreen_fmax: float = 0.5,
    fmax: float = 0.05,
    max_steps: int = 300,
) -> BarrierResult:
    """Forward barrier (eV) from ``initial`` to ``final``, skipping the CI-NEB when it is clearly too high.

    A loose band (no climbing) is relaxed to ``prescreen_fmax`` eV/Å in at most ``prescreen_steps`` FIRE steps.
    Only if it converged and its barrier exceeds ``threshold + margin`` (eV) is the climbing-image NEB skipped,
    and the loose band's barrier, an upper estimate, is reported with ``method='prescreen'``. An unconverged
    loose band decides nothing (25 steps once reported 2.41 eV for a 1.49 eV band); the CI-NEB then continues
    from the loose band, so the pre-screen's force calls are not wasted.
    """
    calc = as_calculator(pes, initial)
    loose = neb(initial, final, calc, n_images, climb=False, fmax=prescreen_fmax, max_steps=prescreen_steps)
    if not loose.energies:  # the pre-screen itself failed
        return BarrierResult(float('nan'), 'prescreen', float('nan'), loose.force_calls, False, loose)
    if loose.converged and loose.forward_barrier > threshold + margin:
        return BarrierResult(loose.forward_barrier, 'prescreen', loose.forward_barrier, loose.force_calls, True, loose)
    full = neb(initial, final, calc, n_images, climb=True, fmax=fmax, max_steps=max_steps, start_band=loose.images)
    calls = loose.force_calls + full.force_calls
    if not full.converged and np.isfinite(full.forward_barrier):
        # Any continuous path's maximum bounds the saddle from above: an unconverged band that ended above the
        # straight path has deteriorated, and the straight path is the better (upper) estimate.
        path = interpolated_profile(initial, final, calc, n_images, interpolation='idpp')
        calls += path.force_calls
        if path.energies and path.forward_barrier < full.forward_barrier:
            return BarrierResult(path.forward_barrier, 'interpolation-bound', loose.forward_barrier, calls, False, path)
    return BarrierResult(full.forward_barrier, 'ci-neb', loose.forward_barrier, calls, full.converged, full)


@dataclasses.dataclass
class SegmentNEB:
    """One minimum–maximum–minimum piece of a trajectory refined by NEB (:func:`segment_neb`).

    :param start, end: frame indices of the piece's end points along the trajectory.
    :param profile_barrier: the trajectory's own barrier over the piece (max − start energy), eV.
    :param barrier: the NEB forward barrier between the relaxed end points, eV (``nan`` if the band failed).
    :param start_energy, end_energy: energies of the relaxed end points, eV.
    :param merged: the end points relaxed into one basin (the watched atom within 0.3 Å): no real hop.
    :param neb: the band (:class:`NEBResult`); ``force_calls``: end-point relaxations and band together.
    """

    start: int
    end: int
    profile_barrier: float
    barrier: float
    start_energy: float
    end_energy: float
    merged: bool
    neb: NEBResult
    force_calls: int


def _resample_band(path: list[Atoms], count: int) -> list[Atoms]:
    """``count`` images evenly spaced in frame index along ``path`` (positions blended linearly between frames)."""
    stops = np.linspace(0.0, len(path) - 1, count)
    band = []
    for stop in stops:
        left = min(int(np.floor(stop)), len(path) - 2)
        fraction = stop - left
        image = path[0].copy()
        image.set_positions(
            (1 - fraction) * path[left].positions + fraction * path[left + 1].positions, apply_constraint=False
        )
        band.append(image)
    return band


def segment_neb(
    frames: list[Atoms],
    start: int,
    end: int,
    profile_energies: t.Sequence[float],
    pes: PESSpec | Calculator,
    watch: int | None = None,
    n_images: int = 5,
    fmax: float = 0.1,
    max_steps: int = 150,
    end_fmax: float = 0.05,
    end_steps: int = 100,
) -> SegmentNEB:
    """Refine the piece ``start``..``end`` of a trajectory (``frames``, positions continuous in Å) by CI-NEB.

    The two end frames are relaxed on ``pes`` (``end_fmax`` eV/Å, ``end_steps`` FIRE steps: they were minima of a
    biased surface, e.g. with a tether), the band starts from the trajectory's own frames between them, resampled
    to ``n_images`` interior images, and the NEB runs to ``fmax`` eV/Å in ``max_steps`` FIRE steps.
    ``watch`` (an atom index, e.g. the water's O) decides whether the relaxed end points merged.
    """
    from .relax import relax

    if not 0 <= start < end < len(frames):
        raise ValueError(f'segment {start}..{end} is not inside a trajectory of {len(frames)} frames')
    calc = as_calculator(pes, frames[start])
    first = relax(frames[start], calc, end_fmax, end_steps)
    last = relax(frames[end], calc, end_fmax, end_steps)
    path = [first.atoms, *[frame.copy() for frame in frames[start + 1 : end]], last.atoms]
    band = _resample_band(path, n_images + 2)
    result = neb(first.atoms, last.atoms, calc, n_images=n_images, fmax=fmax, max_steps=max_steps, start_band=band)
    values = np.asarray(profile_energies, dtype=float)[start : end + 1]
    atom = watch if watch is not None else 0
    merged = bool(np.linalg.norm(first.atoms.positions[atom] - last.atoms.positions[atom]) < 0.3)
    return SegmentNEB(
        start=start,
        end=end,
        profile_barrier=float(values.max() - values[0]),
        barrier=float(result.forward_barrier),
        start_energy=float(first.energy),
        end_energy=float(last.energy),
        merged=merged,
        neb=result,
        force_calls=first.force_calls + last.force_calls + result.force_calls,
    )
