"""MAP (Molecular Autonomous Pathfinder) environment: an H2O molecule in silica glass, pulled by a harmonic tether.

The agent is the centre of a harmonic potential (``tether_k``, eV/Å²) bound to the water's O atom. Each of the
five discrete actions (+x, +y, +z, −y, −z) moves the centre by ``step`` Å; then water and glass relax on the PES
with the tether on (a short FIRE relaxation, ``relax_steps`` optimizer steps at most), so the water follows the
agent where the glass lets it. There is no −x action: the task is diffusion along +x.

- **State**: a cubic grid of ``points``³ voxels (``spacing`` Å apart) centred on the agent; each voxel holds, per
  channel, the sum of Gaussian kernels exp(−|r − r_voxel|² / 2σ²) of the atoms of that channel (host species,
  and the water molecule itself as its own last channel), with minimum-image distances in the periodic box.
  The sum is over atoms, so the grid does not depend on atom order.
- **Reward**: the weighted sum of five terms (:class:`RewardWeights`): progress of the water's O along +x (Å),
  energy below a running reference (the mean of the last ``reference_window`` energies, eV, clipped to
  ±``energy_clip``), a density penalty per host atom closer than ``close_distance`` Å to the water's O, a
  distance penalty per Å of tether stretch past ``tether_threshold``, and a time penalty per action.
- **End**: ``max_steps`` actions (truncation); a failed relaxation (LAMMPS error, exploding energy) terminates
  with ``failure_penalty`` and the structure rolled back.

Energies are potential energies of the PES without the tether, eV; lengths in Å. No AiiDA import: the provenance
shell calls :func:`run_actor_steps` through calcfunctions with the same settings and seeds.
"""

from __future__ import annotations

import dataclasses
import typing as t

import gymnasium as gym
import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms, Hookean

from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES, PESSpec, as_calculator
from aiida_rlpath.physics.relax import relax

__all__ = (
    'ACTIONS',
    'ACTION_VECTORS',
    'GridSettings',
    'RewardWeights',
    'StepRecord',
    'WaterDiffusionEnv',
    'WaterDiffusionSettings',
    'density_grid',
    'settings_from_dict',
)

#: Action names and the unit vectors that move the tether centre.
ACTIONS = ('+x', '+y', '+z', '-y', '-z')
ACTION_VECTORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, -1, 0], [0, 0, -1]], dtype=float)


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f'{name} must be > 0, got {value}')


@dataclasses.dataclass(frozen=True)
class GridSettings:
    """The density grid: ``points`` voxels per side (odd, so one voxel sits on the agent), ``spacing`` between
    voxel centres (Å), Gaussian width ``sigma`` (Å), and the host ``species`` channels (the water is one more)."""

    points: int = 9
    spacing: float = 0.75
    sigma: float = 0.6
    species: tuple[str, ...] = ('Si', 'O', 'H')

    def __post_init__(self):
        object.__setattr__(self, 'species', tuple(self.species))
        if self.points < 1 or self.points % 2 == 0:
            raise ValueError(f'grid points must be an odd number >= 1, got {self.points}')
        _positive(spacing=self.spacing, sigma=self.sigma)
        if not self.species:
            raise ValueError('the grid needs at least one host species channel')

    @property
    def channels(self) -> int:
        """Host species plus the water channel."""
        return len(self.species) + 1

    @property
    def half_extent(self) -> float:
        """Distance from the agent to the outermost voxel centre along an axis, Å."""
        return 0.5 * (self.points - 1) * self.spacing

    def offsets(self) -> np.ndarray:
        """Voxel centres relative to the agent, shape (points³, 3), Å; x slowest, z fastest."""
        axis = (np.arange(self.points) - (self.points - 1) / 2) * self.spacing
        return np.stack(np.meshgrid(axis, axis, axis, indexing='ij'), axis=-1).reshape(-1, 3)


@dataclasses.dataclass(frozen=True)
class RewardWeights:
    """Weights of the five reward terms (all ≥ 0; set one to 0 to drop its term).

    :param progress: per Å the water's O moved along +x in the step.
    :param energy: per eV of energy below the running reference.
    :param density: per host atom closer than ``close_distance`` to the water's O.
    :param distance: per Å of tether stretch beyond ``tether_threshold``.
    :param time: per action.
    """

    progress: float = 1.0
    energy: float = 1.0
    density: float = 0.5
    distance: float = 1.0
    time: float = 0.05

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f'reward weight {field.name} must be >= 0, got {getattr(self, field.name)}')


@dataclasses.dataclass(frozen=True)
class WaterDiffusionSettings:
    """Settings of :class:`WaterDiffusionEnv`.

    :param step: tether-centre displacement δ per action, Å.
    :param tether_k: tether spring constant, eV/Å².
    :param tether_threshold: stretch (water O to centre, Å) beyond which the distance penalty applies.
    :param close_distance: host atoms nearer than this to the water's O (Å) count in the density penalty.
    :param reference_window: energies averaged into the running energy reference.
    :param energy_clip: the energy term's magnitude cap, eV.
    :param max_steps: actions per episode.
    :param relax_fmax: force threshold of the relaxation after each action, eV/Å.
    :param relax_steps: FIRE steps at most per action.
    :param failure_penalty: reward of a step whose relaxation failed (the episode ends).
    :param start_steps: FIRE steps at most of the start's relaxation (tether on, at the water's O).
    :param grid: :class:`GridSettings`; ``weights``: :class:`RewardWeights`.
    """

    step: float = 0.5
    tether_k: float = 5.0
    tether_threshold: float = 1.0
    close_distance: float = 1.8
    reference_window: int = 5
    energy_clip: float = 2.0
    max_steps: int = 12
    relax_fmax: float = 0.1
    relax_steps: int = 15
    failure_penalty: float = -5.0
    start_steps: int = 300
    grid: GridSettings = GridSettings()
    weights: RewardWeights = RewardWeights()

    def __post_init__(self):
        if isinstance(self.grid, dict):
            object.__setattr__(self, 'grid', GridSettings(**self.grid))
        if isinstance(self.weights, dict):
            object.__setattr__(self, 'weights', RewardWeights(**self.weights))
        _positive(
            step=self.step,
            tether_k=self.tether_k,
            close_distance=self.close_distance,
            energy_clip=self.energy_clip,
            relax_fmax=self.relax_fmax,
        )
        if self.tether_threshold < 0:
            raise ValueError(f'tether_threshold must be >= 0, got {self.tether_threshold}')
        if self.reference_window < 1 or self.max_steps < 1 or self.relax_steps < 0 or self.start_steps < 0:
            raise ValueError('reference_window and max_steps must be >= 1, relax_steps and start_steps >= 0')

    def to_dict(self) -> dict[str, t.Any]:
        """JSON-serialisable (``settings_from_dict`` rebuilds it)."""
        data = dataclasses.asdict(self)
        data['grid']['species'] = list(self.grid.species)
        return data


def settings_from_dict(data: t.Mapping[str, t.Any] | None) -> WaterDiffusionSettings:
    """:class:`WaterDiffusionSettings` from a (partial) dictionary; unknown keys raise ``ValueError`` naming them."""
    from aiida_rlpath.physics.properties import reject_unknown_keys

    def names(cls) -> list[str]:
        return sorted(f.name for f in dataclasses.fields(cls))

    data = dict(data or {})
    reject_unknown_keys(data, names(WaterDiffusionSettings), 'water-diffusion settings')
    for key, cls in (('grid', GridSettings), ('weights', RewardWeights)):
        if key in data and isinstance(data[key], t.Mapping):
            reject_unknown_keys(data[key], names(cls), f'{key} settings')
            data[key] = cls(**data[key])
    return WaterDiffusionSettings(**data)


def _minimum_image(delta: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    fractional = delta @ np.linalg.inv(cell)
    fractional[:, pbc] -= np.round(fractional[:, pbc])
    return fractional @ cell


def density_grid(
    positions: np.ndarray,
    symbols: t.Sequence[str],
    cell: np.ndarray,
    pbc: t.Sequence[bool],
    centre: np.ndarray,
    water: t.Sequence[int],
    grid: GridSettings = GridSettings(),
) -> np.ndarray:
    """The state: Gaussian-smeared atom densities on a cubic grid around ``centre`` (Å), shape
    (channels, points, points, points), float32.

    Channel ``c < len(grid.species)`` sums exp(−|d − o|² / 2σ²) over host atoms of species ``grid.species[c]``
    (d: the atom's minimum-image offset from ``centre``, o: the voxel offset); the last channel does the same for
    the ``water`` atoms. Host atoms of other species are ignored. Atoms farther than 4σ outside the grid are
    skipped (their kernels are below 3.4e-4). Invariant to atom order; assumes the box is larger than twice the
    grid's reach (one image per atom).
    """
    positions = np.asarray(positions, dtype=float)
    delta = _minimum_image(positions - np.asarray(centre, dtype=float), np.asarray(cell, float), np.asarray(pbc))
    reach = grid.half_extent + 4.0 * grid.sigma
    near = np.all(np.abs(delta) <= reach, axis=1)
    channel = np.full(len(positions), -1)
    species_index = {symbol: i for i, symbol in enumerate(grid.species)}
    for i, symbol in enumerate(symbols):
        channel[i] = species_index.get(symbol, -1)
    channel[list(water)] = grid.channels - 1
    offsets = grid.offsets()
    values = np.zeros((grid.channels, offsets.shape[0]))
    keep = near & (channel >= 0)
    if np.any(keep):
        d = delta[keep]
        r2 = np.sum((offsets[:, None, :] - d[None, :, :]) ** 2, axis=-1)  # (voxels, atoms)
        kernels = np.exp(-r2 / (2.0 * grid.sigma**2))
        for c in np.unique(channel[keep]):
            values[c] = kernels[:, channel[keep] == c].sum(axis=1)
    return values.reshape(grid.channels, grid.points, grid.points, grid.points).astype(np.float32)


@dataclasses.dataclass
class StepRecord:
    """One action's outcome: the ``action`` index, the ``reward`` and its ``terms``, the PES ``energy`` (eV) after
    relaxation, the water O's ``x`` (Å, unwrapped), the tether ``stretch`` (Å), ``close`` host atoms, ``force_calls``
    and the relaxation ``error`` (``None`` if it succeeded)."""

    action: int
    reward: float
    terms: dict[str, float]
    energy: float
    x: float
    stretch: float
    close: int
    force_calls: int
    error: str | None = None


class WaterDiffusionEnv(gym.Env):
    """Gymnasium environment of one H2O in a glass, moved by a tethered agent (module docstring).

    :param atoms: glass with the water (periodic box; positions in Å). Fixed atoms (``FixAtoms``) stay fixed.
    :param water: indices of the water's O, H, H (O first).
    :param pes: a :class:`PESSpec` (ReaxFF with Si/O/H by default) or a ready ASE calculator (reused).
    :param settings: :class:`WaterDiffusionSettings`.

    The start is the input relaxed with the tether on the water's O (done once, at the first reset). Episodes
    are deterministic given the actions: reset's ``seed`` seeds only :attr:`np_random`.
    """

    metadata: t.ClassVar[dict] = {'render_modes': []}

    def __init__(
        self,
        atoms: Atoms,
        water: t.Sequence[int],
        pes=DEFAULT_OXIDATION_PES,
        settings: WaterDiffusionSettings = WaterDiffusionSettings(),
    ):
        super().__init__()
        water = [int(i) for i in water]
        if len(water) != 3 or sorted(atoms[water].get_chemical_symbols()) != ['H', 'H', 'O']:
            raise ValueError(f'water must index one O and two H atoms (O first), got {water}')
        if atoms[water[0]].symbol != 'O':
            raise ValueError(f'water[0] must be the water O atom, got {atoms[water[0]].symbol}')
        if not all(atoms.pbc):
            raise ValueError('the water-diffusion environment needs a periodic box')
        if isinstance(pes, PESSpec):
            pes.check_species(atoms.get_chemical_symbols())
        self.settings = settings
        self.water = water
        self.initial = atoms.copy()
        self.calculator = as_calculator(pes, atoms)
        grid = settings.grid
        shape = (grid.channels, grid.points, grid.points, grid.points)
        self.observation_space = gym.spaces.Box(0.0, np.inf, shape, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(ACTIONS))
        self._start: tuple[Atoms, float] | None = None
        self.atoms: Atoms | None = None
        self.centre = np.zeros(3)

    # --- physics ------------------------------------------------------------------------------------------------
    def _tethered(self, atoms: Atoms, centre: np.ndarray) -> Atoms:
        work = atoms.copy()
        fixed = [c for c in work.constraints if isinstance(c, FixAtoms)]
        work.set_constraint([*fixed, Hookean(self.water[0], np.asarray(centre, float), self.settings.tether_k, 0.0)])
        return work

    def _relax(self, atoms: Atoms, centre: np.ndarray, steps: int | None = None):
        s = self.settings
        steps = s.relax_steps if steps is None else steps
        result = relax(self._tethered(atoms, centre), self.calculator, s.relax_fmax, steps, 'FIRE')
        relaxed = result.atoms
        relaxed.set_constraint([c for c in relaxed.constraints if isinstance(c, FixAtoms)])
        stretch = float(np.linalg.norm(relaxed.positions[self.water[0]] - centre))
        tether = 0.5 * s.tether_k * stretch**2
        return relaxed, float(result.energy - tether), stretch, result.force_calls, result.error

    def _close(self, atoms: Atoms) -> int:
        host = [i for i in range(len(atoms)) if i not in self.water]
        delta = _minimum_image(atoms.positions[host] - atoms.positions[self.water[0]], atoms.cell.array, atoms.pbc)
        return int(np.sum(np.linalg.norm(delta, axis=1) < self.settings.close_distance))

    def observe(self) -> np.ndarray:
        """The density grid of the current structure around the agent."""
        a = self.atoms
        return density_grid(
            a.positions, a.get_chemical_symbols(), a.cell.array, a.pbc, self.centre, self.water, self.settings.grid
        )

    # --- gymnasium ---------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Back to the start (relaxed once, on the first call); returns the density grid and ``energy`` (eV) and
        ``x`` (Å) of the water's O."""
        super().reset(seed=seed)
        if self._start is None:
            centre = self.initial.positions[self.water[0]].copy()
            relaxed, energy, _, calls, error = self._relax(self.initial, centre, self.settings.start_steps)
            if error is not None or not np.isfinite(energy):
                raise RuntimeError(f'the start structure does not relax with the tether on: {error}')
            self._start = (relaxed, energy)
            self.start_force_calls = calls
        start, energy = self._start
        self.atoms = start.copy()
        self.centre = start.positions[self.water[0]].copy()
        self.energies = [energy]
        self.frames = [self.atoms.copy()]
        self.records: list[StepRecord] = []
        self.steps = 0
        return self.observe(), {'energy': energy, 'x': float(self.centre[0])}

    def step(self, action: int):
        """Move the tether centre by ``step`` Å along action ``action`` (index into :data:`ACTIONS`), relax, and
        return (grid, reward, terminated, truncated, info); ``info['record']`` is the :class:`StepRecord`."""
        if self.atoms is None:
            raise RuntimeError('call reset() before step()')
        action = int(action)
        if not 0 <= action < len(ACTIONS):
            raise ValueError(f'action must be in 0..{len(ACTIONS) - 1} ({", ".join(ACTIONS)}), got {action}')
        s, w = self.settings, self.settings.weights
        centre = self.centre + s.step * ACTION_VECTORS[action]
        x_before = float(self.atoms.positions[self.water[0], 0])
        relaxed, energy, stretch, calls, error = self._relax(self.atoms, centre)
        self.steps += 1
        truncated = self.steps >= s.max_steps
        if error is not None or not np.isfinite(energy):
            record = StepRecord(
                action,
                s.failure_penalty,
                {'failure': s.failure_penalty},
                float('nan'),
                x_before,
                float('nan'),
                0,
                calls,
                error or 'non-finite energy',
            )
            self.records.append(record)
            return self.observe(), record.reward, True, truncated, {'record': record}
        reference = float(np.mean(self.energies[-s.reference_window :]))
        close = self._close(relaxed)
        x_after = float(relaxed.positions[self.water[0], 0])
        terms = {
            'progress': w.progress * (x_after - x_before),
            'energy': w.energy * float(np.clip(reference - energy, -s.energy_clip, s.energy_clip)),
            'density': -w.density * close,
            'distance': -w.distance * max(0.0, stretch - s.tether_threshold),
            'time': -w.time,
        }
        reward = float(sum(terms.values()))
        self.atoms, self.centre = relaxed, centre
        self.energies.append(energy)
        self.frames.append(relaxed.copy())
        record = StepRecord(action, reward, terms, energy, x_after, stretch, close, calls)
        self.records.append(record)
        return self.observe(), reward, False, truncated, {'record': record}

    def progress(self) -> float:
        """How far the water's O has moved along +x since the start, Å."""
        return float(self.atoms.positions[self.water[0], 0] - self._start[0].positions[self.water[0], 0])
