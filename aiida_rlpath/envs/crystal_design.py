"""Crystal design as a gymnasium environment (CrystalGym-style; no AiiDA import).

An episode fills the sites of a crystal prototype (:mod:`aiida_rlpath.systems.prototypes`, or any structure a
user gives) with elements from a vocabulary, one site per step, in breadth-first order over the crystal's
neighbour graph. At the last site the designed structure is handed to an evaluator (a property calculator from
:mod:`aiida_rlpath.physics.properties`, usually through a :class:`PropertyCache`) and the reward says how close
the property came to a target (:class:`PropertyTarget`). Intermediate rewards are 0.

Observation (a :class:`gymnasium.spaces.Dict`):

- ``graph``: a :class:`gymnasium.spaces.Graph` of the prototype's sites. Node features: one-hot of the element on
  the site over the vocabulary plus one column for "empty"; a flag for the site to fill now; and, for filled
  sites, the element's Z/100, Pauling electronegativity/4, row/7 and group/18. Edge features: the neighbour
  distance (Å) in the prototype cell. ``edge_links`` are (i, j) site pairs, both directions.
- ``action_mask``: which vocabulary entries may go on the current site (``int8``).
- ``site``: the index of the current site (the prototype's site numbering).

Masking: with ``charge_balance=True`` an element is allowed only if some choice of its oxidation states and of
any elements on the sites still empty can sum to zero; this is exact (a set-of-sums recursion), so an episode
can never end on a composition that cannot be charge-balanced. The oxidation states are those observed in the
ICSD (pymatgen's ``icsd_oxidation_states``; ``oxidation_states='common'`` takes ``common_oxidation_states``,
which also lets halogens be positive, e.g. Cl⁺Cl⁻ in rock salt).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing as t

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pymatgen.core import Element, Structure

from aiida_rlpath.systems import prototypes as _prototypes

__all__ = (
    'ChargeBalance',
    'CrystalDesignEnv',
    'EvaluationRecord',
    'PropertyCache',
    'PropertyTarget',
    'Prototype',
    'parse_target',
    'structure_hash',
)

N_DESCRIPTORS = 4


@dataclasses.dataclass(frozen=True)
class PropertyTarget:
    """A property target and the reward shaped around it.

    :param property: ``density`` (g/cm³), ``bulk_modulus`` (GPa) or ``band_gap`` (eV).
    :param target: the value wanted, in the property's unit.
    :param kind: ``gaussian``: exp(−(p − x)²/s) with s = (``scale``·x)²/ln 2, so the reward is ½ at a relative
        miss of ``scale``; ``relative``: max(0, 1 − ‖p − x‖/(``scale``·x)), a bounded relative error. Default:
        ``relative`` for the bulk modulus, ``gaussian`` otherwise.
    :param scale: relative width (dimensionless), default 0.1 (gaussian) or 1.0 (relative).
    :param penalty: reward of a failed calculation.
    :param tolerance: relative miss that counts as "reached" (``within``), default 5 %.
    """

    property: str
    target: float
    kind: str | None = None
    scale: float | None = None
    penalty: float = -1.0
    tolerance: float = 0.05

    def __post_init__(self):
        from aiida_rlpath.physics.properties import PROPERTIES

        if self.property not in PROPERTIES:
            raise ValueError(f'unknown property {self.property!r}; known: {", ".join(PROPERTIES)}')
        if not math.isfinite(self.target) or self.target <= 0:
            raise ValueError(f'the {self.property} target must be a positive number, got {self.target}')
        kind = self.kind or ('relative' if self.property == 'bulk_modulus' else 'gaussian')
        if kind not in ('gaussian', 'relative'):
            raise ValueError(f'unknown reward kind {kind!r}; known: gaussian, relative')
        object.__setattr__(self, 'kind', kind)
        scale = self.scale if self.scale is not None else (1.0 if kind == 'relative' else 0.1)
        if scale <= 0:
            raise ValueError(f'scale must be positive, got {scale}')
        object.__setattr__(self, 'scale', float(scale))

    def reward(self, value: float | None, ok: bool = True) -> float:
        """The reward of a computed ``value``; ``penalty`` if the calculation failed or gave no finite value."""
        if not ok or value is None or not math.isfinite(value):
            return float(self.penalty)
        miss = abs(float(value) - self.target)
        if self.kind == 'gaussian':
            return float(math.exp(-(miss**2) * math.log(2) / (self.scale * self.target) ** 2))
        return float(max(0.0, 1.0 - miss / (self.scale * self.target)))

    def within(self, value: float | None) -> bool:
        """Whether ``value`` is within ``tolerance`` (relative) of the target."""
        return value is not None and math.isfinite(value) and abs(value - self.target) <= self.tolerance * self.target

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_target(text: str, **kwargs) -> PropertyTarget:
    """``'density=3.0'`` → :class:`PropertyTarget`; a malformed text is a ``ValueError`` that shows it."""
    name, sep, value = str(text).partition('=')
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or number is None:
        raise ValueError(f'a target is PROPERTY=VALUE (e.g. density=3.0), got {text!r}')
    return PropertyTarget(name.strip(), number, **kwargs)


OXIDATION_STATES = ('icsd', 'common')


def _oxidation_states(symbol: str, which: str = 'icsd') -> tuple[int, ...]:
    element = Element(symbol)
    first = element.icsd_oxidation_states if which == 'icsd' else element.common_oxidation_states
    states = tuple(int(s) for s in first) or tuple(int(s) for s in element.oxidation_states)
    return tuple(sorted(set(s for s in states if s != 0)))


class ChargeBalance:
    """Exact charge-balance masking over a vocabulary, with each element's ``icsd`` or ``common`` oxidation
    states (pymatgen; an element without any takes all its known states)."""

    def __init__(self, symbols: t.Sequence[str], oxidation_states: str = 'icsd'):
        if oxidation_states not in OXIDATION_STATES:
            raise ValueError(f'oxidation_states must be one of {OXIDATION_STATES}, got {oxidation_states!r}')
        self.symbols = tuple(symbols)
        self.states = {s: _oxidation_states(s, oxidation_states) for s in self.symbols}
        every = sorted({q for s in self.symbols for q in self.states[s]})
        self._reachable = [{0}]  # sums of k sites with any element of the vocabulary
        self._every = every

    def reachable(self, k: int) -> set[int]:
        """Charge sums that ``k`` further sites can take."""
        while len(self._reachable) <= k:
            last = self._reachable[-1]
            self._reachable.append({a + q for a in last for q in self._every})
        return self._reachable[k]

    def partial_sums(self, elements: t.Sequence[str]) -> set[int]:
        """Charge sums the elements already placed can take."""
        sums = {0}
        for symbol in elements:
            sums = {a + q for a in sums for q in self.states[symbol]}
        return sums

    def mask(self, placed: t.Sequence[str], remaining_after: int) -> np.ndarray:
        """``int8`` mask over the vocabulary for the next site, given the elements ``placed`` so far and the
        number of sites still empty after this one."""
        partial = self.partial_sums(placed)
        rest = self.reachable(remaining_after)
        mask = np.zeros(len(self.symbols), dtype=np.int8)
        for index, symbol in enumerate(self.symbols):
            if any(-(a + q) in rest for a in partial for q in self.states[symbol]):
                mask[index] = 1
        return mask

    def balanced(self, elements: t.Sequence[str]) -> bool:
        """Whether ``elements`` (all sites) can be charge-balanced."""
        return 0 in self.partial_sums(elements)


@dataclasses.dataclass(frozen=True)
class Prototype:
    """A prototype as the environment uses it: ``name``, the cell ``structure`` (its species are the reference
    compound's), the neighbour ``edges`` and ``distances`` (Å) and the breadth-first site ``order``."""

    name: str
    structure: Structure
    edges: np.ndarray
    distances: np.ndarray
    order: tuple[int, ...]

    @classmethod
    def build(cls, spec: str | Structure, name: str | None = None) -> Prototype:
        """From a prototype name, a CIF path or a pymatgen ``Structure`` (a ``Prototype`` is returned as is)."""
        if isinstance(spec, Prototype):
            return spec
        if isinstance(spec, Structure):
            structure, label = spec.copy(), name or spec.composition.reduced_formula
        elif str(spec) in _prototypes.PROTOTYPES:
            structure, label = _prototypes.prototype(str(spec)), name or str(spec)
        elif str(spec).lower().endswith('.cif'):
            try:
                structure = Structure.from_file(str(spec))
            except Exception as exception:
                raise ValueError(f'cannot read prototype CIF {spec}: {exception}') from exception
            label = name or str(spec).rsplit('/', 1)[-1][:-4]
        else:
            known = ', '.join(_prototypes.PROTOTYPES)
            raise ValueError(f'unknown prototype {spec!r}: give one of {known}, a .cif path or a Structure')
        if len(structure) < 1:
            raise ValueError(f'prototype {label} has no sites')
        edges, distances = _prototypes.neighbour_graph(structure)
        order = tuple(_prototypes.bfs_site_order(structure, edges))
        return cls(label, structure, edges, distances, order)

    def decorate(self, elements_by_site: t.Mapping[int, str]) -> Structure:
        """The prototype with ``elements_by_site`` on its sites, rescaled by :func:`prescale` (Å)."""
        structure = self.structure.copy()
        for site, symbol in elements_by_site.items():
            structure.replace(int(site), symbol)
        return _prototypes.prescale(structure, self.edges)


def structure_hash(structure: Structure, decimals: int = 6) -> str:
    """SHA-256 of a structure's lattice (Å), species and fractional coordinates rounded to ``decimals``."""
    payload = {
        'lattice': np.round(structure.lattice.matrix, decimals).tolist(),
        'species': [str(site.specie) for site in structure],
        'frac': np.round(np.mod(structure.frac_coords, 1.0), decimals).tolist(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class EvaluationRecord:
    """What the cache hands back: the property ``value`` (``nan`` if failed), ``ok``, ``exit_status``,
    ``message``, whether it was a ``cache_hit``, and the calculator's ``details``."""

    value: float
    ok: bool
    exit_status: int
    message: str
    cache_hit: bool
    details: dict = dataclasses.field(default_factory=dict)


class PropertyCache:
    """Evaluate a property once per distinct structure (by :func:`structure_hash`): the plain-Python shell's
    counterpart of AiiDA caching in the design workchain. Counts ``evaluations`` and ``hits``.

    :param property: the property name; ``settings``: :class:`~aiida_rlpath.physics.properties.PropertySettings`
        or a mapping; ``evaluate``: the calculator (default :func:`~aiida_rlpath.physics.properties.evaluate_property`).
    """

    def __init__(self, property: str, settings=None, evaluate: t.Callable | None = None):
        from aiida_rlpath.physics import properties

        self.property = property
        self.settings = (
            settings
            if isinstance(settings, properties.PropertySettings)
            else properties.PropertySettings.from_dict(settings)
        )
        self._evaluate = evaluate or properties.evaluate_property
        self.results: dict[str, EvaluationRecord] = {}
        self.evaluations = 0
        self.hits = 0

    def __call__(self, structure: Structure) -> EvaluationRecord:
        key = structure_hash(structure)
        if key in self.results:
            self.hits += 1
            return dataclasses.replace(self.results[key], cache_hit=True)
        self.evaluations += 1
        result = self._evaluate(structure, self.property, self.settings)
        details = dict(result.details)
        details.update(converged=result.converged, calls=result.calls, seconds=result.seconds)
        record = EvaluationRecord(result.value, result.ok, result.exit_status, result.message, False, details)
        self.results[key] = record
        return record


class CrystalDesignEnv(gym.Env):
    """Fill a prototype's sites with elements, one per step; reward at the end from a property target.

    :param prototypes: prototype names, CIF paths, ``Structure`` or :class:`Prototype` objects (names must
        differ); ``reset`` draws one (seeded) unless
        ``options={'prototype': name}`` picks it.
    :param vocabulary: ``small`` (18 elements), ``medium`` (30), ``large`` (50) or a list of symbols.
    :param target: the :class:`PropertyTarget` (or ``'density=3.0'``); may be ``None`` when ``evaluator`` is too.
    :param evaluator: ``structure -> EvaluationRecord`` (e.g. a :class:`PropertyCache`); ``None`` defers the
        evaluation: the last step then returns reward 0 and ``info['pending'] = True`` with the structure, and
        the caller computes the reward (the AiiDA shell does, through a cached calcfunction).
    :param charge_balance: mask elements that would make the composition impossible to charge-balance.
    :param oxidation_states: ``icsd`` (default) or ``common``: which pymatgen oxidation states the mask uses.
    """

    metadata: t.ClassVar[dict] = {'render_modes': []}

    def __init__(
        self,
        prototypes: t.Sequence[str | Structure | Prototype] = ('rocksalt',),
        vocabulary: str | t.Sequence[str] = 'small',
        target: PropertyTarget | str | None = None,
        evaluator: t.Callable[[Structure], EvaluationRecord] | None = None,
        charge_balance: bool = True,
        oxidation_states: str = 'icsd',
    ):
        if isinstance(prototypes, str | Structure | Prototype):
            prototypes = [prototypes]
        if not prototypes:
            raise ValueError('give at least one prototype')
        built = [Prototype.build(spec) for spec in prototypes]
        self.prototypes = {p.name: p for p in built}
        if len(self.prototypes) != len(built):
            raise ValueError(f'prototype names repeat: {[p.name for p in built]}')
        self.vocabulary = _prototypes.vocabulary(vocabulary)
        self.target = parse_target(target) if isinstance(target, str) else target
        if evaluator is not None and self.target is None:
            raise ValueError('an evaluator needs a target to turn its value into a reward')
        self.evaluator = evaluator
        self.charge_balance = bool(charge_balance)
        self.balance = ChargeBalance(self.vocabulary, oxidation_states)
        self.n_actions = len(self.vocabulary)
        self.n_node_features = self.n_actions + 2 + N_DESCRIPTORS
        self.max_sites = max(len(p.structure) for p in self.prototypes.values())
        self._descriptors = np.array([_descriptor(s) for s in self.vocabulary], dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                'graph': spaces.Graph(
                    node_space=spaces.Box(-1.0, 2.0, (self.n_node_features,), dtype=np.float32),
                    edge_space=spaces.Box(0.0, np.inf, (1,), dtype=np.float32),
                ),
                'action_mask': spaces.MultiBinary(self.n_actions),
                'site': spaces.Discrete(self.max_sites),
            }
        )
        self.action_space = spaces.Discrete(self.n_actions)
        self.prototype: Prototype | None = None
        self.placed: dict[int, str] = {}
        self.step_index = 0

    # -- gymnasium API -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode on a prototype drawn with ``seed`` (or ``options['prototype']``); returns the first
        observation and ``{'prototype': name}``."""
        super().reset(seed=seed)
        options = dict(options or {})
        name = options.get('prototype')
        if name is None:
            names = sorted(self.prototypes)
            name = names[int(self.np_random.integers(len(names)))]
        if name not in self.prototypes:
            raise ValueError(f'prototype {name!r} is not one of this environment’s: {", ".join(self.prototypes)}')
        self.prototype = self.prototypes[name]
        self.placed, self.step_index = {}, 0
        if not self.action_mask().any():
            raise ValueError(f'no element of the vocabulary can charge-balance prototype {name}')
        return self._observation(), {'prototype': name}

    def step(self, action):
        """Put vocabulary element ``action`` on the current site. A masked or out-of-range action raises
        ``ValueError``. The last site ends the episode: with an evaluator the reward comes from the target,
        otherwise it is 0 with ``info['pending']`` and the designed ``info['structure']``."""
        if self.prototype is None or self.step_index >= len(self.prototype.order):
            raise RuntimeError('call reset() before step(), and again after an episode ends')
        action = int(action)
        if not 0 <= action < self.n_actions:
            raise ValueError(f'action {action} is outside the vocabulary of {self.n_actions} elements')
        if not self.action_mask()[action]:
            raise ValueError(
                f'{self.vocabulary[action]} is masked on site {self.current_site}: the composition could no '
                'longer be charge-balanced'
            )
        self.placed[self.current_site] = self.vocabulary[action]
        self.step_index += 1
        info = {'prototype': self.prototype.name}
        if self.step_index < len(self.prototype.order):
            return self._observation(), 0.0, False, False, info
        structure = self.designed_structure()
        info.update(structure=structure, formula=structure.composition.reduced_formula)
        reward = 0.0
        if self.evaluator is None:
            info['pending'] = True
        else:
            record = self.evaluator(structure)
            reward = self.target.reward(record.value, record.ok)
            info.update(evaluation=record, value=record.value, ok=record.ok)
        return self._terminal_observation(), reward, True, False, info

    # -- helpers -------------------------------------------------------------------------------------------------
    @property
    def current_site(self) -> int:
        return int(self.prototype.order[min(self.step_index, len(self.prototype.order) - 1)])

    def action_mask(self) -> np.ndarray:
        """``int8`` mask of the elements allowed on the current site."""
        if not self.charge_balance:
            return np.ones(self.n_actions, dtype=np.int8)
        remaining = len(self.prototype.order) - self.step_index - 1
        return self.balance.mask(list(self.placed.values()), remaining)

    def designed_structure(self) -> Structure:
        """The prototype decorated with the elements placed so far (Å, rescaled by the elements' radii)."""
        return self.prototype.decorate(self.placed)

    def _node_features(self, current: int | None) -> np.ndarray:
        n = len(self.prototype.structure)
        nodes = np.zeros((n, self.n_node_features), dtype=np.float32)
        nodes[:, self.n_actions] = 1.0  # empty
        index = {s: i for i, s in enumerate(self.vocabulary)}
        for site, symbol in self.placed.items():
            nodes[site, self.n_actions] = 0.0
            nodes[site, index[symbol]] = 1.0
            nodes[site, self.n_actions + 2 :] = self._descriptors[index[symbol]]
        if current is not None:
            nodes[current, self.n_actions + 1] = 1.0
        return nodes

    def _observation(self, terminal: bool = False) -> dict:
        graph = spaces.GraphInstance(
            nodes=self._node_features(None if terminal else self.current_site),
            edges=self.prototype.distances.astype(np.float32).reshape(-1, 1),
            edge_links=self.prototype.edges.astype(np.int64),
        )
        mask = np.zeros(self.n_actions, dtype=np.int8) if terminal else self.action_mask()
        return {'graph': graph, 'action_mask': mask, 'site': self.current_site}

    def _terminal_observation(self) -> dict:
        return self._observation(terminal=True)

    def replay(self, prototype: str, actions: t.Sequence[int]) -> list[dict]:
        """The observations of an episode on ``prototype`` with ``actions``: one before each action and the
        terminal one (len(actions) + 1). Leaves the environment reset on that episode's end."""
        observations = [self.reset(options={'prototype': prototype})[0]]
        for action in actions:
            observation, *_ = self._step_silent(action)
            observations.append(observation)
        return observations

    def _step_silent(self, action):
        evaluator, self.evaluator = self.evaluator, None
        try:
            return self.step(action)
        finally:
            self.evaluator = evaluator

    def composition_is_new(self, structure: Structure) -> bool:
        """Whether the reduced formula of ``structure`` differs from every prototype's reference compound."""
        formula = structure.composition.reduced_formula
        return all(formula != p.structure.composition.reduced_formula for p in self.prototypes.values())


def _descriptor(symbol: str) -> list[float]:
    element = Element(symbol)
    electronegativity = element.X if element.X == element.X else 0.0  # nan for a few elements
    return [element.Z / 100.0, electronegativity / 4.0, element.row / 7.0, (element.group or 0) / 18.0]
