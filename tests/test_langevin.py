"""Overdamped Langevin dynamics, LJ7 states, exact path weights and the RL rate estimate (reduced LJ units)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aiida_rlpath.envs.langevin import TransitionProblem, brute_force, shoot
from aiida_rlpath.physics.langevin import (
    LangevinSettings,
    double_well,
    lj2d_forces,
    lj7_collective_variables,
    step,
)
from aiida_rlpath.physics.pes import lj2d_energy_forces
from aiida_rlpath.rl.algos.value_is import CommittorNetwork, SamplerSettings, estimate_rate
from aiida_rlpath.systems.lj7 import STATE_CVS, collective_variables, find_minima, minimum_positions


def test_lj7_states_are_the_four_lowest_minima():
    minima = find_minima(seed=0, trials=100)
    for (name, cvs), minimum, energy in zip(
        STATE_CVS.items(), minima, [-12.535, -11.501, -11.477, -11.403], strict=True
    ):
        assert minimum.energy == pytest.approx(energy, abs=0.002)
        assert (minimum.mu2, minimum.mu3) == pytest.approx(cvs, abs=1e-4), name
        assert collective_variables(minimum_positions(name)) == pytest.approx(cvs, abs=1e-4)
    with pytest.raises(ValueError, match='unknown LJ7 state'):
        minimum_positions('C7')


def test_batched_forces_and_collective_variables_match_the_single_configuration_code():
    rng = np.random.default_rng(0)
    batch = np.stack([minimum_positions(name) + rng.normal(0, 0.05, (7, 2)) for name in STATE_CVS])
    energies, forces = lj2d_forces(torch.tensor(batch))
    cvs = lj7_collective_variables(torch.tensor(batch)).numpy()
    for k, xy in enumerate(batch):
        energy, force = lj2d_energy_forces(xy)
        assert energies[k].item() == pytest.approx(energy, rel=1e-12)
        assert forces[k].numpy() == pytest.approx(force, rel=1e-10, abs=1e-10)
        assert cvs[k] == pytest.approx(collective_variables(xy), rel=1e-10)


def test_euler_maruyama_samples_the_boltzmann_density_of_a_double_well():
    beta, barrier = 2.0, 1.0
    settings = LangevinSettings(beta=beta, dt=0.002)
    potential = double_well(barrier)
    generator = torch.Generator().manual_seed(0)
    x = torch.where(torch.arange(4000) % 2 == 0, 1.0, -1.0).double()[:, None, None]
    samples = []
    for k in range(3000):
        _, forces = potential(x)
        x, log_weight = step(x, forces, settings, generator)
        assert torch.all(log_weight == 0)
        if k >= 1000 and k % 100 == 0:
            samples.append(x[:, 0, 0].numpy().copy())
    samples = np.concatenate(samples)
    edges = np.linspace(-2.0, 2.0, 41)
    histogram, _ = np.histogram(samples, edges, density=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    grid = np.linspace(-3, 3, 6001)
    norm = np.trapezoid(np.exp(-beta * barrier * (grid**2 - 1) ** 2), grid)
    boltzmann = np.exp(-beta * barrier * (centres**2 - 1) ** 2) / norm
    assert np.abs(histogram - boltzmann).max() < 0.05  # densities peak at 0.55 / σ
    assert np.abs(histogram - boltzmann).sum() * (edges[1] - edges[0]) < 0.03  # total variation


def test_biased_steps_with_their_weights_give_unbiased_averages():
    """A constant push of 0.15 s per step towards +x, reweighted, reproduces the unbiased mean after 30 steps."""
    settings = LangevinSettings(beta=2.0, dt=0.002)
    potential = double_well(1.0)
    n = 40000
    estimates = {}
    for label, push in (('plain', None), ('biased', 0.15)):
        generator = torch.Generator().manual_seed(1)
        x = torch.full((n, 1, 1), -1.0, dtype=torch.float64)
        log_w = torch.zeros(n, dtype=torch.float64)
        for _ in range(30):
            _, forces = potential(x)
            bias = None if push is None else torch.full_like(x, push * settings.noise)
            x, dlog = step(x, forces, settings, generator, bias)
            log_w += dlog
        weights = torch.exp(log_w).numpy()
        values = weights * x[:, 0, 0].numpy()
        estimates[label] = (values.mean(), values.std() / np.sqrt(n), x[:, 0, 0].numpy().mean(), weights.mean())
    plain, biased = estimates['plain'], estimates['biased']
    assert biased[2] - plain[2] > 0.1  # the push moved the walkers (σ)
    assert abs(biased[0] - plain[0]) < 4 * np.hypot(plain[1], biased[1])  # the weighted mean did not move
    assert biased[3] == pytest.approx(1.0, abs=0.02)  # E[weight] = 1


def test_path_weights_are_exactly_one_when_the_value_is_constant():
    problem = TransitionProblem(beta=6.0)
    network = CommittorNetwork(seed=0)  # untrained: zero output layer, V constant
    starts = minimum_positions('C0')[None] + np.random.default_rng(0).normal(0, 0.02, (5, 7, 2))
    drift = network.drift(torch.tensor(starts), problem.settings.noise, 1.0)
    assert torch.all(drift == 0)
    ensemble, data = shoot(
        problem, starts, paths=20, walkers=10, seed=0, max_steps=200,
        bias=lambda x: network.drift(x, problem.settings.noise, 1.0),
    )  # fmt: skip
    assert np.all(ensemble.log_weight == 0.0)
    assert np.all(ensemble.weights == 1.0)
    assert np.all(data.log_weight == 0.0)
    assert ensemble.force_evals == ensemble.steps.sum()


def test_problem_validation_names_the_bad_input():
    with pytest.raises(ValueError, match="unknown LJ7 state 'C9'"):
        TransitionProblem(beta=5.0, target='C9')
    with pytest.raises(ValueError, match='same state'):
        TransitionProblem(beta=5.0, start='C3', target='C3')
    with pytest.raises(ValueError, match='beta must be positive'):
        TransitionProblem(beta=-1.0)
    with pytest.raises(ValueError, match='state_radius < interface_radius'):
        TransitionProblem(beta=5.0, state_radius=0.3, interface_radius=0.2)
    with pytest.raises(ValueError, match='no start configurations'):
        shoot(TransitionProblem(beta=5.0), np.zeros((0, 7, 2)), paths=1, walkers=1, seed=0)


def test_a_short_seeded_run_gives_a_finite_rate_with_an_error_bar():
    problem = TransitionProblem(beta=5.0)
    settings = SamplerSettings(
        cycles=2, paths=100, walkers=100, td_epochs=100, production_paths=200, flux_walkers=100, flux_steps=1000,
        max_steps=1000,
    )  # fmt: skip
    result = estimate_rate(problem, settings, seed=0)
    assert result['crossings'] > 0 and result['flux'] > 0
    assert 0 < result['probability'] < 1
    assert 0 < result['rate'] < np.inf and 0 < result['rate_err'] < np.inf
    assert result['force_evals'] == (
        result['force_evals_flux'] + result['force_evals_training'] + result['force_evals_production']
    )
    assert len(result['history']) == 2
    again = estimate_rate(problem, settings, seed=0)
    assert again['rate'] == result['rate']  # seeded
    plain = brute_force(problem, walkers=100, steps=200, seed=0)
    assert plain.events >= 0 and plain.rate_err > 0 and plain.force_evals == 100 * 200
