"""Matplotlib figures (PNG files): REALIZE training dynamics and barrier distributions; LJ7 Langevin paths."""

from __future__ import annotations

import pathlib

__all__ = ('plot_barriers', 'plot_langevin_paths', 'plot_training')


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
