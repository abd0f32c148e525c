"""Does the REALIZE agent learn? A seeded short training on the `fast` protocol against the random policy.

Plain shell (no AiiDA; the work chain runs the same ``train``). The `fast` protocol's settings, rewards, PPO and
policy, on its tiny cell (24 Si with the ~3 Å oxide grown in seconds) so that it fits the test budget: about 2
minutes of training and 3 of evaluation on 2 cores. The O2 starts 1.5 Å above the film and must descend through
it to the Si below to dissociate; isotropic random moves rarely get there in 6 steps.
"""

from __future__ import annotations

import numpy as np
import torch

from aiida_rlpath.envs.oxidation import (
    OxidationEnv,
    OxidationSettings,
    RewardWeights,
    TrainingSettings,
    evaluate_policy,
    train,
)
from aiida_rlpath.rl.models import init_policy
from aiida_rlpath.systems.si_oxide import build_oxidation_start
from aiida_rlpath.workflows.protocols import get_protocol

SEED = 0
OVERRIDES = {'system': {'size': 'tiny'}, 'training': {'cycles': 3, 'episodes_per_cycle': 3}}


def _down_fraction(policy, atoms, agent, draws: int = 200) -> float:
    """Fraction of the policy's sampled directions that point down (towards the film), over fixed seeds."""
    return float(np.mean([policy.act(atoms, agent, 10**6 + k).sample[2] < 0 for k in range(draws)]))


def test_seeded_short_training_on_fast_beats_the_random_policy():
    preset = get_protocol('realize', 'fast', OVERRIDES)
    settings, weights = OxidationSettings(**preset['settings']), RewardWeights(**preset['weights'])
    training = TrainingSettings(**preset['training'])
    atoms, agent, _ = build_oxidation_start(seed=SEED, **preset['system'])
    policy = init_policy(preset['policy'], settings.d_max, SEED)
    untrained_down = _down_fraction(policy, atoms, agent)

    env = OxidationEnv(atoms, agent, training.threshold_start, settings=settings, weights=weights)
    cycles = train(env, policy, training, SEED)
    assert [c['stats']['epochs'] >= 1 for c in cycles] == [True] * training.cycles
    assert all(c['stats']['approx_kl'] <= training.ppo['target_kl'] + 1e-12 for c in cycles)  # the trust region

    with torch.no_grad():
        trained_down = _down_fraction(policy, atoms, agent)
    print(f'down fraction: untrained {untrained_down:.3f}, trained {trained_down:.3f}')
    assert 0.35 < untrained_down < 0.65  # the untrained policy is near-isotropic ...
    assert trained_down > untrained_down + 0.15  # ... training turned it towards the film

    seeds = [int(s) for s in np.random.default_rng([SEED, 99]).integers(2**31, size=4)]
    results = {}
    for label, actor in (('trained', policy), ('random', None)):
        fresh = OxidationEnv(atoms, agent, training.threshold_start, settings=settings, weights=weights)
        results[label] = evaluate_policy(fresh, seeds, actor)
    print({label: (r['success_rate'], r['outcomes']) for label, r in results.items()})
    assert results['trained']['success_rate'] > results['random']['success_rate'], results
