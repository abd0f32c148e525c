"""Seeded calcfunctions of a REALIZE training cycle: metrics and event choice, the oxidation event that evolves
the environment, and the PPO policy update that writes a new :class:`PolicyCheckpointData`.

Energies and barriers in eV, lengths in Å.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_rlpath.calculations.functions.realize import json_safe, load_policy, trajectory_atoms
from aiida_rlpath.envs.oxidation import TrainingSettings, canonical, evolve_environment, film_top, summarize_cycle
from aiida_rlpath.physics.bonds import bonded_neighbours, o2_bond

__all__ = ('cycle_metrics', 'episode_key', 'oxidation_event', 'ppo_update')


def episode_key(index: int) -> str:
    """Input label of episode ``index``'s summary (``episode_00``...); trajectories use ``trajectory_00``..."""
    return f'episode_{index:02d}'


def _summaries(inputs: dict) -> list[dict]:
    keys = sorted(key for key in inputs if key.startswith('episode_'))
    return [inputs[key].get_dict() for key in keys]


@calcfunction
def cycle_metrics(threshold: orm.Float, **episodes: orm.Dict) -> orm.Dict:
    """One cycle's metrics from its episode summaries (``episode_00``...), and which episode's event it keeps.

    ``success_rate``: fraction of episodes ending in a verified dissociation under ``threshold`` (eV);
    ``mean_effective_barrier``: mean over those successes of their pathway's highest barrier (eV);
    ``kept``: index of the success with the lowest effective barrier (``None``: no event this cycle).
    """
    summaries = _summaries(episodes)
    barriers = [step['barrier'] for s in summaries for step in s['steps'] if step['barrier'] is not None]
    outcomes: dict[str, int] = {}
    for summary in summaries:
        outcomes[summary['outcome']] = outcomes.get(summary['outcome'], 0) + 1
    return orm.Dict(
        json_safe(
            {
                'threshold': threshold.value,
                'episodes': len(summaries),
                'steps': sum(len(s['steps']) for s in summaries),
                **summarize_cycle(summaries),
                'mean_return': float(np.mean([s['return'] for s in summaries])) if summaries else None,
                'barriers': barriers,
                'outcomes': outcomes,
            }
        )
    )


@calcfunction
def oxidation_event(structure: orm.StructureData, system: orm.Dict, seed: orm.Int, height: orm.Float) -> dict:
    """Keep a verified oxidation: the dissociated O atoms stay bonded where they are and a fresh O2 is inserted
    ``height`` Å above the film at a place drawn from ``seed``.

    Returns the evolved ``structure``, its ``system`` (the new agent; fixed atoms unchanged) and the ``event``
    (the kept O atoms, their Si neighbours, their O–O distance in Å).
    """
    atoms = canonical(structure.get_ase())
    kept = [int(i) for i in system['agent']]
    evolved, agent = evolve_environment(atoms, seed.value, height.value)
    evolved = canonical(evolved)
    event = {
        'oxygens': kept,
        'si_neighbours': [[int(j) for j in bonded_neighbours(atoms, i, 'Si')] for i in kept],
        'oo_distance': o2_bond(atoms, kept).distance,
        'new_agent': agent,
    }
    return {
        'structure': orm.StructureData(ase=evolved),
        'system': orm.Dict({'agent': agent, 'fixed': list(system['fixed']), 'film_top': film_top(evolved, agent)}),
        'event': orm.Dict(json_safe(event)),
    }


@calcfunction
def ppo_update(
    policy: orm.SinglefileData, training: orm.Dict, seed: orm.Int, system: orm.Dict, **episodes: orm.Data
) -> dict:
    """One PPO update of ``policy`` on the cycle's episodes; returns the new checkpoint and the update statistics.

    ``episode_00``... are episode summaries (their steps carry the raw action ``sample`` and its ``logp``);
    ``trajectory_00``... the matching trajectories, whose frame k is the state step k acted in; ``system`` the
    episodes' system (its ``agent`` indexes the O2 in every frame). A state is ``(atoms, agent)``.
    """
    from aiida_rlpath.data.policy import PolicyCheckpointData
    from aiida_rlpath.rl.algos.ppo import PPOSettings, Step
    from aiida_rlpath.rl.algos.ppo import ppo_update as update

    model = load_policy(policy)
    batch, skipped = [], 0
    for key in sorted(k for k in episodes if k.startswith('episode_')):
        trajectory = episodes.get(key.replace('episode_', 'trajectory_'))
        steps = []
        for k, step in enumerate(episodes[key]['steps']):
            if step.get('logp') is None:  # drawn by another policy (e.g. random): not this policy's data
                skipped += 1
                continue
            state = (trajectory_atoms(trajectory, k), system['agent']) if trajectory is not None else None
            steps.append(Step(state, step['sample'], step['logp'], step['reward'], step.get('value')))
        batch.append(steps)
    settings = PPOSettings(**TrainingSettings(**training.get_dict()).ppo)
    stats = update(model, batch, seed.value, settings)
    stats['skipped_steps'] = skipped
    stats['parent'] = policy.base.attributes.get('sha256')
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return {
        'policy': PolicyCheckpointData.from_state_dict(state, model.architecture),
        'stats': orm.Dict(json_safe({**stats, 'settings': dataclasses.asdict(settings)})),
    }
