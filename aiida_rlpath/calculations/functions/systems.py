"""Seeded calcfunctions that build simulation systems, so a training's starting structure has provenance too."""

from __future__ import annotations

from aiida import orm
from aiida.engine import calcfunction

from aiida_rlpath.calculations.functions.realize import json_safe
from aiida_rlpath.envs.oxidation import canonical, film_top, fixed_indices
from aiida_rlpath.systems.si_oxide import build_oxidation_start

__all__ = ('OXIDATION_SYSTEM_DEFAULTS', 'oxidation_system')

#: Parameters of :func:`oxidation_system`: slab ``size`` ('tiny', 'small', 'paper'), ``oxide_thickness`` (Å; 0 for
#: bare Si(001)), ``oxide_protocol`` ('quick' or 'long'), ``seed``, and ``insert_height``: how far above the top
#: atom the agent O2's centre starts, Å.
OXIDATION_SYSTEM_DEFAULTS = {
    'size': 'small',
    'oxide_thickness': 5.0,
    'oxide_protocol': 'quick',
    'seed': 0,
    'insert_height': 3.0,
}


def validate_system_parameters(parameters: dict) -> str | None:
    """A message naming what is wrong with ``parameters`` for :func:`oxidation_system`, or ``None``."""
    from aiida_rlpath.systems.si_oxide import PROTOCOLS, SIZES

    unknown = set(parameters) - set(OXIDATION_SYSTEM_DEFAULTS)
    if unknown:
        return f'unknown system parameters {sorted(unknown)}; known: {sorted(OXIDATION_SYSTEM_DEFAULTS)}'
    merged = {**OXIDATION_SYSTEM_DEFAULTS, **parameters}
    if merged['size'] not in SIZES:
        return f'system size {merged["size"]!r} is not one of {sorted(SIZES)}'
    if merged['oxide_protocol'] not in PROTOCOLS:
        return f'oxide protocol {merged["oxide_protocol"]!r} is not one of {sorted(PROTOCOLS)}'
    if merged['oxide_thickness'] < 0 or merged['insert_height'] <= 0:
        return 'oxide_thickness must be >= 0 and insert_height > 0 (Å)'
    return None


@calcfunction
def oxidation_system(parameters: orm.Dict) -> dict:
    """Si(001) with an a-SiO2 film grown by reactive MD (or bare, for thickness 0) and an agent O2 above it.

    Returns ``structure`` and ``system`` (``agent``, ``fixed``, ``film_top`` in Å) ready for the REALIZE work
    chains, and ``oxide`` (what the growth measured: thickness in Å, O count, deposited/rejected O2).
    """
    options = {**OXIDATION_SYSTEM_DEFAULTS, **parameters.get_dict()}
    atoms, agent, metadata = build_oxidation_start(
        options['size'], options['oxide_thickness'], options['oxide_protocol'], options['seed'],
        options['insert_height'],
    )  # fmt: skip
    fixed = fixed_indices(atoms)
    atoms = canonical(atoms)
    return {
        'structure': orm.StructureData(ase=atoms),
        'system': orm.Dict({'agent': agent, 'fixed': fixed, 'film_top': film_top(atoms, agent)}),
        'oxide': orm.Dict(json_safe(metadata)),
    }
