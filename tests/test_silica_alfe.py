"""Silica glass by melt-quench (+ water insertion) and random Al/Fe cells with reference minima."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_rlpath.physics.bonds import coordination
from aiida_rlpath.physics.relax import max_force
from aiida_rlpath.systems.alfe import ALFE_PES, distort, random_alfe_cell, reference_minimum
from aiida_rlpath.systems.silica import MeltQuench, build_silica_glass, insert_h2o, silica_units_for_box


@pytest.fixture(scope='module')
def small_glass():
    schedule = MeltQuench(melt_steps=5000, quench_steps=20_000, settle_steps=200, minimize_steps=200)
    return build_silica_glass(seed=4, units=24, schedule=schedule)


def test_glass_density_and_network(small_glass):
    assert small_glass.density == pytest.approx(2.2, abs=1e-6)
    assert len(small_glass.atoms) == 72
    assert small_glass.fourfold_si_fraction >= 0.5
    o_si = coordination(small_glass.atoms, 'O', 'Si')
    assert np.mean(o_si[o_si >= 0] == 2) >= 0.75  # bridging oxygens
    distances = small_glass.atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 1.3


def test_paper_box_holds_the_right_number_of_units():
    assert silica_units_for_box(30.48, 2.2) == 624


def test_insert_h2o_in_a_void(small_glass):
    atoms, water = insert_h2o(small_glass.atoms, seed=1)
    assert atoms.get_chemical_symbols()[-3:] == ['O', 'H', 'H']
    assert water == [72, 73, 74]
    assert atoms.get_distance(72, 73) == pytest.approx(0.957, abs=1e-6)
    assert atoms.get_angle(73, 72, 74) == pytest.approx(104.5, abs=1e-6)
    host = list(range(72))
    assert atoms.get_distances(72, host, mic=True).min() > 1.8


@pytest.mark.parametrize('n_atoms', [4, 5, 8])
def test_random_alfe_cells_relax_to_true_minima(n_atoms):
    structure = random_alfe_cell(n_atoms, seed=n_atoms)
    assert len(structure) == n_atoms
    assert set(structure.symbol_set) <= {'Al', 'Fe'}
    again = random_alfe_cell(n_atoms, seed=n_atoms)
    assert np.allclose(structure.frac_coords, again.frac_coords)
    minimum = reference_minimum(structure, seed=0)
    assert minimum.converged and minimum.fmax <= 1e-3
    assert -4.5 < minimum.energy / n_atoms < -3.0  # between Al (-3.36) and Fe (-4.12) cohesive energies
    assert np.allclose(minimum.atoms.cell.array, structure.lattice.matrix)  # fixed cell


def test_distortion_is_bounded_and_raises_forces():
    minimum = reference_minimum(random_alfe_cell(4, seed=1), seed=0)
    moved = distort(minimum.atoms, beta=0.2, seed=3)
    delta = moved.positions - minimum.atoms.positions
    assert np.abs(delta).max() <= 0.2 and np.abs(delta).max() > 0.1
    moved.calc = ALFE_PES.calculator(moved.get_chemical_symbols())
    assert max_force(moved) > 10 * minimum.fmax
