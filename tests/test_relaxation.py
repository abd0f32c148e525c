"""RL crystal relaxation: environment invariants, rewards, actor equivariance, classical and learned optimizers, TD3."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import write
from scipy.spatial.transform import Rotation

from aiida_rlpath.envs.relaxation import (
    EpsilonSchedule,
    RelaxationEnv,
    RelaxationSettings,
    RewardSchedule,
    apply_displacement,
    crystal_graph,
    min_distance,
    read_structures,
    relaxation_reward,
)
from aiida_rlpath.physics.relax import relax
from aiida_rlpath.rl.algos import td3
from aiida_rlpath.rl.algos.imitation import ImitationSettings, fit
from aiida_rlpath.rl.buffers import GraphReplayBuffer, Transition
from aiida_rlpath.rl.models.tfn import CGCNNActor, TFNActor, TFNCritic, collate
from aiida_rlpath.rl.optimizer import RLOptimizer, load_actor
from aiida_rlpath.systems.alfe import ALFE_PES, random_alfe_cell, reference_minimum, split_by_size


@pytest.fixture(scope='module')
def minima():
    return [reference_minimum(random_alfe_cell(n, seed=100 + n), seed=n).atoms for n in (4, 6, 7)]


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn at random (the untrained actor's zero output layer would hide the network)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return module


def test_reset_and_step_invariants(minima):
    env = RelaxationEnv(minima, settings=RelaxationSettings(beta=0.2, eps1=0.1, max_steps=5))
    obs, info = env.reset(seed=3)
    again_obs, again = env.reset(seed=3)
    assert np.allclose(obs.nodes, again_obs.nodes) and info['structure'] == again['structure']
    assert info['force_calls'] == 1 and info['fmax'] > 0.1
    n = len(env.atoms)
    assert obs.nodes.shape == (n, 1 + 9) and obs.edge_links.shape[1] == 2
    assert env.action_space.shape == (n, 3)
    cell = env.atoms.cell.array.copy()
    for step in range(1, 6):
        _, reward, terminated, truncated, info = env.step(np.zeros((n, 3)))
        assert info['force_calls'] == step + 1
        assert np.allclose(env.atoms.cell.array, cell)  # fixed cell
        assert reward == pytest.approx(-np.log10(info['fmax'] / 0.1))
    assert truncated and not terminated
    with pytest.raises(ValueError, match=r'shape'):
        env.step(np.zeros((n + 1, 3)))
    with pytest.raises(ValueError, match='non-finite'):
        env.step(np.full((n, 3), np.nan))


def test_episode_terminates_at_the_minimum_and_step_moves_are_capped(minima):
    env = RelaxationEnv(minima, settings=RelaxationSettings(eps1=0.05, max_step=0.1, reward='step'))
    env.reset(seed=0, options={'atoms': minima[0]})
    _, reward, terminated, _, info = env.step(np.zeros((4, 3)))
    assert terminated and reward == 0.0 and info['fmax'] < 0.05
    env.reset(seed=1, options={'structure': 0})
    before = env.atoms.positions.copy()
    env.step(np.full((4, 3), 5.0))  # far too large: capped at 0.1 Å per atom
    moved = np.linalg.norm(env.atoms.positions - before, axis=1)
    assert moved.max() <= 0.1 + 1e-9


def test_guard_refuses_moves_that_bring_atoms_too_close():
    atoms = Atoms('Al2', positions=[[0, 0, 0], [2.5, 0, 0]], cell=[8, 8, 8], pbc=True)
    towards = np.array([[0.6, 0, 0], [-0.6, 0, 0]])
    moved, fraction = apply_displacement(atoms, towards, max_step=1.0, d_min=1.5)
    assert fraction == 0.5 and min_distance(moved) == pytest.approx(1.9)
    moved, fraction = apply_displacement(atoms, towards * 2, max_step=1.0, d_min=2.45)
    assert fraction == 0.0 and np.allclose(moved.positions, atoms.positions)


def test_rewards_and_schedules():
    assert relaxation_reward('force', 0.4, 0.1) == -0.4
    assert relaxation_reward('step', 0.4, 0.1) == -1.0 and relaxation_reward('step', 0.05, 0.1) == 0.0
    assert relaxation_reward('log_force', 1.0, 0.1) == pytest.approx(-1.0)
    assert relaxation_reward('log_force', 0.05, 0.1) > 0  # converging pays
    hybrid = relaxation_reward('hybrid', 1.0, 0.1, {'step': 2.0, 'log_force': 0.5})
    assert hybrid == pytest.approx(2.0 * -1 + 0.5 * -1)
    with pytest.raises(ValueError, match='unknown reward'):
        relaxation_reward('energy', 1.0, 0.1)
    with pytest.raises(ValueError, match='unknown hybrid'):
        relaxation_reward('hybrid', 1.0, 0.1, {'stress': 1.0})
    with pytest.raises(ValueError, match='unknown reward'):
        RelaxationSettings(reward='nope')
    schedule = EpsilonSchedule(0.5, 0.05, 10)
    values = [schedule(e) for e in range(12)]
    assert values[0] == 0.5 and values[-1] == 0.05 and all(a > b for a, b in itertools.pairwise(values[:11]))
    switch = RewardSchedule('log_force', 'step', 3)
    assert switch(2) == 'log_force' and switch(3) == 'step'


def test_tfn_actor_is_equivariant_and_critic_invariant(minima):
    env = RelaxationEnv(minima)
    env.reset(seed=5)
    env.step(np.random.default_rng(0).normal(0, 0.05, (len(env.atoms), 3)))  # history vectors non-zero
    graph = env.graph
    actor, critic = _randomise(TFNActor(), 0), _randomise(TFNCritic(), 1)
    rotation = Rotation.random(random_state=7).as_matrix()
    d = actor(collate([graph])).detach().numpy()
    d_rot = actor(collate([graph.rotated(rotation)])).detach().numpy()
    assert np.abs(d).max() > 1e-2  # a non-trivial output
    assert np.abs(d @ rotation.T - d_rot).max() < 1e-4
    action = torch.as_tensor(d)
    q = critic(collate([graph]), action).item()
    q_rot = critic(collate([graph.rotated(rotation)]), action @ torch.as_tensor(rotation.T, dtype=torch.float32))
    assert q_rot.item() == pytest.approx(q, abs=1e-4)
    # translation: the graph of translated atoms is the same graph, so the same moves
    shifted = env.atoms.copy()
    shifted.translate([0.37, -1.2, 2.9])
    d_shift = actor(collate([crystal_graph(shifted, graph.vectors, env.settings.cutoff)])).detach().numpy()
    assert np.abs(d - d_shift).max() < 1e-4
    # the CGCNN baseline, fed raw Cartesian components, is not equivariant
    baseline = _randomise(CGCNNActor(), 2)
    b, b_rot = (baseline(collate([g])).detach().numpy() for g in (graph, graph.rotated(rotation)))
    assert np.abs(b @ rotation.T - b_rot).max() > 1e-3


def test_classical_optimizers_and_untrained_rl_optimizer_converge(minima, tmp_path):
    from aiida_rlpath.systems.alfe import distort

    start = distort(minima[1], 0.2, seed=4)
    calc = ALFE_PES.calculator()
    calls = {}
    for name in ('BFGS', 'LBFGS', 'FIRE', 'CG'):
        result = relax(start, calc, fmax=0.1, max_steps=1000, optimizer=name)
        assert result.converged and result.fmax <= 0.1, name
        calls[name] = result.force_calls
    agent = td3.TD3Agent(3, td3.TD3Settings(), seed=0)  # untrained: a cautious steepest descent
    path = tmp_path / 'actor.pt'
    td3.save_checkpoint(agent, path)
    actor = load_actor(str(path))
    result = relax(start, calc, fmax=0.1, max_steps=1000, optimizer=functools.partial(RLOptimizer, actor=actor))
    assert result.converged and result.force_calls > calls['BFGS']
    # the ASE way, like BFGS
    atoms = start.copy()
    atoms.calc = ALFE_PES.calculator()
    assert RLOptimizer(atoms, str(path), logfile=None).run(fmax=0.1, steps=1000)
    assert np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max() <= 0.1


def test_read_structures_and_size_split(minima, tmp_path):
    write(tmp_path / 'a.cif', minima[0])
    write(tmp_path / 'b.extxyz', minima[1])
    structures = read_structures([tmp_path])
    assert [len(a) for a in structures] == [4, 6]
    write(tmp_path / 'bad.extxyz', Atoms('Cu', cell=[3, 3, 3], pbc=True))
    with pytest.raises(ValueError, match=r'bad.extxyz.*Cu'):
        read_structures([tmp_path])
    molecule = tmp_path / 'mol' / 'm.extxyz'
    molecule.parent.mkdir()
    write(molecule, Atoms('Al2', positions=[[0, 0, 0], [2.5, 0, 0]]))
    with pytest.raises(ValueError, match='not periodic'):
        read_structures([molecule])
    train, validation = split_by_size([2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 20])
    assert train == [6, 7, 9, 12] and validation == [2, 3, 4, 5, 8, 10, 20]


def test_replay_buffer_is_a_seeded_ring():
    buffer = GraphReplayBuffer(3, seed=0)
    for i in range(5):
        buffer.add(Transition(i, np.zeros((1, 3)), float(i), i + 1, False))
    assert len(buffer) == 3 and sorted(tr.reward for tr in buffer.items) == [2.0, 3.0, 4.0]
    again = GraphReplayBuffer(3, seed=0)
    for tr in buffer.items:
        again.add(tr)
    assert [tr.reward for tr in buffer.sample(8)] == [tr.reward for tr in again.sample(8)]


def test_state_noise_is_one_rotation_and_scaling():
    vectors = np.random.default_rng(1).normal(size=(5, 3, 3))
    noisy = td3.state_noise(vectors, np.random.default_rng(2), 0.3, 0.3)
    gram, noisy_gram = (np.einsum('nki,mli->nkml', v, v) for v in (vectors, noisy))
    ratio = noisy_gram / gram
    assert np.allclose(ratio, ratio.flat[0])  # all dot products scaled by one factor: one rotation for all


def test_tiny_td3_training_lowers_max_force(minima):
    settings = td3.TD3Settings(
        episodes=4, eval_every=2, eval_starts=2, eval_max_steps=40, warmup_steps=20, batch_size=8,
        epsilon=EpsilonSchedule(0.5, 0.3, 4), reward=RewardSchedule('log_force', 'step', 2),
    )  # fmt: skip
    env = RelaxationEnv(minima[1:], settings=RelaxationSettings(max_steps=25))
    validation = RelaxationEnv(minima[:1])
    agent, records = td3.train(env, validation, settings, seed=0, fmax=0.3)
    assert agent.updates > 0 and len(records) == 2
    starts = []
    for seed in range(3):
        _, info = env.reset(seed=seed)
        starts.append(info['fmax'])
    assert records[-1]['train_end_fmax'] < np.mean(starts)  # episodes end with lower forces than they start
    assert records[-1]['evaluation']['converged_fraction'] == 1.0
    initial = td3.TD3Agent(3, settings, seed=0).actor.state_dict()
    changed = [k for k, v in agent.actor.state_dict().items() if not torch.equal(v, initial[k])]
    assert changed  # the actor was trained
    _, again = td3.train(env, validation, settings, seed=0, fmax=0.3)
    assert again[-1]['evaluation']['force_calls'] == records[-1]['evaluation']['force_calls']  # seeded


def test_training_resumes_from_serialised_state_exactly(minima):
    settings = td3.TD3Settings(
        episodes=4, eval_every=2, eval_starts=1, eval_max_steps=30, warmup_steps=10, batch_size=4,
        epsilon=EpsilonSchedule(0.6, 0.4, 4),
    )  # fmt: skip
    env = RelaxationEnv(minima[1:2], settings=RelaxationSettings(max_steps=15))
    validation = RelaxationEnv(minima[:1])
    _, straight = td3.train(env, validation, settings, seed=1, fmax=0.4)
    state = td3.start_training(3, settings, seed=1)
    first = td3.train_round(state, env, validation, fmax=0.4)
    resumed = td3.state_from_bytes(td3.state_to_bytes(state), 3, settings)
    assert len(resumed.buffer) == len(state.buffer) > 0
    second = td3.train_round(resumed, env, validation, fmax=0.4)
    assert first['evaluation'] == straight[0]['evaluation']
    assert second['evaluation'] == straight[1]['evaluation'] and second['updates'] == straight[1]['updates']
    for key, value in second['checkpoint']['actor'].items():
        assert torch.equal(value, straight[1]['checkpoint']['actor'][key]), key


def test_sac_policy_is_equivariant_with_exact_log_probabilities(minima):
    from aiida_rlpath.rl.algos.sac import log_prob
    from aiida_rlpath.rl.models.tfn import squash

    env = RelaxationEnv(minima)
    env.reset(seed=2)
    actor = _randomise(TFNActor(), 3)
    rotation = Rotation.random(random_state=4).as_matrix()
    (mean, log_std), (mean_rot, log_std_rot) = (
        actor.distribution(collate([g])) for g in (env.graph, env.graph.rotated(rotation))
    )
    assert torch.allclose(mean @ torch.as_tensor(rotation.T, dtype=torch.float32), mean_rot, atol=1e-4)
    assert torch.allclose(log_std, log_std_rot, atol=1e-4)
    # log π(a) = log N(u; μ, σ²) − log|det ∂a/∂u|, checked against autograd's Jacobian for one atom
    mu, ls = torch.tensor([[0.1, -0.2, 0.05]], dtype=torch.float64), torch.tensor([-2.0], dtype=torch.float64)
    u = torch.tensor([[0.3, 0.1, -0.2]], dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda x: squash(x, 0.3), u)[0, :, 0, :]
    gaussian = torch.distributions.Normal(mu, ls.exp()).log_prob(u).sum()
    expected = gaussian - torch.logdet(jacobian)
    assert log_prob(mu, ls, u, 0.3, torch.zeros(1, dtype=torch.long), 1).item() == pytest.approx(expected.item())


def test_tiny_sac_training_runs_and_resumes(minima):
    settings = td3.TD3Settings(
        algorithm='sac', episodes=4, eval_every=2, eval_starts=1, eval_max_steps=40, warmup_steps=10,
        batch_size=4, epsilon=EpsilonSchedule(0.6, 0.4, 4),
    )  # fmt: skip
    env = RelaxationEnv(minima[1:2], settings=RelaxationSettings(max_steps=15))
    validation = RelaxationEnv(minima[:1])
    agent, straight = td3.train(env, validation, settings, seed=1, fmax=0.4)
    assert agent.updates > 0 and agent.alpha.item() != pytest.approx(settings.init_alpha)
    assert straight[-1]['evaluation']['converged_fraction'] == 1.0
    state = td3.start_training(3, settings, seed=1)
    td3.train_round(state, env, validation, fmax=0.4)
    resumed = td3.state_from_bytes(td3.state_to_bytes(state), 3, settings)
    second = td3.train_round(resumed, env, validation, fmax=0.4)
    assert second['evaluation'] == straight[1]['evaluation']


def test_imitation_warm_start_learns_to_relax_and_resumes_exactly(minima):
    """DAgger on hindsight minima: labels are displacements to the episode's BFGS minimum (translation removed);
    two small rounds already relax an unseen cell size in fewer force calls than the untrained actor; the
    training state (demonstrations included) resumes exactly."""
    settings = td3.TD3Settings(
        episodes=1, eval_every=1, eval_starts=4, eval_max_steps=60, warmup_steps=1000,
        imitation=ImitationSettings(rounds=2, episodes=4, updates=60, batch_size=8, max_steps=15),
    )  # fmt: skip
    env = RelaxationEnv(minima[1:], settings=RelaxationSettings(max_steps=15))
    validation = RelaxationEnv(minima[:1])
    state = td3.start_training(3, settings, seed=0)
    untrained = td3.evaluate(state.agent.actor, validation, state.eval_seeds, 0.1, 60)
    first = td3.train_round(state, env, validation, fmax=0.1)
    assert first['reward'] == 'imitation' and first['imitation']['labelled'] >= 3
    assert len(state.demonstrations) == first['imitation']['demonstrations'] > 4
    for demo in state.demonstrations[:5]:
        assert demo.target.shape == (len(demo.graph.numbers), 3)
        assert np.abs(demo.target.mean(axis=0)).max() < 1e-5  # the zero mode (a rigid translation) is removed
    resumed = td3.state_from_bytes(td3.state_to_bytes(state), 3, settings)
    assert resumed.imitation_round == 1 and len(resumed.demonstrations) == len(state.demonstrations)
    second = td3.train_round(resumed, env, validation, fmax=0.1)
    _, straight = td3.train(env, validation, settings, seed=0, fmax=0.1)
    assert [r['reward'] for r in straight] == ['imitation', 'imitation', 'log_force']
    assert second['evaluation'] == straight[1]['evaluation']
    for key, value in second['checkpoint']['actor'].items():
        assert torch.equal(value, straight[1]['checkpoint']['actor'][key]), key
    trained = second['evaluation']
    assert trained['converged_fraction'] == 1.0
    assert trained['median_force_calls'] < 0.6 * untrained['median_force_calls'], (trained, untrained)


def test_imitation_settings_are_checked():
    with pytest.raises(ValueError, match='imitation `updates`'):
        ImitationSettings(updates=0)
    with pytest.raises(ValueError, match='noise_prob'):
        ImitationSettings(noise_prob=2.0)
    with pytest.raises(ValueError, match='no labelled demonstrations'):
        fit(TFNActor(), [], np.random.default_rng(0), ImitationSettings())
