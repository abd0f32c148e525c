"""``CrystalDesignWorkChain`` (entry point ``rlpath.crystal.design``): RL crystal design against a property
target, every episode, property evaluation and policy update a node.

Per round of ``episodes_per_round`` episodes (calcfunctions of :mod:`aiida_rlpath.calculations.functions.crystal`):

1. ``episode_NNNN``: the current policy fills a prototype; outputs the episode's actions and the structure;
2. ``evaluate_NNNN``: CHGNet relaxation and the property (plus GFN1-xTB for the band gap), run with AiiDA
   caching on, so a structure already evaluated with the same calculator settings (in this run or any earlier
   one on the profile) is a cache hit and is not recomputed. Its settings input is the ``calculator`` input
   completed with every default (the CHGNet model included), one Dict per run, so a hit never crosses a
   change of default. A failed evaluation has its exit status (410–414)
   and its structure is not recomputed either within the run;
3. ``record_NNNN``: the episode with its value and reward (the target's penalty when the evaluation failed);
4. ``update_NN`` (DQN, PPO): the policy update; outputs the training ``state``, the network ``checkpoint`` and
   the update's ``metrics``.

Outputs: ``summary`` (best designs, whether their compositions are new, episodes to reach the target, property
evaluations and cache hits, all rewards), ``checkpoint`` (the last policy; none for ``random``), and
``best_structure`` (the relaxed structure of the best design). The same inputs give the same episodes and
rewards as :func:`aiida_rlpath.rl.algos.design.run_design` (cache hits aside, which may include earlier runs).
"""

from __future__ import annotations

import dataclasses

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import WorkChain, while_
from aiida.manage.caching import enable_caching

from aiida_rlpath.calculations.functions.crystal import (
    EVALUATE_IDENTIFIER,
    design_environment,
    design_episode,
    design_update,
    environment_from,
    evaluate_crystal_property,
    record_episode,
    summarise_design,
    target_from,
)
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.workflows.utils import call_once, retire_interrupted, settings_validator

__all__ = ('CrystalDesignWorkChain',)


def _design_settings(node):
    from aiida_rlpath.rl.algos.design import DesignSettings

    return DesignSettings.from_dict(node.get_dict())


def _calculator_settings(node):
    from aiida_rlpath.physics.properties import PropertySettings

    return PropertySettings.from_dict(node.get_dict())


def _environment(node, _):
    from aiida_rlpath.envs.crystal_design import Prototype
    from aiida_rlpath.systems.prototypes import vocabulary

    try:
        options = environment_from(node)
        for name in options['prototypes']:
            Prototype.build(name)
        vocabulary(options['vocabulary'])
    except (TypeError, ValueError) as exception:
        return f'invalid `environment`: {exception}'
    return None


def _validate_inputs(inputs, _):
    """The environment with the user's prototypes must build and let every prototype be filled."""
    try:
        env = design_environment(inputs['environment'], dict(inputs.get('structures', {})))
        for name in env.prototypes:
            env.reset(seed=0, options={'prototype': name})
    except (TypeError, ValueError) as exception:
        return f'invalid `environment` with `structures`: {exception}'
    return None


class CrystalDesignWorkChain(WorkChain):
    """Fill crystal prototypes with elements by RL (DQN, PPO or random) to hit a property target."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('target', valid_type=orm.Dict, validator=settings_validator('target', target_from),
                   help='PropertyTarget: property (density g/cm^3, bulk_modulus GPa, band_gap eV), target, '
                   'and optionally kind (gaussian|relative), scale, penalty, tolerance.')  # fmt: skip
        spec.input('environment', valid_type=orm.Dict, default=lambda: orm.Dict({}), validator=_environment,
                   help='prototypes (names), vocabulary (small|medium|large or symbols), charge_balance.')  # fmt: skip
        spec.input('settings', valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   validator=settings_validator('settings', _design_settings),
                   help='DesignSettings: algorithm (dqn|ppo|random), episodes, episodes_per_round, seed, hidden, '
                   'layers, dqn {...}, ppo {...}.')  # fmt: skip
        spec.input('calculator', valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   validator=settings_validator('calculator', _calculator_settings),
                   help='PropertySettings: fmax (eV/Å), relax_steps, n_volumes, strain, min_length (Å), '
                   'max_atoms, ...')  # fmt: skip
        spec.input_namespace('structures', valid_type=orm.StructureData, dynamic=True, required=False,
                             help='User prototypes (e.g. from CIF files), by name.')  # fmt: skip
        spec.inputs.validator = _validate_inputs
        spec.outline(cls.setup, while_(cls.rounds_left)(cls.run_round), cls.results)
        spec.output('summary', valid_type=orm.Dict, help='best designs, episodes to target, evaluations, cache hits')
        spec.output('checkpoint', valid_type=PolicyCheckpointData, required=False, help='the last policy')
        spec.output('best_structure', valid_type=orm.StructureData, required=False,
                    help='relaxed structure of the best design')  # fmt: skip
        spec.exit_code(500, 'ERROR_ALL_EVALUATIONS_FAILED', message='every property evaluation failed')

    def setup(self):
        settings = _design_settings(self.inputs.settings)
        target = target_from(self.inputs.target)
        self.ctx.episodes, self.ctx.per_round = settings.episodes, settings.episodes_per_round
        self.ctx.algorithm = settings.algorithm
        self.ctx.next_episode, self.ctx.round, self.ctx.state = 0, 0, None
        self.ctx.records, self.ctx.failed = [], {}
        self.ctx.best_reward, self.ctx.best_structure = None, None
        self.ctx.checkpoint = None
        # every evaluation gets the complete calculator settings (defaults filled in, the CHGNet model named), so
        # its node records what was computed and a cache hit never crosses a change of default
        calculator = dataclasses.asdict(_calculator_settings(self.inputs.calculator))
        self.ctx.calculator = orm.Dict(calculator).store()
        structures = dict(self.inputs.get('structures', {}))
        self.ctx.structure_inputs = {f'structure_{k}': v for k, v in structures.items()}
        options = environment_from(self.inputs.environment)
        self.report(
            f'{settings.algorithm}: {settings.episodes} episodes, {settings.episodes_per_round} per update; target '
            f'{target.property} = {target.target} ({target.kind}); prototypes {options["prototypes"]}'
            f'{" + " + ", ".join(sorted(structures)) if structures else ""}; vocabulary {options["vocabulary"]}; '
            f'CHGNet {calculator["chgnet_model"]}'
        )

    def rounds_left(self):
        return self.ctx.next_episode < self.ctx.episodes

    def _evaluate(self, index: int, structure: orm.StructureData):
        """Evaluate (cached) and return the evaluation Dict, the calculation node and whether it was a hit."""
        label = f'evaluate_{index:04d}'
        structure_hash = structure.base.caching.get_hash()
        if structure_hash in self.ctx.failed:  # failed nodes are never cache sources: reuse the failure here
            return orm.Dict(self.ctx.failed[structure_hash]), None, True
        retire_interrupted(self, label)
        finished = [
            link.node
            for link in self.node.base.links.get_outgoing(link_type=LinkType.CALL_CALC, link_label_filter=label).all()
            if link.node.is_terminated
        ]
        if finished:
            node = finished[0]
        else:
            with enable_caching(identifier=EVALUATE_IDENTIFIER):
                _, node = evaluate_crystal_property.run_get_node(
                    structure, orm.Str(target_from(self.inputs.target).property), self.ctx.calculator,
                    metadata={'call_link_label': label},
                )  # fmt: skip
        hit = node.base.caching.is_created_from_cache
        if node.is_finished_ok:
            return node.outputs.result, node, hit
        failure = {'ok': False, 'exit_status': int(node.exit_status or 1), 'message': node.exit_message or '',
                   'calculation': node.uuid}  # fmt: skip
        self.ctx.failed = {**self.ctx.failed, structure_hash: failure}
        return orm.Dict(failure), node, hit

    def run_round(self):
        state = {'state': self.ctx.state} if self.ctx.state is not None else {}
        structures = dict(self.inputs.get('structures', {}))
        first = self.ctx.next_episode
        last = min(first + self.ctx.per_round, self.ctx.episodes)
        records = {}
        for index in range(first, last):
            sampled = call_once(self, f'episode_{index:04d}', design_episode, self.inputs.settings,
                                self.inputs.environment, orm.Int(index), **state, **structures)  # fmt: skip
            evaluation, node, hit = self._evaluate(index, sampled['structure'])
            record = call_once(self, f'record_{index:04d}', record_episode, sampled['episode'], evaluation,
                               self.inputs.target, orm.Bool(hit))  # fmt: skip
            records[f'episode_{index:04d}'] = record
            values = record.get_dict()
            if values['ok'] and (self.ctx.best_reward is None or values['reward'] > self.ctx.best_reward):
                self.ctx.best_reward, self.ctx.best_structure = values['reward'], node.outputs.relaxed
            shown = 'failed' if not values['ok'] else f'{values["value"]:.3f}'
            self.report(
                f'episode {index}: {values["formula"]} ({values["prototype"]}) {shown}'
                f'{" (cache hit)" if hit else ""}, reward {values["reward"]:.3f}'
            )
        self.ctx.records = [*self.ctx.records, *records.values()]
        if self.ctx.algorithm != 'random':
            outputs = call_once(self, f'update_{self.ctx.round:02d}', design_update, self.inputs.settings,
                                self.inputs.environment, **state, **records, **self.ctx.structure_inputs)  # fmt: skip
            self.ctx.state, self.ctx.checkpoint = outputs['state'], outputs['checkpoint']
            metrics = outputs['metrics'].get_dict()
            checkpoint = outputs['checkpoint'].pk
            self.report(f'update {self.ctx.round}: loss {metrics.get("loss")} (checkpoint <{checkpoint}>)')
        self.ctx.next_episode, self.ctx.round = last, self.ctx.round + 1

    def results(self):
        records = {f'episode_{node.get_dict()["index"]:04d}': node for node in self.ctx.records}
        summary = call_once(self, 'summary', summarise_design, self.inputs.target, self.inputs.environment,
                            **records, **self.ctx.structure_inputs)  # fmt: skip
        self.out('summary', summary)
        if self.ctx.checkpoint is not None:
            self.out('checkpoint', self.ctx.checkpoint)
        if self.ctx.best_structure is not None:
            self.out('best_structure', self.ctx.best_structure)
        values = summary.get_dict()
        self.report(
            f'best reward {values["best_reward"]:.3f} ({values["best_formula"]}, {values["best_prototype"]}); '
            f'{values["property_evaluations"]} evaluations, {values["cache_hits"]} cache hits'
        )
        if self.ctx.best_structure is None:
            return self.exit_codes.ERROR_ALL_EVALUATIONS_FAILED
        return None
