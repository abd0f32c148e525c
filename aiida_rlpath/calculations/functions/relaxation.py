"""Seeded calcfunctions of RL crystal relaxation: reference structures, one TD3 training round, one relaxation.

Each wraps the pure function of :mod:`aiida_rlpath.systems.alfe`, :mod:`aiida_rlpath.rl.algos.td3` or
:mod:`aiida_rlpath.physics.relax`, so the same inputs and seeds give the same numbers in both shells.
Lengths in Å, energies in eV, forces in eV/Å.
"""

from __future__ import annotations

import io

from aiida import orm
from aiida.engine import calcfunction

from aiida_rlpath.calculations.functions.realize import json_safe
from aiida_rlpath.data.policy import PolicyCheckpointData

__all__ = (
    'CLASSICAL_METHODS',
    'alfe_references',
    'distort_structure',
    'env_settings_from',
    'relax_structure',
    'relax_training_round',
    'td3_settings_from',
)

#: Benchmark method name → optimizer of :func:`aiida_rlpath.physics.relax.relax`.
CLASSICAL_METHODS = {'bfgs': 'BFGS', 'lbfgs': 'LBFGS', 'fire': 'FIRE', 'cg': 'CG'}
STATE_FILENAME = 'td3_state.pt'


def td3_settings_from(node: orm.Dict | dict):
    """:class:`~aiida_rlpath.rl.algos.td3.TD3Settings` from a Dict; ``epsilon`` and ``reward`` are nested dicts
    (``start``/``end``/``episodes`` and ``pretrain``/``final``/``switch``), as is ``imitation`` (the fields of
    :class:`~aiida_rlpath.rl.algos.imitation.ImitationSettings`). Raises ``TypeError``/``ValueError``."""
    from aiida_rlpath.envs.relaxation import REWARDS, EpsilonSchedule, RewardSchedule
    from aiida_rlpath.rl.algos.td3 import TD3Settings
    from aiida_rlpath.rl.models.tfn import ACTORS

    data = dict(node.get_dict() if isinstance(node, orm.Dict) else node)
    if 'epsilon' in data:
        data['epsilon'] = EpsilonSchedule(**data['epsilon'])
    if 'reward' in data:
        data['reward'] = RewardSchedule(**data['reward'])
        for kind in (data['reward'].pretrain, data['reward'].final):
            if kind not in REWARDS:
                raise ValueError(f'unknown reward `{kind}`; choose one of {REWARDS}')
    for key in ('model_options', 'actor_options'):
        if key in data:
            data[key] = tuple(sorted(dict(data[key]).items()))
    if 'imitation' in data:
        from aiida_rlpath.rl.algos.imitation import ImitationSettings

        data['imitation'] = ImitationSettings(**data['imitation'])
    settings = TD3Settings(**data)
    if settings.model not in ACTORS:
        raise ValueError(f'unknown model `{settings.model}`; choose one of {sorted(ACTORS)}')
    if settings.episodes < 1 or settings.eval_every < 1 or settings.eval_starts < 1:
        raise ValueError('`episodes`, `eval_every` and `eval_starts` must be ≥ 1')
    return settings


def env_settings_from(node: orm.Dict | dict):
    """:class:`~aiida_rlpath.envs.relaxation.RelaxationSettings` from a Dict (``hybrid_weights`` as a dict)."""
    from aiida_rlpath.envs.relaxation import RelaxationSettings

    data = dict(node.get_dict() if isinstance(node, orm.Dict) else node)
    if 'hybrid_weights' in data:
        data['hybrid_weights'] = tuple(sorted(dict(data['hybrid_weights']).items()))
    return RelaxationSettings(**data)


@calcfunction
def alfe_references(sizes: orm.List, per_size: orm.Int, seed: orm.Int) -> dict:
    """``per_size`` random Al/Fe fixed cells for each N in ``sizes``, each relaxed to its reference minimum
    (max|F| ≤ 1e-3 eV/Å, Mendelev EAM): outputs ``structure_NN`` (StructureData, attribute-free; in order)."""
    from aiida_rlpath.systems.alfe import reference_set

    minima = reference_set([int(n) for n in sizes.get_list()], per_size.value, seed.value)
    return {f'structure_{i:03d}': orm.StructureData(ase=m.atoms) for i, m in enumerate(minima)}


def _atoms(structures: dict[str, orm.StructureData], prefix: str):
    return [structures[key].get_ase() for key in sorted(structures) if key.startswith(prefix)]


@calcfunction
def relax_training_round(
    settings: orm.Dict,
    environment: orm.Dict,
    fmax: orm.Float,
    seed: orm.Int,
    state: orm.SinglefileData | None = None,
    **structures: orm.StructureData,
) -> dict:
    """One TD3 round (:func:`aiida_rlpath.rl.algos.td3.train_round`): episodes on the ``train_*`` structures up to
    the next evaluation, then the deterministic actor relaxes the fixed ``valid_*`` starts to ``fmax`` (eV/Å).

    Starts from ``state`` (the previous round's training state) or, without it, from an untrained agent seeded by
    ``seed``. Outputs: ``checkpoint`` (the actor, :class:`PolicyCheckpointData`), ``state`` (the whole training
    state: networks, optimisers, replay buffer, RNGs; ``torch.save`` bytes) and ``metrics`` (the round's record).
    """
    from aiida_rlpath.envs.relaxation import RelaxationEnv
    from aiida_rlpath.rl.algos import td3

    td3_settings, env_settings = td3_settings_from(settings), env_settings_from(environment)
    env = RelaxationEnv(_atoms(structures, 'train_'), settings=env_settings)
    validation = RelaxationEnv(_atoms(structures, 'valid_'), settings=env_settings)
    if state is None:
        training = td3.start_training(env_settings.n_vectors, td3_settings, seed.value)
    else:
        with state.open(mode='rb') as handle:
            training = td3.state_from_bytes(handle.read(), env_settings.n_vectors, td3_settings)
    record = td3.train_round(training, env, validation, fmax.value)
    checkpoint = record.pop('checkpoint')
    node = PolicyCheckpointData.from_state_dict(checkpoint['actor'], checkpoint['architecture'])
    state_node = orm.SinglefileData(io.BytesIO(td3.state_to_bytes(training)), filename=STATE_FILENAME)
    return {'checkpoint': node, 'state': state_node, 'metrics': orm.Dict(json_safe(record))}


@calcfunction
def distort_structure(reference: orm.StructureData, beta: orm.Float, seed: orm.Int) -> orm.StructureData:
    """``reference`` with every coordinate moved by β·U(−1, 1) Å (β = ``beta``), drawn from ``seed``."""
    from aiida_rlpath.systems.alfe import distort

    return orm.StructureData(ase=distort(reference.get_ase(), beta.value, seed.value))


@calcfunction
def reference_structure(structure: orm.StructureData, seed: orm.Int, pes: orm.Dict) -> orm.StructureData:
    """``structure`` relaxed at fixed cell on ``pes`` (a PESSpec dict) to its reference minimum (max|F| ≤ 1e-3
    eV/Å, after a seeded 0.02 Å rattle)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    from aiida_rlpath.physics.pes import PESSpec
    from aiida_rlpath.systems.alfe import reference_minimum

    spec = PESSpec.from_dict(pes.get_dict())
    minimum = reference_minimum(AseAtomsAdaptor.get_structure(structure.get_ase()), seed=seed.value, pes=spec)
    return orm.StructureData(ase=minimum.atoms)


@calcfunction
def relax_structure(
    structure: orm.StructureData,
    method: orm.Str,
    fmax: orm.Float,
    max_steps: orm.Int,
    pes: orm.Dict,
    checkpoint: PolicyCheckpointData | None = None,
) -> dict:
    """Relax ``structure`` at fixed cell with ``method`` (``rl`` with ``checkpoint``, or bfgs/lbfgs/fire/cg) to
    ``fmax`` (eV/Å) on ``pes`` (a PESSpec dict). Outputs ``result`` (force_calls, steps, converged, energy in eV,
    fmax in eV/Å, error) and the relaxed ``structure``."""
    import functools

    from aiida_rlpath.physics.pes import PESSpec
    from aiida_rlpath.physics.relax import relax
    from aiida_rlpath.rl.models.tfn import build_actor
    from aiida_rlpath.rl.optimizer import RLOptimizer

    if method.value == 'rl':
        actor = build_actor(checkpoint.architecture, checkpoint.load_state_dict())
        actor.eval()
        optimizer = functools.partial(RLOptimizer, actor=actor)
    else:
        optimizer = CLASSICAL_METHODS[method.value]
    spec = PESSpec.from_dict(pes.get_dict())
    result = relax(structure.get_ase(), spec, fmax=fmax.value, max_steps=max_steps.value, optimizer=optimizer)
    summary = {
        'method': method.value,
        'force_calls': result.force_calls,
        'steps': result.steps,
        'converged': result.converged,
        'energy': result.energy,
        'fmax': result.fmax,
        'error': result.error,
        'n_atoms': len(result.atoms),
    }
    return {'result': orm.Dict(json_safe(summary)), 'structure': orm.StructureData(ase=result.atoms)}


def best_round(records: list[dict]) -> int:
    """The round whose actor converged most validation starts, then with the fewest median force calls (latest on
    ties)."""
    return min(
        range(len(records)),
        key=lambda i: (
            -records[i]['evaluation']['converged_fraction'],
            records[i]['evaluation']['median_force_calls'],
            -i,
        ),
    )


@calcfunction
def collect_training_metrics(**rounds: orm.Dict) -> orm.Dict:
    """The rounds' metrics in label order as ``rounds``, with ``best_round`` (see :func:`best_round`)."""
    records = [rounds[key].get_dict() for key in sorted(rounds)]
    return orm.Dict({'rounds': records, 'best_round': best_round(records)})


@calcfunction
def summarise_benchmark(max_steps: orm.Int, **results: orm.Dict) -> orm.Dict:
    """The table of :func:`~aiida_rlpath.envs.relaxation.force_call_table` over all relaxation ``results``."""
    from aiida_rlpath.envs.relaxation import force_call_table

    return orm.Dict(force_call_table([results[key].get_dict() for key in sorted(results)], max_steps.value))
