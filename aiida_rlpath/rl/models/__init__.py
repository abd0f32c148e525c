"""Policies for the REALIZE agent (torch; no AiiDA import) and the registry that rebuilds them from a checkpoint.

A policy is a ``torch.nn.Module`` with ``architecture`` (a JSON dict with ``name``), ``act(atoms, agent, seed)``
returning a :class:`~aiida_rlpath.rl.models.baseline.PolicyOutput`, ``log_prob(states, samples)`` and
``evaluate(states, samples)`` (log-probabilities and entropies), where each state is ``(atoms, agent)``.
"""

from __future__ import annotations

import typing as t

from aiida_rlpath.rl.models.baseline import ContextFreePolicy, PolicyOutput
from aiida_rlpath.rl.models.equivariant import MultipolePolicy
from aiida_rlpath.rl.models.sevennet import SevenNetPolicy

__all__ = (
    'MODELS',
    'ContextFreePolicy',
    'MultipolePolicy',
    'PolicyOutput',
    'SevenNetPolicy',
    'build_policy',
    'init_policy',
)

#: Policy classes by ``architecture['name']``.
MODELS: dict[str, type] = {model.name: model for model in (ContextFreePolicy, MultipolePolicy, SevenNetPolicy)}


def build_policy(architecture: dict[str, t.Any], state_dict: dict | None = None):
    """The policy that ``architecture`` describes, with ``state_dict`` loaded if given."""
    options = dict(architecture)
    name = options.pop('name', None)
    if name not in MODELS:
        raise ValueError(f'unknown policy model {name!r}; known: {sorted(MODELS)}')
    policy = MODELS[name](**options)
    if state_dict is not None:
        policy.load_state_dict(state_dict)
    return policy


def init_policy(model: dict[str, t.Any], d_max: float, seed: int):
    """A fresh policy ``model`` (``name`` and options) for steps of at most ``d_max`` Å, its weights initialised
    from ``seed`` (torch's global generator is left as it was)."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        return build_policy({**model, 'd_max': d_max})
