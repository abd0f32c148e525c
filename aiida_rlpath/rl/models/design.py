"""Graph network over a crystal-design observation (torch only, no AiiDA import).

:class:`DesignGNN` reads the ``graph`` of :class:`~aiida_rlpath.envs.crystal_design.CrystalDesignEnv`
observations: node features are embedded, passed through ``layers`` residual message-passing layers whose
messages are gated by a Gaussian expansion of the neighbour distance (Å), and read out at the site being filled,
beside a mean over all sites. It returns one number per vocabulary element (logits for PPO, Q-values for DQN),
masked by the observation's ``action_mask``, and a state value. The network sees distances only, so its outputs
are invariant to rotations, translations and the order in which sites are numbered.
"""

from __future__ import annotations

import typing as t

import numpy as np
import torch
from torch import nn

__all__ = ('DesignGNN', 'collate_design')

MASKED = -1e9


def collate_design(observations: t.Sequence[dict]) -> dict[str, torch.Tensor]:
    """Batch observations: concatenated nodes, edge features and offset edge links, the graph of each node, the
    flat index of each graph's current site, and the action masks (bool)."""
    nodes, edges, links, graph, site, masks, offset = [], [], [], [], [], [], 0
    for index, observation in enumerate(observations):
        g = observation['graph']
        n = len(g.nodes)
        nodes.append(np.asarray(g.nodes, dtype=np.float32))
        edges.append(np.asarray(g.edges, dtype=np.float32).reshape(-1))
        links.append(np.asarray(g.edge_links, dtype=np.int64).reshape(-1, 2) + offset)
        graph.append(np.full(n, index, dtype=np.int64))
        site.append(offset + int(observation['site']))
        masks.append(np.asarray(observation['action_mask'], dtype=bool))
        offset += n
    return {
        'nodes': torch.from_numpy(np.concatenate(nodes)),
        'distances': torch.from_numpy(np.concatenate(edges)),
        'links': torch.from_numpy(np.concatenate(links)),
        'graph': torch.from_numpy(np.concatenate(graph)),
        'site': torch.tensor(site, dtype=torch.long),
        'mask': torch.from_numpy(np.stack(masks)),
    }


class DesignGNN(nn.Module):
    """Message-passing network: ``n_node_features`` → ``hidden`` channels, ``layers`` layers, ``n_actions``
    outputs and a value.

    :param n_rbf: Gaussians of the distance expansion, centred on 0 … ``cutoff`` Å.
    :param seed: seeds the initial weights (explicitly, without touching torch's global generator).
    """

    def __init__(
        self,
        n_node_features: int,
        n_actions: int,
        hidden: int = 64,
        layers: int = 3,
        n_rbf: int = 16,
        cutoff: float = 6.0,
        seed: int = 0,
    ):
        super().__init__()
        self.config = {
            'n_node_features': int(n_node_features),
            'n_actions': int(n_actions),
            'hidden': int(hidden),
            'layers': int(layers),
            'n_rbf': int(n_rbf),
            'cutoff': float(cutoff),
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.embed = nn.Sequential(nn.Linear(n_node_features, hidden), nn.SiLU())
            self.register_buffer('centres', torch.linspace(0.0, cutoff, n_rbf))
            self.width = cutoff / max(n_rbf - 1, 1)
            self.filters = nn.ModuleList(nn.Linear(n_rbf, hidden) for _ in range(layers))
            self.updates = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
                for _ in range(layers)
            )
            self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_actions))
            self.value_head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked outputs (B, n_actions; masked entries −1e9) and values (B,)."""
        h = self.embed(batch['nodes'])
        rbf = torch.exp(-(((batch['distances'][:, None] - self.centres) / self.width) ** 2))
        source, target = batch['links'][:, 0], batch['links'][:, 1]
        degree = torch.zeros(len(h)).index_add_(0, target, torch.ones(len(target))).clamp(min=1.0)[:, None]
        for filt, update in zip(self.filters, self.updates, strict=True):
            messages = torch.zeros_like(h).index_add_(0, target, h[source] * filt(rbf)) / degree
            h = h + update(torch.cat([h, messages], dim=1))
        n_graphs = len(batch['site'])
        counts = torch.zeros(n_graphs).index_add_(0, batch['graph'], torch.ones(len(h)))[:, None]
        pooled = torch.zeros(n_graphs, h.shape[1]).index_add_(0, batch['graph'], h) / counts
        readout = torch.cat([h[batch['site']], pooled], dim=1)
        out = self.head(readout).masked_fill(~batch['mask'], MASKED)
        return out, self.value_head(readout).squeeze(-1)
