"""Local relaxation of atomic positions with ASE optimizers; failures are reported, never raised."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import typing as t

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from .pes import PESSpec, as_calculator

__all__ = ('OPTIMIZERS', 'RelaxResult', 'count_force_calls', 'max_force', 'relax')

#: ASE optimizers by name; ``CG`` is SciPy's nonlinear conjugate gradients (``ase.optimize.sciopt.SciPyFminCG``).
OPTIMIZERS = ('FIRE', 'BFGS', 'LBFGS', 'BFGSLineSearch', 'CG')


@dataclasses.dataclass
class RelaxResult:
    """Outcome of :func:`relax`.

    :param atoms: relaxed structure (a copy; constraints kept, calculator detached).
    :param energy: potential energy in eV.
    :param fmax: largest force norm on an unconstrained atom, eV/Å.
    :param force_calls: energy+force evaluations spent.
    :param steps: optimizer steps taken.
    :param converged: ``fmax`` fell to the requested threshold within ``max_steps``.
    :param error: why the relaxation stopped early (``None`` if it did not).
    """

    atoms: Atoms
    energy: float
    fmax: float
    force_calls: int
    steps: int
    converged: bool
    error: str | None = None


class _CallCounter:
    """Counts ``calculate`` calls of one calculator instance."""

    def __init__(self, calc: Calculator):
        self.calc, self.count, self._original = calc, 0, calc.calculate

        def counted(*args, **kwargs):
            self.count += 1
            return self._original(*args, **kwargs)

        calc.calculate = counted

    def restore(self) -> None:
        self.calc.calculate = self._original


@contextlib.contextmanager
def count_force_calls(calc: Calculator):
    """Context manager yielding a counter whose ``count`` is the number of evaluations ``calc`` performed."""
    counter = _CallCounter(calc)
    try:
        yield counter
    finally:
        counter.restore()


def max_force(atoms: Atoms) -> float:
    """Largest force norm (eV/Å) on atoms not fixed by constraints (``get_forces`` applies them)."""
    forces = atoms.get_forces()
    return float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0


def _optimizer(name):
    from ase import optimize

    if callable(name):  # an Optimizer class or factory taking (atoms, logfile=...)
        return name
    if name not in OPTIMIZERS:
        raise ValueError(f'unknown optimizer `{name}`; choose one of {OPTIMIZERS}')
    if name == 'CG':
        from ase.optimize.sciopt import SciPyFminCG

        return SciPyFminCG
    return getattr(optimize, name)


def _run(opt, work: Atoms, fmax: float, max_steps: int, max_energy: float) -> str | None:
    """Run ``opt``; return why it stopped early, or ``None``."""
    from ase.optimize.sciopt import SciPyOptimizer

    if isinstance(opt, SciPyOptimizer):  # SciPy drives its own loop: no irun
        try:
            opt.run(fmax=fmax, steps=max_steps)
        except Exception as exception:  # precision loss in the line search, ...
            if max_force(work) > fmax:
                return f'{type(exception).__name__}: {exception}'
        return None
    for _ in opt.irun(fmax=fmax, steps=max_steps):
        energy = work.get_potential_energy()
        if not np.isfinite(energy) or energy > max_energy:
            return f'energy exploded to {energy:.4g} eV'
    return None


def relax(
    atoms: Atoms,
    pes: PESSpec | Calculator,
    fmax: float = 0.05,
    max_steps: int = 500,
    optimizer: str | t.Callable = 'FIRE',
    max_energy_per_atom: float = 50.0,
) -> RelaxResult:
    """Relax positions of ``atoms`` to max force ``fmax`` (eV/Å) in at most ``max_steps`` optimizer steps.

    ``pes`` is a :class:`PESSpec` (a new calculator is built) or a ready ASE calculator (reused, which saves
    LAMMPS start-up). Constraints on ``atoms`` (e.g. a fixed slab bottom) are respected. The input is not
    modified. ``optimizer`` is a name in :data:`OPTIMIZERS` or an ASE ``Optimizer`` class (or factory taking
    ``(atoms, logfile=...)``), e.g. ``functools.partial(RLOptimizer, actor=actor)``. A calculator error or an
    energy above ``max_energy_per_atom`` (eV/atom, exploding structure) stops the run with
    ``converged=False`` and ``error`` set.
    """
    work = atoms.copy()
    calc = as_calculator(pes, work)
    work.calc = calc
    optimizer_class = _optimizer(optimizer)
    steps, error = 0, None
    with count_force_calls(calc) as counter:
        try:
            opt = optimizer_class(work, logfile=io.StringIO())
            error = _run(opt, work, fmax, max_steps, max_energy_per_atom * len(work))
            steps = opt.nsteps
            energy, fmax_now = work.get_potential_energy(), max_force(work)
        except Exception as exception:  # LAMMPS "lost atoms", non-finite forces, ...
            error = f'{type(exception).__name__}: {exception}'
            energy, fmax_now = float('nan'), float('nan')
    result_atoms = work.copy()
    converged = error is None and bool(np.isfinite(fmax_now)) and fmax_now <= fmax
    return RelaxResult(result_atoms, float(energy), float(fmax_now), counter.count, steps, converged, error)
