"""The learned relaxation policy as an ASE ``Optimizer``: ``RLOptimizer(atoms, actor).run(fmax=0.1)`` like BFGS.

No AiiDA here. Each step builds the crystal graph of the current structure (forces in eV/Å and, when the actor
was trained with history, the previous displacement in Å and force change), asks the actor for one
displacement per atom (Å) and applies it with the environment's guard against atoms closer than ``d_min`` Å.
One force evaluation per step, as for the classical optimizers.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.optimize.optimize import Optimizer

from aiida_rlpath.envs.relaxation import apply_displacement, crystal_graph
from aiida_rlpath.rl.models.tfn import build_actor, collate

__all__ = ('SHIPPED_CHECKPOINT', 'RLOptimizer', 'load_actor')

#: The tensor-field-network actor shipped with aiida-rlpath (imitation warm start; how it was made:
#: ``docs/topics/relaxation.md``).
SHIPPED_CHECKPOINT = Path(__file__).parent / 'checkpoints' / 'relax_tfn.pt'


def load_actor(checkpoint: str | t.Any) -> torch.nn.Module:
    """An actor from a checkpoint file written by :func:`aiida_rlpath.rl.algos.td3.save_checkpoint` (a path, or
    a file-like object), loaded with ``weights_only=True``."""
    payload = torch.load(checkpoint, weights_only=True, map_location='cpu')
    actor = build_actor(payload['architecture'], payload['actor'])
    actor.eval()
    return actor


class RLOptimizer(Optimizer):
    """Relax ``atoms`` with a trained relaxation actor (a module or a checkpoint path).

    :param atoms: the structure (fixed cell; its calculator gives the forces).
    :param actor: a :class:`~aiida_rlpath.rl.models.tfn.TFNActor` (or CGCNN baseline), or a checkpoint path;
        by default the shipped checkpoint :data:`SHIPPED_CHECKPOINT`.
    :param cutoff: neighbour cutoff of the crystal graph (Å); the actor's own cutoff if ``None``.
    :param d_min: smallest interatomic distance a step may create (Å).
    """

    def __init__(
        self,
        atoms: Atoms,
        actor: torch.nn.Module | str | Path = SHIPPED_CHECKPOINT,
        cutoff: float | None = None,
        d_min: float = 1.5,
        logfile: t.Any = '-',
        trajectory: str | None = None,
        **kwargs,
    ):
        super().__init__(atoms, logfile=logfile, trajectory=trajectory, **kwargs)
        self.actor = load_actor(str(actor)) if isinstance(actor, str | Path) else actor
        self.cutoff = cutoff or self.actor.architecture['cutoff']
        self.n_vectors = self.actor.architecture['n_vectors']
        self.d_min = d_min
        self.last_forces: np.ndarray | None = None
        self.last_displacement: np.ndarray | None = None

    def initialize(self):
        self.last_forces = self.last_displacement = None

    def step(self, forces=None):
        atoms = self.optimizable.atoms if hasattr(self.optimizable, 'atoms') else self.atoms
        if forces is None:
            forces = atoms.get_forces()
        forces = np.asarray(forces, dtype=float).reshape(len(atoms), 3)
        if self.last_forces is None:
            self.last_forces, self.last_displacement = forces.copy(), np.zeros_like(forces)
        vectors = [forces, self.last_displacement, forces - self.last_forces][: self.n_vectors]
        graph = crystal_graph(atoms, np.stack(vectors, axis=1), self.cutoff)
        with torch.no_grad():
            displacement = self.actor(collate([graph])).double().numpy()
        moved, _ = apply_displacement(atoms, displacement, self.actor.d_max, self.d_min)
        self.last_displacement = moved.positions - atoms.positions
        self.last_forces = forces
        atoms.set_positions(moved.positions)
