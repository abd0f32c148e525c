"""Si(001) slabs with an amorphous oxide grown by sequential O2 deposition and reactive MD, and O2 insertion.

Lengths in Å, temperatures in K, energies in eV. The oxide is grown the way it forms in dry oxidation: O2
molecules arrive from the gas side with 1 eV downward kinetic energy (flying unthermostatted) and react with
the surface while the slab is held at 1000 K by a Langevin thermostat, on a reactive PES (ReaxFF by
default); molecules that do not bind are removed; the film is annealed at 1400 K, quenched to 300 K and
minimised. The bottom Si layers stay fixed as bulk.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ase import Atoms
from ase.build import diamond100
from ase.constraints import FixAtoms

from aiida_rlpath.physics.bonds import bonded_neighbours
from aiida_rlpath.physics.md import lammps_md
from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES, MASSES, PESSpec

__all__ = (
    'PROTOCOLS', 'OxideProtocol', 'OxideSlab', 'build_oxidation_start', 'build_oxidized_slab', 'build_si_slab',
    'insert_o2',
)  # fmt: skip

A_SIO2_OXYGEN_DENSITY = 2 * 2.2 / 60.08 * 0.6022  # O atoms per Å³ in a-SiO2 at 2.2 g/cm³ (0.0441)
O2_BOND_LENGTH = 1.265  # Å, the default PES's relaxed O2


@dataclasses.dataclass(frozen=True)
class OxideProtocol:
    """How the oxide is grown.

    :param o2_per_round: O2 molecules deposited together per MD round (placed at least 5 Å apart).
    :param round_steps: MD steps per round (``timestep`` fs each) at ``temperature`` K.
    :param anneal_steps: MD steps at ``anneal_temperature`` (K) after the last deposition; it breaks most
        peroxy O–O links left by fast deposition (measured: 10 → 5 O–O pairs in 52 O at 1400 K).
    :param quench_steps: MD steps of the linear quench from ``anneal_temperature`` to 300 K.
    :param minimize_steps: final conjugate-gradient steps.
    :param kinetic_energy: downward kinetic energy of each arriving O2, eV (it flies unthermostatted).
    :param arrival_height: height of the arriving O2's centre above the topmost atom, Å.
    """

    o2_per_round: int = 4
    round_steps: int = 1000
    anneal_steps: int = 2000
    anneal_temperature: float = 1400.0
    quench_steps: int = 1000
    minimize_steps: int = 300
    temperature: float = 1000.0
    timestep: float = 0.25
    kinetic_energy: float = 1.0
    arrival_height: float = 2.5


PROTOCOLS = {
    'quick': OxideProtocol(),
    'long': OxideProtocol(o2_per_round=1, round_steps=2000, anneal_steps=20000, quench_steps=8000, minimize_steps=2000),
}

#: Slab sizes: surface repeats (1×1 cells of 3.84 Å) and Si layers. Default 96 Si; the paper's 384 Si; 'tiny'
#: (24 Si) is for fast tests of the workflows only (its O2 sees its own periodic images 7.7 Å away).
SIZES = {'tiny': ((2, 2), 6), 'small': ((4, 4), 6), 'paper': ((8, 8), 6)}


@dataclasses.dataclass
class OxideSlab:
    """A built system and what describes it.

    :param atoms: the structure (bottom layers fixed with :class:`FixAtoms`).
    :param interface_z: height of the Si/oxide interface (lowest 5 % of O atoms), Å.
    :param surface_z: height of the topmost atom, Å.
    :param oxide_thickness: ``surface_z − interface_z``, Å.
    :param n_oxygen: O atoms in the film; ``deposited``/``rejected``: O2 that bound / did not.
    :param seed: the seed that built it; ``protocol``: the protocol's name.
    """

    atoms: Atoms
    interface_z: float
    surface_z: float
    oxide_thickness: float
    n_oxygen: int
    deposited: int
    rejected: int
    seed: int
    protocol: str

    def metadata(self) -> dict:
        """Everything but the structure, as plain JSON-serialisable values."""
        data = dataclasses.asdict(self)
        data.pop('atoms')
        return data


def build_si_slab(size: str = 'small', lattice_constant: float = 5.425, vacuum: float = 12.0, fixed_layers: int = 2):
    """Unreconstructed Si(001) slab (orthogonal cell) with the bottom ``fixed_layers`` layers fixed.

    ``lattice_constant`` (Å) should be the PES's own (5.425 Å for the default ReaxFF); ``vacuum`` (Å) on both
    sides. Sizes: ``'tiny'`` (24 Si, tests), ``'small'`` (96 Si) or ``'paper'`` (384 Si).
    """
    repeats, layers = SIZES[size]
    slab = diamond100('Si', size=(*repeats, layers), a=lattice_constant, vacuum=vacuum, orthogonal=True)
    heights = np.unique(np.round(slab.positions[:, 2], 3))
    slab.set_constraint(FixAtoms(mask=slab.positions[:, 2] < heights[fixed_layers] - 0.1))
    return slab


def _too_close(atoms: Atoms, positions: np.ndarray, min_distance: float) -> bool:
    probe = atoms + Atoms('X' * len(positions), positions=positions)
    n = len(atoms)
    for k in range(len(positions)):
        distances = probe.get_distances(n + k, list(range(n)), mic=True)
        if len(distances) and distances.min() < min_distance:
            return True
    return False


def insert_o2(
    atoms: Atoms,
    seed: int,
    height: float = 3.0,
    min_distance: float = 2.2,
    bond_length: float = O2_BOND_LENGTH,
    avoid: list[np.ndarray] | None = None,
    avoid_distance: float = 5.0,
    max_tries: int = 500,
    top: float | None = None,
) -> tuple[Atoms, list[int]]:
    """Return ``atoms`` with one O2 added above the surface, and the O2's two indices.

    The molecule's centre sits ``height`` Å above ``top`` (default: the topmost atom's height, Å) at a random
    xy drawn from ``seed``, with a random
    orientation; no atom of it comes closer than ``min_distance`` Å to an existing atom, and its centre keeps
    ``avoid_distance`` Å (in xy) from the points in ``avoid``. Raises ``RuntimeError`` if no place is found.
    """
    rng = np.random.default_rng(seed)
    top = atoms.positions[:, 2].max() if top is None else top
    cell = atoms.cell.array
    for _ in range(max_tries):
        centre = rng.random(2) @ cell[:2, :2]
        if avoid and any(_xy_distance(centre, other, cell) < avoid_distance for other in avoid):
            continue
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        middle = np.array([centre[0], centre[1], top + height])
        pair = np.array([middle - axis * bond_length / 2, middle + axis * bond_length / 2])
        if not _too_close(atoms, pair, min_distance):
            result = atoms + Atoms('O2', positions=pair)
            return result, [len(atoms), len(atoms) + 1]
    raise RuntimeError(f'no room for an O2 {height} Å above the surface after {max_tries} tries')


def _xy_distance(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> float:
    fractional = np.linalg.solve(cell[:2, :2].T, np.asarray(a[:2]) - np.asarray(b[:2]))
    fractional -= np.round(fractional)
    return float(np.linalg.norm(fractional @ cell[:2, :2]))


def _remove_unbound(atoms: Atoms, new_oxygens: list[int]) -> tuple[Atoms, int]:
    """Drop deposited O that ended with no Si neighbour and no bond to an O that has one (gas-phase O2)."""
    anchored = {i for i in new_oxygens if bonded_neighbours(atoms, i, 'Si')}
    keep_too = {j for i in anchored for j in bonded_neighbours(atoms, i, 'O')}
    unbound = [i for i in new_oxygens if i not in anchored | keep_too]
    if not unbound:
        return atoms, 0
    del atoms[unbound]
    return atoms, len(unbound) // 2


def _describe(atoms: Atoms) -> tuple[float, float]:
    oxygen_z = atoms.positions[np.array(atoms.get_chemical_symbols()) == 'O', 2]
    surface = float(atoms.positions[:, 2].max())
    interface = float(np.percentile(oxygen_z, 5)) if oxygen_z.size else surface
    return interface, surface


def build_oxidized_slab(
    seed: int,
    thickness: float = 5.0,
    size: str = 'small',
    protocol: str | OxideProtocol = 'quick',
    pes: PESSpec = DEFAULT_OXIDATION_PES,
    lattice_constant: float = 5.425,
) -> OxideSlab:
    """Grow an amorphous oxide of about ``thickness`` Å on Si(001) by sequential O2 deposition + reactive MD.

    The number of O2 deposited is what a-SiO2 at 2.2 g/cm³ of that thickness holds over the slab's area;
    the measured thickness is reported (it exceeds the target as Si is consumed and the film swells).
    ``protocol``: ``'quick'`` (about 1.5 min for the default size on one core; tests and demos), ``'long'``,
    or an :class:`OxideProtocol`. Everything random is drawn from ``seed``.
    """
    settings = PROTOCOLS[protocol] if isinstance(protocol, str) else protocol
    name = protocol if isinstance(protocol, str) else 'custom'
    atoms = build_si_slab(size, lattice_constant)
    area = float(np.linalg.norm(np.cross(atoms.cell[0], atoms.cell[1])))
    target_o2 = max(1, round(A_SIO2_OXYGEN_DENSITY * area * thickness / 2))
    speed = float(np.sqrt(2 * settings.kinetic_energy / (2 * MASSES['O']) * 0.00964853))  # eV/amu -> (Å/fs)²
    rng = np.random.default_rng(seed)
    deposited = rejected = 0
    while deposited < target_o2:
        batch = min(settings.o2_per_round, target_o2 - deposited)
        new_oxygens: list[int] = []
        centres: list[np.ndarray] = []
        top = float(atoms.positions[:, 2].max())  # one arrival height for the whole batch
        for _ in range(batch):
            try:
                atoms, agent = insert_o2(
                    atoms, int(rng.integers(2**31)), height=settings.arrival_height, avoid=centres, top=top
                )
            except RuntimeError:
                if not centres:
                    raise
                break  # a small cell holds fewer molecules 5 Å apart than o2_per_round: deposit those that fit
            centres.append(atoms.positions[agent].mean(axis=0)[:2])
            new_oxygens.extend(agent)
        batch = len(centres)
        kick = {index: np.array([0.0, 0.0, -speed]) for index in new_oxygens}
        md = lammps_md(
            atoms, pes, settings.temperature, settings.round_steps, int(rng.integers(2**31)), settings.timestep,
            velocities=kick, unthermostatted=new_oxygens,
        )  # fmt: skip
        if md.error:
            raise RuntimeError(f'oxide growth MD failed: {md.error}')
        atoms, lost = _remove_unbound(md.atoms, new_oxygens)
        rejected += lost
        deposited += batch - lost
        if rejected > 3 * target_o2:
            raise RuntimeError(f'O2 keeps bouncing off: {rejected} rejected, {deposited} deposited')
    hot = settings.anneal_temperature
    anneal = lammps_md(atoms, pes, hot, settings.anneal_steps, int(rng.integers(2**31)), settings.timestep)
    if anneal.error:
        raise RuntimeError(f'oxide anneal failed: {anneal.error}')
    quench = lammps_md(
        anneal.atoms, pes, hot, settings.quench_steps, int(rng.integers(2**31)), settings.timestep,
        final_temperature=300.0, minimize_steps=settings.minimize_steps,
    )  # fmt: skip
    if quench.error:
        raise RuntimeError(f'oxide quench failed: {quench.error}')
    atoms = quench.atoms
    interface, surface = _describe(atoms)
    n_oxygen = atoms.get_chemical_symbols().count('O')
    return OxideSlab(atoms, interface, surface, surface - interface, n_oxygen, deposited, rejected, seed, name)


def build_oxidation_start(
    size: str = 'small',
    oxide_thickness: float = 5.0,
    oxide_protocol: str = 'quick',
    seed: int = 0,
    insert_height: float = 3.0,
) -> tuple[Atoms, list[int], dict]:
    """A REALIZE start: Si(001) of ``size`` with an a-SiO2 film of about ``oxide_thickness`` Å grown by
    ``oxide_protocol`` (bare Si for 0) and an agent O2 ``insert_height`` Å above it, all drawn from ``seed``.

    Returns the structure (tags cleared), the O2's indices and what the growth measured (thickness in Å, ...).
    """
    rng = np.random.default_rng(int(seed))
    if oxide_thickness > 0:
        oxide = build_oxidized_slab(int(rng.integers(2**31)), oxide_thickness, size, oxide_protocol)
        slab, metadata = oxide.atoms, oxide.metadata()
    else:
        slab, metadata = build_si_slab(size), {'oxide_thickness': 0.0}
    atoms, agent = insert_o2(slab, int(rng.integers(2**31)), height=insert_height)
    atoms.set_tags(0)
    return atoms, agent, metadata
