"""Overdamped Langevin dynamics, vectorised over walkers, with exact path weights for a biased drift.

    dx = −γ⁻¹ ∇U(x) dt + sqrt(2 γ⁻¹ β⁻¹) dW                        (Euler–Maruyama, step ``dt``)

Units are reduced Lennard-Jones units throughout: energies in ε, lengths in σ, times in τ = γσ²/ε (γ is the
friction, ε·τ/σ²), ``beta`` = 1/k_BT in 1/ε. For argon-like ε/k_B = 120 K, β = 5 is 24 K; nothing here depends on
that mapping.

A *biased* step adds a drift ``u(x)`` (σ) to the mean of the Gaussian step; the step's log weight
log π(y|x) − log π'(y|x) = −u²/(2s²) − u·ξ/s (s² = 2γ⁻¹β⁻¹dt, ξ the unit normal draw) makes averages over biased
paths exactly those of the unbiased Euler–Maruyama chain. With u = s²∇log V(x) the biased kernel is the Gaussian
(locally linear) realisation of π'(y|x) = V(y)/V(x)·π(y|x); u = 0 gives weights exactly 1.

Walkers are torch float64 tensors of shape (W, N, d). Every random draw comes from a ``torch.Generator`` seeded by
the caller.
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np
import torch

__all__ = (
    'LangevinSettings',
    'PathEnsemble',
    'com_restraint',
    'double_well',
    'lj2d_forces',
    'lj7_collective_variables',
    'lj7_potential',
    'step',
)

R0, N_SWITCH, M_SWITCH = 1.5, 8, 16  # the coordination switching function of aiida_rlpath.systems.lj7

ForceField = t.Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""x (W, N, d) → (energies (W,), forces (W, N, d)); ε and ε/σ."""


@dataclasses.dataclass(frozen=True)
class LangevinSettings:
    """Overdamped Langevin parameters: ``beta`` (1/ε), ``dt`` (τ), ``gamma`` (friction, ε·τ/σ²)."""

    beta: float
    dt: float = 0.005
    gamma: float = 1.0

    def __post_init__(self):
        for name in ('beta', 'dt', 'gamma'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be positive, got {getattr(self, name)}')

    @property
    def noise(self) -> float:
        """Standard deviation s = sqrt(2 γ⁻¹ β⁻¹ dt) (σ) of each coordinate's step."""
        return float(np.sqrt(2.0 * self.dt / (self.gamma * self.beta)))


def lj2d_forces(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2D (or 3D) Lennard-Jones energies (ε) and forces (ε/σ) of a batch ``x`` (W, N, d), ε = σ = 1, no cutoff."""
    delta = x[:, :, None, :] - x[:, None, :, :]
    r2 = (delta * delta).sum(-1)
    n = x.shape[1]
    r2 = r2 + torch.eye(n, dtype=x.dtype, device=x.device) * 1e300  # no self-interaction
    inv6 = r2**-3
    energy = 2.0 * (inv6 * inv6 - inv6).sum((1, 2))  # 4ε Σ_{i<j} = 2ε Σ_{i≠j}
    scale = 24.0 * (2.0 * inv6 * inv6 - inv6) / r2
    forces = (scale[..., None] * delta).sum(2)
    return energy, forces


def com_restraint(k: float) -> ForceField:
    """Harmonic restraint k/2·R² on the centre of mass R (k in ε/σ²): keeps a free cluster near the origin."""

    def restraint(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        com = x.mean(1)
        energy = 0.5 * k * (com * com).sum(-1)
        return energy, (-k / x.shape[1]) * com[:, None, :].expand_as(x)

    return restraint


def lj7_potential(restraint: float = 1.0) -> ForceField:
    """The LJ7 potential of the walkers: 2D Lennard-Jones plus the centre-of-mass restraint (``restraint``, ε/σ²)."""
    com = com_restraint(restraint)

    def potential(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e_lj, f_lj = lj2d_forces(x)
        e_com, f_com = com(x)
        return e_lj + e_com, f_lj + f_com

    return potential


def double_well(barrier: float = 1.0) -> ForceField:
    """U(x) = h (x² − 1)² for walkers of shape (W, 1, 1): minima at ±1 σ, barrier h = ``barrier`` ε at 0."""

    def potential(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = x[..., 0, 0]
        energy = barrier * (q * q - 1.0) ** 2
        force = -4.0 * barrier * q * (q * q - 1.0)
        return energy, force[:, None, None]

    return potential


def lj7_collective_variables(x: torch.Tensor) -> torch.Tensor:
    """(μ2, μ3) of a batch (W, 7, 2) → (W, 2): second and third central moments of the coordination numbers.

    The coordination numbers use the rational switching function of :mod:`aiida_rlpath.systems.lj7`
    (r0 = 1.5 σ, exponents 8 and 16); differentiable, for the value network's gradient.
    """
    delta = x[:, :, None, :] - x[:, None, :, :]
    n = x.shape[1]
    off = ~torch.eye(n, dtype=torch.bool, device=x.device)
    r = torch.sqrt((delta * delta).sum(-1)[:, off].clamp_min(1e-12)) / R0
    # (1 − r^8)/(1 − r^16) = 1/(1 + r^8): the same function without the removable singularity at r = r0
    switch = 1.0 / (1.0 + r**N_SWITCH)
    c = switch.reshape(x.shape[0], n, n - 1).sum(-1)
    deviation = c - c.mean(1, keepdim=True)
    return torch.stack([(deviation**2).mean(1), (deviation**3).mean(1)], dim=1)


def step(
    x: torch.Tensor,
    forces: torch.Tensor,
    settings: LangevinSettings,
    generator: torch.Generator,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler–Maruyama step of all walkers; returns (new positions, log path-weight increments (W,)).

    ``forces`` (ε/σ) at ``x`` (σ); ``bias`` an extra displacement u (σ, same shape as ``x``) added to the mean. The
    log weight is log π(y|x) − log π'(y|x) of the unbiased over the biased Gaussian kernel: exactly 0 without bias.
    """
    s = settings.noise
    xi = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    mean = x + (settings.dt / settings.gamma) * forces
    if bias is None:
        return mean + s * xi, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    log_weight = -(bias * bias).sum((1, 2)) / (2.0 * s * s) - (bias * xi).sum((1, 2)) / s
    return mean + bias + s * xi, log_weight


@dataclasses.dataclass
class PathEnsemble:
    """Shooting paths: ``outcome`` per path (1 reached the target, 0 returned to the start state, −1 cut at the
    step limit, −2 killed by branching), ``log_weight`` (path weights, unbiased over biased), ``steps`` per path
    and the total ``force_evals`` (walker-steps). ``cvs`` (paths, stored steps, 2) subsampled CV traces (NaN after
    the end). When paths branched, each entry is a leaf, ``root`` (leaves,) names the path it grew from and
    ``roots`` how many paths were started."""

    outcome: np.ndarray
    log_weight: np.ndarray
    steps: np.ndarray
    force_evals: int
    cvs: np.ndarray | None = None
    root: np.ndarray | None = None
    roots: int | None = None

    @property
    def weights(self) -> np.ndarray:
        return np.exp(self.log_weight)

    def probability(self) -> tuple[float, float]:
        """(P, standard error): the weighted fraction of paths that reached the target (unbiased); with branching,
        the mean and standard error over the started paths of their leaves' summed weights."""
        values = np.where(self.outcome == 1, self.weights, 0.0)
        if self.root is not None:
            values = np.bincount(self.root, weights=values, minlength=self.roots or 0)
        n = len(values)
        return float(values.mean()), float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float('inf')
