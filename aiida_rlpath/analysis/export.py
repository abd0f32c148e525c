"""Export of REALIZE pathways to extended XYZ, with energies (eV) and barriers (eV) per frame."""

from __future__ import annotations

import pathlib

from aiida import orm

__all__ = ('episode_frames', 'export_episode')


def episode_frames(episode: orm.WorkflowNode) -> list:
    """The pathway of a finished episode as ``ase.Atoms`` frames, each with ``info``: ``frame``, ``energy`` (eV),
    and for frames after the start ``barrier`` (eV, of the move into it; NaN if not measured), ``outcome`` and
    ``action`` (direction, magnitude in Å, axis)."""
    from aiida_rlpath.calculations.functions.realize import number, trajectory_atoms

    trajectory = episode.outputs.trajectory
    steps = episode.outputs.summary['steps']
    energies = trajectory.get_array('energies') if 'energies' in trajectory.get_arraynames() else None
    frames = []
    for index in range(trajectory.numsteps):
        atoms = trajectory_atoms(trajectory, index)
        atoms.info['frame'] = index
        if energies is not None:
            atoms.info['energy'] = float(energies[index])
        if index > 0:
            step = steps[index - 1]
            atoms.info.update(
                barrier=number(step['barrier']), outcome=step['outcome'], reward=float(step['reward']),
                action=' '.join(f'{x:.6f}' for x in step['action']),
            )  # fmt: skip
        frames.append(atoms)
    return frames


def export_episode(episode: orm.WorkflowNode, path: str | pathlib.Path) -> pathlib.Path:
    """Write the episode's pathway to ``path`` (extxyz); returns the path."""
    from ase.io import write

    path = pathlib.Path(path)
    write(path, episode_frames(episode), format='extxyz')
    return path
