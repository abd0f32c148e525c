"""Seeded calcfunctions of one REALIZE step: each wraps a stage function of :mod:`aiida_rlpath.envs.oxidation`.

Inputs common to all: ``system`` (Dict: ``agent`` — the O2's two indices, ``fixed`` — indices of fixed atoms,
``film_top`` — height of the film's top atom in Å), ``pes`` (Dict of a :class:`PESSpec`), ``settings`` (Dict of
:class:`OxidationSettings`). Energies in eV, lengths in Å.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from aiida import orm
from aiida.engine import calcfunction
from ase.constraints import FixAtoms

from aiida_rlpath.envs.oxidation import (
    TERMINAL_OUTCOMES,
    OxidationAction,
    OxidationSettings,
    RewardWeights,
    canonical,
    conclude,
    has_escaped,
    measure_barrier,
    path_barrier,
    random_action,
    relax_after_move,
)
from aiida_rlpath.envs.oxidation import relax_start as relax_start_stage
from aiida_rlpath.physics.bonds import o2_bond, verify_dissociation
from aiida_rlpath.physics.pes import PESSpec

__all__ = (
    'conclude_step',
    'load_policy',
    'neb_barrier',
    'relax_move',
    'relax_start',
    'sample_action',
    'trajectory_atoms',
    'verify',
)


def json_safe(value):
    """``value`` with non-finite floats as ``None`` and numpy scalars as Python ones (AiiDA stores no NaN)."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def number(value) -> float:
    """A stored number back as a float (``None``, i.e. a non-finite value, as NaN)."""
    return float('nan') if value is None else float(value)


def atoms_from(structure: orm.StructureData, system: orm.Dict):
    """The ASE structure with the system's fixed atoms constrained (StructureData stores no constraints)."""
    atoms = canonical(structure.get_ase())
    fixed = system['fixed']
    if fixed:
        atoms.set_constraint(FixAtoms(indices=fixed))
    return atoms


def trajectory_atoms(trajectory: orm.TrajectoryData, index: int):
    """Frame ``index`` of an episode trajectory as ``ase.Atoms`` (positions and cell in Å, periodic)."""
    from ase import Atoms

    return Atoms(
        numbers=trajectory.get_array('numbers'),
        positions=trajectory.get_positions()[index],
        cell=trajectory.get_cells()[index],
        pbc=True,
    )


def _settings(settings: orm.Dict) -> OxidationSettings:
    return OxidationSettings(**settings.get_dict())


def _pes(pes: orm.Dict) -> PESSpec:
    return PESSpec.from_dict(pes.get_dict())


def _relax_outputs(result) -> dict:
    return {
        'structure': orm.StructureData(ase=result.atoms),
        'result': orm.Dict(
            json_safe(
                {
                    'energy': result.energy,
                    'fmax': result.fmax,
                    'force_calls': result.force_calls,
                    'steps': result.steps,
                    'converged': result.converged,
                    'error': result.error,
                }
            )
        ),
    }


@calcfunction
def relax_start(structure: orm.StructureData, system: orm.Dict, pes: orm.Dict, settings: orm.Dict) -> dict:
    """Relax the episode's starting structure (the gymnasium ``reset``)."""
    return _relax_outputs(relax_start_stage(atoms_from(structure, system), _pes(pes), _settings(settings)))


@calcfunction
def sample_action(
    system: orm.Dict,
    settings: orm.Dict,
    seed: orm.Int,
    structure: orm.StructureData | None = None,
    policy: orm.SinglefileData | None = None,
) -> orm.Dict:
    """The policy's action ``[direction(3), magnitude (Å), axis(3)]`` drawn from ``seed``.

    Without ``policy`` the isotropic random policy draws it; with a :class:`PolicyCheckpointData` the model it
    describes does, in ``structure``, and the raw ``sample`` and its ``logp`` (nats) are kept for the update.
    """
    d_max = _settings(settings).d_max
    if policy is None:
        action = random_action(np.random.default_rng(seed.value), d_max)
        return orm.Dict({'vector': action.to_vector().tolist(), 'policy': 'random'})
    model = load_policy(policy)
    output = model.act(atoms_from(structure, system), system['agent'], seed.value)
    action = OxidationAction.from_vector(output.sample, d_max)
    return orm.Dict(
        json_safe(
            {
                'vector': action.to_vector().tolist(),
                'sample': output.sample.tolist(),
                'logp': output.logp,
                'value': output.value,
                'policy': policy.base.attributes.get('sha256'),
            }
        )
    )


def load_policy(policy):
    """The torch policy a :class:`PolicyCheckpointData` holds (hash re-checked, ``weights_only`` loading)."""
    from aiida_rlpath.rl.models import build_policy

    return build_policy(policy.architecture, policy.load_state_dict())


@calcfunction
def relax_move(
    structure: orm.StructureData, system: orm.Dict, action: orm.Dict, pes: orm.Dict, settings: orm.Dict
) -> dict:
    """Apply the rigid O2 move and relax; the result also says whether the O2 escaped into the vacuum."""
    options = _settings(settings)
    move = OxidationAction.from_vector(action['vector'], options.d_max)
    result = relax_after_move(atoms_from(structure, system), system['agent'], move, _pes(pes), options)
    outputs = _relax_outputs(result)
    escaped = not result.error and has_escaped(result.atoms, system['agent'], system['film_top'], options)
    outputs['result'] = orm.Dict({**outputs['result'].get_dict(), 'escaped': escaped})
    return outputs


@calcfunction
def neb_barrier(
    initial: orm.StructureData,
    final: orm.StructureData,
    system: orm.Dict,
    pes: orm.Dict,
    settings: orm.Dict,
    threshold: orm.Float,
) -> dict:
    """Forward barrier of the move by the pre-screened CI-NEB; the band as a TrajectoryData when there is one."""
    band = measure_barrier(
        atoms_from(initial, system), atoms_from(final, system), _pes(pes), threshold.value, _settings(settings)
    )
    outputs = {
        'result': orm.Dict(
            json_safe(
                {
                    'barrier': band.barrier,
                    'method': band.method,
                    'prescreen_barrier': band.prescreen_barrier,
                    'force_calls': band.force_calls,
                    'converged': band.converged,
                    'energies': list(band.band.energies) if band.band is not None else [],
                    'error': band.band.error if band.band is not None else 'no band',
                }
            )
        )
    }
    if band.band is not None and band.band.images:
        outputs['band'] = orm.TrajectoryData([orm.StructureData(ase=image) for image in band.band.images])
    return outputs


@calcfunction
def verify(
    structure: orm.StructureData, system: orm.Dict, pes: orm.Dict, settings: orm.Dict, seed: orm.Int
) -> orm.Dict:
    """Verified dissociation of the agent O2 (seeded perturb-and-relax) with its evidence."""
    result = verify_dissociation(
        atoms_from(structure, system), system['agent'], _pes(pes), seed.value, separation=_settings(settings).separation
    )
    return orm.Dict(json_safe(dataclasses.asdict(result)))


@calcfunction
def conclude_step(
    initial: orm.StructureData,
    final: orm.StructureData,
    system: orm.Dict,
    previous: orm.Dict,
    action: orm.Dict,
    moved: orm.Dict,
    threshold: orm.Float,
    weights: orm.Dict,
    barrier: orm.Dict | None = None,
    verification: orm.Dict | None = None,
) -> orm.Dict:
    """The step record: outcome, reward, termination, energies (eV), barrier (eV) and the pathway's highest
    barrier so far (``path_barrier``, eV; ``previous`` holds the one before) — as the plain shell computes."""
    agent = system['agent']
    barrier_ev = number(barrier['barrier']) if barrier is not None else float('nan')
    dissociated = bool(verification is not None and verification['dissociated'])
    after = final.get_ase()
    path_before = number(previous.get('path_barrier'))  # the start's record has none: no barrier yet
    outcome, rolled_back, reward = conclude(
        initial.get_ase(), after, agent, moved['error'] is not None, moved['escaped'], barrier_ev, dissociated,
        threshold.value, RewardWeights(**weights.get_dict()), path_before,
    )  # fmt: skip
    energy_before = number(previous['energy_after'] if 'energy_after' in previous.get_dict() else previous['energy'])
    calls = moved['force_calls'] + (barrier['force_calls'] if barrier is not None else 0)
    calls += verification['force_calls'] if verification is not None else 0
    return orm.Dict(
        json_safe(
            {
                'action': action['vector'],
                'sample': action.get('sample'),
                'logp': action.get('logp'),
                'value': action.get('value'),
                'outcome': outcome,
                'reward': reward,
                'terminated': outcome in TERMINAL_OUTCOMES,
                'rolled_back': rolled_back,
                'energy_before': energy_before,
                'energy_after': energy_before if rolled_back else number(moved['energy']),
                'barrier': barrier_ev,
                'barrier_method': barrier['method'] if barrier is not None else None,
                'path_barrier': path_barrier(path_before, barrier_ev),
                'neb_converged': bool(barrier is not None and barrier['converged']),
                'oo_distance': float('nan') if moved['error'] else o2_bond(after, agent).distance,
                'dissociated': dissociated,
                'force_calls': calls,
            }
        )
    )
