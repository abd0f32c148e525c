"""RL crystal-structure relaxation at fixed cell: a gymnasium environment, its rewards and schedules.

The method of "Acceleration of crystal structure relaxation with deep reinforcement learning" (npj Comput.
Mater. 2025). No AiiDA here. An episode starts from a reference minimum distorted by β·U(−1, 1) Å per
coordinate; each action is a displacement vector per atom (Å); after it the forces are recomputed (one force
call per step) and the episode ends when max|F| ≤ ε1 (eV/Å).

The observation is a crystal graph (:class:`CrystalGraph`): atomic numbers, per-atom vectors (the forces, and
with ``history`` the previous step's displacement and force change) and the periodic neighbour edges within
``cutoff`` Å. As a gymnasium space it is a :class:`gymnasium.spaces.Graph` whose node features are
``[Z, F_x, F_y, F_z, ...]`` and whose edge features are the edge vectors, so other RL libraries can read it.

Units: lengths and displacements in Å, energies in eV, forces in eV/Å.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t
from pathlib import Path

import gymnasium as gym
import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.neighborlist import neighbor_list

from aiida_rlpath.physics.pes import PESSpec
from aiida_rlpath.systems.alfe import ALFE_PES, distort

__all__ = (
    'REWARDS',
    'CrystalGraph',
    'EpsilonSchedule',
    'RelaxationEnv',
    'RelaxationSettings',
    'RewardSchedule',
    'apply_displacement',
    'crystal_graph',
    'force_call_table',
    'min_distance',
    'read_structures',
    'relaxation_reward',
)

REWARDS = ('force', 'step', 'log_force', 'hybrid')


@dataclasses.dataclass
class CrystalGraph:
    """A periodic crystal graph, plain numpy (the models turn it into tensors).

    :param numbers: atomic numbers, shape (N,).
    :param vectors: per-atom vector features, shape (N, K, 3): forces (eV/Å) first, then any history vectors.
    :param src: edge source atom indices, shape (E,).
    :param dst: edge destination atom indices, shape (E,).
    :param edge_vectors: r_dst − r_src including the periodic shift, Å, shape (E, 3).
    """

    numbers: np.ndarray
    vectors: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    edge_vectors: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def with_vectors(self, vectors: np.ndarray) -> CrystalGraph:
        """The same graph with other per-atom vectors (shape (N, K, 3))."""
        return dataclasses.replace(self, vectors=np.asarray(vectors, dtype=float))

    def rotated(self, rotation: np.ndarray) -> CrystalGraph:
        """The graph of the structure rotated by the 3×3 matrix ``rotation`` (edges and vectors rotate)."""
        return dataclasses.replace(self, vectors=self.vectors @ rotation.T, edge_vectors=self.edge_vectors @ rotation.T)


def crystal_graph(atoms: Atoms, vectors: np.ndarray, cutoff: float) -> CrystalGraph:
    """The crystal graph of ``atoms`` with per-atom ``vectors`` (N, K, 3) and periodic edges within ``cutoff`` Å.

    Every atom has at least its nearest neighbour as an edge, even if it lies beyond ``cutoff`` (a sparse random
    cell can hold an isolated atom, which the network would otherwise see as alone in vacuum).
    """
    src, dst, shifts = neighbor_list('ijS', atoms, cutoff)
    edge_vectors = atoms.positions[dst] - atoms.positions[src] + shifts @ atoms.cell.array
    lonely = sorted(set(range(len(atoms))) - set(src.tolist()))
    if lonely:
        extra = neighbor_list('ijS', atoms, 2.5 * cutoff)
        extra_vectors = atoms.positions[extra[1]] - atoms.positions[extra[0]] + extra[2] @ atoms.cell.array
        lengths = np.linalg.norm(extra_vectors, axis=1)
        for atom in lonely:
            mine = np.flatnonzero(extra[0] == atom)
            if not len(mine):
                raise ValueError(f'atom {atom} has no neighbour within {2.5 * cutoff:.1f} Å')
            nearest = mine[np.isclose(lengths[mine], lengths[mine].min(), atol=1e-6)]
            src = np.concatenate([src, extra[0][nearest]])
            dst = np.concatenate([dst, extra[1][nearest]])
            edge_vectors = np.concatenate([edge_vectors, extra_vectors[nearest]])
    vectors = np.asarray(vectors, dtype=float)
    if vectors.ndim == 2:
        vectors = vectors[:, None, :]
    return CrystalGraph(atoms.numbers.copy(), vectors, src, dst, edge_vectors)


def min_distance(atoms: Atoms) -> float:
    """The shortest interatomic distance (Å) under periodic boundary conditions (images of an atom included)."""
    if len(atoms) == 1:
        lengths = np.linalg.norm(atoms.cell.array, axis=1)
        return float(lengths.min())
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    own = neighbor_list('d', atoms, 1.5)  # an atom's own periodic images, in tiny cells
    return float(min(distances.min(), own.min() if len(own) else np.inf))


def apply_displacement(atoms: Atoms, displacement: np.ndarray, max_step: float, d_min: float) -> tuple[Atoms, float]:
    """``atoms`` moved by ``displacement`` (N × 3, Å), each atom's move capped at ``max_step`` Å.

    The guard against atoms closer than ``d_min`` Å: a move that would bring two atoms closer is halved up to
    four times; if still too close it is refused (``atoms`` returned unmoved). Returns the new structure and
    the fraction of the capped move applied (0 when refused).
    """
    displacement = np.asarray(displacement, dtype=float).reshape(len(atoms), 3)
    if not np.all(np.isfinite(displacement)):
        raise ValueError('displacement holds non-finite values')
    norms = np.linalg.norm(displacement, axis=1, keepdims=True)
    displacement = displacement * np.minimum(1.0, max_step / np.maximum(norms, 1e-12))
    fraction = 1.0
    for _ in range(5):
        moved = atoms.copy()
        moved.positions = atoms.positions + fraction * displacement
        if min_distance(moved) >= d_min:
            return moved, fraction
        fraction /= 2
    return atoms.copy(), 0.0


def relaxation_reward(kind: str, fmax: float, eps1: float, weights: t.Mapping[str, float] | None = None) -> float:
    """The reward of a step that reached max force ``fmax`` (eV/Å), with ``eps1`` (eV/Å) the convergence threshold.

    - ``force``: −max|F| (eV/Å taken as a number);
    - ``step``: −1 until converged, 0 on the step that converges;
    - ``log_force``: −log10(max|F|/ε1): negative until converged (so lingering above ε1 never pays);
    - ``hybrid``: Σ weight × each of the three (``weights`` keys ``force``, ``step``, ``log_force``).
    """
    if kind not in REWARDS:
        raise ValueError(f'unknown reward `{kind}`; choose one of {REWARDS}')
    fmax = float(fmax)
    terms = {
        'force': -fmax,
        'step': 0.0 if fmax <= eps1 else -1.0,
        'log_force': -math.log10(max(fmax, 1e-8) / eps1),
    }
    if kind != 'hybrid':
        return terms[kind]
    weights = dict(weights or {'force': 0.0, 'step': 1.0, 'log_force': 1.0})
    unknown = set(weights) - set(terms)
    if unknown:
        raise ValueError(f'unknown hybrid reward terms {sorted(unknown)}; known: {sorted(terms)}')
    return sum(weights.get(key, 0.0) * value for key, value in terms.items())


@dataclasses.dataclass(frozen=True)
class EpsilonSchedule:
    """Convergence threshold ε1 (eV/Å) tightening geometrically from ``start`` to ``end`` over ``episodes``."""

    start: float = 0.5
    end: float = 0.05
    episodes: int = 100

    def __call__(self, episode: int) -> float:
        if self.episodes <= 0 or episode >= self.episodes:
            return self.end
        return float(self.start * (self.end / self.start) ** (episode / self.episodes))


@dataclasses.dataclass(frozen=True)
class RewardSchedule:
    """The smooth ``pretrain`` reward for the first ``switch`` episodes, then the ``final`` (step) reward."""

    pretrain: str = 'log_force'
    final: str = 'step'
    switch: int = 50

    def __call__(self, episode: int) -> str:
        return self.pretrain if episode < self.switch else self.final


@dataclasses.dataclass(frozen=True)
class RelaxationSettings:
    """Settings of :class:`RelaxationEnv`.

    :param beta: distortion amplitude β (Å): each coordinate of the reference minimum is moved by β·U(−1, 1).
    :param eps1: convergence threshold on max|F| (eV/Å).
    :param reward: one of :data:`REWARDS`.
    :param max_steps: steps before the episode is truncated.
    :param max_step: cap on one atom's displacement per step (Å).
    :param d_min: no two atoms may come closer than this (Å).
    :param cutoff: neighbour cutoff of the crystal graph (Å).
    :param history: add the previous displacement (Å) and force change (eV/Å) as per-atom vectors.
    :param hybrid_weights: weights of the hybrid reward.
    """

    beta: float = 0.2
    eps1: float = 0.1
    reward: str = 'log_force'
    max_steps: int = 100
    max_step: float = 0.3
    d_min: float = 1.5
    cutoff: float = 4.0
    history: bool = True
    hybrid_weights: tuple[tuple[str, float], ...] = (('step', 1.0), ('log_force', 1.0))

    def __post_init__(self):
        if self.reward not in REWARDS:
            raise ValueError(f'unknown reward `{self.reward}`; choose one of {REWARDS}')
        for name in ('eps1', 'max_step', 'd_min', 'cutoff'):
            if not getattr(self, name) > 0:
                raise ValueError(f'`{name}` must be positive, got {getattr(self, name)}')
        if self.beta < 0 or self.max_steps < 1:
            raise ValueError('`beta` must be ≥ 0 Å and `max_steps` ≥ 1')

    @property
    def n_vectors(self) -> int:
        return 3 if self.history else 1


class RelaxationEnv(gym.Env):
    """Fixed-cell relaxation of distorted crystals as a gymnasium environment.

    :param structures: reference minima (``ase.Atoms`` with cells); each reset draws one and distorts it.
    :param pes: a :class:`PESSpec` (default: the Mendelev Al–Fe EAM) or a ready ASE calculator.
    :param settings: :class:`RelaxationSettings`.

    ``reset(seed=...)`` picks a structure and distortion from the seed (``options={'structure': i}`` picks the
    structure, ``options={'atoms': atoms}`` starts from given positions). ``step(action)`` takes an (N, 3)
    displacement in Å. ``info`` holds ``fmax`` (eV/Å), ``energy`` (eV), ``force_calls``, ``guarded`` (the
    fraction of the move applied) and ``structure``. The action space is reset with the structure, since N
    changes between structures.
    """

    metadata: t.ClassVar[dict] = {'render_modes': []}

    def __init__(
        self,
        structures: t.Sequence[Atoms],
        pes: PESSpec | Calculator = ALFE_PES,
        settings: RelaxationSettings | None = None,
    ):
        if not structures:
            raise ValueError('RelaxationEnv needs at least one reference structure')
        self.structures = [a.copy() for a in structures]
        self.settings = settings or RelaxationSettings()
        if isinstance(pes, PESSpec):
            for atoms in self.structures:
                pes.check_species(atoms.get_chemical_symbols())
        self.pes = pes
        self._calculators: dict[tuple[str, ...], Calculator] = {}
        self.observation_space = gym.spaces.Graph(
            node_space=gym.spaces.Box(-np.inf, np.inf, shape=(1 + 3 * self.settings.n_vectors,)),
            edge_space=gym.spaces.Box(-np.inf, np.inf, shape=(3,)),
        )
        self.action_space = gym.spaces.Box(-self.settings.max_step, self.settings.max_step, shape=(1, 3))
        self.atoms: Atoms | None = None
        self.eps1 = self.settings.eps1
        self.reward_kind = self.settings.reward

    # --- physics ----------------------------------------------------------------------------------------------
    def _calculator(self, atoms: Atoms) -> Calculator:
        if not isinstance(self.pes, PESSpec):
            return self.pes
        key = tuple(sorted(set(atoms.get_chemical_symbols())))
        if key not in self._calculators:
            self._calculators[key] = self.pes.calculator()
        return self._calculators[key]

    def _evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        work = atoms.copy()
        work.calc = self._calculator(atoms)
        energy = float(work.get_potential_energy())
        forces = np.array(work.get_forces())
        self.force_calls += 1
        return energy, forces

    def _graph(self) -> CrystalGraph:
        vectors = [self.forces]
        if self.settings.history:
            vectors += [self.last_displacement, self.forces - self.last_forces]
        return crystal_graph(self.atoms, np.stack(vectors, axis=1), self.settings.cutoff)

    def observation(self) -> gym.spaces.GraphInstance:
        """The current state as a gymnasium ``GraphInstance`` (node features ``[Z, vectors…]``, edge vectors)."""
        graph = self.graph
        nodes = np.concatenate([graph.numbers[:, None], graph.vectors.reshape(graph.n_atoms, -1)], axis=1)
        return gym.spaces.GraphInstance(
            nodes.astype(np.float32), graph.edge_vectors.astype(np.float32), np.stack([graph.src, graph.dst], 1)
        )

    @property
    def fmax(self) -> float:
        return float(np.linalg.norm(self.forces, axis=1).max())

    # --- gymnasium API ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A new distorted start (see the class docstring); returns the observation and ``info``."""
        super().reset(seed=seed)
        options = options or {}
        index = int(options.get('structure', self.np_random.integers(len(self.structures))))
        if 'atoms' in options:
            start = options['atoms'].copy()
        else:
            reference = self.structures[index]
            start = distort(reference, self.settings.beta, seed=int(self.np_random.integers(2**31)))
        self.structure_index = index
        self.atoms = start
        self.force_calls = 0
        self.steps = 0
        self.energy, self.forces = self._evaluate(start)
        self.last_forces = self.forces.copy()
        self.last_displacement = np.zeros_like(self.forces)
        self.graph = self._graph()
        self.action_space = gym.spaces.Box(-self.settings.max_step, self.settings.max_step, shape=(len(start), 3))
        return self.observation(), self._info(1.0)

    def _info(self, guarded: float) -> dict[str, t.Any]:
        return {
            'fmax': self.fmax,
            'energy': self.energy,
            'force_calls': self.force_calls,
            'guarded': guarded,
            'structure': self.structure_index,
            'graph': self.graph,
        }

    def step(self, action):
        """Move each atom by its row of ``action`` (N × 3, Å; capped and guarded), recompute the forces.

        Returns observation, reward, terminated (max|F| ≤ ε1), truncated (``max_steps`` reached), ``info``.
        """
        if self.atoms is None:
            raise RuntimeError('call reset() before step()')
        action = np.asarray(action, dtype=float)
        if action.shape != (len(self.atoms), 3):
            raise ValueError(f'action must have shape ({len(self.atoms)}, 3) (Å per atom), got {action.shape}')
        moved, fraction = apply_displacement(self.atoms, action, self.settings.max_step, self.settings.d_min)
        self.last_displacement = moved.positions - self.atoms.positions
        self.last_forces = self.forces
        self.atoms = moved
        self.steps += 1
        if fraction > 0:
            self.energy, self.forces = self._evaluate(moved)
        self.graph = self._graph()
        fmax = self.fmax
        terminated = fmax <= self.eps1
        truncated = not terminated and self.steps >= self.settings.max_steps
        weights = dict(self.settings.hybrid_weights)
        reward = relaxation_reward(self.reward_kind, fmax, self.eps1, weights)
        return self.observation(), reward, terminated, truncated, self._info(fraction)


def read_structures(paths: t.Iterable[str | Path], pes: PESSpec | None = ALFE_PES) -> list[Atoms]:
    """User structures from CIF or extxyz files (or folders of them), checked to be periodic and covered by ``pes``.

    Raises ``ValueError`` naming the file when a structure has no cell or holds species the PES lacks.
    """
    from ase.io import read

    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in ('.cif', '.extxyz', '.xyz'))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f'no structure file or folder `{path}`')
    structures = []
    for file in files:
        fmt = 'cif' if file.suffix.lower() == '.cif' else 'extxyz'
        for atoms in read(file, index=':', format=fmt):
            if not atoms.cell.rank == 3 or not all(atoms.pbc):
                raise ValueError(f'`{file}`: the structure is not periodic in 3D (relaxation is at fixed cell)')
            if pes is not None:
                try:
                    pes.check_species(atoms.get_chemical_symbols())
                except ValueError as error:
                    raise ValueError(f'`{file}`: {error}') from error
            atoms.calc = None
            structures.append(atoms)
    if not structures:
        raise ValueError('no CIF or extxyz structure found')
    return structures


def _median_table(results: list[dict], max_steps: int) -> dict:
    table = {}
    for method in sorted({r['method'] for r in results}):
        mine = [r for r in results if r['method'] == method]
        calls = [r['force_calls'] if r['converged'] else max_steps + 1 for r in mine]
        table[method] = float(np.median(calls))
        table[f'{method}_converged'] = float(np.mean([r['converged'] for r in mine]))
    if 'rl' in table and 'bfgs' in table:
        table['rl_over_bfgs'] = table['rl'] / table['bfgs']
    table['starts'] = len(results) // max(1, len({r['method'] for r in results}))
    return table


def force_call_table(results: list[dict], max_steps: int) -> dict:
    """The benchmark table of relaxation ``results`` (dicts with ``method``, ``n_atoms``, ``force_calls``,
    ``converged``): per N and for ``all``, the median force calls per method (a start that did not converge
    counts as ``max_steps + 1``), its fraction converged (``METHOD_converged``), ``rl_over_bfgs`` and ``starts``."""
    table = {str(n): _median_table([r for r in results if r['n_atoms'] == n], max_steps)
             for n in sorted({r['n_atoms'] for r in results})}  # fmt: skip
    table['all'] = _median_table(results, max_steps)
    return table
