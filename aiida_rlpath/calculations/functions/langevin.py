"""Seeded calcfunctions of the LJ7 Langevin importance sampler: the flux run, one value-network training cycle and
the production estimate of the rate. Each wraps the pure function of
:mod:`aiida_rlpath.rl.algos.value_is` of the same name, so the same inputs and seed give the same numbers in both
shells.

Reduced LJ units: rates and fluxes in 1/τ, ``beta`` in 1/ε, positions in σ, (μ2, μ3) dimensionless.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_rlpath.calculations.functions.realize import json_safe
from aiida_rlpath.data.policy import PolicyCheckpointData

__all__ = (
    'ensemble_node',
    'initial_value',
    'langevin_flux',
    'langevin_production',
    'langevin_training_cycle',
    'load_value',
    'problem_from',
    'sampler_from',
    'transitions_from',
)

ARCHITECTURE = 'lj7-committor'


def problem_from(node: orm.Dict):
    """The :class:`~aiida_rlpath.envs.langevin.TransitionProblem` of a Dict (raises ``ValueError``/``TypeError``)."""
    from aiida_rlpath.envs.langevin import TransitionProblem

    return TransitionProblem(**node.get_dict())


def sampler_from(node: orm.Dict):
    """The :class:`~aiida_rlpath.rl.algos.value_is.SamplerSettings` of a Dict (raises ``ValueError``/``TypeError``)."""
    from aiida_rlpath.rl.algos.value_is import SamplerSettings

    return SamplerSettings(**node.get_dict())


def initial_value(hidden: int, seed: int, beta: float) -> PolicyCheckpointData:
    """The untrained value network's checkpoint (``hidden`` units, weights seeded by ``seed``, for ``beta`` 1/ε);
    an identical stored checkpoint is reused."""
    from aiida_rlpath.rl.algos.value_is import CommittorNetwork

    network = CommittorNetwork(hidden, seed, beta=beta)
    return PolicyCheckpointData.get_or_create(network.state_dict(), {'name': ARCHITECTURE, 'hidden': hidden})[0]


def load_value(node: PolicyCheckpointData):
    """The :class:`~aiida_rlpath.rl.algos.value_is.CommittorNetwork` a checkpoint holds (hash re-checked)."""
    from aiida_rlpath.rl.algos.value_is import CommittorNetwork

    if node.architecture.get('name') != ARCHITECTURE:
        raise ValueError(f'checkpoint <{node.pk}> holds a {node.architecture.get("name")!r}, not an {ARCHITECTURE}')
    network = CommittorNetwork(int(node.architecture['hidden']))
    network.load_state_dict(node.load_state_dict())
    return network


def _value_node(network) -> PolicyCheckpointData:
    return PolicyCheckpointData.from_state_dict(network.state_dict(), {'name': ARCHITECTURE, 'hidden': network.hidden})


def ensemble_node(ensemble) -> orm.ArrayData:
    """A path ensemble as arrays ``outcome`` (1 reached B, 0 back in A, −1 cut, −2 pruned), ``log_weight``,
    ``steps``, with branching ``root`` (the started path of each leaf; attribute ``roots``) and, if traced,
    ``cvs`` (paths, samples, 2; NaN after a path's end); attribute ``force_evals``."""
    node = orm.ArrayData()
    node.set_array('outcome', np.asarray(ensemble.outcome, dtype=np.int64))
    node.set_array('log_weight', np.asarray(ensemble.log_weight, dtype=np.float64))
    node.set_array('steps', np.asarray(ensemble.steps, dtype=np.int64))
    if ensemble.cvs is not None:
        node.set_array('cvs', np.asarray(ensemble.cvs, dtype=np.float64))
    if ensemble.root is not None:
        node.set_array('root', np.asarray(ensemble.root, dtype=np.int64))
        node.base.attributes.set('roots', int(ensemble.roots))
    node.base.attributes.set('force_evals', int(ensemble.force_evals))
    return node


def _transitions_node(data) -> orm.ArrayData:
    node = orm.ArrayData()
    for field in dataclasses.fields(data):
        node.set_array(field.name, np.asarray(getattr(data, field.name)))
    return node


def transitions_from(node: orm.ArrayData):
    """The :class:`~aiida_rlpath.envs.langevin.Transitions` stored in an ArrayData. A node stored before rows named
    their leaf (no ``path`` array) gives each row a leaf of its own, which makes any λ-return a one-step target."""
    from aiida_rlpath.envs.langevin import Transitions

    names = node.get_arraynames()
    columns = {
        field.name: node.get_array(field.name) for field in dataclasses.fields(Transitions) if field.name in names
    }
    columns.setdefault('path', np.arange(len(columns['end'])))
    return Transitions(**columns)


@calcfunction
def langevin_flux(problem: orm.Dict, sampler: orm.Dict, seed: orm.Int) -> dict:
    """Plain dynamics from the start state: the flux through λ_A (``flux``: ``flux``, ``flux_err`` in 1/τ,
    ``crossings``, ``force_evals``, with the run's own brute-force ``rate`` ± ``rate_err`` and ``events``) and the
    crossing configurations (``starts``: array ``positions``, σ)."""
    from aiida_rlpath.rl.algos.value_is import flux_run

    result = flux_run(problem_from(problem), sampler_from(sampler), seed.value)
    starts = orm.ArrayData()
    starts.set_array('positions', result.crossing_positions)
    summary = {
        key: getattr(result, key)
        for key in ('flux', 'flux_err', 'crossings', 'force_evals', 'rate', 'rate_err', 'events', 'time')
    }
    return {'flux': orm.Dict(json_safe(summary)), 'starts': starts}


@calcfunction
def langevin_training_cycle(
    problem: orm.Dict,
    sampler: orm.Dict,
    starts: orm.ArrayData,
    value: PolicyCheckpointData,
    seed: orm.Int,
    **replay: orm.ArrayData,
) -> dict:
    """One training cycle (:func:`aiida_rlpath.rl.algos.value_is.training_cycle`) at ``problem``'s β: paths driven
    by ``value``, then TD on their transitions and the ``replay`` ones (earlier cycles', in label order).

    Returns the updated ``value`` checkpoint, the cycle's ``ensemble`` and ``transitions`` (arrays) and its
    ``metrics`` (β, weighted P ± error, reached and cut fractions, effective sample size, TD error, force
    evaluations).
    """
    from aiida_rlpath.rl.algos.value_is import training_cycle

    network, record, ensemble, data = training_cycle(
        problem_from(problem),
        starts.get_array('positions'),
        sampler_from(sampler),
        seed.value,
        load_value(value),
        [transitions_from(replay[key]) for key in sorted(replay)],
    )
    return {
        'value': _value_node(network),
        'ensemble': ensemble_node(ensemble),
        'transitions': _transitions_node(data),
        'metrics': orm.Dict(json_safe(record)),
    }


@calcfunction
def langevin_production(
    problem: orm.Dict,
    sampler: orm.Dict,
    starts: orm.ArrayData,
    value: PolicyCheckpointData,
    flux: orm.Dict,
    seed: orm.Int,
    traces: orm.Int,
) -> dict:
    """Production paths driven by the fixed ``value``: the ``rate`` k = Φ·P (1/τ) with ``rate_err``, the cut-path
    upper bound ``rate_upper_cut``, P ± error and the ensemble statistics; and the ``ensemble`` (arrays, with the CV
    traces of the first ``traces`` paths)."""
    from aiida_rlpath.rl.algos.value_is import production

    record, ensemble = production(
        problem_from(problem),
        starts.get_array('positions'),
        sampler_from(sampler),
        seed.value,
        load_value(value),
        flux['flux'],
        flux['flux_err'],
        traces.value,
    )
    return {'rate': orm.Dict(json_safe(record)), 'ensemble': ensemble_node(ensemble)}
