"""Protocol presets (YAML, one file per workflow family) merged with user overrides."""

from __future__ import annotations

import copy
import pathlib
import typing as t

import yaml

__all__ = (
    'MAP_OVERRIDE_KEYS',
    'OVERRIDE_KEYS',
    'get_protocol',
    'list_protocols',
    'protocol_overrides',
    'recursive_merge',
)

HERE = pathlib.Path(__file__).parent


def _load(family: str) -> dict[str, t.Any]:
    path = HERE / f'{family}.yaml'
    if not path.exists():
        raise ValueError(f'no protocols for {family!r}')
    return yaml.safe_load(path.read_text())


def list_protocols(family: str) -> dict[str, str]:
    """Protocol names of ``family`` with their descriptions."""
    return {name: data.get('description', '') for name, data in _load(family)['protocols'].items()}


def recursive_merge(base: dict, overrides: dict) -> dict:
    """A copy of ``base`` with ``overrides`` merged in, nested dictionaries key by key."""
    merged = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = recursive_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def get_protocol(family: str, name: str | None = None, overrides: dict | None = None) -> dict[str, t.Any]:
    """The protocol ``name`` of ``family`` (default: the family's ``default_protocol``) with ``overrides`` merged."""
    data = _load(family)
    name = name or data['default_protocol']
    if name not in data['protocols']:
        raise ValueError(f'unknown {family} protocol {name!r}; choose one of {sorted(data["protocols"])}')
    protocol = recursive_merge(data['protocols'][name], overrides or {})
    protocol.pop('description', None)
    protocol['name'] = name
    return protocol


#: Where each command-line style option of a REALIZE protocol goes: (section, key).
OVERRIDE_KEYS = {
    'cycles': ('training', 'cycles'),
    'episodes': ('training', 'episodes_per_cycle'),
    'max_steps': ('settings', 'max_steps'),
    'size': ('system', 'size'),
    'oxide_thickness': ('system', 'oxide_thickness'),
    'insert_height': ('system', 'insert_height'),
    'model': ('policy', 'name'),
    'mode': ('training', 'mode'),
}


#: Where each command-line style option of a MAP protocol goes: (section, key); section ``None``: the top level.
MAP_OVERRIDE_KEYS = {
    'rounds': ('apex', 'rounds'),
    'actors': ('apex', 'actors'),
    'steps': ('apex', 'steps_per_actor'),
    'max_steps': ('environment', 'max_steps'),
    'units': ('build', 'units'),
    'analyse': (None, 'analyse'),
    'temperature': (None, 'temperature'),
}


def protocol_overrides(keys: dict | None = None, **options) -> dict:
    """Protocol overrides from flat options, placed by ``keys`` (default :data:`OVERRIDE_KEYS`, REALIZE's:
    ``cycles``, ``episodes``, ``max_steps``, ``size``, ``oxide_thickness`` and ``insert_height`` in Å, ``model``:
    the policy model, ``mode``: train or evaluate; :data:`MAP_OVERRIDE_KEYS` for MAP: ``rounds``, ``actors``,
    ``steps`` per actor round, ``max_steps`` per episode, ``units`` of SiO2, ``analyse``, ``temperature`` in K);
    ``None`` is left out."""
    overrides: dict = {}
    for name, value in options.items():
        if value is not None:
            section, key = (keys or OVERRIDE_KEYS)[name]
            (overrides if section is None else overrides.setdefault(section, {}))[key] = value
    return overrides
