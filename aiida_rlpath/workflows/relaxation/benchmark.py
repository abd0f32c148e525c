"""``RelaxBenchmarkWorkChain`` (entry point ``rlpath.relax.benchmark``): the learned optimizer against BFGS, LBFGS,
FIRE and CG on the same distorted starts, one calculation node per relaxation.

For every input structure: ``reference_NN`` relaxes it to its reference minimum; ``start_NN_KK`` distorts that
by β·U(−1, 1) Å; ``relax_NN_KK_METHOD`` relaxes each start with each method to ``fmax`` (eV/Å), recording force
calls. ``summary`` holds, per N and for ``all``, median force calls per method, the converged fractions and
``rl_over_bfgs`` — the table ``benchmarks/relax_vs_classical.py`` prints.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import WorkChain

from aiida_rlpath.calculations.functions.relaxation import (
    CLASSICAL_METHODS,
    distort_structure,
    reference_structure,
    relax_structure,
    summarise_benchmark,
)
from aiida_rlpath.data.policy import PolicyCheckpointData
from aiida_rlpath.physics.pes import PESSpec
from aiida_rlpath.systems.alfe import ALFE_PES
from aiida_rlpath.workflows.utils import call_once, settings_validator

__all__ = ('RelaxBenchmarkWorkChain',)

METHODS = ('rl', *CLASSICAL_METHODS)


def _validate_methods(value, _):
    unknown = set(value.get_list()) - set(METHODS)
    if unknown or not value.get_list():
        return f'unknown or no methods {sorted(unknown)}; choose from {list(METHODS)}'
    return None


def _pes_from(node):
    return PESSpec.from_dict(node.get_dict())


_validate_pes = settings_validator('pes', _pes_from)


def _validate_inputs(inputs, _):
    pes = _pes_from(inputs['pes']) if 'pes' in inputs else ALFE_PES
    for key, structure in inputs.get('structures', {}).items():
        try:
            pes.check_species(structure.get_symbols_set())
        except ValueError as exception:
            return f'structure `{key}` <{structure.pk}>: {exception}'
        if not all(structure.pbc):
            return f'structure `{key}` <{structure.pk}> is not periodic in 3D'
    if 'rl' in inputs['methods'].get_list() and 'checkpoint' not in inputs:
        return 'method `rl` needs a `checkpoint` (a trained relaxation actor)'
    if 'checkpoint' in inputs and inputs['checkpoint'].architecture.get('name') not in ('tfn', 'cgcnn'):
        return f'`checkpoint` <{inputs["checkpoint"].pk}> is not a relaxation actor'
    return None


class RelaxBenchmarkWorkChain(WorkChain):
    """Force calls to relax distorted Al/Fe cells: the learned optimizer and BFGS, LBFGS, FIRE, CG side by side."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace('structures', valid_type=orm.StructureData, dynamic=True,
                             help='Fixed cells to benchmark on (Al/Fe for the default PES).')  # fmt: skip
        spec.input('pes', valid_type=orm.Dict, default=lambda: orm.Dict(ALFE_PES.to_dict()), validator=_validate_pes,
                   help='PESSpec fields (kind, potential, elements); the Mendelev Al-Fe EAM by default.')  # fmt: skip
        spec.input('checkpoint', valid_type=PolicyCheckpointData, required=False, help='The trained actor.')
        spec.input('methods', valid_type=orm.List, default=lambda: orm.List(list(METHODS)),
                   validator=_validate_methods, help=f'Any of {list(METHODS)}.')  # fmt: skip
        spec.input('fmax', valid_type=orm.Float, default=lambda: orm.Float(0.1), help='Threshold (eV/Å).')
        spec.input('beta', valid_type=orm.Float, default=lambda: orm.Float(0.2), help='Distortion β (Å).')
        spec.input('distortions', valid_type=orm.Int, default=lambda: orm.Int(10), help='Starts per structure.')
        spec.input('max_steps', valid_type=orm.Int, default=lambda: orm.Int(1000), help='Steps per relaxation.')
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Seed of rattles and distortions.')
        spec.inputs.validator = _validate_inputs
        spec.outline(cls.run_all, cls.results)
        spec.output('summary', valid_type=orm.Dict, help='per N and all: median force calls, converged fractions')

    def run_all(self):
        methods = self.inputs.methods.get_list()
        self.ctx.results = {}
        for index, key in enumerate(sorted(self.inputs.structures)):
            seed = self.inputs.seed.value
            reference = call_once(self, f'reference_{index:02d}', reference_structure, self.inputs.structures[key],
                                  orm.Int(seed + index), self.inputs.pes)  # fmt: skip
            for k in range(self.inputs.distortions.value):
                start = call_once(self, f'start_{index:02d}_{k:02d}', distort_structure, reference,
                                  self.inputs.beta, orm.Int(seed * 1_000_003 + index * 1_000 + k))  # fmt: skip
                for method in methods:
                    extra = {'checkpoint': self.inputs.checkpoint} if method == 'rl' else {}
                    label = f'relax_{index:02d}_{k:02d}_{method}'
                    outputs = call_once(self, label, relax_structure, start, orm.Str(method), self.inputs.fmax,
                                        self.inputs.max_steps, self.inputs.pes, **extra)  # fmt: skip
                    self.ctx.results[label] = outputs['result']
            calls = {m: [self.ctx.results[f'relax_{index:02d}_{k:02d}_{m}']['force_calls']
                         for k in range(self.inputs.distortions.value)] for m in methods}  # fmt: skip
            self.report(f'{key} (N={len(reference.sites)}): ' + ', '.join(
                f'{m} {sorted(c)[len(c) // 2]}' for m, c in calls.items()) + ' force calls (median)')  # fmt: skip

    def results(self):
        summary = call_once(self, 'summary', summarise_benchmark, self.inputs.max_steps, **self.ctx.results)
        self.out('summary', summary)
        table = summary['all']
        self.report('all: ' + ', '.join(f'{m} {table[m]:.1f}' for m in self.inputs.methods.get_list())
                    + (f'; rl/bfgs {table["rl_over_bfgs"]:.2f}' if 'rl_over_bfgs' in table else ''))  # fmt: skip
