"""REALIZE: an O2 molecule moved by rigid-body actions through an a-SiO2 film until it dissociates.

No AiiDA here. One environment step is a composition of small pure functions, each returning a dataclass, so
the gymnasium environment below and the AiiDA workflows call the same code:

``apply_action`` → ``relax`` → escape check → ``barrier`` (pre-screened NEB) → ``verify_dissociation`` →
``step_reward``. A failed NEB rolls the state back to the previous structure with a penalty.

Units: lengths in Å, energies and barriers in eV, forces in eV/Å.
"""

from __future__ import annotations

import dataclasses
import typing as t

import gymnasium as gym
import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from aiida_rlpath.physics.bonds import Verification, o2_bond, verify_dissociation
from aiida_rlpath.physics.neb import barrier
from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES, PESSpec, as_calculator
from aiida_rlpath.physics.relax import relax
from aiida_rlpath.systems.si_oxide import insert_o2

__all__ = (
    'OxidationAction',
    'OxidationEnv',
    'OxidationSettings',
    'RewardWeights',
    'StepRecord',
    'TrainingSettings',
    'anneal_threshold',
    'apply_action',
    'canonical',
    'classify',
    'conclude',
    'cycle_seeds',
    'episode_seeds',
    'evaluate_policy',
    'evolve_environment',
    'film_top',
    'fixed_indices',
    'has_escaped',
    'measure_barrier',
    'path_barrier',
    'random_action',
    'relax_after_move',
    'relax_start',
    'run_episode',
    'select_event',
    'step_reward',
    'summarize_cycle',
    'train',
    'transition',
)


#: Decimals kept at stage boundaries: positions and cell (Å), action components. The provenance shell stores every
#: structure and action as JSON with ~14 significant digits; rounding first makes both shells compute on the same
#: numbers (ReaxFF's QEq turns a 1e-14 Å difference into 1e-6 eV), far below any physical resolution.
POSITION_DECIMALS, ACTION_DECIMALS = 10, 12


def canonical(atoms: Atoms) -> Atoms:
    """A copy of ``atoms`` with positions and cell rounded to 1e-10 Å (constraints kept)."""
    result = atoms.copy()
    result.set_cell(np.round(result.cell.array, POSITION_DECIMALS))
    result.set_positions(np.round(result.positions, POSITION_DECIMALS), apply_constraint=False)
    return result


def _unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` normalised and rounded to ACTION_DECIMALS; idempotent, so a stored action rebuilds exactly
    (re-normalising an already rounded unit vector moved components by 1e-12 and the shells apart)."""
    norm = np.linalg.norm(vector)
    return np.round(vector if abs(norm - 1.0) < 1e-11 else vector / norm, ACTION_DECIMALS)


@dataclasses.dataclass(frozen=True)
class OxidationAction:
    """A rigid-body move of the O2: its centre moves ``magnitude`` Å along the unit ``direction``; the bond is
    then laid along the unit ``axis`` at its current length (O2 is homonuclear: ``axis`` and ``-axis`` are the
    same move)."""

    direction: tuple[float, float, float]
    magnitude: float
    axis: tuple[float, float, float]

    @classmethod
    def from_vector(cls, vector: t.Sequence[float], d_max: float) -> OxidationAction:
        """Build from the flat action ``[dx, dy, dz, magnitude, ax, ay, az]``; directions are normalised and
        the magnitude clipped to [0, ``d_max``] Å. A zero direction or axis is a ``ValueError``."""
        values = np.asarray(vector, dtype=float)
        if values.shape != (7,) or not np.all(np.isfinite(values)):
            raise ValueError(f'an action is 7 finite numbers [direction(3), magnitude, axis(3)], got {vector!r}')
        direction, axis = values[:3], values[4:]
        for name, part in (('direction', direction), ('axis', axis)):
            if np.linalg.norm(part) < 1e-8:
                raise ValueError(f'the action {name} has zero length')
        direction, axis = _unit(direction), _unit(axis)
        magnitude = round(float(np.clip(values[3], 0.0, d_max)), ACTION_DECIMALS)
        return cls(tuple(map(float, direction)), magnitude, tuple(map(float, axis)))

    def to_vector(self) -> np.ndarray:
        """The flat 7-vector form."""
        return np.array([*self.direction, self.magnitude, *self.axis])


@dataclasses.dataclass(frozen=True)
class RewardWeights:
    """Reward terms, each in reward units per the quantity named.

    :param success: bonus for a verified dissociation whose pathway's highest barrier is under the threshold: the
        goal.
    :param barrier: penalty per eV a step's barrier exceeds the threshold: steers towards low-barrier paths
        without punishing moves that are already cheap enough.
    :param step: cost per step: prefers short pathways (fewer NEBs).
    :param neb_failure: penalty when the NEB (or the relaxation) fails and the step is rolled back.
    :param escape: penalty when the O2 leaves into the vacuum.
    :param progress: reward per Å the O2 centre moves down towards the interface (0: off; shaping is optional
        because it biases which sites the agent tries first).
    """

    success: float = 10.0
    barrier: float = 1.0
    step: float = 0.1
    neb_failure: float = 1.0
    escape: float = 5.0
    progress: float = 0.0


@dataclasses.dataclass(frozen=True)
class OxidationSettings:
    """Numerical settings of one environment step.

    :param d_max: largest centre displacement per action, Å.
    :param max_steps: episode length limit (truncation).
    :param relax_fmax: relaxation threshold after each move, eV/Å; ``relax_max_steps`` FIRE steps at most.
    :param neb_images: interior NEB images; ``neb_fmax`` (eV/Å) and ``neb_max_steps`` for the CI-NEB.
    :param prescreen_margin: the pre-screen skips the CI-NEB when the loose band exceeds threshold + margin, eV.
    :param escape_margin: the O2 has escaped when its centre is this far above the film's top atom, Å.
    :param max_neb_failures: NEB failures in one episode before it ends.
    :param separation: O–O distance beyond which the O2 counts as dissociated, Å.
    """

    d_max: float = 2.0
    max_steps: int = 20
    relax_fmax: float = 0.1
    relax_max_steps: int = 300
    neb_images: int = 5
    neb_fmax: float = 0.1
    neb_max_steps: int = 300
    prescreen_margin: float = 0.5
    escape_margin: float = 4.0
    max_neb_failures: int = 3
    separation: float = 2.0


@dataclasses.dataclass
class StepRecord:
    """Everything one step produced (the provenance shell stores these fields on the step node).

    :param atoms: the state after the step (the previous state again if it was rolled back).
    :param outcome: ``'moved'``, ``'success'``, ``'dissociated_above_threshold'``, ``'neb_failed'``,
        ``'escaped'`` or ``'relax_failed'``.
    :param energy_before: energy of the previous state, eV; ``energy_after`` of the new one (eV).
    :param barrier: forward barrier of the move, eV (``nan`` if none was measured); ``barrier_method`` says
        how (``'prescreen'`` or ``'ci-neb'``).
    :param path_barrier: highest barrier of the episode's pathway up to and including this move, eV (``nan``
        while none was measured): the rate-limiting step a success must keep under the threshold.
    """

    atoms: Atoms
    action: OxidationAction
    outcome: str
    reward: float
    terminated: bool
    energy_before: float
    energy_after: float
    barrier: float = float('nan')
    barrier_method: str | None = None
    neb_converged: bool = False
    oo_distance: float = float('nan')
    dissociated: bool = False
    verification: Verification | None = None
    force_calls: int = 0
    path_barrier: float = float('nan')

    def summary(self) -> dict[str, t.Any]:
        """The scalar fields, JSON-serialisable."""
        return {
            'action': self.action.to_vector().tolist(),
            'outcome': self.outcome,
            'reward': self.reward,
            'terminated': self.terminated,
            'energy_before': self.energy_before,
            'energy_after': self.energy_after,
            'barrier': self.barrier,
            'barrier_method': self.barrier_method,
            'path_barrier': self.path_barrier,
            'neb_converged': self.neb_converged,
            'oo_distance': self.oo_distance,
            'dissociated': self.dissociated,
            'force_calls': self.force_calls,
        }


def apply_action(atoms: Atoms, agent: t.Sequence[int], action: OxidationAction) -> Atoms:
    """Return a copy of ``atoms`` with the agent O2 moved rigidly by ``action`` (minimum-image bond vector)."""
    moved = atoms.copy()
    first, second = agent
    bond = moved.get_distance(first, second, mic=True, vector=True)
    centre = moved.positions[first] + bond / 2 + action.magnitude * np.asarray(action.direction)
    half = np.linalg.norm(bond) / 2 * np.asarray(action.axis)
    moved.positions[first] = centre - half
    moved.positions[second] = centre + half
    return moved


def step_reward(
    outcome: str, barrier_ev: float, threshold: float, weights: RewardWeights, descent: float = 0.0
) -> float:
    """Reward of one step from its outcome, barrier (eV), the current threshold (eV) and the O2's descent (Å)."""
    reward = -weights.step + weights.progress * descent
    if np.isfinite(barrier_ev):
        reward -= weights.barrier * max(0.0, barrier_ev - threshold)
    if outcome == 'success':
        reward += weights.success
    elif outcome in ('neb_failed', 'relax_failed'):  # a computation failed: the step was rolled back
        reward -= weights.neb_failure
    elif outcome == 'escaped':
        reward -= weights.escape
    return float(reward)


def episode_seeds(seed: int) -> tuple[int, int]:
    """(action seed base, verification seed base) of an episode: step k draws from base + k in both shells."""
    rng = np.random.default_rng(seed)
    return int(rng.integers(2**31)), int(rng.integers(2**31))


def relax_after_move(
    atoms: Atoms,
    agent: t.Sequence[int],
    action: OxidationAction,
    pes: PESSpec | Calculator,
    settings: OxidationSettings,
):
    """Stage 1: the rigid move and the relaxation of the moved structure (a :class:`RelaxResult`, canonical)."""
    result = relax(apply_action(atoms, agent, action), pes, settings.relax_fmax, settings.relax_max_steps)
    result.atoms = canonical(result.atoms)
    return result


def relax_start(atoms: Atoms, pes: PESSpec | Calculator, settings: OxidationSettings):
    """The episode's first state: the canonical start structure relaxed (a :class:`RelaxResult`, canonical)."""
    result = relax(canonical(atoms), pes, settings.relax_fmax, settings.relax_max_steps)
    result.atoms = canonical(result.atoms)
    return result


def film_top(atoms: Atoms, agent: t.Sequence[int]) -> float:
    """Height (Å) of the film's top atom: the highest atom that is not the agent O2."""
    return float(np.delete(atoms.positions[:, 2], list(agent)).max())


def fixed_indices(atoms: Atoms) -> list[int]:
    """Sorted indices of the atoms held by ``FixAtoms`` constraints."""
    from ase.constraints import FixAtoms

    return sorted({int(i) for c in atoms.constraints if isinstance(c, FixAtoms) for i in c.index})


def has_escaped(atoms: Atoms, agent: t.Sequence[int], film_top: float, settings: OxidationSettings) -> bool:
    """Stage 2: is the O2 centre more than ``escape_margin`` Å above the film's top atom (height ``film_top``, Å)?"""
    return bool(atoms.positions[list(agent), 2].mean() > film_top + settings.escape_margin)


def measure_barrier(initial: Atoms, final: Atoms, pes, threshold: float, settings: OxidationSettings):
    """Stage 3: the move's forward barrier (eV) by the pre-screened CI-NEB (a :class:`BarrierResult`)."""
    return barrier(
        initial, final, pes, threshold, settings.prescreen_margin, settings.neb_images,
        fmax=settings.neb_fmax, max_steps=settings.neb_max_steps,
    )  # fmt: skip


def path_barrier(before: float, barrier_ev: float) -> float:
    """Highest barrier (eV) of a pathway whose highest barrier was ``before`` (``nan``: none measured yet) after a
    step with barrier ``barrier_ev`` (``nan``: none measured)."""
    measured = [b for b in (before, barrier_ev) if b is not None and np.isfinite(b)]
    return float(max(measured)) if measured else float('nan')


def classify(
    relax_failed: bool,
    escaped: bool,
    barrier_ev: float,
    dissociated: bool,
    threshold: float,
    path_before: float = float('nan'),
) -> str:
    """The step's outcome from what the stages found (barrier in eV, threshold in eV).

    A verified dissociation is a ``'success'`` only when the pathway's highest barrier, this move's included
    (``path_before``: the highest before it, eV), is under the threshold: a pathway is as slow as its slowest
    step, so a cheap dissociation reached over a high-barrier move is ``'dissociated_above_threshold'``.
    """
    if relax_failed:
        return 'relax_failed'
    if escaped:
        return 'escaped'
    if not np.isfinite(barrier_ev):
        return 'neb_failed'
    if dissociated:
        return 'success' if path_barrier(path_before, barrier_ev) <= threshold else 'dissociated_above_threshold'
    return 'moved'


TERMINAL_OUTCOMES = ('success', 'dissociated_above_threshold', 'escaped')
ROLLED_BACK_OUTCOMES = ('relax_failed', 'neb_failed')


def conclude(
    before: Atoms,
    after: Atoms,
    agent: t.Sequence[int],
    relax_failed: bool,
    escaped: bool,
    barrier_ev: float,
    dissociated: bool,
    threshold: float,
    weights: RewardWeights,
    path_before: float = float('nan'),
) -> tuple[str, bool, float]:
    """Stage 5, shared by both shells: (outcome, rolled back?, reward) of a step from ``before`` to ``after``;
    ``path_before`` is the highest barrier (eV) of the pathway before this step (``nan``: none yet)."""
    outcome = classify(relax_failed, escaped, barrier_ev, dissociated, threshold, path_before)
    rolled_back = outcome in ROLLED_BACK_OUTCOMES
    state = before if rolled_back else after
    descent = float(before.positions[list(agent), 2].mean() - state.positions[list(agent), 2].mean())
    return outcome, rolled_back, step_reward(outcome, barrier_ev, threshold, weights, descent)


def transition(
    atoms: Atoms,
    agent: t.Sequence[int],
    action: OxidationAction,
    pes: PESSpec | Calculator,
    threshold: float,
    seed: int,
    film_top: float,
    settings: OxidationSettings = OxidationSettings(),
    weights: RewardWeights = RewardWeights(),
    energy_before: float | None = None,
    path_before: float = float('nan'),
) -> StepRecord:
    """One REALIZE step from a relaxed state ``atoms``: move, relax, measure the barrier, verify, reward.

    ``threshold`` is the current barrier threshold (eV); ``seed`` drives the verification's perturbation;
    ``film_top`` is the height (Å) of the film's top atom, for the escape test; ``path_before`` is the highest
    barrier (eV) of the pathway so far (``nan``: none). With a :class:`PESSpec`
    every stage builds its own calculator (ReaxFF's charge equilibration starts from the previous call's
    charges, so sharing one would make results depend on history); the provenance shell does the same.
    """
    if energy_before is None:
        probe = atoms.copy()
        probe.calc = as_calculator(pes, atoms)
        energy_before = float(probe.get_potential_energy())
    relaxed = relax_after_move(atoms, agent, action, pes, settings)
    calls, band, verification = relaxed.force_calls, None, None
    escaped = not relaxed.error and has_escaped(relaxed.atoms, agent, film_top, settings)
    if not relaxed.error and not escaped:
        band = measure_barrier(atoms, relaxed.atoms, pes, threshold, settings)
        calls += band.force_calls
        if np.isfinite(band.barrier):
            verification = verify_dissociation(relaxed.atoms, agent, pes, seed, separation=settings.separation)
            calls += verification.force_calls
    barrier_ev = band.barrier if band is not None else float('nan')
    dissociated = bool(verification and verification.dissociated)
    outcome, rolled_back, reward = conclude(
        atoms, relaxed.atoms, agent, bool(relaxed.error), escaped, barrier_ev, dissociated, threshold, weights,
        path_before,
    )  # fmt: skip
    return StepRecord(
        atoms=atoms.copy() if rolled_back else relaxed.atoms,
        action=action,
        outcome=outcome,
        reward=reward,
        terminated=outcome in TERMINAL_OUTCOMES,
        energy_before=energy_before,
        energy_after=energy_before if rolled_back else relaxed.energy,
        barrier=barrier_ev,
        barrier_method=band.method if band is not None else None,
        neb_converged=bool(band and band.converged),
        oo_distance=float('nan') if relaxed.error else o2_bond(relaxed.atoms, agent).distance,
        dissociated=dissociated,
        verification=verification,
        force_calls=calls,
        path_barrier=path_barrier(path_before, barrier_ev),
    )


def evolve_environment(atoms: Atoms, seed: int, height: float = 3.0) -> tuple[Atoms, list[int]]:
    """After a kept oxidation event: the dissociated O atoms stay where they are bonded and a fresh O2 is
    inserted ``height`` Å above the film (drawn from ``seed``); returns the new structure and agent indices."""
    return insert_o2(atoms, seed, height=height)


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How REALIZE training proceeds in cycles.

    :param cycles: training cycles.
    :param episodes_per_cycle: episodes run (in parallel on daemon workers) from each cycle's environment.
    :param threshold_start: barrier threshold of the first cycle, eV.
    :param threshold_decay: the threshold is multiplied by this after every cycle (annealing: later events must
        be cheaper) ...
    :param threshold_min: ... but never falls below this, eV.
    :param insert_height: height above the film at which the fresh O2 of an evolved environment is placed, Å.
    :param ppo: :class:`~aiida_rlpath.rl.algos.ppo.PPOSettings` fields for the policy update.
    :param mode: ``'train'``, or ``'evaluate'``: the cycles run, keep events and anneal as in training, but the
        policy checkpoint stays fixed (no update).
    """

    cycles: int = 3
    episodes_per_cycle: int = 4
    threshold_start: float = 2.0
    threshold_decay: float = 0.9
    threshold_min: float = 0.5
    insert_height: float = 3.0
    ppo: dict = dataclasses.field(default_factory=dict)
    mode: str = 'train'

    def __post_init__(self):
        if self.mode not in ('train', 'evaluate'):
            raise ValueError(f"mode must be 'train' or 'evaluate', got {self.mode!r}")
        if self.cycles < 1 or self.episodes_per_cycle < 1:
            raise ValueError('cycles and episodes_per_cycle must be at least 1')
        if not (0 < self.threshold_decay <= 1):
            raise ValueError(f'threshold_decay must be in (0, 1], got {self.threshold_decay}')
        if self.threshold_start <= 0 or self.threshold_min <= 0 or self.insert_height <= 0:
            raise ValueError('threshold_start, threshold_min and insert_height must be positive')


def anneal_threshold(threshold: float, settings: TrainingSettings) -> float:
    """The next cycle's barrier threshold (eV): geometric decay to a floor."""
    return max(settings.threshold_min, threshold * settings.threshold_decay)


def cycle_seeds(seed: int, cycle: int, episodes: int) -> dict[str, t.Any]:
    """Seeds of one training cycle, derived from the training ``seed`` and the cycle number: one per episode,
    one for the fresh O2 of the oxidation event, one for the policy update (the same in both shells)."""
    draws = np.random.default_rng([int(seed), int(cycle)]).integers(2**31, size=episodes + 2)
    return {'episodes': [int(x) for x in draws[:episodes]], 'event': int(draws[-2]), 'update': int(draws[-1])}


def select_event(summaries: t.Sequence[dict]) -> int | None:
    """Which episode's oxidation a cycle keeps: the verified success with the lowest effective barrier (the
    highest barrier along its pathway, eV); ties go to the earlier episode. ``None`` when no episode succeeded."""
    best, best_barrier = None, float('inf')
    for index, summary in enumerate(summaries):
        barrier_ev = summary.get('effective_barrier')
        if summary.get('outcome') == 'success' and barrier_ev is not None and barrier_ev < best_barrier:
            best, best_barrier = index, barrier_ev
    return best


def summarize_cycle(episodes: t.Sequence[dict]) -> dict[str, t.Any]:
    """What both shells report of a cycle's episodes (each with ``outcome``, ``effective_barrier`` in eV and
    ``force_calls``): ``successes``, ``success_rate``, ``mean_effective_barrier`` (eV, over the successes;
    ``None`` without), the ``kept`` event (:func:`select_event`), its ``kept_barrier`` (eV) and ``force_calls``."""
    successes = [e['effective_barrier'] for e in episodes if e['outcome'] == 'success']
    kept = select_event(episodes)
    return {
        'successes': len(successes),
        'success_rate': len(successes) / len(episodes) if episodes else 0.0,
        'mean_effective_barrier': float(np.mean(successes)) if successes else None,
        'kept': kept,
        'kept_barrier': episodes[kept]['effective_barrier'] if kept is not None else None,
        'force_calls': sum(e['force_calls'] for e in episodes),
    }


def random_action(rng: np.random.Generator, d_max: float) -> OxidationAction:
    """An isotropic random action: uniform direction and axis on S², magnitude uniform in [0, ``d_max``] Å."""
    return OxidationAction.from_vector(
        np.concatenate([rng.normal(size=3), [rng.uniform(0.0, d_max)], rng.normal(size=3)]), d_max
    )


class OxidationEnv(gym.Env):
    """Gymnasium environment of REALIZE: the agent is one O2 in a Si/a-SiO2 structure.

    Observation (a dict): ``positions`` (N×3, Å), ``numbers`` (N atomic numbers), ``cell`` (3×3, Å) and
    ``agent`` (the O2's two indices). Action: ``[dx, dy, dz, magnitude, ax, ay, az]`` (see
    :class:`OxidationAction`). ``reset(seed=...)`` returns to the environment's current structure;
    :meth:`evolve` replaces it after a kept oxidation event (the observation space then grows by two atoms).
    ``threshold`` (eV) is the current barrier threshold; training anneals it.
    """

    metadata: t.ClassVar[dict] = {'render_modes': []}

    def __init__(
        self,
        structure: Atoms,
        agent: t.Sequence[int],
        threshold: float = 1.5,
        pes: PESSpec = DEFAULT_OXIDATION_PES,
        settings: OxidationSettings = OxidationSettings(),
        weights: RewardWeights = RewardWeights(),
    ):
        self.pes, self.settings, self.weights, self.threshold = pes, settings, weights, float(threshold)
        high = np.array([1, 1, 1, settings.d_max, 1, 1, 1], dtype=np.float64)
        low = np.array([-1, -1, -1, 0, -1, -1, -1], dtype=np.float64)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float64)
        self._set_structure(structure, agent)

    def _set_structure(self, structure: Atoms, agent: t.Sequence[int]) -> None:
        self.pes.check_species(structure.get_chemical_symbols())
        self._initial = canonical(structure)
        self._agent = [int(i) for i in agent]
        self._film_top = film_top(structure, self._agent)
        n = len(structure)
        self.observation_space = gym.spaces.Dict(
            {
                'positions': gym.spaces.Box(-np.inf, np.inf, (n, 3), np.float64),
                'numbers': gym.spaces.Box(0, 118, (n,), np.int64),
                'cell': gym.spaces.Box(-np.inf, np.inf, (3, 3), np.float64),
                'agent': gym.spaces.MultiDiscrete([n, n]),
            }
        )
        self._state: Atoms | None = None

    @property
    def agent(self) -> list[int]:
        """Indices of the agent's two O atoms."""
        return list(self._agent)

    @property
    def state(self) -> Atoms:
        """The current structure (a copy)."""
        return self._state.copy()

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            'positions': self._state.positions.copy(),
            'numbers': self._state.numbers.astype(np.int64),
            'cell': self._state.cell.array.copy(),
            'agent': np.array(self._agent, dtype=np.int64),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode from the current structure, relaxed; ``seed`` fixes every later random draw.

        Returns the observation and ``info`` with the relaxed ``energy`` (eV) and the ``force_calls`` spent.
        """
        super().reset(seed=seed)
        base = int(self.np_random.integers(2**31)) if seed is None else seed
        self._action_seed, self._verify_seed = episode_seeds(base)
        start = relax_start(self._initial, self.pes, self.settings)
        self._state, self._energy = start.atoms, start.energy
        self._steps, self._neb_failures, self._barriers = 0, 0, []
        return self._observation(), {'energy': self._energy, 'force_calls': start.force_calls}

    def step(self, action):
        """Apply one action (a 7-vector or an :class:`OxidationAction`) and return
        ``(observation, reward, terminated, truncated, info)``.

        ``info`` holds :meth:`StepRecord.summary` (energies and barrier in eV, outcome, force calls), the
        episode's ``effective_barrier`` (highest barrier so far, eV) and the full ``record``.
        """
        if self._state is None:
            raise RuntimeError('call reset() before step()')
        move = (
            action if isinstance(action, OxidationAction) else OxidationAction.from_vector(action, self.settings.d_max)
        )
        record = transition(
            self._state, self._agent, move, self.pes, self.threshold, self._verify_seed + self._steps,
            self._film_top, self.settings, self.weights, self._energy,
            max(self._barriers) if self._barriers else float('nan'),
        )  # fmt: skip
        self._steps += 1
        self._state, self._energy = record.atoms, record.energy_after
        if np.isfinite(record.barrier):
            self._barriers.append(record.barrier)
        self._neb_failures += record.outcome in ('neb_failed', 'relax_failed')
        terminated = record.terminated or self._neb_failures >= self.settings.max_neb_failures
        truncated = not terminated and self._steps >= self.settings.max_steps
        info = record.summary()
        info['effective_barrier'] = max(self._barriers) if self._barriers else float('nan')
        info['record'] = record
        return self._observation(), record.reward, terminated, truncated, info

    def random_action(self) -> OxidationAction:
        """The seeded random policy's action for the current step (the same draw the provenance shell makes)."""
        return random_action(np.random.default_rng(self._action_seed + self._steps), self.settings.d_max)

    def policy_action(self, policy) -> tuple[OxidationAction, t.Any]:
        """A policy's action for the current step, drawn from the step's seed exactly as the provenance shell's
        ``sample_action`` draws it; returns the action and the policy's output (raw sample, logp in nats, value).

        ``policy`` is any object with ``act(atoms, agent, seed)`` (see :mod:`aiida_rlpath.rl.models`).
        """
        output = policy.act(self.state, self.agent, self._action_seed + self._steps)
        return OxidationAction.from_vector(output.sample, self.settings.d_max), output

    def evolve(self, structure: Atoms, seed: int, height: float = 3.0) -> None:
        """Keep an oxidation event: continue from ``structure`` (the dissociated state) with a fresh O2 placed
        ``height`` Å above the film."""
        evolved, agent = evolve_environment(structure, seed, height)
        self._set_structure(evolved, agent)


def run_episode(env: OxidationEnv, seed: int, policy=None) -> dict[str, t.Any]:
    """One episode of ``env`` from its current structure, acting with ``policy`` (``None``: the seeded isotropic
    random policy), every draw from ``seed``, exactly as the provenance shell's episode does.

    Returns ``outcome`` (of the last step), ``effective_barrier`` (highest barrier of the pathway, eV),
    ``return``, ``steps``, ``force_calls`` (the start's relaxation included), the final
    ``structure`` and ``transitions``: per step ``(state, policy output or None, reward)`` with state ``(atoms,
    agent)``, what a PPO update needs.
    """
    _, info = env.reset(seed=seed)
    calls, transitions, rewards, done = info['force_calls'], [], [], False
    while not done:
        state = (env.state, env.agent)
        action, output = (env.random_action(), None) if policy is None else env.policy_action(policy)
        _, reward, terminated, truncated, info = env.step(action)
        calls += info['force_calls']
        transitions.append((state, output, reward))
        rewards.append(reward)
        done = terminated or truncated
    return {
        'outcome': info['outcome'],
        'effective_barrier': info['effective_barrier'],
        'return': float(sum(rewards)),
        'steps': len(transitions),
        'force_calls': int(calls),
        'structure': env.state,
        'transitions': transitions,
    }


def train(env: OxidationEnv, policy, training: TrainingSettings, seed: int, log=None) -> list[dict[str, t.Any]]:
    """REALIZE training in the plain shell, cycle by cycle as :class:`RealizeTrainingWorkChain` runs it: the
    cycle's episodes (seeds from :func:`cycle_seeds`), the lowest-barrier verified oxidation kept and the
    environment evolved, one PPO update of ``policy`` in place (unless ``training.mode`` is ``'evaluate'``), the
    threshold annealed. Returns per cycle: ``cycle``, ``threshold`` (eV), :func:`summarize_cycle`'s fields and the
    update's ``stats``. ``log`` (optional) is called with each cycle's record.
    """
    from aiida_rlpath.rl.algos.ppo import PPOSettings, Step, ppo_update

    settings, threshold, cycles = PPOSettings(**training.ppo), training.threshold_start, []
    for cycle in range(training.cycles):
        seeds = cycle_seeds(seed, cycle, training.episodes_per_cycle)
        env.threshold = threshold
        results = [run_episode(env, episode_seed, policy) for episode_seed in seeds['episodes']]
        summary = summarize_cycle(results)
        if summary['kept'] is not None:
            env.evolve(results[summary['kept']]['structure'], seeds['event'], training.insert_height)
        stats = None
        if training.mode == 'train':
            batch = [
                [
                    Step(state, out.sample.tolist(), out.logp, reward, out.value)
                    for state, out, reward in r['transitions']
                ]
                for r in results
            ]
            stats = ppo_update(policy, batch, seeds['update'], settings)
        record = {'cycle': cycle, 'threshold': threshold, **summary, 'stats': stats}
        cycles.append(record)
        if log is not None:
            log(record)
        threshold = anneal_threshold(threshold, training)
    return cycles


def evaluate_policy(env: OxidationEnv, seeds: t.Sequence[int], policy=None, log=None) -> dict[str, t.Any]:
    """Run one episode of ``env`` per seed with ``policy`` (``None``: the seeded isotropic random policy), each
    from the environment's current structure. Returns ``success_rate``, ``mean_barrier_eV`` (mean effective
    barrier of the successful episodes, eV; ``None`` without), ``force_calls``, ``force_calls_per_success``
    (``None`` without a success) and per episode ``outcomes``. ``log`` (optional) is called with each seed and
    its episode's result."""
    results = []
    for seed in seeds:
        result = run_episode(env, int(seed), policy)
        results.append(result)
        if log is not None:
            log(seed, result)
    barriers = [r['effective_barrier'] for r in results if r['outcome'] == 'success']
    calls = sum(r['force_calls'] for r in results)
    return {
        'success_rate': len(barriers) / len(results) if results else 0.0,
        'mean_barrier_eV': float(np.mean(barriers)) if barriers else None,
        'force_calls': calls,
        'force_calls_per_success': calls / len(barriers) if barriers else None,
        'outcomes': [r['outcome'] for r in results],
    }
