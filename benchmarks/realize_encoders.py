"""The two REALIZE encoders side by side: the from-scratch multipole encoder and the SevenNet-0 backbone.

On O2 states in the `fast` protocol's kind of environment (bare or oxidised Si(001), ``--size``), for each model:
time per action (first call, then the mean over states), time of one PPO update (the `fast` protocol's PPO
settings) on a fixed batch, and how much
that update raises the probability of the rewarded direction (one-step episodes rewarded for moving down, towards
the film: a learnable signal every encoder sees through its dipole channels). Seeds fixed; one run, both models.
Prints one line per model and, last, one JSON object with the ratios sevennet / multipole.

    python benchmarks/realize_encoders.py [--size tiny] [--states 6] [--batch 24]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from aiida_rlpath.rl.algos.ppo import PPOSettings, Step, ppo_update
from aiida_rlpath.rl.models import MultipolePolicy, SevenNetPolicy
from aiida_rlpath.systems.si_oxide import build_si_slab, insert_o2
from aiida_rlpath.workflows.protocols import get_protocol


def measure(model, states, batch_size: int, seed: int) -> dict:
    torch.manual_seed(seed)
    clock = time.perf_counter()
    policy = model()
    build_s = time.perf_counter() - clock
    clock = time.perf_counter()
    policy.act(*states[0], 0)
    first_s = time.perf_counter() - clock
    clock = time.perf_counter()
    for k, state in enumerate(states[1:]):
        policy.act(*state, k)
    act_s = (time.perf_counter() - clock) / max(1, len(states) - 1)

    def down_probability():
        with torch.no_grad():
            values = []
            for state in states:
                p = torch.softmax(policy._direction_logits(policy.encode(*state), policy.grid), 0)
                values.append(float(p[policy.grid[:, 2] < -0.5].sum()))
            return float(np.mean(values))

    batch = []
    for k in range(batch_size):
        state = states[k % len(states)]
        out = policy.act(*state, 1000 + k)
        batch.append([Step(state, out.sample.tolist(), out.logp, -float(out.sample[2]), out.value)])
    before = down_probability()
    clock = time.perf_counter()
    stats = ppo_update(policy, batch, 0, PPOSettings(**get_protocol('realize', 'fast')['training']['ppo']))
    update_s = time.perf_counter() - clock
    after = down_probability()
    return {
        'model': policy.name,
        'parameters_saved': int(sum(v.numel() for v in policy.state_dict().values())),
        'build_s': build_s,
        'first_act_s': first_s,
        'act_s': act_s,
        'update_s': update_s,
        'epochs': stats['epochs'],
        'down_probability_before': before,
        'down_probability_after': after,
        'down_probability_gain': after - before,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', default='tiny', choices=['tiny', 'small'])
    parser.add_argument('--states', type=int, default=6)
    parser.add_argument('--batch', type=int, default=24)
    args = parser.parse_args()
    slab = build_si_slab(args.size)
    states = []
    for seed in range(args.states):
        atoms, agent = insert_o2(slab, seed, height=2.0 + 0.5 * (seed % 3))
        states.append((atoms, agent))
    rows = [measure(model, states, args.batch, seed=1) for model in (MultipolePolicy, SevenNetPolicy)]
    for row in rows:
        print(' '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in row.items()), flush=True)
    multipole, sevennet = rows
    print(json.dumps({
        'act_time_ratio': sevennet['act_s'] / multipole['act_s'],
        'update_time_ratio': sevennet['update_s'] / multipole['update_s'],
        'checkpoint_size_ratio': sevennet['parameters_saved'] / multipole['parameters_saved'],
        'down_probability_gain_multipole': multipole['down_probability_gain'],
        'down_probability_gain_sevennet': sevennet['down_probability_gain'],
    }))  # fmt: skip


if __name__ == '__main__':
    main()
