"""``MapPathwayWorkChain`` (entry point ``rlpath.map.pathway``): piecewise NEB over one MAP episode and its
diffusion time.

1. ``segments``: the episode's energy profile split into minimum–maximum–minimum segments (scipy peak finding);
2. ``segment_NN``: one :class:`MapSegmentWorkChain` per segment, submitted together, so they run in parallel on
   daemon workers: each relaxes the segment's end points and runs CI-NEB from the trajectory's own frames;
3. ``tau``: τ = Σ h/(k_B T)·exp(E_i/k_B T) at ``temperature`` (K) over the segments' NEB barriers (eV).

Outputs: ``segments`` (the split profile), ``tau`` (τ in s, barriers in eV, temperature), ``nebs`` (each segment's
result) and ``bands`` (each segment's band, TrajectoryData with image energies).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain

from aiida_rlpath.calculations.functions.map import map_diffusion_time, map_segment_neb, map_segments
from aiida_rlpath.workflows.utils import call_once

__all__ = ('NEB_DEFAULTS', 'MapPathwayWorkChain', 'MapSegmentWorkChain')

#: NEB settings of a segment: interior images, band fmax (eV/Å), FIRE steps, end-point fmax (eV/Å) and steps.
NEB_DEFAULTS = {'n_images': 5, 'fmax': 0.1, 'max_steps': 150, 'end_fmax': 0.05, 'end_steps': 100}


def _validate_neb(node, _):
    from aiida_rlpath.physics.properties import reject_unknown_keys

    try:
        reject_unknown_keys(node.get_dict(), sorted(NEB_DEFAULTS), 'keys')
    except ValueError as exception:
        return f'invalid `neb`: {exception}'
    merged = {**NEB_DEFAULTS, **node.get_dict()}
    if merged['n_images'] < 1 or merged['max_steps'] < 1 or merged['fmax'] <= 0 or merged['end_fmax'] <= 0:
        return 'invalid `neb`: n_images and max_steps must be >= 1, fmax and end_fmax > 0 eV/Å'
    return None


def _validate_positive(port: str):
    def validate(node, _):
        if node.value <= 0:
            return f'`{port}` must be > 0, got {node.value}'
        return None

    return validate


def _validate_inputs(inputs, _):
    count = inputs['traces'].base.attributes.get('count', 0)
    if not 0 <= inputs['index'].value < count:
        return f'`index` {inputs["index"].value} is not a trace of `traces` (it holds {count})'
    return None


class MapSegmentWorkChain(WorkChain):
    """CI-NEB over one segment of a MAP episode (a process of its own so that segments run in parallel)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The glass with water the episode started from.')
        spec.input('system', valid_type=orm.Dict, help='water indices (O, H, H).')
        spec.input('traces', valid_type=orm.ArrayData, help='Episode traces of an actor round.')
        spec.input('index', valid_type=orm.Int, help='Which trace.')
        spec.input('segment', valid_type=orm.Dict, help='start, peak, end frame of the segment.')
        spec.input('pes', valid_type=orm.Dict, help='PESSpec fields.')
        spec.input('neb', valid_type=orm.Dict, help='NEB settings (see NEB_DEFAULTS).')
        spec.outline(cls.run_neb)
        spec.output('result', valid_type=orm.Dict, help='barrier (eV), end energies, merged, converged')
        spec.output('band', valid_type=orm.TrajectoryData, required=False, help='the band, image energies in eV')

    def run_neb(self):
        neb = orm.Dict({**NEB_DEFAULTS, **self.inputs.neb.get_dict()})
        outputs = call_once(
            self,
            'neb',
            map_segment_neb,
            self.inputs.structure,
            self.inputs.system,
            self.inputs.traces,
            self.inputs.index,
            self.inputs.segment,
            self.inputs.pes,
            neb,
        )
        result = outputs['result']
        self.report(
            f'frames {result["start"]}..{result["end"]}: NEB barrier {_fmt(result["barrier"])} eV (trajectory '
            f'{_fmt(result["profile_barrier"])} eV), converged {result["converged"]}, merged {result["merged"]}'
        )
        self.out('result', result)
        if 'band' in outputs:
            self.out('band', outputs['band'])


class MapPathwayWorkChain(WorkChain):
    """Split one episode's energy profile, refine every segment by NEB in parallel, and compute τ."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MapSegmentWorkChain, include=('structure', 'system', 'traces', 'index', 'pes'))
        spec.input(
            'neb',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=_validate_neb,
            help='NEB settings; missing ones take NEB_DEFAULTS.',
        )
        spec.input(
            'prominence',
            valid_type=orm.Float,
            default=lambda: orm.Float(0.05),
            validator=_validate_positive('prominence'),
            help='Least peak prominence of a barrier, eV.',
        )
        spec.input(
            'temperature',
            valid_type=orm.Float,
            default=lambda: orm.Float(623.15),
            validator=_validate_positive('temperature'),
            help='Temperature of τ, K (350 °C by default).',
        )
        spec.inputs.validator = _validate_inputs
        spec.outline(cls.split, cls.run_segments, cls.diffusion_time)
        spec.output('segments', valid_type=orm.Dict, help='the profile and its segments (frames, barriers in eV)')
        spec.output('tau', valid_type=orm.Dict, help='tau_s, barriers_eV, temperature_K, n_segments')
        spec.output_namespace('nebs', valid_type=orm.Dict, dynamic=True, help='each segment NEB result')
        spec.output_namespace('bands', valid_type=orm.TrajectoryData, dynamic=True, help='each segment band')
        spec.exit_code(410, 'ERROR_SEGMENT_FAILED', message='the NEB of segment {label} failed as a process')

    def split(self):
        self.ctx.segments = call_once(
            self, 'segments', map_segments, self.inputs.traces, self.inputs.index, self.inputs.prominence
        )
        self.out('segments', self.ctx.segments)
        count = len(self.ctx.segments['segments'])
        self.report(
            f'trace {self.inputs.index.value}: {count} segment(s) with a barrier ≥ '
            f'{self.inputs.prominence.value} eV along the profile'
        )

    def run_segments(self):
        futures = {}
        for i, segment in enumerate(self.ctx.segments['segments']):
            inputs = self.exposed_inputs(MapSegmentWorkChain)
            inputs['segment'] = orm.Dict(segment)
            inputs['neb'] = self.inputs.neb
            inputs['metadata'] = {
                'call_link_label': f'segment_{i:02d}',
                'label': f'segment {i} frames {segment["start"]}..{segment["end"]}',
            }
            futures[f'segment_{i:02d}'] = self.submit(MapSegmentWorkChain, **inputs)
        return ToContext(**futures)

    def diffusion_time(self):
        results = {}
        for i in range(len(self.ctx.segments['segments'])):
            label = f'segment_{i:02d}'
            node = self.ctx[label]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_SEGMENT_FAILED.format(label=label)
            results[label] = node.outputs.result
            self.out(f'nebs.{label}', node.outputs.result)
            if 'band' in node.outputs:
                self.out(f'bands.{label}', node.outputs.band)
        tau = call_once(self, 'tau', map_diffusion_time, self.inputs.temperature, **results)
        self.out('tau', tau)
        barriers = ', '.join(f'{b:.3f}' for b in tau['barriers_eV']) or 'none'
        if tau['tau_s'] is None:
            self.report('no segment with a barrier: no complete hop, tau undefined')
        else:
            self.report(f'tau = {tau["tau_s"]:.4g} s at {tau["temperature_K"]} K from barriers [{barriers}] eV')
        return None


def _fmt(value) -> str:
    return '-' if value is None else f'{value:.3f}'
