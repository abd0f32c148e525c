"""Seeded calcfunctions of RL crystal design: sample an episode, evaluate a property, record an episode, update.

Each wraps the pure functions of :mod:`aiida_rlpath.rl.algos.design`, :mod:`aiida_rlpath.envs.crystal_design`
and :mod:`aiida_rlpath.physics.properties`, so the same inputs and seed give the same episodes and rewards as
:func:`aiida_rlpath.rl.algos.design.run_design`. :func:`evaluate_crystal_property` is the expensive one; the
design work chain calls it with AiiDA caching on, so a structure already evaluated with the same settings (a
repeated composition on the same prototype) is not recomputed: the new node is a clone of the old one, marked
by the ``_aiida_cached_from`` extra.
"""

from __future__ import annotations

import io

from aiida import orm
from aiida.engine import ExitCode, calcfunction

from aiida_rlpath.calculations.functions.realize import json_safe
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.physics.properties import reject_unknown_keys

__all__ = (
    'EVALUATE_IDENTIFIER',
    'design_environment',
    'design_episode',
    'design_update',
    'environment_from',
    'evaluate_crystal_property',
    'record_episode',
    'summarise_design',
    'summarise_episodes',
    'target_from',
)

STATE_FILENAME = 'design_state.pt'
#: process type of :func:`evaluate_crystal_property`, for ``enable_caching(identifier=...)``
EVALUATE_IDENTIFIER = f'{__name__}.evaluate_crystal_property'
ENVIRONMENT_KEYS = ('prototypes', 'vocabulary', 'charge_balance', 'oxidation_states')


def environment_from(node: orm.Dict | dict) -> dict:
    """Environment options (``prototypes``: names, ``vocabulary``: a name or symbols, ``charge_balance``,
    ``oxidation_states``: ``icsd`` or ``common``) with
    defaults; unknown keys are a ``ValueError`` that names them."""
    values = dict(node.get_dict() if isinstance(node, orm.Dict) else node)
    reject_unknown_keys(values, ENVIRONMENT_KEYS, 'environment options')
    values.setdefault('prototypes', ['rocksalt'])
    values.setdefault('vocabulary', 'small')
    values.setdefault('charge_balance', True)
    values.setdefault('oxidation_states', 'icsd')
    if isinstance(values['prototypes'], str):
        values['prototypes'] = [values['prototypes']]
    return values


def target_from(node: orm.Dict | dict):
    """The :class:`~aiida_rlpath.envs.crystal_design.PropertyTarget` of a Dict (``property``, ``target``, and
    optionally ``kind``, ``scale``, ``penalty``, ``tolerance``)."""
    from aiida_rlpath.envs.crystal_design import PropertyTarget

    values = dict(node.get_dict() if isinstance(node, orm.Dict) else node)
    try:
        return PropertyTarget(**values)
    except TypeError as exception:
        raise ValueError(f'bad target: {exception}') from exception


def design_environment(environment: orm.Dict | dict, structures: dict[str, orm.StructureData] | None = None):
    """The environment (evaluation deferred) of ``environment``; ``structures`` are user prototypes by name,
    added to the named ones."""
    from pymatgen.core import Structure

    from aiida_rlpath.envs.crystal_design import CrystalDesignEnv, Prototype

    options = environment_from(environment)
    prototypes = [Prototype.build(name) for name in options['prototypes']]
    for name, node in sorted((structures or {}).items()):
        prototypes.append(Prototype.build(Structure.from_sites(node.get_pymatgen_structure().sites), name=name))
    return CrystalDesignEnv(prototypes, options['vocabulary'], charge_balance=options['charge_balance'],
                            oxidation_states=options['oxidation_states'])  # fmt: skip


def _agent(state: orm.SinglefileData | None, settings: orm.Dict, env):
    from aiida_rlpath.rl.algos import design

    if state is None:
        return design.make_agent(env, design.DesignSettings.from_dict(settings.get_dict()))
    with state.open(mode='rb') as handle:
        return design.agent_from_bytes(handle.read())


@calcfunction
def design_episode(
    settings: orm.Dict,
    environment: orm.Dict,
    episode: orm.Int,
    state: orm.SinglefileData | None = None,
    **structures: orm.StructureData,
) -> dict:
    """Fill one prototype with the policy of ``state`` (or the untrained, seeded agent of ``settings``) as
    episode ``episode`` (:func:`~aiida_rlpath.rl.algos.design.sample_episode`). Outputs ``episode`` (prototype,
    actions, elements, log-probabilities, values, formula, seed) and ``structure``, the designed cell (Å)."""
    from aiida_rlpath.rl.algos.design import sample_episode

    env = design_environment(environment, structures)
    record, structure = sample_episode(_agent(state, settings, env), env, episode.value)
    return {'episode': orm.Dict(json_safe(record.as_dict())), 'structure': orm.StructureData(pymatgen=structure)}


@calcfunction
def evaluate_crystal_property(structure: orm.StructureData, property: orm.Str, calculator: orm.Dict):
    """Relax ``structure`` with CHGNet and compute ``property`` (density g/cm³, bulk_modulus GPa, band_gap eV;
    :func:`~aiida_rlpath.physics.properties.evaluate_property`, settings from ``calculator``). Outputs
    ``result`` (value, unit, convergence, force calls, seconds, details) and ``relaxed``. A failed calculation
    returns its exit status (410–414, see :data:`~aiida_rlpath.physics.properties.EXIT_CODES`) and message."""
    from aiida_rlpath.physics.properties import evaluate_property

    pymatgen_structure = structure.get_pymatgen_structure()
    result = evaluate_property(pymatgen_structure, property.value, calculator.get_dict())
    if not result.ok:
        return ExitCode(result.exit_status, result.message)
    payload = result.as_dict()
    payload['unit'] = {'density': 'g/cm^3', 'bulk_modulus': 'GPa', 'band_gap': 'eV'}[property.value]
    payload['formula'] = pymatgen_structure.composition.reduced_formula
    return {'result': orm.Dict(json_safe(payload)), 'relaxed': orm.StructureData(pymatgen=result.relaxed)}


@calcfunction
def record_episode(episode: orm.Dict, evaluation: orm.Dict, target: orm.Dict, cache_hit: orm.Bool) -> orm.Dict:
    """The finished episode: ``episode`` with the evaluation's value, ``ok``, exit status, whether it was a
    ``cache_hit``, and the reward from ``target`` (the penalty when the evaluation failed)."""
    from aiida_rlpath.rl.algos.design import DesignEpisode, finish_episode

    record = DesignEpisode.from_dict(episode.get_dict())
    values = evaluation.get_dict()
    ok = bool(values.get('ok', False))
    finish_episode(record, values.get('value'), ok, int(values.get('exit_status', 0)), cache_hit.value,
                   target_from(target))  # fmt: skip
    if not ok:
        record.message = values.get('message', '')
    return orm.Dict(json_safe(record.as_dict()))


@calcfunction
def design_update(
    settings: orm.Dict,
    environment: orm.Dict,
    state: orm.SinglefileData | None = None,
    **inputs: orm.Data,
) -> dict:
    """One policy update (:meth:`~aiida_rlpath.rl.algos.design.DesignAgent.learn`) on the round's finished
    ``episode_*`` Dicts (user prototypes come as ``structure_*``). Outputs ``state`` (weights, optimiser,
    counters, all episodes learned from), ``checkpoint`` (the policy network's weights) and ``metrics``."""
    from aiida_rlpath.rl.algos.design import DesignEpisode, agent_to_bytes

    structures = {k[len('structure_') :]: v for k, v in inputs.items() if k.startswith('structure_')}
    episodes = [DesignEpisode.from_dict(v.get_dict()) for k, v in sorted(inputs.items()) if k.startswith('episode_')]
    env = design_environment(environment, structures)
    agent = _agent(state, settings, env)
    stats = agent.learn(sorted(episodes, key=lambda e: e.index), env)
    architecture = {'model': 'DesignGNN', **(agent.network.config if agent.network is not None else {})}
    return {
        'state': orm.SinglefileData(io.BytesIO(agent_to_bytes(agent)), filename=STATE_FILENAME),
        'checkpoint': PolicyCheckpointData.from_state_dict(agent.weights(), architecture),
        'metrics': orm.Dict(json_safe(stats)),
    }


def summarise_episodes(records: list[dict], target, reference_formulas: set[str], top: int = 5) -> dict:
    """Best reward and design, the first episode within the target's tolerance (1-based; ``None``: never),
    property evaluations (episodes that were not cache hits) and cache hits, failures, and the ``top`` best
    distinct designs with their values and whether their composition is ``new`` (not a prototype's reference
    compound nor a user prototype's)."""
    from aiida_rlpath.rl.algos.design import DesignEpisode, DesignHistory

    episodes = sorted((DesignEpisode.from_dict(r) for r in records), key=lambda e: e.index)
    hits = sum(1 for e in episodes if e.cache_hit)
    summary = DesignHistory(episodes, [], len(episodes) - hits, hits).summary(target)
    best, seen = [], set()
    for episode in sorted(episodes, key=lambda e: (-e.reward, e.index)):
        key = (episode.prototype, episode.formula)
        if key in seen or not episode.ok:
            continue
        seen.add(key)
        best.append({
            'formula': episode.formula,
            'prototype': episode.prototype,
            'elements': episode.elements,
            'value': episode.value,
            'reward': episode.reward,
            'within_tolerance': target.within(episode.value),
            'new': episode.formula not in reference_formulas,
            'episode': episode.index,
        })  # fmt: skip
        if len(best) == top:
            break
    summary['best'] = best
    summary['rewards'] = [e.reward for e in episodes]
    summary['target'] = target.as_dict()
    return summary


@calcfunction
def summarise_design(target: orm.Dict, environment: orm.Dict, **inputs: orm.Data) -> orm.Dict:
    """The run's summary (:func:`summarise_episodes`) from its ``episode_*`` records; user prototypes come as
    ``structure_*`` (their formulas count as known compositions)."""
    structures = {k[len('structure_') :]: v for k, v in inputs.items() if k.startswith('structure_')}
    env = design_environment(environment, structures)
    known = {p.structure.composition.reduced_formula for p in env.prototypes.values()}
    records = [v.get_dict() for k, v in inputs.items() if k.startswith('episode_')]
    return orm.Dict(json_safe(summarise_episodes(records, target_from(target), known)))
