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
from ase.data import chemical_symbols
from e3nn import o3

from aiida_rlpath.rl.models.baseline import SAMPLE_DECIMALS, PolicyOutput

__all__ = ('MultipolePolicy', 'fibonacci_sphere')

SPECIES = {'Si': 0, 'O': 1, 'H': 2}
#: Scale of the direction and axis output layers at initialisation, relative to PyTorch's default: the untrained
#: policy is then close to the isotropic random one (at full scale the environment's large moments made it pick
#: one hemisphere: 12 % of SevenNet's first draws pointed down into the film).
ACTOR_INIT_SCALE = 0.01


def _squash(moment: torch.Tensor) -> torch.Tensor:
    """Each channel's moment (channels × (2l+1)) scaled by the invariant 1/sqrt(1 + |A|²): below 1 in norm, its
    orientation kept (equivariant). The heads then see moments of one scale whichever encoder made them (SevenNet's
    projected features reach norms of 8 where the multipoles stay under 0.3; unsquashed, the axis head fitted
    noise in the large ones and used up the PPO trust region)."""
    return moment / torch.sqrt(1 + (moment**2).sum(dim=-1, keepdim=True))


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


def _invariants(moments: t.Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Rotation invariants of per-degree moments: the l = 0 values, then each channel's norm for l > 0."""
    return [moments[0][:, 0]] + [m.norm(dim=1) for m in moments[1:]]


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
        backbone_channels: int = 0,
        critic_inputs: int = 0,
    ):
        super().__init__()
        self.d_max, self.cutoff, self.lmax, self.channels = float(d_max), float(cutoff), int(lmax), int(channels)
        self.hidden, self.grid_size, self.radial = int(hidden), int(grid), int(radial)
        self.register_buffer('grid', fibonacci_sphere(self.grid_size), persistent=False)
        self.register_buffer('centres', torch.linspace(0.5, self.cutoff, self.radial).double(), persistent=False)
        species = len(SPECIES) + 1
        self.radial_net = _mlp(self.radial * species, hidden, channels * (lmax + 1))
        # moment channels: the multipoles, then (in subclasses) those a backbone projects onto the O2
        self.moment_channels = total = channels + int(backbone_channels)
        invariants = total * (lmax + 1) + 2  # per-degree channel norms (l > 0) or values (l = 0); bond length, 1
        self.trunk = _mlp(invariants, hidden, hidden)
        self.direction_weights = torch.nn.Linear(hidden, total * (lmax + 1) + 1).double()
        self.magnitude_head = _mlp(hidden + total, hidden, 2)
        self.axis_weights = torch.nn.Linear(hidden + total, total * (lmax // 2 + 1) + 2).double()
        with torch.no_grad():  # actor outputs start small (CleanRL's 0.01-gain policy layer): near-isotropic at first
            for layer in (self.direction_weights, self.axis_weights):
                layer.weight.mul_(ACTOR_INIT_SCALE)
                layer.bias.mul_(ACTOR_INIT_SCALE)
        self.critic = _mlp(int(critic_inputs) or hidden, hidden, 1)  # reads code['critic'] (here: h)

    @property
    def architecture(self) -> dict[str, t.Any]:
        """What :func:`aiida_rlpath.rl.models.build_policy` needs to rebuild this model."""
        return {
            'name': self.name, 'd_max': self.d_max, 'cutoff': self.cutoff, 'lmax': self.lmax,
            'channels': self.channels, 'hidden': self.hidden, 'grid': self.grid_size, 'radial': self.radial,
        }  # fmt: skip

    # -- encoder ---------------------------------------------------------------------------------------------
    def environment(self, atoms, agent: t.Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Neighbour vectors from the O2 centre (Å, periodic images included), their atomic numbers, bond vector."""
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
        numbers = torch.from_numpy(probe.numbers[j[mask]].astype(np.int64))
        return torch.from_numpy(vectors[mask]), numbers, torch.from_numpy(np.asarray(bond))

    def multipoles(self, vectors: torch.Tensor, numbers: torch.Tensor) -> list[torch.Tensor]:
        """The environment's learned multipole moments about the O2 centre: per degree l, channels × (2l+1)."""
        kinds = [SPECIES.get(chemical_symbols[int(z)], len(SPECIES)) for z in numbers]
        onehot = torch.nn.functional.one_hot(torch.tensor(kinds, dtype=torch.long), len(SPECIES) + 1).double()
        distances = vectors.norm(dim=1, keepdim=True)
        width = self.cutoff / self.radial
        basis = torch.exp(-(((distances - self.centres) / width) ** 2))
        envelope = 0.5 * (torch.cos(math.pi * distances / self.cutoff) + 1)
        # explicit width: with no neighbour in the cutoff (an O2 in vacuum) there are 0 rows and -1 is ambiguous
        features = (basis[:, :, None] * onehot[:, None, :]).reshape(len(vectors), basis.shape[1] * onehot.shape[1])
        weights = (self.radial_net(features) * envelope).reshape(len(vectors), self.lmax + 1, self.channels)
        harmonics = _sh(self.lmax, vectors) if len(vectors) else torch.zeros(0, (self.lmax + 1) ** 2).double()
        return [
            torch.einsum('nc,nm->cm', weights[:, degree, :], harmonics[:, degree**2 : (degree + 1) ** 2])
            for degree in range(self.lmax + 1)
        ]

    def backbone(self, vectors: torch.Tensor, numbers: torch.Tensor, bond: torch.Tensor, multipoles) -> dict | None:
        """Extra moments from a pretrained backbone (``moments``: per degree, backbone channels × (2l+1)) and the
        critic's input (``critic``); none here, see :class:`~aiida_rlpath.rl.models.sevennet.SevenNetPolicy`."""
        return None

    def encode(self, atoms, agent) -> dict[str, torch.Tensor]:
        """Moments ``A`` (per degree l: moment channels × (2l+1)), bond harmonics, invariants ``h`` (hidden) and
        the critic's input of one state."""
        vectors, numbers, bond = self.environment(atoms, agent)
        moments = self.multipoles(vectors, numbers)
        extra = self.backbone(vectors, numbers, bond, moments)
        if extra is not None:
            moments = [torch.cat([own, more]) for own, more in zip(moments, extra['moments'], strict=True)]
        moments = [_squash(moment) for moment in moments]
        invariants = _invariants(moments)
        length = bond.norm()
        h = self.trunk(torch.cat([*invariants, length[None], torch.ones(1, dtype=torch.float64)]))
        critic = h if extra is None else extra['critic']
        return {'moments': moments, 'bond': _sh(self.lmax, (bond / length)[None])[0], 'h': h, 'critic': critic}

    # -- heads -----------------------------------------------------------------------------------------------
    def _direction_logits(self, code, points: torch.Tensor) -> torch.Tensor:
        weights = self.direction_weights(code['h'])
        harmonics = _sh(self.lmax, points)
        logits = torch.zeros(len(points), dtype=torch.float64)
        for degree, moment in enumerate(code['moments']):
            coefficients = weights[degree * self.moment_channels : (degree + 1) * self.moment_channels] @ moment
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
        logits = harmonics[:, 0] * (weights[: self.moment_channels] @ code['moments'][0][:, 0])
        if self.lmax >= 2:
            logits = logits + harmonics[:, 4:9] @ (
                weights[self.moment_channels : 2 * self.moment_channels] @ code['moments'][2]
            )
            logits = logits + weights[-2] * (harmonics[:, 4:9] @ _sh(2, direction[None])[0, 4:9])
            logits = logits + weights[-1] * (harmonics[:, 4:9] @ code['bond'][4:9])
        return logits

    # -- policy interface ------------------------------------------------------------------------------------
    def _nearest(self, vector) -> int:
        return int(torch.argmax(self.grid @ torch.as_tensor(vector, dtype=torch.float64)))

    def _heads(self, code, sample: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per head, (log-probability in nats, entropy in nats) of a raw sample [direction grid point, magnitude Å,
        axis grid point]; the magnitude's and axis's are those given the sampled direction."""
        direction_logp = torch.log_softmax(self._direction_logits(code, self.grid), 0)
        k = self._nearest(sample[:3])
        direction = self.grid[k]
        projections = self._projections(code, direction)
        magnitude = self._magnitude(code, projections)
        fraction = (sample[3] / self.d_max).clamp(1e-6, 1 - 1e-6)
        axis_logp = torch.log_softmax(self._axis_logits(code, projections, direction, self.grid), 0)
        return {
            'direction': (direction_logp[k], -(direction_logp.exp() * direction_logp).sum()),
            # the density of the magnitude in Å: the Beta's density of the fraction over d_max
            'magnitude': (
                magnitude.log_prob(fraction) - math.log(self.d_max),
                magnitude.entropy() + math.log(self.d_max),
            ),
            'axis': (axis_logp[self._nearest(sample[4:])], -(axis_logp.exp() * axis_logp).sum()),
        }

    def _evaluate(self, code, sample: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probability, entropy) of a raw sample, nats: the sums over the heads."""
        heads = self._heads(code, sample).values()
        return sum(logp for logp, _ in heads), sum(entropy for _, entropy in heads)

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
            value = self.critic(code['critic'])[0]
        return PolicyOutput(sample.numpy(), float(logp), float(value))

    def log_prob(self, states: t.Sequence[t.Any], samples: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (nats) of raw ``samples`` taken in ``states`` (each ``(atoms, agent)``)."""
        pairs = zip(states, samples, strict=True)
        return torch.stack([self._evaluate(self.encode(*state), sample)[0] for state, sample in pairs])

    def evaluate_heads(self, states: t.Sequence[t.Any], samples: torch.Tensor):
        """Per head (``direction``, ``magnitude``, ``axis``), the log-probabilities (nats) of ``samples`` in
        ``states`` and the heads' entropies there (nats; the magnitude's and axis's given the sampled direction),
        and the critic's values."""
        logps, entropies, values = {}, {}, []
        for state, sample in zip(states, samples, strict=True):
            code = self.encode(*state)
            for head, (logp, entropy) in self._heads(code, sample).items():
                logps.setdefault(head, []).append(logp)
                entropies.setdefault(head, []).append(entropy)
            values.append(self.critic(code['critic'])[0])
        stack = torch.stack
        return {h: stack(v) for h, v in logps.items()}, {h: stack(v) for h, v in entropies.items()}, stack(values)

    def evaluate(self, states: t.Sequence[t.Any], samples: torch.Tensor):
        """Log-probabilities (nats) of ``samples`` in ``states``, the policy's entropies there (nats; for the
        magnitude and axis, those given the sampled direction) and the critic's values."""
        logps, entropies, values = self.evaluate_heads(states, samples)
        return sum(logps.values()), sum(entropies.values()), values

    def value(self, state) -> torch.Tensor:
        """The critic's value of a state ``(atoms, agent)``."""
        return self.critic(self.encode(*state)['critic'])[0]


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
