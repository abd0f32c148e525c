"""3D convolutional Q-network over a voxel density grid (torch only, no AiiDA import): the MAP agent's network.

Input: a batch of grids (B, channels, points, points, points) as made by
:func:`aiida_rlpath.envs.water_diffusion.density_grid`; output: one Q-value per discrete action (B, actions).
"""

from __future__ import annotations

import typing as t

import torch
from torch import nn

__all__ = ('ARCHITECTURE_NAME', 'QNetwork3D', 'build_q_network', 'q_architecture')

ARCHITECTURE_NAME = 'map-q3d'


def q_architecture(channels: int, points: int, hidden: int = 16, actions: int = 5) -> dict[str, t.Any]:
    """The architecture dictionary (with ``name``) of a :class:`QNetwork3D`, as its checkpoints record it."""
    return {'name': ARCHITECTURE_NAME, 'channels': channels, 'points': points, 'hidden': hidden, 'actions': actions}


class QNetwork3D(nn.Module):
    """Two 3×3×3 convolutions (the second with stride 2), global average and max pooling, and a two-layer head.

    :param channels: input channels (species plus water); ``points``: voxels per side; ``hidden``: convolution
        channels (the head has ``2 * hidden`` units); ``actions``: outputs.
    """

    def __init__(self, channels: int, points: int, hidden: int = 16, actions: int = 5):
        super().__init__()
        self.architecture = q_architecture(channels, points, hidden, actions)
        self.convolutions = nn.Sequential(
            nn.Conv3d(channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv3d(hidden, 2 * hidden, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(4 * hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, actions))

    def forward(self, grids: torch.Tensor) -> torch.Tensor:
        features = self.convolutions(grids)
        pooled = torch.cat([features.mean(dim=(2, 3, 4)), features.amax(dim=(2, 3, 4))], dim=1)
        return self.head(pooled)


def build_q_network(architecture: dict[str, t.Any], state_dict: dict | None = None, seed: int | None = None):
    """The :class:`QNetwork3D` that ``architecture`` describes, initialised from ``seed`` (torch's global generator
    is left as it was) or loaded from ``state_dict``."""
    options = dict(architecture)
    name = options.pop('name', None)
    if name != ARCHITECTURE_NAME:
        raise ValueError(f'not a MAP Q-network architecture: {name!r} (expected {ARCHITECTURE_NAME!r})')
    with torch.random.fork_rng():
        torch.manual_seed(0 if seed is None else int(seed))
        network = QNetwork3D(**options)
    if state_dict is not None:
        network.load_state_dict(state_dict)
    return network
