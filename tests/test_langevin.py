"""Overdamped Langevin dynamics, LJ7 states, exact path weights and the RL rate estimate (reduced LJ units)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aiida_rlpath.envs.langevin import TransitionProblem, Transitions, brute_force, shoot
from aiida_rlpath.physics.langevin import (
    LangevinSettings,
    double_well,
    lj2d_forces,
    lj7_collective_variables,
    step,
)
from aiida_rlpath.physics.pes import lj2d_energy_forces
from aiida_rlpath.rl.algos.value_is import (
    CommittorNetwork,
    SamplerSettings,
    _shoot_driven,
    estimate_rate,
    lambda_returns,
)
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
    # the same through the sampler, with its start sampling and branching on: nothing moves a weight off 1
    settings = SamplerSettings(walkers=10, max_steps=200, stride=5)
    assert settings.branching
    ensemble, data = _shoot_driven(problem, starts, 20, settings, seed=1, network=network)
    assert len(ensemble.outcome) == 20  # no path split or pruned
    assert np.all(ensemble.log_weight == 0.0) and np.all(data.log_weight == 0.0)


def test_start_importance_sampling_carries_the_start_weights():
    problem = TransitionProblem(beta=5.0)
    starts = minimum_positions('C0')[None] + np.random.default_rng(1).normal(0, 0.05, (4, 7, 2))
    p = np.array([0.7, 0.1, 0.1, 0.1])
    ensemble, _ = shoot(problem, starts, paths=400, walkers=100, seed=2, max_steps=5, start_probabilities=p)
    # no drift: a path's weight is exactly 1/(n p) of its start, and the weights average to 1 over the draws
    allowed = -np.log(4 * p)
    assert np.all(np.min(np.abs(ensemble.log_weight[:, None] - allowed[None]), axis=1) < 1e-12)
    weights = ensemble.weights
    assert weights.mean() == pytest.approx(1.0, abs=4 * weights.std() / np.sqrt(len(weights)))
    assert np.mean(np.isclose(ensemble.log_weight, allowed[0])) == pytest.approx(0.7, abs=0.1)
    with pytest.raises(ValueError, match='start_probabilities must be 4 positive numbers'):
        shoot(problem, starts, paths=1, walkers=1, seed=0, start_probabilities=np.array([1.0, 0.0, 0.0, 0.0]))


def test_branching_keeps_the_path_averages_unbiased():
    problem = TransitionProblem(beta=4.0)
    starts = brute_force(problem, walkers=50, steps=800, seed=0).crossing_positions

    def log_value(x):  # any positive V will do: this one grows towards low μ3
        return -3.0 * lj7_collective_variables(x)[:, 1]

    paths = 400
    plain, _ = shoot(problem, starts, paths, walkers=200, seed=1, max_steps=400)
    branched, _ = shoot(problem, starts, paths, walkers=200, seed=2, max_steps=400, log_value=log_value)
    assert (branched.outcome == -2).any() and len(branched.outcome) > paths  # it both pruned and split
    assert np.array_equal(np.unique(branched.root), np.arange(paths))
    # the total weight of a path's surviving leaves is 1 on average (splitting shares it, roulette conserves it)
    totals = np.bincount(branched.root, np.where(branched.outcome == -2, 0.0, branched.weights), minlength=paths)
    assert totals.mean() == pytest.approx(1.0, abs=4 * totals.std() / np.sqrt(paths))
    # and the weighted probability of falling back into A agrees with plain shooting
    back = {}
    for label, ensemble, root in (('plain', plain, np.arange(paths)), ('branched', branched, branched.root)):
        per_path = np.bincount(root, np.where(ensemble.outcome == 0, ensemble.weights, 0.0), minlength=paths)
        back[label] = (per_path.mean(), per_path.std() / np.sqrt(paths))
    assert 0.2 < back['plain'][0] < 0.99
    assert abs(back['plain'][0] - back['branched'][0]) < 4 * np.hypot(back['plain'][1], back['branched'][1])


def test_lambda_returns_follow_each_leaf_of_a_branched_run():
    problem = TransitionProblem(beta=4.0)
    starts = brute_force(problem, walkers=50, steps=800, seed=0).crossing_positions

    def log_value(x):
        return -3.0 * lj7_collective_variables(x)[:, 1]

    ensemble, data = shoot(problem, starts, 100, walkers=100, seed=3, max_steps=300, stride=10, log_value=log_value)
    assert len(ensemble.outcome) > 100  # some paths split: copies are leaves of their own
    log_v = -3.0 * data.cv_to[:, 1]
    one_step = lambda_returns(data.log_weight, log_v, data.end, data.path, 0.0)
    monte_carlo = lambda_returns(data.log_weight, log_v, data.end, data.path, 1.0)
    half = lambda_returns(data.log_weight, log_v, data.end, data.path, 0.5)
    fell_back = 0
    for leaf in np.unique(data.path):
        rows = np.flatnonzero(data.path == leaf)
        # a leaf's rows chain in time order, and only its last row can end the path
        assert np.array_equal(data.cv_to[rows[:-1]], data.cv_from[rows[1:]])
        assert np.all(data.end[rows[:-1]] == 0)
        last = rows[-1]
        tail = np.cumsum(data.log_weight[rows][::-1])[::-1]  # log ρ from each row to the leaf's end
        if data.end[last] == 1:  # Monte Carlo: the weight of the rest of the leaf
            np.testing.assert_allclose(monte_carlo[rows], tail, rtol=0, atol=1e-9)
        elif data.end[last] == 2:
            fell_back += 1
            assert np.all(monte_carlo[rows] == -np.inf)
        else:  # cut or pruned: bootstrapped with V where the leaf stopped
            np.testing.assert_allclose(monte_carlo[rows], tail + log_v[last], rtol=0, atol=1e-9)
        if len(rows) > 1:  # λ = 1/2 mixes the one-step target with the next row's return
            expected = data.log_weight[rows[0]] + np.logaddexp(
                np.log(0.5) + log_v[rows[0]], np.log(0.5) + half[rows[1]]
            )
            assert half[rows[0]] == pytest.approx(expected, abs=1e-12)
    assert 0 < fell_back < len(np.unique(data.path))  # some fell back, some were cut or pruned
    # a hand-made pair of leaves, interleaved: leaf 0 reaches the target, leaf 1 falls back
    rows = (np.log([0.5, 2.0, 1.0, 1.5, 0.8]), np.log([0.3, 0.4, 0.6, 0.2, 0.9]), np.array([0, 0, 0, 1, 2]))
    path = np.array([0, 1, 0, 0, 1])
    np.testing.assert_allclose(np.exp(lambda_returns(*rows, path, 1.0)), [0.75, 0.0, 1.5, 1.5, 0.0], rtol=1e-12)
    np.testing.assert_allclose(np.exp(lambda_returns(*rows, path, 0.5)), [0.3375, 0.4, 1.05, 1.5, 0.0], rtol=1e-12)
    expected_one_step = np.where(data.end == 2, -np.inf, data.log_weight + np.where(data.end == 1, 0.0, log_v))
    assert np.array_equal(one_step, expected_one_step)
    both = Transitions.concatenate([data, data])
    assert len(np.unique(both.path)) == 2 * len(np.unique(data.path))  # the second part's leaves are renumbered


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


def test_rescaled_network_scales_log_value_by_the_beta_ratio():
    network = CommittorNetwork(hidden=8, seed=1, beta=5.0)
    with torch.no_grad():
        network.mlp[-1].weight.normal_(generator=torch.Generator().manual_seed(2))
    cvs = torch.tensor([[0.75, 1.3], [0.6, -0.1], [0.9, 0.3]], dtype=torch.float64)
    hot, cold = network(cvs), network.rescaled(7.5)(cvs)
    assert torch.allclose(cold, 1.5 * hot, rtol=1e-12)
    assert float(network.beta) == 5.0  # the original is untouched
    again = CommittorNetwork(hidden=8)
    again.load_state_dict(network.rescaled(7.5).state_dict())  # the scale travels with the weights
    assert torch.allclose(again(cvs), cold, rtol=1e-12)


SMALL = {
    'cycles': 1, 'warmup_cycles': 1, 'warmup_beta': 3.5, 'paths': 60, 'walkers': 60, 'td_epochs': 40,
    'production_paths': 100, 'flux_walkers': 60, 'flux_steps': 600, 'max_steps': 3000, 'replay': 2,
}  # fmt: skip


def test_workchain_matches_the_plain_sampler_and_stores_every_stage(aiida_profile):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_rlpath.workflows.langevin.sampling import LangevinSamplingWorkChain

    problem, settings = TransitionProblem(beta=4.5), SamplerSettings(**SMALL)
    plain = estimate_rate(problem, settings, seed=3, traces=5)
    builder = LangevinSamplingWorkChain.get_builder_from_settings(problem, settings, seed=3, traces=5)
    outputs, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    rate = outputs['rate']
    assert rate['probability'] == pytest.approx(plain['probability'], rel=1e-12)
    assert rate['rate'] == pytest.approx(plain['rate'], rel=1e-12)
    assert rate['rate_err'] == pytest.approx(plain['rate_err'], rel=1e-12)
    assert outputs['flux']['crossings'] == plain['crossings']
    assert np.array_equal(outputs['ensemble'].get_array('outcome'), plain['ensemble'].outcome)
    assert outputs['ensemble'].get_array('cvs').shape[0] == 5
    from aiida.common.links import LinkType

    calls = {link.link_label: link.node for link in node.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all()}
    assert all(call.is_finished_ok for call in calls.values())
    assert {'flux', 'cycle_00', 'cycle_01', 'production'} <= set(calls)
    metrics = [calls[f'cycle_{i:02d}'].outputs.metrics.get_dict() for i in (0, 1)]
    assert [m['beta'] for m in metrics] == [3.5, 4.5]
    for history, stored in zip(plain['history'], metrics, strict=True):
        assert stored['probability'] == pytest.approx(history['probability'], rel=1e-12)
    # the value network the production used is the last cycle's checkpoint, and it loads
    assert outputs['value'].uuid == calls['cycle_01'].outputs.value.uuid
    assert float(outputs['value'].load_state_dict()['beta']) == 4.5
    # cycle 1 replays nothing: cycle 0 ran at another beta
    assert not [k for k in calls['cycle_01'].inputs if k.startswith('replay')]
    assert isinstance(outputs['value'], orm.Data)


def test_workchain_refuses_bad_sampler_settings(aiida_profile):
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_rlpath.workflows.langevin.sampling import LangevinSamplingWorkChain

    builder = LangevinSamplingWorkChain.get_builder()
    with pytest.raises(ValueError, match='invalid `problem`: unknown LJ7 state'):
        builder.problem = orm.Dict({'beta': 5.0, 'target': 'C7'})
    with pytest.raises(ValueError, match='invalid `sampler`: paths must be positive'):
        builder.sampler = orm.Dict({'paths': 0})
    with pytest.raises(ValueError, match=r"invalid `sampler`: .*unexpected keyword argument 'pathz'"):
        builder.sampler = orm.Dict({'pathz': 10})
    with pytest.raises(ValueError, match='invalid `problem`: beta must be positive'):
        run_get_node(LangevinSamplingWorkChain, problem=orm.Dict({'beta': -1.0}))


def test_cli_run_then_report_prints_the_rate_and_writes_the_path_plot(aiida_profile, tmp_path):
    from click.testing import CliRunner

    from aiida_rlpath.cli import cmd_root

    args = ['-p', aiida_profile.name, 'langevin', 'run', '--beta', '5', '--seed', '1', '--cycles', '1',
            '--warmup-cycles', '0', '--paths', '60', '--production-paths', '100', '--max-steps', '800',
            '--traces', '10', '--output-dir', str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(cmd_root, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'k = ' in result.output and 'force evaluations in all' in result.output
    pk = int(result.output.split('LJ7 C0 -> C3 at beta 5.0 1/eps, <')[1].split('>')[0])
    assert (tmp_path / f'langevin_{pk}_paths.png').stat().st_size > 10_000
    report = CliRunner().invoke(cmd_root, ['-p', aiida_profile.name, 'langevin', 'report', str(pk), '--no-plots'])
    assert report.exit_code == 0, report.output
    assert 'k = ' in report.output and 'cycle' in report.output
    bad = CliRunner().invoke(cmd_root, ['-p', aiida_profile.name, 'langevin', 'run', '--beta', '5', '--to', 'C0'])
    assert bad.exit_code == 2 and 'same state' in bad.output
