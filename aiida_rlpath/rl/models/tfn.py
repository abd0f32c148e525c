"""Tensor-field networks for RL crystal relaxation (torch + e3nn, no AiiDA): an equivariant actor and critic.

The input is a batch of crystal graphs (:class:`GraphBatch`): per-atom species and vectors (forces in eV/Å,
optionally the previous displacement in Å and the force change) and periodic edges with their vectors (Å).

- :class:`TFNActor`: E(3)-equivariant. Each atom's vectors enter as l = 1 features whose lengths are squashed
  by v/‖v‖ · log(1 + ‖v‖/s) (an invariant rescaling, so orientation and equivariance are kept), its species as
  l = 0 together with the dot products of its vectors and their graph means; ``layers`` tensor-field
  convolutions (radial MLP × spherical harmonics of the edge, summed over neighbours, gated nonlinearity) mix
  them; a final linear map gives one l = 1 vector per atom, the
  displacement, capped at ``d_max`` Å by d_max · tanh(‖u‖)/‖u‖ · u. Rotating the structure rotates the
  displacements; translating it changes nothing (only edge vectors enter).
- :class:`TFNCritic`: an invariant scalar Q(state, action): the action (Å) is one more l = 1 input per atom;
  per-atom scalars are pooled over the graph by mean and max and read out by an MLP.
- :class:`CGCNNActor` / :class:`CGCNNCritic`: a non-equivariant baseline in the spirit of CGCNN: edge lengths
  and raw Cartesian components of the per-atom vectors go through gated graph convolutions, so a rotated
  structure does not give rotated moves.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

import numpy as np
import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn

__all__ = (
    'ACTORS',
    'CRITICS',
    'CGCNNActor',
    'CGCNNCritic',
    'GraphBatch',
    'TFNActor',
    'TFNCritic',
    'build_actor',
    'collate',
    'squash',
    'squash_log_det',
)

#: Atomic numbers the networks embed (others raise): the Al–Fe default and common crystal elements.
ELEMENTS = (13, 26, 14, 29, 28, 22, 3, 8, 11, 12)


@dataclasses.dataclass
class GraphBatch:
    """Crystal graphs batched into one disjoint graph (tensors, float32)."""

    species: torch.Tensor  # (N,) index into ELEMENTS
    vectors: torch.Tensor  # (N, K, 3)
    src: torch.Tensor  # (E,)
    dst: torch.Tensor  # (E,)
    edge_vectors: torch.Tensor  # (E, 3)
    node_graph: torch.Tensor  # (N,) graph index of each atom
    n_graphs: int

    def with_vectors(self, vectors: torch.Tensor) -> GraphBatch:
        return dataclasses.replace(self, vectors=vectors)


def collate(graphs: t.Sequence[t.Any]) -> GraphBatch:
    """One :class:`GraphBatch` from :class:`~aiida_rlpath.envs.relaxation.CrystalGraph` objects."""
    lookup = {z: i for i, z in enumerate(ELEMENTS)}
    species, vectors, src, dst, edges, owner = [], [], [], [], [], []
    offset = 0
    for index, graph in enumerate(graphs):
        try:
            species.append([lookup[int(z)] for z in graph.numbers])
        except KeyError as error:
            raise ValueError(f'element Z={error.args[0]} is not embedded by the relaxation models') from None
        vectors.append(graph.vectors)
        src.append(graph.src + offset)
        dst.append(graph.dst + offset)
        edges.append(graph.edge_vectors)
        owner.append(np.full(graph.n_atoms, index))
        offset += graph.n_atoms
    return GraphBatch(
        torch.as_tensor(np.concatenate(species), dtype=torch.long),
        torch.as_tensor(np.concatenate(vectors), dtype=torch.float32),
        torch.as_tensor(np.concatenate(src), dtype=torch.long),
        torch.as_tensor(np.concatenate(dst), dtype=torch.long),
        torch.as_tensor(np.concatenate(edges), dtype=torch.float32),
        torch.as_tensor(np.concatenate(owner), dtype=torch.long),
        len(graphs),
    )


def _scatter_sum(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    out = values.new_zeros((size, *values.shape[1:]))
    return out.index_add_(0, index, values)


def _radial_basis(lengths: torch.Tensor, cutoff: float, count: int) -> torch.Tensor:
    """Bessel radial basis times a smooth polynomial cutoff envelope (zero value and slope at ``cutoff``)."""
    x = (lengths / cutoff).clamp(max=1.0)[:, None]
    n = torch.arange(1, count + 1, dtype=lengths.dtype, device=lengths.device)
    bessel = math.sqrt(2 / cutoff) * torch.sin(n * math.pi * x) / (x * cutoff + 1e-9)
    envelope = 1 - 10 * x**3 + 15 * x**4 - 6 * x**5
    return bessel * envelope


def squash(raw: torch.Tensor, d_max: float) -> torch.Tensor:
    """Per-atom steps capped radially: d_max · tanh(‖u‖/d_max) · u/‖u‖ (Å); orientation kept (equivariant)."""
    norm = raw.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    return raw / norm * d_max * torch.tanh(norm / d_max)


def squash_log_det(raw: torch.Tensor, d_max: float) -> torch.Tensor:
    """log det(∂squash/∂u) per atom: the radial map r → f(r) = d_max tanh(r/d_max) in 3D has Jacobian
    determinant f'(r) · (f(r)/r)², so SAC's log-probabilities of capped steps are exact."""
    r = raw.norm(dim=-1).clamp(min=1e-9)
    x = r / d_max
    log_sech2 = 2 * (math.log(2.0) - x - torch.nn.functional.softplus(-2 * x))
    return log_sech2 + 2 * (torch.log(d_max * torch.tanh(x)) - torch.log(r))


def _squash(vectors: torch.Tensor, scale: float) -> torch.Tensor:
    """v/‖v‖ · log(1 + ‖v‖/scale): lengths compressed, orientation kept (an invariant rescaling)."""
    norm = vectors.norm(dim=-1, keepdim=True)
    return vectors / norm.clamp(min=1e-9) * torch.log1p(norm / scale)


class _Convolution(nn.Module):
    """One tensor-field convolution with a gated nonlinearity and a self-interaction residual."""

    def __init__(self, irreps_in: o3.Irreps, hidden: o3.Irreps, sh: o3.Irreps, radial: int, cutoff: float):
        super().__init__()
        scalars = o3.Irreps([(m, ir) for m, ir in hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in hidden if ir.l > 0])
        gates = o3.Irreps(f'{gated.num_irreps}x0e')
        self.gate = Gate(scalars, [torch.nn.functional.silu], gates, [torch.sigmoid], gated)
        self.tp = o3.FullyConnectedTensorProduct(
            irreps_in, sh, self.gate.irreps_in, shared_weights=False, internal_weights=False
        )
        self.radial = nn.Sequential(nn.Linear(radial, 32), nn.SiLU(), nn.Linear(32, self.tp.weight_numel))
        self.self_interaction = o3.Linear(irreps_in, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out
        self.cutoff, self.n_radial = cutoff, radial

    def forward(self, features, sh, basis, src, dst, n_nodes):
        messages = self.tp(features[src], sh, self.radial(basis))
        pooled = _scatter_sum(messages, dst, n_nodes) / math.sqrt(12.0)
        return self.gate(pooled + self.self_interaction(features))


def _gram(vectors: torch.Tensor) -> torch.Tensor:
    """Rotation invariants of each atom's K vectors: the K(K+1)/2 dot products v_a · v_b (a ≤ b)."""
    k = vectors.shape[1]
    rows, cols = torch.triu_indices(k, k)
    return (vectors[:, rows] * vectors[:, cols]).sum(dim=-1)


class _TFNBody(nn.Module):
    """Species and vector inputs → ``layers`` convolutions → per-atom equivariant features.

    The scalar inputs are the species one-hot, each atom's Gram invariants (dot products of its vectors: with
    history these include F·Δx and Δx·ΔF, the ingredients of secant step sizes) and their graph means.
    """

    def __init__(self, n_vectors: int, hidden: str, layers: int, lmax: int, cutoff: float, radial: int):
        super().__init__()
        self.sh_irreps = o3.Irreps.spherical_harmonics(lmax)
        n_gram = n_vectors * (n_vectors + 1) // 2
        irreps = o3.Irreps(f'{len(ELEMENTS) + 2 * n_gram}x0e + {n_vectors}x1o')
        self.layers = nn.ModuleList()
        for _ in range(layers):
            layer = _Convolution(irreps, o3.Irreps(hidden), self.sh_irreps, radial, cutoff)
            self.layers.append(layer)
            irreps = layer.irreps_out
        self.irreps_out = irreps
        self.cutoff, self.radial, self.n_vectors = cutoff, radial, n_vectors

    def forward(self, batch: GraphBatch, vectors: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(batch.species, len(ELEMENTS)).to(vectors.dtype)
        gram = _gram(vectors)  # per-atom invariants, and their means over each graph (global step information)
        count = _scatter_sum(torch.ones_like(gram[:, :1]), batch.node_graph, batch.n_graphs)
        mean_gram = (_scatter_sum(gram, batch.node_graph, batch.n_graphs) / count)[batch.node_graph]
        features = torch.cat([onehot, gram, mean_gram, vectors.reshape(len(vectors), -1)], dim=1)
        lengths = batch.edge_vectors.norm(dim=1)
        sh = o3.spherical_harmonics(self.sh_irreps, batch.edge_vectors, normalize=True, normalization='component')
        basis = _radial_basis(lengths, self.cutoff, self.radial)
        for layer in self.layers:
            features = layer(features, sh, basis, batch.src, batch.dst, len(vectors))
        return features


#: Length scales of the per-atom input vectors before squashing: force (eV/Å), displacement (Å), force change.
VECTOR_SCALES = (1.0, 0.05, 1.0)


def _scaled(vectors: torch.Tensor) -> torch.Tensor:
    scales = vectors.new_tensor(VECTOR_SCALES[: vectors.shape[1]])
    return torch.stack([_squash(vectors[:, k], float(scales[k])) for k in range(vectors.shape[1])], dim=1)


class TFNActor(nn.Module):
    """Equivariant actor: per-atom displacement vectors (Å, each at most ``d_max``) from a crystal graph.

    :param n_vectors: per-atom input vectors (1: forces; 3: forces, previous displacement, force change).
    :param hidden: hidden irreps of each convolution (e3nn notation).
    :param layers: number of convolutions.
    :param lmax: degree of the edge spherical harmonics.
    :param cutoff: radial cutoff of the convolutions (Å), at most the graph's cutoff.
    :param d_max: largest displacement of one atom in one step (Å).
    """

    name = 'tfn'

    def __init__(
        self,
        n_vectors: int = 3,
        hidden: str = '16x0e + 8x1o',
        layers: int = 2,
        lmax: int = 1,
        cutoff: float = 4.0,
        radial: int = 8,
        d_max: float = 0.3,
    ):
        super().__init__()
        self.architecture = {
            'name': self.name, 'n_vectors': n_vectors, 'hidden': hidden, 'layers': layers, 'lmax': lmax,
            'cutoff': cutoff, 'radial': radial, 'd_max': d_max,
        }  # fmt: skip
        self.body = _TFNBody(n_vectors, hidden, layers, lmax, cutoff, radial)
        self.out = o3.Linear(self.body.irreps_out, '1x1o')
        with torch.no_grad():
            self.out.weight.zero_()  # the untrained actor is the steepest-descent step below, exactly
        self.d_max = d_max
        # A residual step along the force from the start: d = α F with α = 0.01 Å²/eV (a cautious steepest
        # descent), which the network corrects; the untrained actor then already lowers the forces.
        self.log_step = nn.Parameter(torch.tensor(math.log(0.01)))
        self.spread = o3.Linear(self.body.irreps_out, '1x0e')  # SAC's per-atom log σ (an invariant)

    def distribution(self, batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The uncapped mean step (N × 3, Å; equivariant) and each atom's log σ (N, invariant), for SAC."""
        features = self.body(batch, _scaled(batch.vectors))
        raw = self.out(features) * 0.05 + torch.exp(self.log_step) * batch.vectors[:, 0]
        return raw, self.spread(features)[:, 0] - 4.0  # σ ≈ 0.02 Å at the start

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return squash(self.distribution(batch)[0], self.d_max)


class TFNCritic(nn.Module):
    """Invariant critic Q(state, action): the action (Å) joins the per-atom vectors; mean- and max-pooled."""

    name = 'tfn'

    def __init__(self, n_vectors: int = 3, hidden: str = '8x0e + 4x1o', layers: int = 2, lmax: int = 1,
                 cutoff: float = 4.0, radial: int = 8, d_max: float = 0.3):  # fmt: skip
        super().__init__()
        self.body = _TFNBody(n_vectors + 1, hidden, layers, lmax, cutoff, radial)
        self.scalars = o3.Linear(self.body.irreps_out, '16x0e')
        self.head = nn.Sequential(nn.Linear(32, 64), nn.SiLU(), nn.Linear(64, 1))
        self.d_max = d_max

    def forward(self, batch: GraphBatch, action: torch.Tensor) -> torch.Tensor:
        vectors = torch.cat([_scaled(batch.vectors), (action / self.d_max)[:, None]], dim=1)
        per_atom = self.scalars(self.body(batch, vectors))
        return self.head(_pool(per_atom, batch)).squeeze(-1)


def _pool(per_atom: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
    count = _scatter_sum(torch.ones_like(per_atom[:, :1]), batch.node_graph, batch.n_graphs)
    mean = _scatter_sum(per_atom, batch.node_graph, batch.n_graphs) / count
    index = batch.node_graph[:, None].expand_as(per_atom)
    maximum = per_atom.new_full((batch.n_graphs, per_atom.shape[1]), -torch.inf)
    maximum = maximum.scatter_reduce(0, index, per_atom, reduce='amax')
    return torch.cat([mean, maximum], dim=1)


class _CGCNNBody(nn.Module):
    """CGCNN-style gated convolutions on edge lengths and raw Cartesian vector components (not equivariant)."""

    def __init__(self, n_vectors: int, width: int, layers: int, cutoff: float, radial: int):
        super().__init__()
        self.embed = nn.Linear(len(ELEMENTS) + 3 * n_vectors, width)
        self.convs = nn.ModuleList(nn.Linear(2 * width + radial, 2 * width) for _ in range(layers))
        self.cutoff, self.radial = cutoff, radial

    def forward(self, batch: GraphBatch, vectors: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(batch.species, len(ELEMENTS)).to(vectors.dtype)
        h = self.embed(torch.cat([onehot, vectors.reshape(len(vectors), -1)], dim=1))
        basis = _radial_basis(batch.edge_vectors.norm(dim=1), self.cutoff, self.radial)
        for conv in self.convs:
            z = conv(torch.cat([h[batch.dst], h[batch.src], basis], dim=1))
            gate, core = z.chunk(2, dim=1)
            messages = torch.sigmoid(gate) * torch.nn.functional.softplus(core)
            h = torch.nn.functional.softplus(h + _scatter_sum(messages, batch.dst, len(h)) / math.sqrt(12.0))
        return h


class CGCNNActor(nn.Module):
    """Non-equivariant baseline actor: displacement = MLP(atom features) in Cartesian components (Å, ≤ ``d_max``)."""

    name = 'cgcnn'

    def __init__(self, n_vectors: int = 3, width: int = 64, layers: int = 3, cutoff: float = 4.0, radial: int = 8,
                 d_max: float = 0.3):  # fmt: skip
        super().__init__()
        self.architecture = {
            'name': self.name, 'n_vectors': n_vectors, 'width': width, 'layers': layers, 'cutoff': cutoff,
            'radial': radial, 'd_max': d_max,
        }  # fmt: skip
        self.body = _CGCNNBody(n_vectors, width, layers, cutoff, radial)
        self.out = nn.Linear(width, 3)
        with torch.no_grad():
            self.out.weight.zero_()
            self.out.bias.zero_()
        self.d_max = d_max
        self.log_step = nn.Parameter(torch.tensor(math.log(0.01)))
        self.spread = nn.Linear(width, 1)

    def distribution(self, batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The uncapped mean step (N × 3, Å) and each atom's log σ (N), for SAC."""
        features = self.body(batch, _scaled(batch.vectors))
        raw = self.out(features) * 0.05 + torch.exp(self.log_step) * batch.vectors[:, 0]
        return raw, self.spread(features)[:, 0] - 4.0

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        return squash(self.distribution(batch)[0], self.d_max)


class CGCNNCritic(nn.Module):
    """Non-equivariant baseline critic Q(state, action), mean- and max-pooled over atoms."""

    name = 'cgcnn'

    def __init__(self, n_vectors: int = 3, width: int = 64, layers: int = 3, cutoff: float = 4.0, radial: int = 8,
                 d_max: float = 0.3):  # fmt: skip
        super().__init__()
        self.body = _CGCNNBody(n_vectors + 1, width, layers, cutoff, radial)
        self.head = nn.Sequential(nn.Linear(2 * width, 64), nn.SiLU(), nn.Linear(64, 1))
        self.d_max = d_max

    def forward(self, batch: GraphBatch, action: torch.Tensor) -> torch.Tensor:
        vectors = torch.cat([_scaled(batch.vectors), (action / self.d_max)[:, None]], dim=1)
        return self.head(_pool(self.body(batch, vectors), batch)).squeeze(-1)


ACTORS: dict[str, type] = {'tfn': TFNActor, 'cgcnn': CGCNNActor}
CRITICS: dict[str, type] = {'tfn': TFNCritic, 'cgcnn': CGCNNCritic}


def build_actor(architecture: dict[str, t.Any], state_dict: dict | None = None) -> nn.Module:
    """The actor that ``architecture`` (with ``name``) describes, with ``state_dict`` loaded if given."""
    options = dict(architecture)
    name = options.pop('name', None)
    if name not in ACTORS:
        raise ValueError(f'unknown relaxation actor {name!r}; known: {sorted(ACTORS)}')
    actor = ACTORS[name](**options)
    if state_dict is not None:
        actor.load_state_dict(state_dict)
    return actor
