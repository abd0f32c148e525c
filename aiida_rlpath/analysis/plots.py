"""Matplotlib figures of REALIZE training dynamics and barrier distributions (PNG files)."""

from __future__ import annotations

import pathlib

__all__ = ('plot_barriers', 'plot_training')


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
