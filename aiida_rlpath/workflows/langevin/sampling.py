"""``LangevinSamplingWorkChain`` (entry point ``rlpath.langevin.sampling``): the LJ7 transition rate by RL
importance sampling, with every stage a node.

Steps (each a seeded calcfunction of :mod:`aiida_rlpath.calculations.functions.langevin`):

1. ``flux``: plain dynamics from the start state; the flux Φ through λ_A (1/τ) and the crossing configurations;
2. ``cycle_NN``: one training cycle each (warm-up cycles at ``warmup_beta`` first): driven paths, TD update; its
   outputs are the next value-network checkpoint, the cycle's path ensemble and TD transitions and its metrics;
3. ``production``: paths driven by the final checkpoint; the rate k = Φ·P ± error (1/τ) and the ensemble.

Outputs: ``rate`` (Dict), ``value`` (the final :class:`~aiida_rlpath.data.policy.PolicyCheckpointData`),
``ensemble`` (ArrayData of the production paths, with CV traces), ``flux`` (Dict). The same inputs give the same
numbers as :func:`aiida_rlpath.rl.algos.value_is.estimate_rate`.
"""

from __future__ import annotations

import dataclasses

from aiida import orm
from aiida.engine import WorkChain, while_

from aiida_rlpath.calculations.functions.langevin import (
    ARCHITECTURE,
    initial_value,
    langevin_flux,
    langevin_production,
    langevin_training_cycle,
    problem_from,
    sampler_from,
)
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.workflows.utils import call_once, settings_validator

__all__ = ('LangevinSamplingWorkChain',)


_validate_problem = settings_validator('problem', problem_from)
_validate_sampler = settings_validator('sampler', sampler_from)


def _validate_value(value, _):
    if value is not None and value.architecture.get('name') != ARCHITECTURE:
        return f'`value` <{value.pk}> holds a {value.architecture.get("name")!r} network, not an {ARCHITECTURE}'
    return None


def _cycle_label(index: int) -> str:
    return f'cycle_{index:02d}'


class LangevinSamplingWorkChain(WorkChain):
    """Transition rate between two LJ7 states by a TD-learned committor drive with exact path weights."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'problem', valid_type=orm.Dict, validator=_validate_problem,
            help='TransitionProblem fields: beta (1/ε), start, target (C0..C3), dt (τ), state_radius, '
            'interface_radius (CV units), restraint (ε/σ²).',
        )  # fmt: skip
        spec.input(
            'sampler', valid_type=orm.Dict, default=lambda: orm.Dict({}), validator=_validate_sampler,
            help='SamplerSettings fields (cycles, paths, walkers, td_epochs, warmup_cycles, warmup_beta, ...); '
            'missing ones take their defaults.',
        )  # fmt: skip
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Seed of everything random.')
        spec.input(
            'traces', valid_type=orm.Int, default=lambda: orm.Int(50),
            help='How many production paths keep their (μ2, μ3) trace.',
        )  # fmt: skip
        spec.input(
            'value', valid_type=PolicyCheckpointData, required=False, validator=_validate_value,
            help='Start from this value-network checkpoint instead of an untrained one.',
        )  # fmt: skip
        spec.outline(
            cls.setup,
            cls.run_flux,
            while_(cls.training_left)(cls.run_cycle),
            cls.run_production,
            cls.results,
        )
        spec.output('rate', valid_type=orm.Dict, help='rate, rate_err (1/τ), probability, flux and path statistics')
        spec.output('value', valid_type=PolicyCheckpointData, help='the value network the production paths used')
        spec.output('ensemble', valid_type=orm.ArrayData, help='production paths: outcome, log_weight, steps, cvs')
        spec.output('flux', valid_type=orm.Dict, help='flux through λ_A (1/τ) and the flux run itself')
        spec.exit_code(300, 'ERROR_NO_CROSSINGS', message='the flux run never crossed λ_A: no paths to shoot')
        spec.exit_code(
            301, 'ERROR_NO_TRANSITION', message='no production path reached the target: the rate is not measured'
        )

    def setup(self):
        from aiida_rlpath.rl.algos.value_is import cycle_problems, cycle_seeds, replay_cycles, run_seeds

        problem, sampler = problem_from(self.inputs.problem), sampler_from(self.inputs.sampler)
        flux_seed, train_seed, production_seed = run_seeds(self.inputs.seed.value)
        problems = cycle_problems(problem, sampler)
        self.ctx.betas = [p.beta for p in problems]
        self.ctx.seeds = cycle_seeds(train_seed, len(problems))
        self.ctx.flux_seed, self.ctx.production_seed = flux_seed, production_seed
        self.ctx.cycle = 0
        self.ctx.replays = [replay_cycles(self.ctx.betas, i, sampler.replay) for i in range(len(problems))]
        self.ctx.transitions = []
        self.ctx.value = self.inputs.value if 'value' in self.inputs else None
        if self.ctx.value is None:
            self.ctx.value = initial_value(sampler.hidden, train_seed, self.ctx.betas[0] if problems else problem.beta)
        self.report(
            f'{problem.start} -> {problem.target} at beta {problem.beta} 1/eps: {sampler.warmup_cycles} warm-up '
            f'cycle(s) at beta {sampler.warmup_beta}, {sampler.cycles} cycle(s), {sampler.production_paths} '
            'production paths'
        )

    def run_flux(self):
        outputs = call_once(self, 'flux', langevin_flux, self.inputs.problem, self.inputs.sampler,
                            orm.Int(self.ctx.flux_seed))  # fmt: skip
        self.ctx.flux, self.ctx.starts = outputs['flux'], outputs['starts']
        flux = self.ctx.flux
        self.report(f'flux {flux["flux"]:.4g} ± {flux["flux_err"]:.2g} 1/tau from {flux["crossings"]} crossings')
        if flux['crossings'] == 0:
            return self.exit_codes.ERROR_NO_CROSSINGS
        return None

    def training_left(self):
        return self.ctx.cycle < len(self.ctx.betas)

    def run_cycle(self):
        index = self.ctx.cycle
        beta = self.ctx.betas[index]
        replay = [self.ctx.transitions[i] for i in self.ctx.replays[index]]
        problem = orm.Dict({**self.inputs.problem.get_dict(), 'beta': beta})
        replay_inputs = {f'replay_{i:02d}': node for i, node in enumerate(replay)}
        outputs = call_once(
            self, _cycle_label(index), langevin_training_cycle, problem, self.inputs.sampler, self.ctx.starts,
            self.ctx.value, orm.Int(self.ctx.seeds[index]), **replay_inputs,
        )  # fmt: skip
        self.ctx.value = outputs['value']
        self.ctx.transitions = [*self.ctx.transitions, outputs['transitions']]
        m = outputs['metrics']
        self.report(
            f'cycle {index} (beta {beta}): P {_fmt(m["probability"])} ± {_fmt(m["probability_err"])}, reached '
            f'{m["reached_fraction"]:.3f}, cut {m["cut_fraction"]:.3f}, ESS {m["effective_sample_size"]:.1f}, '
            f'TD error {_fmt(m["td_error"])}, {m["force_evals"]} force evals'
        )
        self.ctx.cycle += 1

    def run_production(self):
        outputs = call_once(
            self, 'production', langevin_production, self.inputs.problem, self.inputs.sampler, self.ctx.starts,
            self.ctx.value, self.ctx.flux, orm.Int(self.ctx.production_seed), self.inputs.traces,
        )  # fmt: skip
        self.ctx.rate, self.ctx.ensemble = outputs['rate'], outputs['ensemble']
        r = self.ctx.rate
        self.report(
            f'rate {_fmt(r["rate"])} ± {_fmt(r["rate_err"])} 1/tau (P {_fmt(r["probability"])}, reached '
            f'{r["reached_fraction"]:.3f}, cut {r["cut_fraction"]:.3f}, ESS {r["effective_sample_size"]:.1f})'
        )

    def results(self):
        self.out('rate', self.ctx.rate)
        self.out('value', self.ctx.value)
        self.out('ensemble', self.ctx.ensemble)
        self.out('flux', self.ctx.flux)
        if not self.ctx.rate['probability']:
            return self.exit_codes.ERROR_NO_TRANSITION
        return None

    @classmethod
    def get_builder_from_settings(cls, problem, sampler, seed: int = 0, traces: int = 50, value=None):
        """A builder from a :class:`~aiida_rlpath.envs.langevin.TransitionProblem` and
        :class:`~aiida_rlpath.rl.algos.value_is.SamplerSettings`."""
        builder = cls.get_builder()
        builder.problem = orm.Dict(dataclasses.asdict(problem))
        builder.sampler = orm.Dict(dataclasses.asdict(sampler))
        builder.seed = orm.Int(seed)
        builder.traces = orm.Int(traces)
        if value is not None:
            builder.value = value
        builder.metadata.label = f'LJ7 {problem.start}->{problem.target} beta={problem.beta}'
        return builder


def _fmt(value) -> str:
    return '-' if value is None else f'{value:.4g}'
