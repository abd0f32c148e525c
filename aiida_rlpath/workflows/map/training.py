"""``MapTrainingWorkChain`` (entry point ``rlpath.map.training``): MAP — an H2O learning diffusion pathways through
silica glass by distributed prioritized-replay DQN (Ape-X), every actor round, learner step and pathway a node.

1. ``system`` (unless ``structure``/``system`` are given): melt-quenched glass with one H2O, relaxed;
2. per round ``RR``: N :class:`MapActorWorkChain` (``round_RR_actor_II``) submitted together, so they run in
   parallel on daemon workers (``verdi daemon start N``); each runs K steps with the current Q-network and its own
   ε from the ladder and returns its experiences (n-step transitions with initial priorities) as an array node;
   then ``learner_RR``: the learner's calculation node (prioritized updates) giving the next checkpoint;
3. ``pathway_NN``: :class:`~aiida_rlpath.workflows.map.pathway.MapPathwayWorkChain` on the ``analyse`` complete
   episodes with the highest return (sum of rewards: progress along +x, low energy) among those that moved the
   water at least ``min_progress`` Å along +x (piecewise NEB, τ); the
   episodes are ranked by τ in ``summary`` (τ undefined, ``None``, for a profile without a barrier).

The same inputs and seed give the same actor experiences and learner weights as
:func:`aiida_rlpath.rl.algos.apex_dqn.train` (a test asserts it).
"""

from __future__ import annotations

import dataclasses

from aiida import orm
from aiida.engine import ToContext, WorkChain, if_, while_

from aiida_rlpath.calculations.functions.map import (
    GLASS_FILENAME,
    initial_q_checkpoint,
    map_actor_round,
    map_learner_step,
    map_melt_quench_inputs,
    map_summary,
    map_system,
    map_system_from_glass,
    validate_system_parameters,
)
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.workflows.map.pathway import MapPathwayWorkChain
from aiida_rlpath.workflows.utils import call_once, settings_validator

__all__ = ('MapActorWorkChain', 'MapTrainingWorkChain')


def _apex(node):
    from aiida_rlpath.rl.algos.apex_dqn import settings_from_dict

    return settings_from_dict(node.get_dict())


def _environment(node):
    from aiida_rlpath.envs.water_diffusion import settings_from_dict

    return settings_from_dict(node.get_dict())


def _pes(node):
    from aiida_rlpath.calculations.functions.map import pes_from

    return pes_from(node)


def _validate_system(node, _):
    water = node.get_dict().get('water')
    if not isinstance(water, list) or len(water) != 3:
        return '`system` needs `water`: the indices of the water O, H, H'
    return None


def _validate_build(node, _):
    message = validate_system_parameters(node.get_dict())
    return None if message is None else f'invalid `build`: {message}'


def _validate_checkpoint(node, _):
    from aiida_rlpath.rl.models.cnn3d import ARCHITECTURE_NAME

    if node.architecture.get('name') != ARCHITECTURE_NAME:
        return f'`checkpoint` <{node.pk}> holds a {node.architecture.get("name")!r}, not a {ARCHITECTURE_NAME}'
    return node.validate()


def _validate_inputs(inputs, _):
    if ('structure' in inputs) != ('system' in inputs):
        return 'give `structure` and `system` together, or neither (then `build` makes them)'
    if 'structure' in inputs:
        from aiida_rlpath.envs.water_diffusion import WaterDiffusionEnv

        try:
            atoms = inputs['structure'].get_ase()
            WaterDiffusionEnv(
                atoms, inputs['system']['water'], _pes(inputs['pes']), _environment(inputs['environment'])
            )
        except (TypeError, ValueError) as exception:
            return f'invalid `structure`/`system`: {exception}'
    if 'checkpoint' in inputs:
        grid = _environment(inputs['environment']).grid
        arch = inputs['checkpoint'].architecture
        if (arch.get('channels'), arch.get('points')) != (grid.channels, grid.points):
            return (
                f'`checkpoint` reads {arch.get("channels")} channels of {arch.get("points")}³ voxels; the '
                f'environment gives {grid.channels} of {grid.points}³'
            )
    return None


class MapActorWorkChain(WorkChain):
    """One actor's round (a process of its own so that a round's actors run in parallel on daemon workers)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The start: glass with one water (Å).')
        spec.input('system', valid_type=orm.Dict, validator=_validate_system, help='water indices (O, H, H).')
        spec.input(
            'environment',
            valid_type=orm.Dict,
            validator=settings_validator('environment', _environment),
            help='WaterDiffusionSettings fields.',
        )
        spec.input('pes', valid_type=orm.Dict, validator=settings_validator('pes', _pes), help='PESSpec fields.')
        spec.input('apex', valid_type=orm.Dict, validator=settings_validator('apex', _apex), help='ApexSettings.')
        spec.input('checkpoint', valid_type=PolicyCheckpointData, help='The Q-network the actor acts with.')
        spec.input('epsilon', valid_type=orm.Float, help='This actor exploration rate.')
        spec.input('seed', valid_type=orm.Int, help='This actor round seed.')
        spec.outline(cls.act)
        spec.output('experiences', valid_type=orm.ArrayData, help='n-step transitions with initial priorities')
        spec.output('traces', valid_type=orm.ArrayData, help='episodes: energies (eV), x (Å), actions, frames')
        spec.output('metrics', valid_type=orm.Dict, help='steps, mean reward, progress (Å), force calls')

    def act(self):
        i = self.inputs
        outputs = call_once(
            self,
            'act',
            map_actor_round,
            i.structure,
            i.system,
            i.environment,
            i.pes,
            i.checkpoint,
            i.apex,
            i.epsilon,
            i.seed,
        )
        m = outputs['metrics']
        progress = ', '.join(f'{p:+.2f}' for p in m['progress'])
        self.report(
            f'epsilon {m["epsilon"]:.4f}: {m["steps"]} steps, mean reward {m["mean_reward"]:.3f}, '
            f'progress along x [{progress}] Å, {m["force_calls"]} force calls'
        )
        for name in ('experiences', 'traces', 'metrics'):
            self.out(name, outputs[name])


class MapTrainingWorkChain(WorkChain):
    """MAP training: rounds of parallel actors and a learner step, then piecewise NEB on the best episodes."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, required=False, help='Glass with one water (Å).')
        spec.input(
            'system',
            valid_type=orm.Dict,
            required=False,
            validator=_validate_system,
            help='water: indices of its O, H, H.',
        )
        spec.input(
            'build',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=_validate_build,
            help='Without structure/system: parameters of `map_system` (units, density g/cm³, seed, '
            'melt-quench schedule).',
        )
        spec.input(
            'pes',
            valid_type=orm.Dict,
            validator=settings_validator('pes', _pes),
            default=lambda: orm.Dict(_pes(None).to_dict()),
            help='PESSpec fields (ReaxFF Si/O/H).',
        )
        spec.input(
            'environment',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=settings_validator('environment', _environment),
            help='WaterDiffusionSettings fields (step Å, tether_k eV/Å², max_steps, grid, weights ...).',
        )
        spec.input(
            'apex',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=settings_validator('apex', _apex),
            help='ApexSettings fields (actors, steps_per_actor, rounds, n_step, ...).',
        )
        spec.input(
            'checkpoint',
            valid_type=PolicyCheckpointData,
            required=False,
            validator=_validate_checkpoint,
            help='Start from this Q-network instead of an untrained one (seeded).',
        )
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Seed of everything random.')
        spec.input(
            'analyse',
            valid_type=orm.Int,
            default=lambda: orm.Int(1),
            help='How many of the highest-return complete episodes get piecewise NEB and τ.',
        )
        spec.input(
            'min_progress',
            valid_type=orm.Float,
            default=lambda: orm.Float(1.0),
            help='Analyse only episodes that moved the water at least this far along +x, Å (if any did).',
        )
        spec.expose_inputs(MapPathwayWorkChain, include=('neb', 'prominence', 'temperature'))
        spec.inputs.validator = _validate_inputs
        spec.input(
            'code',
            valid_type=orm.AbstractCode,
            required=False,
            help='A LAMMPS code (e.g. `lmp@localhost` from `aiida-rlpath setup`): the glass is then '
            'melt-quenched by an aiida-lammps `lammps.raw` CalcJob, so its MD is a calculation of its own.',
        )
        spec.input(
            'options',
            valid_type=orm.Dict,
            required=False,
            help='metadata.options of that CalcJob (resources, max_wallclock_seconds, ...).',
        )
        spec.outline(
            if_(cls.melt_quench_as_calcjob)(cls.run_melt_quench, cls.finish_melt_quench),
            cls.setup,
            while_(cls.rounds_left)(cls.run_actors, cls.run_learner),
            cls.run_pathways,
            cls.finalize,
        )
        spec.output('structure', valid_type=orm.StructureData, help='The start the actors used.')
        spec.output('system', valid_type=orm.Dict, help='Its water indices and what the build measured.')
        spec.output('checkpoint', valid_type=PolicyCheckpointData, help='The last Q-network.')
        spec.output('summary', valid_type=orm.Dict, help='Per-round metrics and the episodes ranked by τ.')
        spec.exit_code(410, 'ERROR_ACTOR_FAILED', message='actor {label} failed')
        spec.exit_code(412, 'ERROR_MELT_QUENCH_FAILED', message='the melt-quench CalcJob failed: {message}')
        spec.exit_code(411, 'ERROR_PATHWAY_FAILED', message='pathway analysis {label} failed')

    def melt_quench_as_calcjob(self):
        return 'structure' not in self.inputs and 'code' in self.inputs

    def run_melt_quench(self):
        from aiida.plugins import CalculationFactory

        files = call_once(self, 'melt_quench_inputs', map_melt_quench_inputs, self.inputs.build)
        options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'withmpi': False}
        if 'options' in self.inputs:
            options.update(self.inputs.options.get_dict())
        node = self.submit(
            CalculationFactory('lammps.raw'), code=self.inputs.code, script=files['script'],
            files={'structure': files['structure'], 'potential': files['potential']},
            settings=orm.Dict({'additional_retrieve_list': [GLASS_FILENAME]}),
            metadata={'options': options, 'call_link_label': 'melt_quench', 'label': 'MAP glass melt-quench'},
        )  # fmt: skip
        self.report(f'melt-quench submitted as lammps.raw CalcJob <{node.pk}>')
        return ToContext(melt_quench=node)

    def finish_melt_quench(self):
        node = self.ctx.melt_quench
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_MELT_QUENCH_FAILED.format(message=f'<{node.pk}> exit {node.exit_status}')
        built = call_once(self, 'system', map_system_from_glass, node.outputs.retrieved, self.inputs.build,
                          self.inputs.pes)  # fmt: skip
        self.ctx.structure, self.ctx.system = built['structure'], built['system']
        return None

    def setup(self):
        if 'structure' in self.inputs:
            self.ctx.structure, self.ctx.system = self.inputs.structure, self.inputs.system
        else:
            if 'code' not in self.inputs:
                built = call_once(self, 'system', map_system, self.inputs.build, self.inputs.pes)
                self.ctx.structure, self.ctx.system = built['structure'], built['system']
            s = self.ctx.system
            self.report(
                f'built the glass: {s["atoms"]} atoms in a {s["box"]:.2f} Å box, {s["density"]:.3f} g/cm3, '
                f'{100 * s["fourfold_si_fraction"]:.0f}% four-fold Si, water at indices {s["water"]}'
            )
        self.ctx.settings = _apex(self.inputs.apex)
        from aiida_rlpath.envs.water_diffusion import ACTIONS
        from aiida_rlpath.rl.models.cnn3d import q_architecture

        grid = _environment(self.inputs.environment).grid
        architecture = q_architecture(grid.channels, grid.points, self.ctx.settings.hidden, len(ACTIONS))
        if 'checkpoint' in self.inputs:
            self.ctx.checkpoint = self.inputs.checkpoint
        else:
            self.ctx.checkpoint = initial_q_checkpoint(architecture, self.inputs.seed.value)
        self.ctx.state = None
        self.ctx.round = 0
        from aiida_rlpath.rl.algos.apex_dqn import epsilon_ladder

        self.ctx.epsilons = epsilon_ladder(
            self.ctx.settings.actors, self.ctx.settings.epsilon, self.ctx.settings.epsilon_alpha
        )
        s = self.ctx.settings
        self.report(
            f'{s.rounds} round(s) of {s.actors} actor(s) x {s.steps_per_actor} steps, epsilons '
            f'{[round(e, 4) for e in self.ctx.epsilons]}, {s.updates_per_round} updates per round'
        )

    def rounds_left(self):
        return self.ctx.round < self.ctx.settings.rounds

    def run_actors(self):
        from aiida_rlpath.rl.algos.apex_dqn import actor_seed

        r = self.ctx.round
        futures = {}
        for i, epsilon in enumerate(self.ctx.epsilons):
            label = f'round_{r:02d}_actor_{i:02d}'
            futures[label] = self.submit(
                MapActorWorkChain,
                structure=self.ctx.structure,
                system=self.ctx.system,
                environment=self.inputs.environment,
                pes=self.inputs.pes,
                apex=self.inputs.apex,
                checkpoint=self.ctx.checkpoint,
                epsilon=orm.Float(epsilon),
                seed=orm.Int(actor_seed(self.inputs.seed.value, r, i)),
                metadata={'call_link_label': label, 'label': f'MAP round {r} actor {i}'},
            )
        return ToContext(**futures)

    def _actors(self, rounds: range):
        """(round, actor, node) of the actor processes of ``rounds``, in order."""
        for r in rounds:
            for i in range(self.ctx.settings.actors):
                yield r, i, self.ctx[f'round_{r:02d}_actor_{i:02d}']

    def run_learner(self):
        from aiida_rlpath.rl.algos.apex_dqn import learner_seed

        r, s = self.ctx.round, self.ctx.settings
        new = {}
        for _, i, node in self._actors(range(r, r + 1)):
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_ACTOR_FAILED.format(label=f'round_{r:02d}_actor_{i:02d}')
            new[f'experiences_{i:04d}'] = node.outputs.experiences
        # the replay nodes the previous buffer can hold items of: the newest ones covering its capacity
        earlier = [node.outputs.experiences for _, _, node in self._actors(range(r))]
        old, held = {}, 0
        for j in range(len(earlier) - 1, -1, -1):
            if held >= s.buffer_size:
                break
            old[f'replay_{j:04d}'] = earlier[j]
            held += earlier[j].base.attributes.get('count')
        inputs = {
            'checkpoint': self.ctx.checkpoint,
            'apex': self.inputs.apex,
            'round_index': orm.Int(r),
            'seed': orm.Int(learner_seed(self.inputs.seed.value, r)),
            **old,
            **new,
        }
        if self.ctx.state is not None:
            inputs['state'] = self.ctx.state
        outputs = call_once(self, f'learner_{r:02d}', map_learner_step, **inputs)
        self.ctx.checkpoint, self.ctx.state = outputs['checkpoint'], outputs['state']
        self.ctx[f'learner_{r:02d}_metrics'] = outputs['metrics']
        metrics = outputs['metrics'].get_dict()
        progress = [p for _, _, node in self._actors(range(r, r + 1)) for p in node.outputs.metrics['progress']]
        self.report(
            f'round {r}: learner {metrics["updates"]} updates, loss {_fmt(metrics["loss"])}, |TD| '
            f'{_fmt(metrics["td_abs"])}, replay {metrics["replay_size"]}; actor progress '
            f'[{", ".join(f"{p:+.2f}" for p in progress)}] Å'
        )
        self.ctx.round += 1
        return None

    def _episodes(self) -> list[dict]:
        episodes = []
        for r, i, actor in self._actors(range(self.ctx.round)):
            node = actor.outputs.traces
            attributes = node.base.attributes
            for index in range(attributes.get('count')):
                if attributes.get('complete')[index] and not attributes.get('terminated')[index]:
                    episodes.append(
                        {
                            'round': r,
                            'actor': i,
                            'traces': node.pk,
                            'index': index,
                            'progress': attributes.get('progress')[index],
                            'return': attributes.get('returns')[index],
                        }
                    )
        moved = [e for e in episodes if e['progress'] >= self.inputs.min_progress.value]
        return sorted(moved or episodes, key=lambda e: -e['return'])

    def run_pathways(self):
        self.ctx.analysed = self._episodes()[: self.inputs.analyse.value]
        futures = {}
        for n, episode in enumerate(self.ctx.analysed):
            label = f'pathway_{n:02d}'
            inputs = self.exposed_inputs(MapPathwayWorkChain)
            futures[label] = self.submit(
                MapPathwayWorkChain,
                **inputs,
                structure=self.ctx.structure,
                system=self.ctx.system,
                traces=orm.load_node(episode['traces']),
                index=orm.Int(episode['index']),
                pes=self.inputs.pes,
                metadata={
                    'call_link_label': label,
                    'label': f'MAP pathway round {episode["round"]} actor {episode["actor"]} '
                    f'episode {episode["index"]}',
                },
            )
        return ToContext(**futures)

    def finalize(self):
        nodes = {}
        for n, episode in enumerate(self.ctx.analysed):
            label = f'pathway_{n:02d}'
            node = self.ctx[label]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_PATHWAY_FAILED.format(label=label)
            episode['pathway'] = node.pk
            nodes[f'tau_{n:02d}'] = node.outputs.tau
        for r in range(self.ctx.round):
            nodes[f'learner_{r:02d}'] = self.ctx[f'learner_{r:02d}_metrics']
        for r, i, actor in self._actors(range(self.ctx.round)):
            nodes[f'actor_{r:02d}_{i:02d}'] = actor.outputs.metrics
        summary = call_once(
            self, 'summary', map_summary, orm.Dict({'episodes': self.ctx.analysed}), self.inputs.temperature, **nodes
        )
        self.out('summary', summary)
        self.out('structure', self.ctx.structure)
        self.out('system', self.ctx.system)
        self.out('checkpoint', self.ctx.checkpoint)
        for episode in summary['episodes']:
            self.report(
                f'episode (round {episode["round"]}, actor {episode["actor"]}, trace {episode["index"]}): '
                f'progress {episode["progress"]:+.2f} Å, {episode["n_segments"]} segment(s), '
                f'return {episode["return"]:+.2f}, tau {_fmt(episode["tau_s"])} s'
            )
        return None

    @classmethod
    def get_builder_from_protocol(
        cls, protocol: str | None = None, overrides: dict | None = None, seed: int = 0, structure=None, water=None
    ):
        """A builder from a MAP protocol preset (``fast``, ``balanced``, ``paper``; ``workflows/protocols/map.yaml``)
        with ``overrides`` (sections ``build``, ``environment``, ``apex``, ``neb``, plus ``analyse``,
        ``temperature`` in K, ``prominence`` in eV) merged. ``structure`` (ASE, Å) with ``water`` (O, H, H
        indices) skips the build."""
        from aiida_rlpath.workflows.protocols import get_protocol

        preset = get_protocol('map', protocol, overrides)
        builder = cls.get_builder()
        if structure is not None:
            builder.structure = orm.StructureData(ase=structure)
            builder.system = orm.Dict({'water': [int(i) for i in water]})
        else:
            builder.build = orm.Dict({**preset.get('build', {}), 'seed': int(seed)})
        builder.environment = orm.Dict(_environment(orm.Dict(preset.get('environment', {}))).to_dict())
        builder.apex = orm.Dict(dataclasses.asdict(_apex(orm.Dict(preset.get('apex', {})))))
        builder.neb = orm.Dict(preset.get('neb', {}))
        builder.seed = orm.Int(seed)
        for key, node_type, cast in (
            ('analyse', orm.Int, int),
            ('temperature', orm.Float, float),
            ('prominence', orm.Float, float),
            ('min_progress', orm.Float, float),
        ):
            if key in preset:  # otherwise the port's default
                builder[key] = node_type(cast(preset[key]))
        builder.metadata.label = f'MAP training ({preset["name"]})'
        return builder


def _fmt(value) -> str:
    return '-' if value is None else f'{value:.4g}'
