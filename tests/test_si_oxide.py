"""The Si(001)/a-SiO2 builder: real reactive-MD growth on the default ReaxFF, and O2 insertion."""

from __future__ import annotations

import numpy as np
import pytest

from aiida_rlpath.physics.bonds import coordination, o2_bond
from aiida_rlpath.systems.si_oxide import OxideProtocol, build_oxidized_slab, build_si_slab, insert_o2


@pytest.fixture(scope='module')
def thin_oxide():
    return build_oxidized_slab(seed=11, thickness=3.0)


def _o_per_si(atoms, low, high):
    z = atoms.positions[:, 2]
    symbols = np.array(atoms.get_chemical_symbols())
    inside = (z >= low) & (z < high)
    return (symbols[inside] == 'O').sum() / max(1, (symbols[inside] == 'Si').sum())


def test_si_slab_sizes_and_fixed_bottom():
    small, paper = build_si_slab('small'), build_si_slab('paper')
    assert len(small) == 96 and len(paper) == 384
    fixed = small.constraints[0].index
    assert len(fixed) == 32  # two of six 16-atom layers
    assert small.positions[fixed, 2].max() < np.sort(np.unique(small.positions[:, 2].round(3)))[2]


def test_oxide_composition_falls_from_surface_to_bulk(thin_oxide):
    atoms = thin_oxide.atoms
    assert thin_oxide.n_oxygen == 2 * thin_oxide.deposited
    assert 2.0 <= thin_oxide.oxide_thickness <= 8.0
    top, interface = thin_oxide.surface_z, thin_oxide.interface_z
    third = (top - interface) / 3
    upper = _o_per_si(atoms, top - third, top + 1)
    middle = _o_per_si(atoms, interface + third, top - third)
    below = _o_per_si(atoms, interface - 4, interface - 1)
    assert upper > middle > below
    assert below == 0.0
    assert upper >= 1.0


def test_oxide_has_no_overlaps_and_keeps_the_bottom_fixed(thin_oxide):
    atoms = thin_oxide.atoms
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 1.2
    reference = build_si_slab('small')
    fixed = reference.constraints[0].index
    assert np.allclose(atoms.positions[fixed], reference.positions[fixed], atol=1e-6)


def test_oxide_oxygen_is_bonded_to_silicon(thin_oxide):
    si_neighbours = coordination(thin_oxide.atoms, 'O', 'Si')
    oxygen = si_neighbours[si_neighbours >= 0]
    assert (oxygen >= 1).mean() >= 0.85  # a few O sit in peroxy links (see docs)


def test_oxide_is_reproducible_from_its_seed():
    tiny = OxideProtocol(round_steps=500, anneal_steps=100, quench_steps=100, minimize_steps=20)
    first = build_oxidized_slab(seed=5, thickness=1.0, protocol=tiny)
    second = build_oxidized_slab(seed=5, thickness=1.0, protocol=tiny)
    assert first.protocol == 'custom' and first.deposited == second.deposited
    assert np.allclose(first.atoms.positions, second.atoms.positions)


def test_insert_o2_above_surface_without_overlap(thin_oxide):
    atoms, agent = insert_o2(thin_oxide.atoms, seed=3)
    assert len(atoms) == len(thin_oxide.atoms) + 2
    assert atoms.get_chemical_symbols()[agent[0]] == 'O' == atoms.get_chemical_symbols()[agent[1]]
    assert o2_bond(atoms, agent).distance == pytest.approx(1.265, abs=1e-6)
    assert atoms.positions[agent, 2].mean() == pytest.approx(thin_oxide.surface_z + 3.0, abs=1e-6)
    others = [i for i in range(len(atoms)) if i not in agent]
    for index in agent:
        assert atoms.get_distances(index, others, mic=True).min() >= 2.2
    again, _ = insert_o2(thin_oxide.atoms, seed=3)
    assert np.allclose(again.positions, atoms.positions)
