"""``RelaxTrainingWorkChain`` (entry point ``rlpath.relax.training``): TD3 training of the relaxation actor,
one checkpoint node per evaluation round.

Steps, each a seeded calcfunction of :mod:`aiida_rlpath.calculations.functions.relaxation`:

1. ``training_set`` and ``validation_set``: random Al/Fe cells of the given sizes relaxed to reference minima
   (the split is by N: validation sizes are never trained on);
2. ``round_NN``: TD3 episodes up to the next evaluation, then the validation relaxations; outputs the actor
   ``checkpoint``, the whole training ``state`` (the next round's input) and the round's ``metrics``.

Outputs: ``checkpoint`` (the final actor), ``best_checkpoint`` (lowest validation median force calls, most
converged first), ``metrics`` (one entry per round). The same inputs give the same numbers as
:func:`aiida_rlpath.rl.algos.td3.train` on the same structures.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain, while_

from aiida_rlpath.calculations.functions.relaxation import (
    alfe_references,
    collect_training_metrics,
    env_settings_from,
    relax_training_round,
    td3_settings_from,
)
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.systems.alfe import VALIDATION_SIZES
from aiida_rlpath.workflows.utils import call_once, settings_validator

__all__ = ('RelaxTrainingWorkChain',)


def _validate_sizes(value, _):
    sizes = value.get_list()
    if not sizes or not all(isinstance(n, int) and 1 <= n <= 64 for n in sizes):
        return f'cell sizes must be integers from 1 to 64, got {sizes}'
    return None


def _validate_inputs(inputs, _):
    train, valid = set(inputs['train_sizes'].get_list()), set(inputs['validation_sizes'].get_list())
    if train & valid:
        return f'the split is by number of atoms: sizes {sorted(train & valid)} are in both sets'
    return None


class RelaxTrainingWorkChain(WorkChain):
    """Train a TD3 relaxation actor on random Al/Fe cells; validate on cell sizes it never sees."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('train_sizes', valid_type=orm.List, default=lambda: orm.List([6, 7, 9]),
                   validator=_validate_sizes, help='Atoms per cell of the training structures.')  # fmt: skip
        spec.input('validation_sizes', valid_type=orm.List, default=lambda: orm.List([4, 8]),
                   validator=_validate_sizes, help='Atoms per cell of the validation structures.')  # fmt: skip
        spec.input('per_size', valid_type=orm.Int, default=lambda: orm.Int(3), help='Structures per cell size.')
        spec.input('data_seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Seed of the structures.')
        spec.input('settings', valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   validator=settings_validator('settings', td3_settings_from),
                   help='TD3Settings fields (episodes, eval_every, batch_size, epsilon {start,end,episodes}, '
                   'reward {pretrain,final,switch}, model, ...); missing ones take their defaults.')  # fmt: skip
        spec.input('environment', valid_type=orm.Dict, default=lambda: orm.Dict({}),
                   validator=settings_validator('environment', env_settings_from),
                   help='RelaxationSettings fields (beta in Å, eps1 in eV/Å, max_steps, max_step and d_min '
                   'in Å, cutoff in Å, history).')  # fmt: skip
        spec.input('fmax', valid_type=orm.Float, default=lambda: orm.Float(0.1),
                   help='Validation convergence threshold (eV/Å).')  # fmt: skip
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Seed of the training.')
        spec.inputs.validator = _validate_inputs
        spec.outline(cls.setup, cls.make_structures, while_(cls.rounds_left)(cls.run_round), cls.results)
        spec.output('checkpoint', valid_type=PolicyCheckpointData, help='the actor after the last round')
        spec.output('best_checkpoint', valid_type=PolicyCheckpointData, help='the best actor on validation')
        spec.output('metrics', valid_type=orm.Dict, help='per round: episodes, ε1, reward, validation results')
        spec.exit_code(500, 'ERROR_NOT_CONVERGING', message='the final actor converged no validation start')

    def setup(self):
        settings = td3_settings_from(self.inputs.settings)
        self.ctx.episodes, self.ctx.eval_every = settings.episodes, settings.eval_every
        self.ctx.round, self.ctx.state, self.ctx.checkpoints, self.ctx.metrics = 0, None, [], []
        overlap = set(self.inputs.validation_sizes.get_list()) - set(VALIDATION_SIZES)
        note = f' (not in the benchmark validation sizes: {sorted(overlap)})' if overlap else ''
        self.report(
            f'TD3 {settings.model}: {settings.episodes} episodes, evaluation every {settings.eval_every}; train '
            f'on N={self.inputs.train_sizes.get_list()}, validate on N={self.inputs.validation_sizes.get_list()}'
            f'{note}'
        )

    def make_structures(self):
        per_size, seed = self.inputs.per_size, self.inputs.data_seed
        train = call_once(self, 'training_set', alfe_references, self.inputs.train_sizes, per_size, seed)
        valid = call_once(self, 'validation_set', alfe_references, self.inputs.validation_sizes, per_size,
                          orm.Int(seed.value + 1))  # fmt: skip
        self.ctx.structures = {
            **{f'train_{key}': node for key, node in train.items()},
            **{f'valid_{key}': node for key, node in valid.items()},
        }
        self.report(f'{len(train)} training and {len(valid)} validation reference minima')

    def rounds_left(self):
        return self.ctx.round == 0 or self.ctx.metrics[-1]['episode'] < self.ctx.episodes

    def run_round(self):
        index = self.ctx.round
        extra = {'state': self.ctx.state} if self.ctx.state is not None else {}
        outputs = call_once(
            self, f'round_{index:02d}', relax_training_round, self.inputs.settings, self.inputs.environment,
            self.inputs.fmax, self.inputs.seed, **extra, **self.ctx.structures,
        )  # fmt: skip
        self.ctx.state = outputs['state']
        record = outputs['metrics'].get_dict()
        self.ctx.checkpoints = [*self.ctx.checkpoints, outputs['checkpoint']]
        self.ctx.metrics = [*self.ctx.metrics, outputs['metrics']]
        evaluation = record['evaluation']
        self.report(
            f'round {index}: episode {record["episode"]}, eps1 {record["eps1"]:.3f} eV/Å, reward {record["reward"]}, '
            f'{record["updates"]} updates; validation median force calls {evaluation["median_force_calls"]:.1f}, '
            f'converged {evaluation["converged_fraction"]:.2f} (checkpoint <{outputs["checkpoint"].pk}>)'
        )
        self.ctx.round += 1

    def results(self):
        rounds = {f'round_{i:02d}': node for i, node in enumerate(self.ctx.metrics)}
        metrics = call_once(self, 'metrics', collect_training_metrics, **rounds)
        best = metrics['best_round']
        self.out('checkpoint', self.ctx.checkpoints[-1])
        self.out('best_checkpoint', self.ctx.checkpoints[best])
        self.out('metrics', metrics)
        self.report(f'best round {best}: checkpoint <{self.ctx.checkpoints[best].pk}>')
        if not self.ctx.metrics[-1]['evaluation']['converged_fraction']:
            return self.exit_codes.ERROR_NOT_CONVERGING
        return None
