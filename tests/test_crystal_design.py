"""RL crystal design: masking, property calculators (CHGNet, GFN1-xTB), caching, learners, a seeded run."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from aiida_rlpath.envs.crystal_design import (
    ChargeBalance,
    CrystalDesignEnv,
    PropertyCache,
    PropertyTarget,
    Prototype,
    parse_target,
    structure_hash,
)
from aiida_rlpath.physics import properties
from aiida_rlpath.rl.algos.design import DesignSettings, finish_episode, make_agent, run_design, sample_episode
from aiida_rlpath.systems.prototypes import PROTOTYPES, VOCABULARIES, prototype

ALKALI = ('Li', 'Na', 'K')
TINY = ['Na', 'K', 'Cl']  # rocksalt: (Na|K, Cl) or (Cl, Na|K): four structures, so six episodes must repeat one


def _oxidation_sum_possible(elements, balance: ChargeBalance) -> bool:
    return any(sum(c) == 0 for c in itertools.product(*(balance.states[e] for e in elements)))


def test_masking_never_allows_an_invalid_action():
    """Random masked rollouts on every prototype with the large vocabulary always end charge-balanced; on the
    2-site prototypes the mask equals brute-force enumeration; a masked action is refused with a clear error."""
    rng = np.random.default_rng(0)
    env = CrystalDesignEnv(list(PROTOTYPES), 'large')
    assert len(VOCABULARIES['small']) == 18 and len(VOCABULARIES['medium']) == 30 and len(VOCABULARIES['large']) == 50
    for episode in range(60):
        observation, info = env.reset(seed=episode)
        done = False
        while not done:
            mask = observation['action_mask']
            assert env.observation_space.contains(observation)
            assert mask.any()
            observation, reward, done, _, step_info = env.step(int(rng.choice(np.flatnonzero(mask))))
        elements = [str(s.specie) for s in step_info['structure']]
        assert _oxidation_sum_possible(elements, env.balance), (info['prototype'], elements)
        assert step_info['pending'] and reward == 0.0
    small = CrystalDesignEnv(['rocksalt'], 'small')
    observation, _ = small.reset(seed=0)
    first = observation['action_mask']
    brute_first = [any(_oxidation_sum_possible([a, b], small.balance) for b in small.vocabulary)
                   for a in small.vocabulary]  # fmt: skip
    assert first.tolist() == [int(x) for x in brute_first]
    for index in np.flatnonzero(first):
        small.reset(seed=0)
        observation, *_ = small.step(int(index))
        brute = [int(_oxidation_sum_possible([small.vocabulary[index], b], small.balance)) for b in small.vocabulary]
        assert observation['action_mask'].tolist() == brute
    small.reset(seed=0)
    small.step(small.vocabulary.index('Na'))
    with pytest.raises(ValueError, match='K is masked on site 1'):
        small.step(small.vocabulary.index('K'))
    free = CrystalDesignEnv(['rocksalt'], 'small', charge_balance=False)
    assert free.reset(seed=0)[0]['action_mask'].all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='unknown prototype'):
        CrystalDesignEnv(['halite'])
    with pytest.raises(ValueError, match="'Xx' in the vocabulary"):
        CrystalDesignEnv(['rocksalt'], ['Na', 'Xx'])
    with pytest.raises(ValueError, match='PROPERTY=VALUE'):
        parse_target('density3')
    with pytest.raises(ValueError, match='unknown property'):
        parse_target('hardness=3')
    with pytest.raises(ValueError, match='n_volumes must be >= 5'):
        properties.PropertySettings(n_volumes=3)
    with pytest.raises(ValueError, match='no element of the vocabulary can charge-balance'):
        CrystalDesignEnv(['rocksalt'], ['Na', 'K']).reset(seed=0)


def test_rewards_are_shaped_around_the_target():
    density = PropertyTarget('density', 3.0)
    assert density.reward(3.0) == 1.0 and math.isclose(density.reward(3.3), 0.5)
    assert density.reward(None) == density.reward(2.0, ok=False) == -1.0
    modulus = PropertyTarget('bulk_modulus', 300.0)
    assert modulus.kind == 'relative' and math.isclose(modulus.reward(150.0), 0.5) and modulus.reward(900.0) == 0.0
    assert density.within(3.14) and not density.within(3.16)


@pytest.mark.timeout(900)
def test_property_calculators_reproduce_known_values():
    """CHGNet (r2SCAN model, the default) relaxes Si to 2.32 g/cm³ (experiment 2.33) with a bulk modulus of
    85 GPa, in the issue's 80–110 GPa band (experiment 98.8). GFN1-xTB gives NaCl a clear gap and fcc Al none;
    an unsupported element fails with its exit status."""
    si = prototype('diamond')
    density = properties.evaluate_property(si, 'density')
    assert density.ok and density.converged and abs(density.value - 2.33) / 2.33 < 0.02, density.value
    modulus = properties.evaluate_property(si, 'bulk_modulus')
    assert modulus.ok and 80.0 < modulus.value < 110.0, modulus.value
    assert len(modulus.details['volumes']) == 7
    nacl = properties.evaluate_property(prototype('rocksalt'), 'band_gap')
    assert nacl.ok and nacl.value > 3.0, nacl.value
    aluminium = Structure.from_spacegroup('Fm-3m', Lattice.cubic(4.05), ['Al'], [[0, 0, 0]])
    gap = properties.evaluate_property(aluminium, 'band_gap')
    assert gap.ok and gap.value < 0.05
    failed = properties.evaluate_property(Structure(Lattice.cubic(3.0), ['Cm'], [[0, 0, 0]]), 'density')
    assert not failed.ok and failed.exit_status == 414 and 'ERROR_UNSUPPORTED_ELEMENT' in failed.message
    assert math.isnan(failed.value)


@pytest.mark.timeout(600)
def test_too_dense_starts_are_expanded_and_collapses_stop_the_relaxation():
    """A radius-rescaled N–F rock salt starts at 1.5 Å³ per atom, denser than any solid; it is expanded to 10 % above
    the 5 Å³ floor and relaxes to a physical density (from its own start CHGNet took it to 12.4 g/cm³). Diamond
    (5.7 Å³ per atom) passes the floor. A cell that shrinks through the floor (Si, 20 Å³ per atom, against a floor
    set to 25) stops its relaxation with exit 411 and the volume named."""
    nf = Prototype.build('rocksalt').decorate({0: 'N', 1: 'F'})
    assert nf.volume / len(nf) < 2.0
    result = properties.evaluate_property(nf, 'density')
    assert result.ok and result.value < 5.0 and result.relaxed.volume / len(nf) > 5.0, result.value
    carbon = Prototype.build('diamond').decorate({0: 'C', 1: 'C'})
    diamond = properties.evaluate_property(carbon, 'density')
    assert diamond.ok and abs(diamond.value - 3.515) / 3.515 < 0.03, diamond.value
    collapsed = properties.evaluate_property(prototype('diamond'), 'density', {'min_volume_per_atom': 25.0})
    assert not collapsed.ok and collapsed.exit_status == 411, collapsed.message
    assert 'cell collapsed to' in collapsed.message and '< 25.0' in collapsed.message
    with pytest.raises(ValueError, match='min_volume_per_atom'):
        properties.PropertySettings(min_volume_per_atom=-1.0)


def _learn_synthetic(algorithm: str, episodes: int = 64) -> list[float]:
    """Rewards of a run whose reward is 1 when the first site holds an alkali metal (no calculator: tests the
    learner; 3 of the 18 elements allowed there)."""
    env = CrystalDesignEnv(['rocksalt'], 'small')
    settings = DesignSettings(algorithm=algorithm, episodes=episodes, episodes_per_round=8, seed=3,
                              dqn={'epsilon_episodes': 32, 'updates_per_round': 16})  # fmt: skip
    agent, rewards = make_agent(env, settings), []
    target = PropertyTarget('density', 1.0)
    for start in range(0, episodes, 8):
        batch = []
        for index in range(start, start + 8):
            episode, _ = sample_episode(agent, env, index)
            finish_episode(episode, 1.0 if episode.elements[0] in ALKALI else 0.0, True, 0, False, target)
            batch.append(episode)
        agent.learn(batch, env)
        rewards.extend(e.reward for e in batch)
    return rewards


@pytest.mark.parametrize('algorithm', ['dqn', 'ppo'])
def test_learners_beat_random_on_a_synthetic_reward(algorithm):
    random = _learn_synthetic('random')
    learned = _learn_synthetic(algorithm)
    assert np.mean(learned[-16:]) > np.mean(random[-16:]) + 0.3, (np.mean(learned[-16:]), np.mean(random[-16:]))


def test_cache_and_seeded_run():
    """A short seeded DQN run on real CHGNet densities: rewards recorded per episode, a repeated composition
    hits the cache (no second calculation), and the same seed gives the same episodes."""
    calls = []

    def counted(structure, name, settings):
        calls.append(structure_hash(structure))
        return properties.evaluate_property(structure, name, settings)

    target = parse_target('density=2.0')
    settings = DesignSettings(algorithm='dqn', episodes=6, episodes_per_round=3, seed=1)
    cache = PropertyCache('density', evaluate=counted)
    history = run_design(CrystalDesignEnv(['rocksalt'], TINY), cache, target, settings)
    assert len(history.episodes) == 6 and all(e.reward is not None and e.ok for e in history.episodes)
    assert cache.hits >= 2 and cache.evaluations == len(set(calls)) == len(calls) <= 4
    assert history.summary(target)['cache_hits'] == cache.hits
    again = run_design(CrystalDesignEnv(['rocksalt'], TINY), cache, target, settings)
    assert [e.actions for e in again.episodes] == [e.actions for e in history.episodes]
    assert [e.reward for e in again.episodes] == [e.reward for e in history.episodes]
    assert cache.evaluations == len(calls)  # the second run was all cache hits
