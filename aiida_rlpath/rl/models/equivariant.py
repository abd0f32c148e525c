"""``MultipolePolicy``: a small from-scratch E(3)-equivariant REALIZE actor-critic (torch + e3nn, no AiiDA).

The state is encoded around the agent O2's centre: every atom within ``cutoff`` Å (periodic images included)
contributes learned radial weights (per species and distance) times its real spherical harmonics, summed into
``channels`` multipole moments of each degree l ≤ ``lmax`` (monopole, dipole, quadrupole for lmax = 2). The O2
bond enters through its length and its even harmonics only (the molecule is homonuclear: b and −b are the same).

The actor is autoregressive, p(direction) · p(magnitude | direction) · p(axis | direction):

- direction: logits f(x) = Σ_lm c_lm Y_lm(x) with coefficients that are invariant-weighted sums of the moments,
  so rotating the structure rotates f; sampled as a categorical over a fixed quasi-uniform grid on S² (exact
  log-probabilities of the grid choice);
- magnitude: d_max · Beta(a, b), with a and b from invariants of the state and of the moments evaluated at the
  chosen direction;
- axis: logits from even harmonics only (g(y) = g(−y): flipping the bond is the same move), conditioned on the
  direction through its quadrupole; categorical over the same grid.

The critic is an invariant scalar of the state. Lengths in Å. The encoder is deliberately one layer: it is the
fast CPU option and the reference the SevenNet-backed encoder is measured against.
"""

from __future__ import annotations

import math
import typing as t

import numpy as np
import torch
from e3nn import o3

from aiida_rlpath.rl.models.baseline import SAMPLE_DECIMALS, PolicyOutput

__all__ = ('MultipolePolicy', 'fibonacci_sphere')

SPECIES = {'Si': 0, 'O': 1, 'H': 2}


def fibonacci_sphere(count: int) -> torch.Tensor:
    """``count`` quasi-uniform unit vectors (a Fibonacci lattice), float64, rounded to the action precision."""
    index = np.arange(count) + 0.5
    z = 1 - 2 * index / count
    phi = math.pi * (1 + 5**0.5) * index
    r = np.sqrt(1 - z**2)
    points = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return torch.from_numpy(np.round(points, SAMPLE_DECIMALS))


def _mlp(inputs: int, hidden: int, outputs: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, hidden, dtype=torch.float64),
        torch.nn.SiLU(),
        torch.nn.Linear(hidden, outputs, dtype=torch.float64),
    )


def _sh(lmax: int, vectors: torch.Tensor) -> torch.Tensor:
    return o3.spherical_harmonics(list(range(lmax + 1)), vectors, normalize=True, normalization='component')


class MultipolePolicy(torch.nn.Module):
    """E(3)-equivariant actor-critic on an environmental multipole expansion around the O2 (float64).

    :param d_max: largest step, Å. :param cutoff: environment radius, Å. :param lmax: highest multipole degree.
    :param channels: moments per degree. :param hidden: width of the invariant MLPs. :param grid: S² grid points.
    """

    name = 'multipole'

    def __init__(
        self,
        d_max: float = 2.0,
        cutoff: float = 6.0,
        lmax: int = 2,
        channels: int = 8,
        hidden: int = 32,
        grid: int = 400,
        radial: int = 8,
    ):
        super().__init__()
        self.d_max, self.cutoff, self.lmax, self.channels = float(d_max), float(cutoff), int(lmax), int(channels)
        self.hidden, self.grid_size, self.radial = int(hidden), int(grid), int(radial)
        self.register_buffer('grid', fibonacci_sphere(self.grid_size), persistent=False)
        self.register_buffer('centres', torch.linspace(0.5, self.cutoff, self.radial).double(), persistent=False)
        species = len(SPECIES) + 1
        self.radial_net = _mlp(self.radial * species, hidden, channels * (lmax + 1))
        invariants = channels * (lmax + 1) + 2  # per-degree channel norms (l > 0) or values (l = 0); bond length, 1
        self.trunk = _mlp(invariants, hidden, hidden)
        self.direction_weights = torch.nn.Linear(hidden, channels * (lmax + 1) + 1).double()
        self.magnitude_head = _mlp(hidden + channels, hidden, 2)
        self.axis_weights = torch.nn.Linear(hidden + channels, channels * (lmax // 2 + 1) + 2).double()
        self.critic = _mlp(hidden, hidden, 1)

    @property
    def architecture(self) -> dict[str, t.Any]:
        """What :func:`aiida_rlpath.rl.models.build_policy` needs to rebuild this model."""
        return {
            'name': self.name, 'd_max': self.d_max, 'cutoff': self.cutoff, 'lmax': self.lmax,
            'channels': self.channels, 'hidden': self.hidden, 'grid': self.grid_size, 'radial': self.radial,
        }  # fmt: skip

    # -- encoder ---------------------------------------------------------------------------------------------
    def environment(self, atoms, agent: t.Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Neighbour vectors from the O2 centre (Å, periodic images included), species one-hot, bond vector."""
        from ase import Atoms
        from ase.neighborlist import neighbor_list

        first, second = (int(i) for i in agent)
        bond = atoms.get_distance(first, second, mic=True, vector=True)
        centre = atoms.positions[first] + bond / 2
        probe = atoms.copy()
        probe.set_constraint()
        others = [k for k in range(len(probe)) if k not in (first, second)]
        probe = probe[others] + Atoms('X', positions=[centre], cell=atoms.cell, pbc=atoms.pbc)
        i, j, vectors = neighbor_list('ijD', probe, self.cutoff)
        mask = i == len(probe) - 1
        symbols = probe.get_chemical_symbols()
        kinds = [SPECIES.get(symbols[k], len(SPECIES)) for k in j[mask]]
        onehot = torch.nn.functional.one_hot(torch.tensor(kinds, dtype=torch.long), len(SPECIES) + 1)
        return torch.from_numpy(vectors[mask]), onehot.to(torch.float64), torch.from_numpy(np.asarray(bond))

    def encode(self, atoms, agent) -> dict[str, torch.Tensor]:
        """Moments ``A`` (channels × (lmax+1)²), bond harmonics, invariants ``h`` (hidden) of one state."""
        vectors, onehot, bond = self.environment(atoms, agent)
        distances = vectors.norm(dim=1, keepdim=True)
        width = self.cutoff / self.radial
        basis = torch.exp(-(((distances - self.centres) / width) ** 2))
        envelope = 0.5 * (torch.cos(math.pi * distances / self.cutoff) + 1)
        features = (basis[:, :, None] * onehot[:, None, :]).reshape(len(vectors), -1)
        weights = (self.radial_net(features) * envelope).reshape(len(vectors), self.lmax + 1, self.channels)
        harmonics = _sh(self.lmax, vectors) if len(vectors) else torch.zeros(0, (self.lmax + 1) ** 2).double()
        moments = [
            torch.einsum('nc,nm->cm', weights[:, degree, :], harmonics[:, degree**2 : (degree + 1) ** 2])
            for degree in range(self.lmax + 1)
        ]
        invariants = [moments[0][:, 0]] + [m.norm(dim=1) for m in moments[1:]]
        length = bond.norm()
        h = self.trunk(torch.cat([*invariants, length[None], torch.ones(1, dtype=torch.float64)]))
        return {'moments': moments, 'bond': _sh(self.lmax, (bond / length)[None])[0], 'h': h}

    # -- heads -----------------------------------------------------------------------------------------------
    def _direction_logits(self, code, points: torch.Tensor) -> torch.Tensor:
        weights = self.direction_weights(code['h'])
        harmonics = _sh(self.lmax, points)
        logits = torch.zeros(len(points), dtype=torch.float64)
        for degree, moment in enumerate(code['moments']):
            coefficients = weights[degree * self.channels : (degree + 1) * self.channels] @ moment
            logits = logits + harmonics[:, degree**2 : (degree + 1) ** 2] @ coefficients
        if self.lmax >= 2:  # the bond's quadrupole: even, so flip-symmetric
            logits = logits + weights[-1] * (harmonics[:, 4:9] @ code['bond'][4:9])
        return logits

    def _projections(self, code, direction: torch.Tensor) -> torch.Tensor:
        """Invariants of the moments seen along ``direction``: Σ_l Σ_m A_clm Y_lm(direction), per channel."""
        harmonics = _sh(self.lmax, direction[None])[0]
        return sum(moment @ harmonics[d**2 : (d + 1) ** 2] for d, moment in enumerate(code['moments']))

    def _magnitude(self, code, projections) -> torch.distributions.Beta:
        a, b = torch.nn.functional.softplus(self.magnitude_head(torch.cat([code['h'], projections]))) + 1.0
        return torch.distributions.Beta(a, b)

    def _axis_logits(self, code, projections, direction, points) -> torch.Tensor:
        weights = self.axis_weights(torch.cat([code['h'], projections]))
        harmonics = _sh(self.lmax, points)
        logits = harmonics[:, 0] * (weights[: self.channels] @ code['moments'][0][:, 0])
        if self.lmax >= 2:
            logits = logits + harmonics[:, 4:9] @ (weights[self.channels : 2 * self.channels] @ code['moments'][2])
            logits = logits + weights[-2] * (harmonics[:, 4:9] @ _sh(2, direction[None])[0, 4:9])
            logits = logits + weights[-1] * (harmonics[:, 4:9] @ code['bond'][4:9])
        return logits

    # -- policy interface ------------------------------------------------------------------------------------
    def _nearest(self, vector) -> int:
        return int(torch.argmax(self.grid @ torch.as_tensor(vector, dtype=torch.float64)))

    def _evaluate(self, code, sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probability in nats, entropy) of a raw sample [direction grid point, magnitude Å, axis grid point]."""
        direction_logp = torch.log_softmax(self._direction_logits(code, self.grid), 0)
        k = self._nearest(sample[:3])
        direction = self.grid[k]
        projections = self._projections(code, direction)
        magnitude = self._magnitude(code, projections)
        fraction = (sample[3] / self.d_max).clamp(1e-6, 1 - 1e-6)
        axis_logp = torch.log_softmax(self._axis_logits(code, projections, direction, self.grid), 0)
        logp = (
            direction_logp[k]
            + magnitude.log_prob(fraction)
            - math.log(self.d_max)
            + axis_logp[self._nearest(sample[4:])]
        )
        entropy = (
            -(direction_logp.exp() * direction_logp).sum() + magnitude.entropy() - (axis_logp.exp() * axis_logp).sum()
        )
        return logp, entropy

    def act(self, atoms, agent: t.Sequence[int], seed: int) -> PolicyOutput:
        """Sample direction, then magnitude and axis given it, from a generator seeded with ``seed``."""
        generator = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            code = self.encode(atoms, agent)
            k = int(
                torch.multinomial(torch.softmax(self._direction_logits(code, self.grid), 0), 1, generator=generator)
            )
            direction = self.grid[k]
            projections = self._projections(code, direction)
            beta = self._magnitude(code, projections)
            u = torch.rand(2, generator=generator, dtype=torch.float64)
            # torch's Beta sampler takes no generator: invert the CDF of a seeded uniform instead
            fraction = _beta_quantile(beta, u[0])
            axis_probabilities = torch.softmax(self._axis_logits(code, projections, direction, self.grid), 0)
            axis = self.grid[int(torch.multinomial(axis_probabilities, 1, generator=generator))]
            sample = torch.cat([direction, (fraction * self.d_max)[None], axis])
            sample = torch.from_numpy(np.round(sample.numpy(), SAMPLE_DECIMALS))
            logp, _ = self._evaluate(code, sample)
            value = self.critic(code['h'])[0]
        return PolicyOutput(sample.numpy(), float(logp), float(value))

    def log_prob(self, states: t.Sequence[t.Any], samples: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (nats) of raw ``samples`` taken in ``states`` (each ``(atoms, agent)``)."""
        pairs = zip(states, samples, strict=True)
        return torch.stack([self._evaluate(self.encode(*state), sample)[0] for state, sample in pairs])

    def evaluate(self, states: t.Sequence[t.Any], samples: torch.Tensor):
        """Log-probabilities (nats) of ``samples`` in ``states``, the policy's entropies there (nats; for the
        magnitude and axis, those given the sampled direction) and the critic's values."""
        logps, entropies, values = [], [], []
        for state, sample in zip(states, samples, strict=True):
            code = self.encode(*state)
            logp, entropy = self._evaluate(code, sample)
            logps.append(logp)
            entropies.append(entropy)
            values.append(self.critic(code['h'])[0])
        return torch.stack(logps), torch.stack(entropies), torch.stack(values)

    def value(self, state) -> torch.Tensor:
        """The critic's value of a state ``(atoms, agent)``."""
        return self.critic(self.encode(*state)['h'])[0]


def _beta_quantile(beta: torch.distributions.Beta, u: torch.Tensor) -> torch.Tensor:
    """The ``u`` quantile of ``beta`` from its tabulated CDF (deterministic, so seeded sampling is exact)."""
    grid = torch.linspace(1e-6, 1 - 1e-6, 2001, dtype=torch.float64)
    density = beta.log_prob(grid).exp()
    cdf = torch.cumsum((density[1:] + density[:-1]) / 2 * (grid[1:] - grid[:-1]), 0)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), cdf / cdf[-1]])
    index = int(torch.searchsorted(cdf, u).clamp(1, len(grid) - 1))
    low, high = grid[index - 1], grid[index]
    weight = (u - cdf[index - 1]) / (cdf[index] - cdf[index - 1]).clamp_min(1e-300)
    return (low + weight * (high - low)).clamp(1e-6, 1 - 1e-6)
