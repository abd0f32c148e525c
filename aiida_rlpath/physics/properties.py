"""Material properties from real calculators, for crystal-design rewards (no AiiDA import).

- Relaxation (cell and ions), density (g/cm³) and bulk modulus (GPa) with CHGNet, whose pretrained weights ship
  inside the ``chgnet`` wheel (nothing is downloaded); the r2SCAN model by default (see
  :class:`PropertySettings`). The bulk modulus is the Birch–Murnaghan fit of E(V) over ``n_volumes`` volumes
  spanning ±``strain`` of the relaxed volume, ions relaxed at each fixed cell.
- Band gap (eV) from GFN1-xTB with ``tblite`` on a supercell whose lattice vectors are all at least
  ``min_length`` Å long (Γ-point only, so the supercell is what samples the Brillouin zone), at the CHGNet-relaxed
  geometry. GPAW was the first choice; it does not install from PyPI alone (its C sources need ``CC=g++`` and
  Debian's libxc/OpenBLAS/FFTW/gpaw-data), while ``tblite`` is a wheel. The cost is in docs/topics/crystal_design.md.

Every calculator returns a :class:`PropertyResult`; a failure is a result with ``ok=False``, an ``exit_status``
from :data:`EXIT_CODES` and a message, never an exception, so a reward can turn it into a defined penalty.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import time
import typing as t
import warnings

import numpy as np
from pymatgen.core import Structure

__all__ = (
    'CHGNET_MODELS',
    'EXIT_CODES',
    'PROPERTIES',
    'PropertyResult',
    'PropertySettings',
    'band_gap',
    'bulk_modulus',
    'chgnet_model',
    'evaluate_property',
    'reject_unknown_keys',
    'relax',
    'supercell_matrix',
)

PROPERTIES = ('density', 'bulk_modulus', 'band_gap')

#: the CHGNet models whose weights ship inside the ``chgnet`` wheel
CHGNET_MODELS = ('r2scan', '0.3.0', '0.2.0')

#: exit status -> meaning; shared with the calcfunction that wraps :func:`evaluate_property`.
EXIT_CODES = {
    410: 'ERROR_RELAXATION_FAILED',
    411: 'ERROR_UNPHYSICAL_STRUCTURE',
    412: 'ERROR_EOS_FIT_FAILED',
    413: 'ERROR_ELECTRONIC_STRUCTURE_FAILED',
    414: 'ERROR_UNSUPPORTED_ELEMENT',
}

HARTREE_EV = 27.211386245988
BOHR_ANGSTROM = 0.529177210903
KELVIN_HARTREE = 3.166811563e-6


@dataclasses.dataclass(frozen=True)
class PropertySettings:
    """How a property is computed.

    :param fmax: force threshold of the CHGNet relaxation, eV/Å; ``relax_steps``: its step limit (FIRE).
    :param relax_cell: relax the cell too (else ions only).
    :param n_volumes: volumes of the equation of state (≥ 5); ``strain``: their span, ± fraction of the relaxed
        volume; ``eos``: the pymatgen EOS form.
    :param min_length: shortest lattice vector of the xTB supercell, Å; ``max_atoms``: largest supercell.
    :param electronic_temperature: Fermi smearing of the xTB occupations, K.
    :param min_density, max_density: a relaxed density outside this range (g/cm³) is unphysical (exit 411).
    :param min_volume_per_atom: a cell denser than this (Å³ per atom) is a collapse, unphysical at zero pressure
        (exit 411): diamond, the densest solid in atoms per volume, has 5.7 Å³. The cell relaxation stops as soon
        as it crosses this, and a cell relaxation that would start denser starts 10 % above it instead:
        CHGNet's neighbour lists, and so the cost of each call, grow with the density (a designed SiF4 perovskite
        started at 1.4 Å³ per atom stalled a benchmark; a designed N–F rock salt started at 1.5 Å³ per atom
        relaxed to 12.4 g/cm³, and from 10 % above the floor relaxes to 2.8 g/cm³).
    :param chgnet_model: CHGNet model to load; ``r2scan`` (the default: 0.3.0 transfer-learned on Materials
        Project r2SCAN data), ``0.3.0`` and ``0.2.0`` (PBE/PBE+U, MPtrj) all ship in the wheel. On nine simple
        crystals ``benchmarks/chgnet_models.py`` measured mean relative errors against experiment of 1.5 %
        (density) and 14 % (bulk modulus) for ``r2scan``, 2.1 % and 21 % for ``0.3.0``.
    """

    fmax: float = 0.05
    relax_steps: int = 300
    relax_cell: bool = True
    n_volumes: int = 7
    strain: float = 0.06
    eos: str = 'birch_murnaghan'
    min_length: float = 7.5
    max_atoms: int = 128
    electronic_temperature: float = 300.0
    min_density: float = 0.3
    max_density: float = 30.0
    min_volume_per_atom: float = 5.0
    chgnet_model: str = 'r2scan'

    def __post_init__(self):
        if self.fmax <= 0 or self.relax_steps < 1:
            raise ValueError('fmax must be > 0 eV/Å and relax_steps >= 1')
        if self.n_volumes < 5:
            raise ValueError(f'n_volumes must be >= 5 for an equation-of-state fit, got {self.n_volumes}')
        if not 0 < self.strain < 0.3:
            raise ValueError(f'strain must be in (0, 0.3), got {self.strain}')
        if self.min_length <= 0 or self.max_atoms < 1:
            raise ValueError('min_length must be > 0 Å and max_atoms >= 1')
        if self.electronic_temperature < 0:
            raise ValueError('electronic_temperature must be >= 0 K')
        if self.min_volume_per_atom < 0:
            raise ValueError('min_volume_per_atom must be >= 0 Å³')
        if self.chgnet_model not in CHGNET_MODELS:
            raise ValueError(f'unknown chgnet_model {self.chgnet_model!r}; shipped: {", ".join(CHGNET_MODELS)}')

    @classmethod
    def from_dict(cls, values: t.Mapping[str, t.Any] | None) -> PropertySettings:
        """Settings from a mapping; an unknown key is a ``ValueError`` that names it."""
        values = dict(values or {})
        reject_unknown_keys(values, sorted(f.name for f in dataclasses.fields(cls)), 'property settings')
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class PropertyResult:
    """One property evaluation: ``value`` (g/cm³, GPa or eV; ``nan`` when failed), ``ok``, ``exit_status`` (0 or a
    key of :data:`EXIT_CODES`), ``message``, the ``relaxed`` structure (``None`` if the relaxation failed), the
    relaxed energy per atom (eV), whether the relaxation ``converged``, force ``calls`` spent, wall ``seconds``
    and ``details`` (EOS volumes/energies, supercell size, …)."""

    property: str
    value: float
    ok: bool = True
    exit_status: int = 0
    message: str = ''
    relaxed: Structure | None = None
    energy_per_atom: float = float('nan')
    converged: bool = False
    calls: int = 0
    seconds: float = 0.0
    details: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-serialisable view (no structure)."""
        out = dataclasses.asdict(self)
        out.pop('relaxed')
        out['value'] = None if not np.isfinite(self.value) else float(self.value)
        out['energy_per_atom'] = None if not np.isfinite(self.energy_per_atom) else float(self.energy_per_atom)
        return out


def reject_unknown_keys(values: t.Mapping[str, t.Any], known: t.Sequence[str], what: str):
    """Raise a ``ValueError`` naming the keys of ``values`` not in ``known`` (and listing ``known``); ``what``
    names the settings in the message (e.g. ``property settings``)."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f'unknown {what} {unknown}; known: {list(known)}')


class _Failure(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@functools.cache
def chgnet_model(version: str = 'r2scan'):
    """The pretrained CHGNet model ``version`` (loaded once per process, CPU, from the weights in the wheel)."""
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):
        return CHGNet.load(model_name=version, use_device='cpu', verbose=False)


def _check_supported(structure: Structure):
    for element in structure.composition.elements:
        if element.Z > 94:
            raise _Failure(414, f'{element} (Z = {element.Z}) is beyond CHGNet’s training data (Z ≤ 94)')


def _check_volume(volume: float, atoms: int, settings: PropertySettings):
    if volume / atoms < settings.min_volume_per_atom:
        raise _Failure(
            411,
            f'cell collapsed to {volume / atoms:.2f} Å³ per atom (< {settings.min_volume_per_atom}; diamond has 5.7)',
        )


def _guarded_cell_filter(settings: PropertySettings):
    """ASE's ``FrechetCellFilter`` (CHGNet's default) that stops the relaxation once the cell collapses below
    ``settings.min_volume_per_atom``."""
    from ase.filters import FrechetCellFilter

    class GuardedCellFilter(FrechetCellFilter):
        def get_forces(self, **kwargs):
            _check_volume(self.atoms.get_volume(), len(self.atoms), settings)
            return super().get_forces(**kwargs)

    return GuardedCellFilter


def _check_physical(structure: Structure, settings: PropertySettings):
    if settings.relax_cell:  # a fixed cell (the EOS's strained volumes) is what it was given
        _check_volume(float(structure.volume), len(structure), settings)
    density = float(structure.density)
    if not np.isfinite(density) or not settings.min_density <= density <= settings.max_density:
        raise _Failure(
            411,
            f'relaxed density {density:.3g} g/cm³ outside [{settings.min_density}, {settings.max_density}]',
        )
    if len(structure) > 1:
        distances = structure.distance_matrix[np.triu_indices(len(structure), 1)]
        if distances.min() < 0.5:
            raise _Failure(411, f'atoms {distances.min():.2f} Å apart after relaxation')


def relax(structure: Structure, settings: PropertySettings = PropertySettings()) -> tuple[Structure, dict]:
    """Relax ``structure`` with CHGNet (FIRE, cell too if ``settings.relax_cell``) to ``settings.fmax`` eV/Å.

    A cell relaxation starts no denser than 1.1 × ``settings.min_volume_per_atom`` (Å³ per atom; a denser start
    is expanded to it) and stops with exit 411 if the cell collapses below ``min_volume_per_atom``. Returns the
    relaxed structure and ``{'energy_per_atom' (eV), 'converged', 'calls'}``; raises on failure (use
    :func:`evaluate_property` for a result that never raises).
    """
    from chgnet.model import StructOptimizer

    _check_supported(structure)
    structure = structure.copy()
    floor = 1.1 * settings.min_volume_per_atom * len(structure)
    if settings.relax_cell and structure.volume < floor:
        # a start denser than any solid (a radius-rescaled design of small atoms: Si and F in a perovskite start at
        # 1.4 Å³ per atom) is expanded to 10 % above the floor; from there CHGNet's neighbour lists stay small
        structure.scale_lattice(floor)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        optimiser = StructOptimizer(model=chgnet_model(settings.chgnet_model), optimizer_class='FIRE', use_device='cpu')
        try:
            result = optimiser.relax(
                structure,
                fmax=settings.fmax,
                steps=settings.relax_steps,
                relax_cell=settings.relax_cell,
                ase_filter=_guarded_cell_filter(settings),
                verbose=False,
            )
        except _Failure:
            raise
        except Exception as exception:
            raise _Failure(410, f'CHGNet relaxation raised {type(exception).__name__}: {exception}') from exception
    relaxed = result['final_structure']
    trajectory = result['trajectory']
    forces = np.asarray(trajectory.forces[-1]) if trajectory.forces else np.full((1, 3), np.nan)
    energy = float(trajectory.energies[-1]) / len(relaxed) if trajectory.energies else float('nan')
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise _Failure(410, 'CHGNet relaxation ended with non-finite energy or forces')
    _check_physical(relaxed, settings)
    converged = bool(np.linalg.norm(forces, axis=1).max() <= settings.fmax)
    return relaxed, {'energy_per_atom': energy, 'converged': converged, 'calls': len(trajectory.energies)}


def bulk_modulus(relaxed: Structure, settings: PropertySettings = PropertySettings()) -> tuple[float, dict]:
    """Bulk modulus (GPa) of a relaxed structure: E(V) at ``n_volumes`` volumes within ±``strain``, ions relaxed
    at each fixed cell when the cell has more than one atom, fitted with ``settings.eos``. Returns B and
    ``{'volumes' (Å³), 'energies' (eV per cell), 'v0' (Å³), 'calls'}``."""
    from pymatgen.analysis.eos import EOS

    ions = dataclasses.replace(settings, relax_cell=False, relax_steps=min(settings.relax_steps, 100))
    volumes, energies, calls = [], [], 0
    model = chgnet_model(settings.chgnet_model)
    for factor in np.linspace(1 - settings.strain, 1 + settings.strain, settings.n_volumes):
        strained = relaxed.copy()
        strained.scale_lattice(relaxed.volume * factor)
        if len(strained) > 1:
            strained, info = relax(strained, ions)
            energy, calls = info['energy_per_atom'] * len(strained), calls + info['calls']
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                energy = float(model.predict_structure(strained, task='e')['e']) * len(strained)
            calls += 1
        volumes.append(float(strained.volume))
        energies.append(float(energy))
    try:
        fit = EOS(settings.eos).fit(volumes, energies)
        value = float(fit.b0_GPa)
    except Exception as exception:
        raise _Failure(412, f'{settings.eos} fit failed: {type(exception).__name__}: {exception}') from exception
    if not np.isfinite(value) or value <= 0:
        raise _Failure(412, f'{settings.eos} fit gave a non-physical bulk modulus {value:.3g} GPa')
    return value, {'volumes': volumes, 'energies': energies, 'v0': float(fit.v0), 'calls': calls}


def supercell_matrix(structure: Structure, min_length: float, max_atoms: int) -> list[int]:
    """Repeats along a, b, c making every lattice vector at least ``min_length`` Å, shrunk (longest first) until
    the supercell has at most ``max_atoms`` atoms."""
    repeats = [max(1, int(np.ceil(min_length / length))) for length in structure.lattice.abc]
    while int(np.prod(repeats)) * len(structure) > max_atoms and max(repeats) > 1:
        lengths = [r * length for r, length in zip(repeats, structure.lattice.abc, strict=True)]
        candidates = [i for i in range(3) if repeats[i] > 1]
        repeats[max(candidates, key=lambda i: lengths[i])] -= 1
    return repeats


def band_gap(relaxed: Structure, settings: PropertySettings = PropertySettings()) -> tuple[float, dict]:
    """GFN1-xTB band gap (eV) at the Γ point of a supercell of ``relaxed`` (see :func:`supercell_matrix`): the
    lowest orbital energy with occupation below 1 minus the highest at or above 1 (spin-summed, of 2).

    A Γ-only supercell samples the primitive cell's Brillouin zone on a coarse mesh, which can open a spurious
    gap in a metal (fcc Al, 64 atoms: 1.1 eV). So a primitive cell with an odd number of electrons, which band
    theory makes metallic without spin polarisation, gets gap 0 without a calculation (``details['metal_by']``
    says so). Returns the gap and ``{'supercell', 'atoms', 'homo_eV', 'lumo_eV', 'seconds'}``.
    """
    from tblite.interface import Calculator

    primitive = relaxed.get_primitive_structure()
    electrons = sum(site.specie.Z for site in primitive) - round(primitive.charge or 0)
    if electrons % 2:
        return 0.0, {'metal_by': f'odd electron count per primitive cell ({electrons})', 'atoms': len(primitive)}

    repeats = supercell_matrix(relaxed, settings.min_length, settings.max_atoms)
    cell = relaxed.copy()
    cell.make_supercell(repeats)
    numbers = np.array([site.specie.Z for site in cell], dtype=np.int32)
    start = time.perf_counter()
    try:
        calculator = Calculator(
            'GFN1-xTB',
            numbers,
            cell.cart_coords / BOHR_ANGSTROM,
            lattice=cell.lattice.matrix / BOHR_ANGSTROM,
            periodic=np.array([True, True, True]),
        )
        calculator.set('verbosity', 0)
        calculator.set('temperature', settings.electronic_temperature * KELVIN_HARTREE)
        result = calculator.singlepoint()
        energies = np.asarray(result.get('orbital-energies')) * HARTREE_EV
        occupations = np.asarray(result.get('orbital-occupations'))
    except Exception as exception:
        raise _Failure(413, f'GFN1-xTB failed: {type(exception).__name__}: {exception}') from exception
    if occupations.ndim > 1:  # spin channels
        occupations, energies = occupations.sum(axis=0), energies.reshape(-1, energies.shape[-1])[0]
    occupied, empty = energies[occupations >= 1.0], energies[occupations < 1.0]
    if not len(occupied) or not len(empty):
        raise _Failure(413, 'GFN1-xTB returned no occupied or no empty orbital')
    homo, lumo = float(occupied.max()), float(empty.min())
    return max(0.0, lumo - homo), {
        'supercell': repeats,
        'atoms': len(cell),
        'homo_eV': homo,
        'lumo_eV': lumo,
        'seconds': time.perf_counter() - start,
    }


def evaluate_property(
    structure: Structure, name: str, settings: PropertySettings | t.Mapping | None = None
) -> PropertyResult:
    """Relax ``structure`` with CHGNet and compute property ``name`` (``density`` g/cm³, ``bulk_modulus`` GPa,
    ``band_gap`` eV). Never raises for a failed calculation: the result then has ``ok=False``, an exit status
    from :data:`EXIT_CODES` and a message. An unknown ``name`` or bad settings raise ``ValueError``."""
    if name not in PROPERTIES:
        raise ValueError(f'unknown property {name!r}; known: {", ".join(PROPERTIES)}')
    if not isinstance(settings, PropertySettings):
        settings = PropertySettings.from_dict(settings)
    start = time.perf_counter()
    relaxed, info = None, {'energy_per_atom': float('nan'), 'converged': False, 'calls': 0}
    try:
        relaxed, info = relax(structure, settings)
        details = {}
        if name == 'density':
            value = float(relaxed.density)
        elif name == 'bulk_modulus':
            value, details = bulk_modulus(relaxed, settings)
            info['calls'] += details['calls']
        else:
            value, details = band_gap(relaxed, settings)
    except _Failure as failure:
        return PropertyResult(
            property=name,
            value=float('nan'),
            ok=False,
            exit_status=failure.status,
            message=f'{EXIT_CODES[failure.status]}: {failure}',
            relaxed=relaxed,
            energy_per_atom=info['energy_per_atom'],
            converged=info['converged'],
            calls=info['calls'],
            seconds=time.perf_counter() - start,
        )
    return PropertyResult(
        property=name,
        value=value,
        relaxed=relaxed,
        energy_per_atom=info['energy_per_atom'],
        converged=info['converged'],
        calls=info['calls'],
        seconds=time.perf_counter() - start,
        details=details,
    )
