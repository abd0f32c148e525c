"""Potential-energy surfaces: a small, hashable specification that builds an ASE calculator.

Energies are in eV, lengths in Å and forces in eV/Å whatever the backend's own units (ReaxFF runs in LAMMPS
``real`` units, kcal/mol, and ASE's ``LAMMPSlib`` converts). Supported kinds:

- ``reaxff``: LAMMPS ``pair_style reaxff`` + ``fix qeq/reaxff``; default ``ffield.reax.021.CHONSSi`` (shipped;
  why it is the default: ``docs/topics/potentials.md``).
- ``tersoff``: LAMMPS ``pair_style tersoff``; default ``SiO.tersoff`` (Munetoh 2007, in the lammps package).
- ``comb``: LAMMPS ``pair_style comb`` + ``fix qeq/comb``; default ``ffield.comb`` (lammps package).
- ``eam/fs``: LAMMPS ``pair_style eam/fs``; default ``AlFe_mm.eam.fs`` (Mendelev, lammps package).
- ``sevennet``: SevenNet on CPU or CUDA; default the ``7net-0`` checkpoint shipped inside ``sevenn``.
- ``lj2d``: 2D Lennard-Jones with analytic forces, ε = σ = 1 (LJ7).
- ``emt``: ASE's EMT (Al, Cu, Ag, Au, Ni, Pd, Pt), for textbook NEB checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing as t
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .runtime import ensure_lammps_library, lammps_potential_path

__all__ = (
    'DEFAULT_OXIDATION_PES',
    'LAMMPS_KINDS',
    'PES_KINDS',
    'LennardJones2D',
    'PESSpec',
    'UnsupportedSpeciesError',
    'as_calculator',
)

POTENTIALS_DIR = Path(__file__).parent / 'potentials'

MASSES = {'H': 1.008, 'O': 15.999, 'Si': 28.0855, 'Al': 26.9815, 'Fe': 55.845, 'C': 12.011, 'N': 14.007}

#: Per kind: default potential file and the elements it covers, in LAMMPS type order.
_DEFAULTS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    'reaxff': ('ffield.reax.021.CHONSSi', ('Si', 'O', 'H')),
    'tersoff': ('SiO.tersoff', ('Si', 'O')),
    'comb': ('ffield.comb', ('Si', 'O')),
    'eam/fs': ('AlFe_mm.eam.fs', ('Al', 'Fe')),
    'sevennet': ('7net-0', ()),  # SevenNet-0 covers 89 elements: no restriction here
    'lj2d': (None, ('X',)),
    'emt': (None, ('Al', 'Cu', 'Ag', 'Au', 'Ni', 'Pd', 'Pt', 'H', 'C', 'N', 'O')),
}
PES_KINDS = tuple(_DEFAULTS)
LAMMPS_KINDS = ('reaxff', 'tersoff', 'comb', 'eam/fs')


class UnsupportedSpeciesError(ValueError):
    """The structure holds chemical species the PES does not cover."""


@dataclasses.dataclass(frozen=True)
class PESSpec:
    """A potential-energy surface, as plain data: serialisable, hashable, and able to build a calculator.

    :param kind: one of :data:`PES_KINDS`.
    :param potential: parameter file name (shipped with aiida-rlpath, or in the lammps package's potentials
        folder, or an absolute path) or, for ``sevennet``, the checkpoint name. ``None`` takes the default.
    :param elements: chemical symbols the PES covers, in LAMMPS atom-type order. Empty takes the default.
    :param device: ``'cpu'`` or ``'cuda'`` (``sevennet`` only).
    :param qeq_tolerance: charge-equilibration tolerance (``reaxff``, ``comb``).
    """

    kind: str = 'reaxff'
    potential: str | None = None
    elements: tuple[str, ...] = ()
    device: str = 'cpu'
    qeq_tolerance: float = 1.0e-6

    def __post_init__(self):
        if self.kind not in _DEFAULTS:
            raise ValueError(f'unknown PES kind `{self.kind}`; choose one of {PES_KINDS}')
        default_potential, default_elements = _DEFAULTS[self.kind]
        if self.potential is None:
            object.__setattr__(self, 'potential', default_potential)
        object.__setattr__(self, 'elements', tuple(self.elements) or default_elements)

    # --- data -----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, t.Any]:
        """Return the spec as a JSON-serialisable dictionary (``PESSpec(**d)`` rebuilds it)."""
        data = dataclasses.asdict(self)
        data['elements'] = list(self.elements)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, t.Any]) -> PESSpec:
        """Rebuild a spec from :meth:`to_dict` output."""
        return cls(**{**data, 'elements': tuple(data.get('elements', ()))})

    def potential_path(self) -> Path | None:
        """Return the parameter file's path (``None`` for kinds without one)."""
        if self.kind == 'sevennet':
            from .runtime import sevennet_checkpoint

            return sevennet_checkpoint(self.potential)
        if self.potential is None:  # lj2d, emt
            return None
        candidate = Path(self.potential)
        if candidate.is_absolute():
            return candidate
        shipped = POTENTIALS_DIR / self.potential
        return shipped if shipped.is_file() else lammps_potential_path(self.potential)

    def content_hash(self) -> str:
        """Return a sha256 of the spec and of the parameter file's bytes: equal hashes, equal PES."""
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        path = self.potential_path()
        if path is not None:
            digest.update(path.read_bytes())
        return digest.hexdigest()

    # --- checks ---------------------------------------------------------------------------------------------
    def check_species(self, symbols: t.Iterable[str]) -> None:
        """Raise :class:`UnsupportedSpeciesError` naming the species this PES does not cover."""
        if self.kind == 'sevennet':
            return
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            raise UnsupportedSpeciesError(
                f'PES `{self.kind}` ({self.potential}) covers {list(self.elements)}, not {missing}'
            )

    # --- calculators ----------------------------------------------------------------------------------------
    def calculator(self, symbols: t.Iterable[str] | None = None) -> Calculator:
        """Build a new ASE calculator for structures made of ``symbols`` (all covered elements if ``None``).

        Each call makes a new calculator (for LAMMPS, a new in-process instance); reuse it across calls.
        """
        if symbols is not None:
            self.check_species(symbols)
        if self.kind == 'lj2d':
            return LennardJones2D()
        if self.kind == 'emt':
            from ase.calculators.emt import EMT

            return EMT()
        if self.kind == 'sevennet':
            from sevenn.calculator import SevenNetCalculator

            return SevenNetCalculator(str(self.potential_path()), device=self.device)
        return self._lammps_calculator()

    def lammps_setup(self) -> tuple[list[str], list[str]]:
        """Return (header, interaction commands) defining this PES in LAMMPS, for LAMMPS-backed kinds.

        The header holds ``units``/``atom_style`` (ReaxFF: ``real`` + ``charge``; others ``metal``); the commands
        the ``pair_style``, ``pair_coeff`` and charge-equilibration fix. Atom types follow :attr:`elements`.
        """
        if self.kind not in LAMMPS_KINDS:
            raise ValueError(f'PES `{self.kind}` is not a LAMMPS potential')
        path = self.potential_path()
        species = ' '.join(self.elements)
        if self.kind == 'reaxff':
            header = ['units real', 'atom_style charge', 'atom_modify map array sort 0 0']
            commands = [
                'pair_style reaxff NULL safezone 3.0 mincap 200',
                f'pair_coeff * * {path} {species}',
                f'fix qeq all qeq/reaxff 1 0.0 10.0 {self.qeq_tolerance:g} reaxff',
            ]
        elif self.kind == 'comb':
            header = ['units metal', 'atom_style charge', 'atom_modify map array sort 0 0']
            commands = ['pair_style comb', f'pair_coeff * * {path} {species}', 'fix qeq all qeq/comb 1 1e-4']
        else:
            header = ['units metal', 'atom_style atomic', 'atom_modify map array sort 0 0']
            commands = [f'pair_style {self.kind}', f'pair_coeff * * {path} {species}']
        return header, commands

    def _lammps_calculator(self) -> Calculator:
        from ase.calculators.lammpslib import LAMMPSlib

        ensure_lammps_library()
        header, commands = self.lammps_setup()
        return LAMMPSlib(
            lmpcmds=commands,
            atom_types={symbol: i + 1 for i, symbol in enumerate(self.elements)},
            atom_type_masses={symbol: MASSES.get(symbol, 1.0) for symbol in self.elements},
            lammps_header=header,
            keep_alive=True,
            log_file=None,
        )


def as_calculator(pes: PESSpec | Calculator, atoms) -> Calculator:
    """A calculator for ``atoms``: a new one built from a :class:`PESSpec`, or ``pes`` itself if it is one."""
    return pes.calculator(atoms.get_chemical_symbols()) if isinstance(pes, PESSpec) else pes


#: The default PES of the oxidation and silica systems (see ``docs/topics/potentials.md`` for the choice).
DEFAULT_OXIDATION_PES = PESSpec('reaxff', 'ffield.reax.021.CHONSSi', ('Si', 'O', 'H'))


class LennardJones2D(Calculator):
    """Lennard-Jones pair potential in the xy plane, ε = σ = 1, no cut-off, analytic forces (z forces are 0).

    Energies and forces are in reduced units (ε, ε/σ); positions are read in the xy plane.
    """

    implemented_properties: t.ClassVar[list[str]] = ['energy', 'free_energy', 'forces']

    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy, forces_xy = lj2d_energy_forces(self.atoms.positions[:, :2])
        forces = np.zeros((len(self.atoms), 3))
        forces[:, :2] = forces_xy
        self.results = {'energy': energy, 'free_energy': energy, 'forces': forces}


def lj2d_energy_forces(xy: np.ndarray) -> tuple[float, np.ndarray]:
    """Return the 2D LJ energy (ε) and forces (ε/σ) of points ``xy`` (shape (N, 2), σ units); ε = σ = 1."""
    delta = xy[:, None, :] - xy[None, :, :]
    r2 = np.einsum('ijk,ijk->ij', delta, delta)
    np.fill_diagonal(r2, np.inf)
    inv6 = r2**-3
    energy = 2.0 * float(np.sum(inv6 * inv6 - inv6))  # 4ε Σ_{i<j} = 2ε Σ_{i≠j}
    # F_i = Σ_j 24 (2 r^-12 - r^-6) / r^2 · (r_i - r_j)
    scale = 24.0 * (2.0 * inv6 * inv6 - inv6) / r2
    forces = np.einsum('ij,ijk->ik', scale, delta)
    return energy, forces
