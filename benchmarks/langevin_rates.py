"""LJ7 transition rate: brute-force Langevin dynamics against the RL importance sampler, side by side.

Reduced LJ units (ε, σ, τ; ``--beta`` in 1/ε, rates in 1/τ). Both estimators run on the same transition problem:

- brute force: ``--bf-walkers`` walkers × ``--bf-steps`` steps of plain dynamics from the start state;
  k = arrivals / time, Poisson error (:func:`aiida_rlpath.envs.langevin.brute_force`);
- RL: flux run, value-network training by TD over ``--cycles`` cycles, production paths; k = Φ·P with the
  weighted P (:func:`aiida_rlpath.rl.algos.value_is.estimate_rate`). Its force evaluations include all three.

The speedup compares the force evaluations each method needs for the same relative error (the cost of a
Monte Carlo estimate scales as 1/relative error²):

    speedup = force_evals_bf · (rate_bf_err/rate_bf)² / (force_evals_rl · (rate_rl_err/rate_rl)²)

Prints progress, then as its last line one JSON object with ``rate_rl``, ``rate_rl_err``, ``rate_bf``,
``rate_bf_err``, ``force_evals_rl``, ``force_evals_bf``, ``speedup`` (null when brute force saw no event) and
``agree`` (|rate_rl − rate_bf| within 2 combined standard errors), plus the diagnostics, among them
``speedup_without_training`` (the same ratio counting only the RL flux run and production paths) and
``rate_rl_upper_cut`` (the RL rate had every path cut at ``--max-steps`` reached the target), and the classical
baseline on the same flux run: ``rate_shooting`` ± ``rate_shooting_err`` from ``--shooting-paths`` undriven paths
(transition interface sampling with one interface), ``force_evals_shooting`` and ``speedup_vs_shooting``.
``--jobs 2`` runs brute force in a second process beside the RL sampler (same seeds, same results, the wall time
of the slower of the two on two cores).

    python benchmarks/langevin_rates.py --beta 6 --from C0 --to C3          # ~10 min on one core
    python benchmarks/langevin_rates.py --beta 8 --from C0 --to C3 --paths 200 --production-paths 500 \
        --max-steps 80000                                                     # brute force sees a handful
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import time

import numpy as np
import torch

from aiida_rlpath.envs.langevin import TransitionProblem, brute_force, shoot
from aiida_rlpath.rl.algos.value_is import SamplerSettings, estimate_rate


def _timed_brute_force(problem, walkers, steps, seed, threads):
    """brute_force and its wall time (s); a module-level function so that a spawned process can run it."""
    torch.set_num_threads(threads)
    clock = time.perf_counter()
    result = brute_force(problem, walkers, steps, seed)
    return result, time.perf_counter() - clock


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--beta', type=float, default=6.0, help='1/ε')
    parser.add_argument('--from', dest='start', default='C0')
    parser.add_argument('--to', dest='target', default='C3')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--dt', type=float, default=0.001, help='τ')
    parser.add_argument('--bf-walkers', type=int, default=500)
    parser.add_argument('--bf-steps', type=int, default=40_000)
    parser.add_argument('--cycles', type=int, default=2, help='training cycles at --beta')
    parser.add_argument('--warmup-cycles', type=int, default=2, help='training cycles first at --warmup-beta')
    parser.add_argument('--warmup-beta', type=float, default=5.0, help='1/ε')
    parser.add_argument('--replay', type=int, default=3, help='cycles of transitions each TD update sees')
    parser.add_argument('--paths', type=int, default=300, help='training paths per cycle')
    parser.add_argument('--production-paths', type=int, default=1000)
    parser.add_argument('--td-epochs', type=int, default=500)
    parser.add_argument('--td-lambda', type=float, default=SamplerSettings.td_lambda, help='λ of the TD(λ) targets')
    parser.add_argument('--ratio-cap', type=float, default=SamplerSettings.ratio_cap, help='cap on target / V(x)')
    parser.add_argument('--max-bias', type=float, default=SamplerSettings.max_bias, help='drift cap per atom (s)')
    parser.add_argument('--max-steps', type=int, default=30_000, help='per path (a cut path counts as a failure)')
    parser.add_argument('--shooting-paths', type=int, default=2000, help='undriven flux × shooting baseline (0: skip)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads')
    parser.add_argument(
        '--jobs', type=int, choices=(1, 2), default=1,
        help='2: run brute force in a second process alongside the RL sampler (force evaluations unchanged)',
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    problem = TransitionProblem(beta=args.beta, start=args.start, target=args.target, dt=args.dt)
    settings = SamplerSettings(
        cycles=args.cycles, paths=args.paths, td_epochs=args.td_epochs, production_paths=args.production_paths,
        max_steps=args.max_steps, warmup_cycles=args.warmup_cycles, warmup_beta=args.warmup_beta,
        replay=args.replay, td_lambda=args.td_lambda, ratio_cap=args.ratio_cap, max_bias=args.max_bias,
    )  # fmt: skip
    print(f'problem {problem}\nsampler {settings}', flush=True)

    bf_args = (problem, args.bf_walkers, args.bf_steps, args.seed + 1, args.threads)
    bf_job = None
    if args.jobs == 2:  # spawn: a fresh interpreter, no torch state forked from this one
        pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'))
        bf_job = pool.submit(_timed_brute_force, *bf_args)

    clock = time.perf_counter()

    def log(record):
        print(
            f'cycle {record["cycle"]} (β {record["beta"]}): P {record["probability"]:.3e} ± '
            f'{record["probability_err"]:.1e}, reached '
            f'{record["reached_fraction"]:.3f}, cut {record["cut_fraction"]:.3f}, ESS '
            f'{record["effective_sample_size"]:.1f}, TD error {record["td_error"]:.3f}, '
            f'{record["force_evals"]} force evals ({time.perf_counter() - clock:.0f} s)',
            flush=True,
        )

    rl = estimate_rate(problem, settings, args.seed, log=log)
    rl_s = time.perf_counter() - clock
    print(f'RL: k = {rl["rate"]:.4e} ± {rl["rate_err"]:.1e} 1/τ (flux {rl["flux"]:.3f}, P {rl["probability"]:.3e} '
          f'± {rl["probability_err"]:.1e}), {rl["force_evals"]} force evals, {rl_s:.0f} s', flush=True)  # fmt: skip

    if bf_job is not None:
        bf, bf_s = bf_job.result()
        pool.shutdown()
    else:
        bf, bf_s = _timed_brute_force(*bf_args)
    print(f'brute force: k = {bf.rate:.4e} ± {bf.rate_err:.1e} 1/τ from {bf.events} events in {bf.time:.0f} τ, '
          f'{bf.force_evals} force evals, {bf_s:.0f} s', flush=True)  # fmt: skip

    # the classical baseline on the same flux run: undriven shooting from the same λ_A crossings (transition
    # interface sampling with one interface); its cost is the flux run plus the shooting paths
    shooting = None
    if args.shooting_paths:
        clock = time.perf_counter()
        ensemble, _ = shoot(problem, rl['starts'], args.shooting_paths, 200, args.seed + 2, max_steps=args.max_steps)
        p, p_err = ensemble.probability()
        relative = np.hypot(rl['flux_err'] / rl['flux'], p_err / p) if p > 0 else np.inf
        shooting = {
            'rate': rl['flux'] * p,
            'rate_err': rl['flux'] * p * relative if p > 0 else None,
            'reached': int((ensemble.outcome == 1).sum()),
            'force_evals': rl['force_evals_flux'] + ensemble.force_evals,
            's': round(time.perf_counter() - clock, 1),
        }
        print(f'undriven shooting: k = {shooting["rate"]:.4e} ± {shooting["rate_err"] or float("inf"):.1e} 1/τ '
              f'({shooting["reached"]} of {args.shooting_paths} paths reached), {shooting["force_evals"]} force '
              f'evals with the flux run, {shooting["s"]:.0f} s', flush=True)  # fmt: skip

    def cost(evals, rate, err):
        return evals * (err / rate) ** 2 if rate > 0 and np.isfinite(err) else None

    cost_rl = cost(rl['force_evals'], rl['rate'], rl['rate_err'])
    # the same, counting only the sampling (flux run and production) and not the one-off training
    cost_rl_sampling = cost(rl['force_evals_flux'] + rl['force_evals_production'], rl['rate'], rl['rate_err'])
    cost_bf = cost(bf.force_evals, bf.rate, bf.rate_err) if bf.events else None
    combined = np.hypot(rl['rate_err'], bf.rate_err)
    cost_shooting = (
        cost(shooting['force_evals'], shooting['rate'], shooting['rate_err'] or np.inf) if shooting else None
    )
    result = {
        'beta': args.beta,
        'from': args.start,
        'to': args.target,
        'rate_rl': rl['rate'],
        'rate_rl_err': rl['rate_err'],
        'rate_bf': bf.rate,
        'rate_bf_err': bf.rate_err,
        'bf_events': bf.events,
        'force_evals_rl': rl['force_evals'],
        'force_evals_bf': bf.force_evals,
        'speedup': cost_bf / cost_rl if cost_bf and cost_rl else None,
        'speedup_without_training': cost_bf / cost_rl_sampling if cost_bf and cost_rl_sampling else None,
        'agree': bool(abs(rl['rate'] - bf.rate) <= 2 * combined) if bf.events else None,
        'flux': rl['flux'],
        'probability': rl['probability'],
        'production_effective_sample_size': rl['production']['effective_sample_size'],
        'production_cut_fraction': rl['production']['cut_fraction'],
        'rate_rl_upper_cut': rl['rate_upper_cut'],
        'force_evals_rl_by_phase': {k: rl[f'force_evals_{k}'] for k in ('flux', 'training', 'production')},
        'rate_shooting': shooting and shooting['rate'],
        'rate_shooting_err': shooting and shooting['rate_err'],
        'force_evals_shooting': shooting and shooting['force_evals'],
        # RL against the undriven shooting baseline, at equal relative error (training counted)
        'speedup_vs_shooting': cost_shooting / cost_rl if cost_shooting and cost_rl else None,
        'rl_s': round(rl_s, 1),
        'bf_s': round(bf_s, 1),
    }
    print(json.dumps(result))


if __name__ == '__main__':
    main()
