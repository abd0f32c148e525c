"""Relaxation and NEB: a textbook barrier, force-call accounting, the pre-screen, and soft failure."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, fcc100
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms, FixCartesian

from aiida_rlpath.physics.neb import barrier, interpolated_profile, neb
from aiida_rlpath.physics.pes import PESSpec
from aiida_rlpath.physics.relax import relax

EMT = PESSpec('emt')


@pytest.fixture(scope='module')
def au_on_al100():
    """ASE's tutorial system: Au adatom hopping between hollow sites of Al(100), bottom two layers fixed."""
    slab = fcc100('Al', size=(2, 2, 3))
    add_adsorbate(slab, 'Au', 1.7, 'hollow')
    slab.center(axis=2, vacuum=4.0)
    slab.set_constraint(FixAtoms(mask=[atom.tag > 1 for atom in slab]))
    initial = relax(slab, EMT, fmax=0.01, optimizer='BFGS')
    shifted = initial.atoms.copy()
    shifted[-1].x += shifted.get_cell()[0, 0] / 2
    final = relax(shifted, EMT, fmax=0.01, optimizer='BFGS')
    # The hop is symmetric, so the saddle is the bridge site: relax there with the adatom's x, y held.
    bridge = initial.atoms.copy()
    bridge[-1].x += bridge.get_cell()[0, 0] / 4
    bridge.set_constraint([FixAtoms(mask=[atom.tag > 1 for atom in bridge]), FixCartesian(12, (True, True, False))])
    saddle = relax(bridge, EMT, fmax=0.002, optimizer='BFGS')
    return initial, final, saddle.energy - initial.energy


def test_relax_converges_and_respects_constraints(au_on_al100):
    initial, _, _ = au_on_al100
    assert initial.converged and initial.fmax <= 0.01 and initial.error is None
    assert initial.force_calls >= initial.steps >= 1
    fixed = [atom.index for atom in initial.atoms if atom.tag > 1]
    start = fcc100('Al', size=(2, 2, 3))
    start.center(axis=2, vacuum=4.0)
    assert np.allclose(initial.atoms.positions[fixed], start.positions[fixed])


def test_relax_reports_non_convergence():
    slab = fcc100('Al', size=(2, 2, 3))
    slab.rattle(0.2, seed=1)
    result = relax(slab, EMT, fmax=1e-4, max_steps=3)
    assert not result.converged
    assert result.steps == 3
    assert result.fmax > 1e-4


def test_climbing_image_neb_reproduces_the_bridge_barrier(au_on_al100):
    initial, final, reference = au_on_al100
    assert reference == pytest.approx(0.374, abs=0.005)  # EMT value of the ASE tutorial system
    result = neb(initial.atoms, final.atoms, EMT, n_images=3, fmax=0.01)
    assert result.converged and result.method == 'ci-neb'
    assert result.forward_barrier == pytest.approx(reference, abs=0.005)
    assert result.backward_barrier == pytest.approx(reference, abs=0.005)
    assert result.saddle_index == 2
    # each step evaluates each interior image once (plus the two end points and the first step)
    assert result.force_calls <= 3 * (result.steps + 1) + 2


def test_interpolated_profile_is_above_the_mep(au_on_al100):
    initial, final, reference = au_on_al100
    estimate = interpolated_profile(initial.atoms, final.atoms, EMT, n_images=3)
    assert estimate.method == 'interpolation'
    assert estimate.forward_barrier > reference
    assert estimate.force_calls == 5


def test_prescreen_skips_when_clearly_above_and_runs_ci_neb_otherwise(au_on_al100):
    initial, final, reference = au_on_al100
    skipped = barrier(initial.atoms, final.atoms, EMT, threshold=0.05, margin=0.1)
    assert skipped.method == 'prescreen'
    assert skipped.barrier > 0.15
    full = barrier(initial.atoms, final.atoms, EMT, threshold=1.0)
    assert full.method == 'ci-neb' and full.converged
    assert full.barrier == pytest.approx(reference, abs=0.01)
    assert full.force_calls > skipped.force_calls


class _Exploding(Calculator):
    """Raises like LAMMPS does on lost atoms, once the adatom has moved from its start."""

    implemented_properties = ['energy', 'forces']  # noqa: RUF012

    def __init__(self, start_x: float):
        super().__init__()
        self.start_x = start_x

    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if abs(self.atoms.positions[-1, 0] - self.start_x) > 0.3:
            raise RuntimeError('ERROR: Lost atoms: original 13 current 12')
        self.results = {'energy': 0.0, 'forces': np.zeros((len(self.atoms), 3))}


def test_failing_neb_returns_a_flagged_result(au_on_al100):
    initial, final, _ = au_on_al100
    result = neb(initial.atoms, final.atoms, _Exploding(initial.atoms.positions[-1, 0]), n_images=3)
    assert not result.converged
    assert 'Lost atoms' in result.error
    assert np.isnan(result.forward_barrier)


def test_exploding_band_energy_is_flagged():
    initial = Atoms('Al2', positions=[[0, 0, 0], [3.0, 0, 0]], cell=[10, 10, 10], pbc=True)
    final = Atoms('Al2', positions=[[0, 0, 0], [-3.0, 0, 0]], cell=[10, 10, 10], pbc=True)
    # the straight path passes the two atoms through each other (EMT: +2.5 eV at the overlap)
    result = interpolated_profile(initial, final, EMT, n_images=5, max_barrier=1.0)
    assert not result.converged
    assert 'exploded' in result.error
