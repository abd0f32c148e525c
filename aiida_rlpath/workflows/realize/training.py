"""``RealizeTrainingWorkChain`` (entry point ``rlpath.realize.training``): REALIZE training in cycles.

A cycle submits K :class:`RealizeEpisodeWorkChain` from the current environment (they run in parallel on daemon
workers), computes the cycle's metrics (``cycle_metrics``: success rate, mean effective barrier, the kept event),
keeps the lowest-barrier verified oxidation (``oxidation_event``: the environment evolves and a fresh O2 comes),
updates the policy (``ppo_update``: a new :class:`PolicyCheckpointData`) and anneals the barrier threshold.
Every quantity a training figure needs is a node of this graph (see :mod:`aiida_rlpath.analysis`).
"""

from __future__ import annotations

import dataclasses

from aiida import orm
from aiida.engine import WorkChain, append_, while_

from aiida_rlpath.calculations.functions.systems import oxidation_system
from aiida_rlpath.calculations.functions.training import cycle_metrics, episode_key, oxidation_event, ppo_update
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.envs.oxidation import (
    OxidationSettings,
    RewardWeights,
    TrainingSettings,
    anneal_threshold,
    cycle_seeds,
)
from aiida_rlpath.workflows.protocols import protocol_overrides
from aiida_rlpath.workflows.realize.episode import (
    RealizeEpisodeWorkChain,
    _validate_inputs,
    _validate_system,
    validate_policy,
)
from aiida_rlpath.workflows.utils import call_once

__all__ = ('RealizeTrainingWorkChain', 'initial_policy', 'protocol_overrides')


def initial_policy(model: dict, d_max: float, seed: int) -> PolicyCheckpointData:
    """A fresh checkpoint of the policy ``model`` (``name`` and options of :mod:`aiida_rlpath.rl.models`) for
    steps of at most ``d_max`` Å, its weights initialised from ``seed``; an identical checkpoint is reused."""
    from aiida_rlpath.rl.models import init_policy

    network = init_policy(model, d_max, seed)
    return PolicyCheckpointData.get_or_create(network.state_dict(), network.architecture)[0]


def _validate_training(value, _):
    try:
        settings = TrainingSettings(**value.get_dict())
        from aiida_rlpath.rl.algos.ppo import PPOSettings

        PPOSettings(**settings.ppo)
    except (TypeError, ValueError) as exception:
        return f'invalid `training`: {exception}'
    return None


def _validate_build(value, _):
    from aiida_rlpath.calculations.functions.systems import validate_system_parameters

    return validate_system_parameters(value.get_dict()) if value is not None else None


def _validate_training_inputs(inputs, ctx):
    given = [key for key in ('structure', 'system') if key in inputs]
    if 'build' in inputs:
        if given:
            return f'give either `build` or `structure` and `system`, not both (got {given} too)'
    elif len(given) < 2:
        return 'give `structure` and `system`, or `build` to grow the starting system'
    else:
        message = _validate_inputs(inputs, ctx)
        if message:
            return message
    if 'threshold' in inputs and inputs['threshold'].value <= 0:
        return f'`threshold` must be positive (eV), got {inputs["threshold"].value}'
    return None


class RealizeTrainingWorkChain(WorkChain):
    """REALIZE training: cycles of parallel episodes, event selection, environment evolution, PPO, annealing."""

    @classmethod
    def get_builder_from_protocol(
        cls,
        protocol: str | None = None,
        overrides: dict | None = None,
        atoms=None,
        agent=None,
        seed: int = 0,
        policy: PolicyCheckpointData | None = None,
        pes=None,
    ):
        """A builder from a protocol preset (``fast``, ``balanced``, ``paper``; see ``workflows/protocols``).

        ``overrides`` is merged into the preset (keys ``system``, ``settings``, ``training``, ``weights``). Without
        ``atoms`` the work chain grows its own start (``build``) from the preset's ``system`` parameters; with an
        ASE structure ``atoms`` whose O2 is ``agent`` it starts there. ``policy`` defaults to the preset's
        ``policy`` model initialised from ``seed`` (stored once, found again by hash). ``pes`` a PESSpec
        (default: the oxidation ReaxFF). ``seed`` drives everything random.
        """
        from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES
        from aiida_rlpath.workflows.protocols import get_protocol

        preset = get_protocol('realize', protocol, overrides)
        settings = OxidationSettings(**preset.get('settings', {}))
        training = TrainingSettings(**preset.get('training', {}))
        weights = RewardWeights(**preset.get('weights', {}))
        if atoms is not None:
            episode = RealizeEpisodeWorkChain.get_builder_from_atoms(atoms, agent, seed, pes=pes, settings=settings)
            builder = cls.get_builder()
            builder.structure, builder.system = episode.structure, episode.system
        else:
            builder = cls.get_builder()
            builder.build = orm.Dict({**preset.get('system', {}), 'seed': int(seed)})
        builder.pes = orm.Dict((pes or DEFAULT_OXIDATION_PES).to_dict())
        builder.settings = orm.Dict(dataclasses.asdict(settings))
        builder.weights = orm.Dict(dataclasses.asdict(weights))
        builder.training = orm.Dict(dataclasses.asdict(training))
        if policy is None:
            policy = initial_policy(preset.get('policy', {'name': 'multipole'}), settings.d_max, seed)
        builder.policy = policy
        builder.seed = orm.Int(seed)
        builder.metadata.label = f'REALIZE training ({preset["name"]})'
        return builder

    @classmethod
    def get_builder_continue(cls, node: orm.WorkChainNode, cycles: int | None = None):
        """A builder that continues the training ``node`` (finished, failed or killed) from its last complete cycle.

        It starts from that cycle's policy checkpoint and evolved environment, with the next annealed threshold
        and the cycle numbering (hence the seeds) continued. ``cycles``: how many cycles to run (default: those
        ``node`` had left, or as many as it ran if it had finished them all). Every other input is ``node``'s.
        """
        from aiida.common.links import LinkType

        calls = {
            link.link_label: link.node
            for link in node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all()
            if link.node.is_finished_ok
        }
        training = TrainingSettings(**node.inputs.training.get_dict())
        first = node.inputs.first_cycle.value
        planned = first + training.cycles
        complete = [c for c in range(first, planned) if f'cycle_{c:02d}_update' in calls]
        builder = node.get_builder_restart()
        if complete:
            last = max(complete)
            builder.policy = calls[f'cycle_{last:02d}_update'].outputs.policy
            events = [c for c in range(first, last + 1) if f'cycle_{c:02d}_event' in calls]
            if events:
                event = calls[f'cycle_{max(events):02d}_event']
                builder.structure, builder.system = event.outputs.structure, event.outputs.system
            elif 'system' in calls:  # the run grew its own start: continue from it rather than grow it again
                builder.structure, builder.system = calls['system'].outputs.structure, calls['system'].outputs.system
            if 'structure' in builder:
                builder.pop('build', None)
            threshold = calls[f'cycle_{last:02d}_metrics'].outputs.result['threshold']
            builder.threshold = orm.Float(anneal_threshold(threshold, training))
            builder.first_cycle = orm.Int(last + 1)
            remaining = planned - last - 1
        else:
            remaining = training.cycles
        count = cycles if cycles is not None else (remaining or training.cycles)
        builder.training = orm.Dict({**node.inputs.training.get_dict(), 'cycles': int(count)})
        builder.metadata.label = f'continues <{node.pk}>'
        return builder

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'structure', valid_type=orm.StructureData, required=False, help='Initial environment (Å) with the agent O2.'
        )
        spec.input(
            'system',
            valid_type=orm.Dict,
            required=False,
            validator=_validate_system,
            help='agent, fixed, film_top (Å).',
        )
        spec.input(
            'build',
            valid_type=orm.Dict,
            required=False,
            validator=_validate_build,
            help='Instead of structure/system: parameters of `oxidation_system`, which grows the start (Å).',
        )
        spec.expose_inputs(RealizeEpisodeWorkChain, include=('pes', 'settings', 'weights'))  # as every episode's
        spec.input(
            'training',
            valid_type=orm.Dict,
            default=lambda: orm.Dict(dataclasses.asdict(TrainingSettings())),
            validator=_validate_training,
            help='TrainingSettings: cycles, episodes per cycle, threshold schedule (eV), PPO settings.',
        )
        spec.input('policy', valid_type=PolicyCheckpointData, validator=validate_policy, help='Initial policy.')
        spec.input('seed', valid_type=orm.Int, help='Training seed: all other seeds derive from it.')
        spec.input(
            'first_cycle',
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            help='Number of the first cycle (a restart continues the numbering, and so the seeds).',
        )
        spec.input(
            'threshold',
            valid_type=orm.Float,
            required=False,
            help='Barrier threshold of the first cycle, eV (default: training.threshold_start).',
        )
        spec.inputs.validator = _validate_training_inputs
        spec.output('structure', valid_type=orm.StructureData, help='The evolved environment after the last cycle.')
        spec.output('system', valid_type=orm.Dict, help='Its agent, fixed atoms and film top (Å).')
        spec.output('policy', valid_type=PolicyCheckpointData, help='The last policy checkpoint.')
        spec.output_namespace('cycles', valid_type=orm.Dict, dynamic=True, help='Metrics of each cycle.')
        spec.output_namespace('events', valid_type=orm.Dict, dynamic=True, help='The oxidation event each cycle kept.')
        spec.outline(cls.setup, while_(cls.next_cycle)(cls.run_episodes, cls.close_cycle), cls.finalize)
        spec.exit_code(410, 'ERROR_EPISODES_FAILED', message='every episode of cycle {cycle} failed')

    def setup(self):
        if 'build' in self.inputs:
            built = call_once(self, 'system', oxidation_system, self.inputs.build)
            self.ctx.structure, self.ctx.system = built['structure'], built['system']
            oxide = built['oxide'].get_dict()
            self.report(
                f'built the start: {len(built["structure"].sites)} atoms, oxide '
                f'{oxide.get("oxide_thickness", 0.0):.2f} Å thick'
            )
        else:
            self.ctx.structure, self.ctx.system = self.inputs.structure, self.inputs.system
        self.ctx.policy = self.inputs.policy
        self.ctx.training = TrainingSettings(**self.inputs.training.get_dict())
        self.ctx.cycle = self.inputs.first_cycle.value
        self.ctx.last_cycle = self.ctx.cycle + self.ctx.training.cycles
        self.ctx.threshold = (
            self.inputs.threshold.value if 'threshold' in self.inputs else self.ctx.training.threshold_start
        )

    def next_cycle(self):
        return self.ctx.cycle < self.ctx.last_cycle

    def run_episodes(self):
        c = self.ctx.cycle
        seeds = cycle_seeds(self.inputs.seed.value, c, self.ctx.training.episodes_per_cycle)
        threshold = orm.Float(self.ctx.threshold)
        for k, seed in enumerate(seeds['episodes']):
            inputs = {
                'structure': self.ctx.structure,
                'system': self.ctx.system,
                **self.exposed_inputs(RealizeEpisodeWorkChain),
                'threshold': threshold,
                'seed': orm.Int(seed),
                'policy': self.ctx.policy,
                'metadata': {
                    'label': f'cycle {c:02d} episode {k:02d}',
                    'call_link_label': f'cycle_{c:02d}_episode_{k:02d}',
                },
            }
            self.to_context(episodes=append_(self.submit(RealizeEpisodeWorkChain, **inputs)))
        count = len(seeds['episodes'])
        self.report(f'cycle {c:02d}: submitted {count} episodes, threshold {self.ctx.threshold:.3f} eV')

    def close_cycle(self):
        c = self.ctx.cycle
        prefix = f'cycle_{c:02d}'
        system = self.ctx.system  # the system the episodes ran in (the event below evolves it)
        seeds = cycle_seeds(self.inputs.seed.value, c, self.ctx.training.episodes_per_cycle)
        episodes = [node for node in self.ctx.episodes if node.is_finished_ok]
        for node in self.ctx.episodes:
            if not node.is_finished_ok:
                self.report(f'{prefix}: episode <{node.pk}> failed ({node.exit_status}); left out of the cycle')
        self.ctx.episodes = []
        if not episodes:
            return self.exit_codes.ERROR_EPISODES_FAILED.format(cycle=c)

        summaries = {episode_key(i): node.outputs.summary for i, node in enumerate(episodes)}
        metrics = call_once(self, f'{prefix}_metrics', cycle_metrics, orm.Float(self.ctx.threshold), **summaries)
        self.out(f'cycles.{prefix}', metrics)

        if metrics['kept'] is not None:
            kept = episodes[metrics['kept']]
            event = call_once(
                self, f'{prefix}_event', oxidation_event, kept.outputs.structure, self.ctx.system,
                orm.Int(seeds['event']), orm.Float(self.ctx.training.insert_height),
            )  # fmt: skip
            self.ctx.structure, self.ctx.system = event['structure'], event['system']
            self.out(f'events.{prefix}', event['event'])

        barrier = metrics['mean_effective_barrier']
        self.report(
            f'{prefix}: success rate {metrics["success_rate"]:.2f}, mean effective barrier '
            + ('n/a' if barrier is None else f'{barrier:.3f} eV')
            + f', event {"kept from episode " + str(metrics["kept"]) if metrics["kept"] is not None else "none"}'
        )
        if self.ctx.training.mode == 'train':
            trajectories = {f'trajectory_{i:02d}': node.outputs.trajectory for i, node in enumerate(episodes)}
            update = call_once(
                self, f'{prefix}_update', ppo_update, self.ctx.policy, self.inputs.training, orm.Int(seeds['update']),
                system=system, **summaries, **trajectories,
            )  # fmt: skip
            self.ctx.policy = update['policy']
            stats = update['stats'].get_dict()
            heads = ', '.join(
                f'{name} H {head["entropy"]:.3f} KL {head["approx_kl"]:.2e}'
                for name, head in (stats.get('heads') or {}).items()
            )
            self.report(
                f'{prefix}: PPO update, {stats.get("epochs", 0)} epochs, approx. KL {stats["approx_kl"]:.2e} nats'
                + (f' ({heads})' if heads else '')
                + f'; policy <{self.ctx.policy.pk}>'
            )
        self.ctx.threshold = anneal_threshold(self.ctx.threshold, self.ctx.training)
        self.ctx.cycle += 1
        return None

    def finalize(self):
        self.out('structure', self.ctx.structure)
        self.out('system', self.ctx.system)
        self.out('policy', self.ctx.policy)
