"""``RealizeEpisodeWorkChain`` (entry point ``rlpath.realize.episode``): one REALIZE episode with full provenance.

Each step is one ``realize_step`` workfunction node that CALLs the calculation nodes ``sample_action`` →
``relax_move`` → ``neb_barrier`` → ``verify`` → ``conclude_step``, exactly the stages the gymnasium
environment composes, with the same seeds: the same inputs give the same actions, energies and barriers.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from aiida import orm
from aiida.engine import WorkChain, calcfunction, while_, workfunction

from aiida_rlpath.calculations.functions.realize import (
    conclude_step,
    neb_barrier,
    number,
    relax_move,
    relax_start,
    sample_action,
    verify,
)
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.envs.oxidation import OxidationSettings, RewardWeights, episode_seeds
from aiida_rlpath.workflows.utils import call_once

__all__ = ('RealizeEpisodeWorkChain', 'realize_step', 'summarize_episode')


@workfunction
def realize_step(
    structure: orm.StructureData,
    system: orm.Dict,
    pes: orm.Dict,
    settings: orm.Dict,
    weights: orm.Dict,
    threshold: orm.Float,
    previous: orm.Dict,
    action_seed: orm.Int,
    verify_seed: orm.Int,
    policy: orm.SinglefileData | None = None,
) -> dict:
    """One REALIZE step: action, move+relax, barrier, verification, record; returns the next structure.

    Without ``policy`` the seeded random policy acts; with a :class:`PolicyCheckpointData` its model does.
    """
    if policy is None:
        action = sample_action(system, settings, action_seed)
    else:
        action = sample_action(system, settings, action_seed, structure=structure, policy=policy)
    moved = relax_move(structure, system, action, pes, settings)
    result = moved['result']
    extra = {}
    if result['error'] is None and not result['escaped']:
        extra['barrier'] = neb_barrier(structure, moved['structure'], system, pes, settings, threshold)['result']
        if extra['barrier']['barrier'] is not None:
            extra['verification'] = verify(moved['structure'], system, pes, settings, verify_seed)
    record = conclude_step(
        structure, moved['structure'], system, previous, action, result, threshold, weights, **extra
    )  # fmt: skip
    return {'structure': structure if record['rolled_back'] else moved['structure'], 'record': record}


@calcfunction
def summarize_episode(**inputs: orm.Data) -> dict:
    """The episode's step records in order (``step_00``...), its return, last outcome, effective (highest)
    barrier (eV) and force calls; and its pathway as a TrajectoryData of the states ``state_00``... (frame k is
    the state step k acted in, the last frame the final state) with arrays ``energies`` (eV, per frame),
    ``barriers`` (eV, per step; NaN where none was measured) and ``numbers`` (atomic numbers; read frames back
    with :func:`~aiida_rlpath.calculations.functions.realize.trajectory_atoms`)."""
    steps = [inputs[key].get_dict() for key in sorted(k for k in inputs if k.startswith('step_'))]
    states = [inputs[key] for key in sorted(k for k in inputs if k.startswith('state_'))]
    barriers = [step['barrier'] for step in steps if step['barrier'] is not None]
    trajectory = orm.TrajectoryData(states)
    if states:
        trajectory.set_array('numbers', states[0].get_ase().numbers)
    energies = [number(step['energy_before']) for step in steps] + [number(steps[-1]['energy_after'])] if steps else []
    if len(energies) == len(states):
        trajectory.set_array('energies', np.array(energies, dtype=float))
    trajectory.set_array('barriers', np.array([number(step['barrier']) for step in steps], dtype=float))
    summary = {
        'steps': steps,
        'return': sum(step['reward'] for step in steps),
        'outcome': steps[-1]['outcome'] if steps else None,
        'effective_barrier': max(barriers) if barriers else None,
        'force_calls': sum(step['force_calls'] for step in steps),
    }
    return {'summary': orm.Dict(summary), 'trajectory': trajectory}


def validate_policy(value, _):
    """Port validator: the checkpoint loads, its weights match its ``sha256``, and its model is known."""
    if value is None:
        return None
    message = value.validate()
    if message:
        return message
    from aiida_rlpath.rl.models import MODELS

    name = value.architecture.get('name')
    if name not in MODELS:
        return f'policy checkpoint <{value.pk}>: unknown model {name!r} (known: {sorted(MODELS)})'
    return None


def _validate_system(value, _):
    missing = {'agent', 'fixed', 'film_top'} - set(value.get_dict())
    if missing:
        return f'`system` lacks {sorted(missing)}'
    if len(value['agent']) != 2:
        return f"`system.agent` must be the O2's two indices, got {value['agent']}"
    return None


def _validate_settings(value, _):
    try:
        settings = OxidationSettings(**value.get_dict())
    except TypeError as exception:
        return f'invalid `settings`: {exception}'
    if settings.d_max <= 0 or settings.relax_fmax <= 0 or settings.neb_fmax <= 0:
        return '`settings`: d_max, relax_fmax and neb_fmax must be positive'
    return None


MIN_DISTANCE = 0.7  # Å: closer than any bond (H2 is 0.74 Å): atoms this close overlap


def _validate_inputs(inputs, _):
    from ase.neighborlist import neighbor_list

    structure, system = inputs['structure'], inputs['system']
    atoms = structure.get_ase()
    symbols = atoms.get_chemical_symbols()
    agent = system['agent']
    first, second, distance = neighbor_list('ijd', atoms, MIN_DISTANCE)
    if len(first):
        return f'atoms {first[0]} and {second[0]} overlap ({distance[0]:.2f} Å apart, below {MIN_DISTANCE} Å)'
    if max(agent) >= len(symbols) or [symbols[i] for i in agent] != ['O', 'O']:
        return f'`system.agent` {agent} does not index an O2 in the structure'
    from aiida_rlpath.physics.pes import PESSpec

    try:
        PESSpec.from_dict(inputs['pes'].get_dict()).check_species(symbols)
    except ValueError as exception:
        return str(exception)
    return None


class RealizeEpisodeWorkChain(WorkChain):
    """One episode of REALIZE from a structure with an O2 agent, driven by a policy checkpoint or the seeded random
    policy."""

    @classmethod
    def get_builder_from_atoms(
        cls,
        atoms,
        agent,
        seed: int,
        threshold: float = 1.5,
        pes=None,
        settings: OxidationSettings | None = None,
        weights: RewardWeights | None = None,
        policy=None,
    ):
        """A builder for an ASE structure whose fixed atoms carry ``FixAtoms`` and whose O2 is ``agent``.

        ``threshold`` in eV; ``pes`` a :class:`PESSpec` (default: the oxidation ReaxFF); ``policy`` a stored
        :class:`PolicyCheckpointData` (default: the seeded random policy).
        """
        from aiida_rlpath.envs.oxidation import canonical, film_top, fixed_indices
        from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES

        builder = cls.get_builder()
        builder.structure = orm.StructureData(ase=canonical(atoms))
        builder.system = orm.Dict(
            {
                'agent': [int(i) for i in agent],
                'fixed': fixed_indices(atoms),
                'film_top': film_top(atoms, agent),
            }
        )
        builder.pes = orm.Dict((pes or DEFAULT_OXIDATION_PES).to_dict())
        builder.settings = orm.Dict(dataclasses.asdict(settings or OxidationSettings()))
        builder.weights = orm.Dict(dataclasses.asdict(weights or RewardWeights()))
        builder.threshold = orm.Float(threshold)
        builder.seed = orm.Int(seed)
        if policy is not None:
            builder.policy = policy
        return builder

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='Start structure (Å) with the agent O2.')
        spec.input('system', valid_type=orm.Dict, validator=_validate_system, help='agent, fixed, film_top (Å).')
        spec.input('pes', valid_type=orm.Dict, help='PESSpec.to_dict() of the potential.')
        spec.input(
            'settings',
            valid_type=orm.Dict,
            default=lambda: orm.Dict(dataclasses.asdict(OxidationSettings())),
            validator=_validate_settings,
        )
        spec.input('weights', valid_type=orm.Dict, default=lambda: orm.Dict(dataclasses.asdict(RewardWeights())))
        spec.input('threshold', valid_type=orm.Float, help='Current barrier threshold, eV.')
        spec.input('seed', valid_type=orm.Int, help='Episode seed: every random draw derives from it.')
        spec.input(
            'policy',
            valid_type=PolicyCheckpointData,
            required=False,
            validator=validate_policy,
            help='Policy checkpoint that acts; without it the seeded random policy acts.',
        )
        spec.inputs.validator = _validate_inputs
        spec.output('structure', valid_type=orm.StructureData, help='Final structure.')
        spec.output('summary', valid_type=orm.Dict, help='Per-step records and episode totals.')
        spec.output('trajectory', valid_type=orm.TrajectoryData, help='States along the episode, energies in eV.')
        spec.outline(cls.setup, while_(cls.should_continue)(cls.run_step), cls.finalize)
        spec.exit_code(510, 'ERROR_START_RELAXATION', message='the start structure could not be relaxed: {error}')

    def setup(self):
        start = call_once(
            self, 'start', relax_start, self.inputs.structure, self.inputs.system, self.inputs.pes, self.inputs.settings
        )
        if start['result']['error']:
            return self.exit_codes.ERROR_START_RELAXATION.format(error=start['result']['error'])
        self.ctx.settings = OxidationSettings(**self.inputs.settings.get_dict())
        self.ctx.action_seed, self.ctx.verify_seed = episode_seeds(self.inputs.seed.value)
        self.ctx.structure, self.ctx.previous = start['structure'], start['result']
        self.ctx.step, self.ctx.records, self.ctx.failures, self.ctx.done = 0, [], 0, False
        self.ctx.states = [start['structure'].pk]
        self.report(f'start relaxed: E = {number(start["result"]["energy"]):.4f} eV')
        return None

    def should_continue(self):
        return not self.ctx.done and self.ctx.step < self.ctx.settings.max_steps

    def run_step(self):
        k = self.ctx.step
        extra = {'policy': self.inputs.policy} if 'policy' in self.inputs else {}
        outputs = call_once(
            self,
            f'step_{k:02d}',
            realize_step,
            structure=self.ctx.structure,
            system=self.inputs.system,
            pes=self.inputs.pes,
            settings=self.inputs.settings,
            weights=self.inputs.weights,
            threshold=self.inputs.threshold,
            previous=self.ctx.previous,
            action_seed=orm.Int(self.ctx.action_seed + k),
            verify_seed=orm.Int(self.ctx.verify_seed + k),
            **extra,
        )
        record = outputs['record']
        self.ctx.structure, self.ctx.previous = outputs['structure'], record
        self.ctx.records.append(record.pk)
        self.ctx.states.append(outputs['structure'].pk)
        self.ctx.failures += record['rolled_back']
        self.ctx.done = record['terminated'] or self.ctx.failures >= self.ctx.settings.max_neb_failures
        self.ctx.step += 1
        barrier = (
            'not measured' if record['barrier'] is None else f'{record["barrier"]:.3f} eV ({record["barrier_method"]})'
        )
        self.report(f'step {k:02d}: {record["outcome"]}, barrier {barrier}, reward {record["reward"]:.3f}')

    def finalize(self):
        inputs = {f'step_{i:02d}': orm.load_node(pk) for i, pk in enumerate(self.ctx.records)}
        inputs.update({f'state_{i:02d}': orm.load_node(pk) for i, pk in enumerate(self.ctx.states)})
        outputs = call_once(self, 'summary', summarize_episode, **inputs)
        self.out('structure', self.ctx.structure)
        self.out('summary', outputs['summary'])
        self.out('trajectory', outputs['trajectory'])
