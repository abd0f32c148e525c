"""Matplotlib figures (PNG files): REALIZE training dynamics and barrier distributions; LJ7 Langevin paths; MAP
training and pathways."""

from __future__ import annotations

import pathlib

__all__ = ('plot_barriers', 'plot_langevin_paths', 'plot_map_pathway', 'plot_map_training', 'plot_training')


def _pyplot():
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def plot_training(cycles: list[dict], path: str | pathlib.Path) -> pathlib.Path:
    """Success rate and mean effective barrier (eV) per cycle, with the barrier threshold (eV), to ``path``."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    x = [row['cycle'] for row in cycles]
    left.plot(x, [row['success_rate'] for row in cycles], 'o-')
    left.set(xlabel='cycle', ylabel='success rate', ylim=(-0.05, 1.05), title='verified dissociation')
    barriers = [row['mean_effective_barrier'] for row in cycles]
    right.plot(x, [float('nan') if b is None else b for b in barriers], 'o-', label='mean effective barrier')
    right.plot(x, [row['kept_barrier'] if row['kept_barrier'] is not None else float('nan') for row in cycles], 's',
               label='kept event')  # fmt: skip
    right.step(x, [row['threshold'] for row in cycles], where='mid', color='grey', label='threshold')
    right.set(xlabel='cycle', ylabel='barrier (eV)', title='effective barriers')
    right.legend(fontsize='small')
    from matplotlib.ticker import MaxNLocator

    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    path = pathlib.Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_barriers(barriers: list[dict], path: str | pathlib.Path) -> pathlib.Path:
    """Histogram of all measured NEB barriers (eV), one series per cycle, to ``path``."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    cycles = sorted({row['cycle'] for row in barriers})
    values = [[row['barrier'] for row in barriers if row['cycle'] == c and row['barrier'] is not None] for c in cycles]
    if any(values):
        axes.hist(values, bins=15, label=[f'cycle {c}' for c in cycles], stacked=True)
        axes.legend(fontsize='small')
    axes.set(xlabel='NEB barrier (eV)', ylabel='moves', title='barrier distribution')
    path = pathlib.Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_langevin_paths(
    cvs, outcome, landscape, states: dict, path: str | pathlib.Path, title: str = '', radius: float = 0.1
) -> pathlib.Path:
    """Sampled LJ7 paths in the (μ2, μ3) plane over the free-energy landscape, to ``path``.

    ``cvs`` (paths, samples, 2) CV traces (NaN after a path's end) and ``outcome`` of those paths (1 reached the
    target, 0 fell back, −1 cut, −2 pruned by branching); ``landscape`` a
    :class:`~aiida_rlpath.envs.langevin.FreeEnergyMap` (ε); ``states`` name → (μ2, μ3), drawn as circles of
    ``radius``.
    """
    import numpy as np

    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 5), constrained_layout=True)
    mesh = axes.pcolormesh(landscape.mu2, landscape.mu3, landscape.free_energy, cmap='viridis', shading='flat')
    figure.colorbar(mesh, ax=axes, label=f'F(μ2, μ3) at β = {landscape.beta:g} (ε)')
    colours = {1: 'tab:red', 0: 'white', -1: 'tab:grey', -2: 'tab:orange'}
    labels = {1: 'reached target', 0: 'fell back', -1: 'cut', -2: 'pruned (its copies went on)'}
    for trace, result in zip(np.asarray(cvs), np.asarray(outcome), strict=False):
        label = labels.pop(int(result), None)
        axes.plot(trace[:, 0], trace[:, 1], '-', lw=0.6, alpha=0.7, color=colours[int(result)], label=label)
    for name, (mu2, mu3) in states.items():
        axes.add_patch(plt.Circle((mu2, mu3), radius, fill=False, color='black', lw=1.2))
        axes.annotate(name, (mu2, mu3), xytext=(4, 4), textcoords='offset points', fontweight='bold')
    axes.set(xlabel='μ2', ylabel='μ3', title=title, xlim=(landscape.mu2[0], landscape.mu2[-1]),
             ylim=(landscape.mu3[0], landscape.mu3[-1]))  # fmt: skip
    axes.legend(fontsize='small', loc='upper left')
    path = pathlib.Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_map_pathway(
    energies: list[float], x: list[float], nebs: list[dict], path: str | pathlib.Path, title: str = ''
) -> pathlib.Path:
    """A MAP episode's energy profile before and after piecewise NEB (eV, relative to the start) against the
    action step, with the water O's x (Å) beside it, to ``path``.

    ``nebs``: per segment ``start``, ``end`` (frames), ``energies`` (the band's image energies, eV) and ``barrier``.
    Each band is drawn over its segment's steps on the same energy scale (relative to the episode's start), so the
    relaxation of its end points shows as well as its barrier.
    """
    plt = _pyplot()
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(10, 3.8), constrained_layout=True, gridspec_kw={'width_ratios': [2, 1]}
    )
    base = energies[0]
    steps = list(range(len(energies)))
    left.plot(steps, [e - base for e in energies], 'o-', color='tab:blue', label='trajectory (tethered relaxations)')
    for n, neb in enumerate(nebs):
        band = neb.get('energies') or []
        if not band:
            continue
        positions = [neb['start'] + (neb['end'] - neb['start']) * k / (len(band) - 1) for k in range(len(band))]
        left.plot(
            positions, [e - base for e in band], 's--', color='tab:red', label='piecewise NEB' if n == 0 else None
        )
        peak = max(range(len(band)), key=lambda k: band[k])
        if neb.get('barrier') is not None:
            left.annotate(
                f'{neb["barrier"]:.2f} eV',
                (positions[peak], band[peak] - base),
                textcoords='offset points',
                xytext=(0, 6),
                ha='center',
                fontsize='small',
                color='tab:red',
            )
    left.set(xlabel='action step', ylabel='energy − start (eV)', title=title or 'energy profile')
    left.legend(fontsize='small')
    right.plot(steps, [v - x[0] for v in x], 'o-', color='tab:green')
    right.set(xlabel='action step', ylabel='water O Δx (Å)', title='progress along +x')
    path = pathlib.Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_map_training(rounds: list[dict], path: str | pathlib.Path) -> pathlib.Path:
    """Per round: the actors' episode progress along +x (Å, each episode a dot, the mean a line) and the learner's
    loss, to ``path``."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    for row in rounds:
        progress = row.get('progress') or []
        left.plot([row['round']] * len(progress), progress, '.', color='grey')
    means = [sum(r['progress']) / len(r['progress']) if r.get('progress') else float('nan') for r in rounds]
    left.plot([r['round'] for r in rounds], means, 'o-', label='mean')
    left.set(xlabel='round', ylabel='episode Δx (Å)', title='actor progress along +x')
    left.legend(fontsize='small')
    right.plot(
        [r['round'] for r in rounds], [float('nan') if r.get('loss') is None else r['loss'] for r in rounds], 'o-'
    )
    right.set(xlabel='round', ylabel='loss', title='learner (importance-weighted Huber)', yscale='log')
    path = pathlib.Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
