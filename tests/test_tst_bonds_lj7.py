"""Transition-state theory, profile segmentation, bond analysis, verified dissociation, LJ7."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from aiida_rlpath.physics.bonds import coordination, o2_bond, verify_dissociation
from aiida_rlpath.physics.pes import DEFAULT_OXIDATION_PES
from aiida_rlpath.physics.tst import (
    BOLTZMANN_EV_PER_K,
    PLANCK_EV_S,
    diffusion_time,
    eyring_rate,
    harmonic_rate,
    split_profile,
)
from aiida_rlpath.systems.lj7 import collective_variables, find_minima, hexagon


def test_eyring_rate_values():
    kt = BOLTZMANN_EV_PER_K * 300
    assert eyring_rate(0.0, 300) == pytest.approx(kt / PLANCK_EV_S)  # 6.25e12 1/s
    assert eyring_rate(0.0, 300) == pytest.approx(6.25e12, rel=0.01)
    assert eyring_rate(1.0, 300) / eyring_rate(0.5, 300) == pytest.approx(np.exp(-0.5 / kt))
    with pytest.raises(ValueError, match='positive'):
        eyring_rate(0.5, 0)


def test_diffusion_time_is_sum_of_inverse_rates():
    barriers = [0.3, 0.5, 0.4]
    assert diffusion_time(barriers, 500) == pytest.approx(sum(1 / eyring_rate(e, 500) for e in barriers))
    assert diffusion_time(barriers, 500) > diffusion_time(barriers, 800)


def test_harmonic_rate_prefactor():
    rate = harmonic_rate(0.5, 400, [1e13, 2e13], [1e13])
    assert rate == pytest.approx(2e13 * np.exp(-0.5 / (BOLTZMANN_EV_PER_K * 400)))


def test_split_synthetic_profile_into_segments():
    x = np.linspace(0, 3, 301)
    # three well-separated bumps of height 0.3, 0.8 and 0.5 eV on a flat baseline
    profile = 0.3 * np.exp(-((x - 0.5) ** 2) / 0.01) + 0.8 * np.exp(-((x - 1.5) ** 2) / 0.02)
    profile += 0.5 * np.exp(-((x - 2.5) ** 2) / 0.01)
    segments = split_profile(profile)
    assert [s.peak for s in segments] == [50, 150, 250]
    assert segments[0].start == 0 and segments[-1].end == 300
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    assert [s.forward_barrier for s in segments] == pytest.approx([0.3, 0.8, 0.5], abs=1e-6)
    # on a descending baseline the barriers are measured from each segment's own starting minimum
    tilted = split_profile(profile - 0.2 * x)
    assert tilted[0].forward_barrier == pytest.approx(0.3 - 0.2 * 0.5, abs=1e-3)
    assert tilted[0].backward_barrier > tilted[0].forward_barrier
    assert split_profile(np.linspace(1, 0, 50)) == []


def _si_with_two_bridging_o() -> tuple[Atoms, list[int]]:
    """64-atom c-Si with two O atoms inserted at Si–Si bond centres far apart (dissociated O2)."""
    si = bulk('Si', 'diamond', 5.425, cubic=True).repeat(2)
    bond_centres = []
    for a, b in [(0, 5), (40, 45)]:
        vector = si.get_distance(a, b, mic=True, vector=True)
        bond_centres.append(si.positions[a] + vector / 2)
    atoms = si + Atoms('O2', positions=bond_centres)
    return atoms, [64, 65]


def test_o2_bond_and_coordination():
    atoms, agent = _si_with_two_bridging_o()
    bond = o2_bond(atoms, agent)
    assert not bond.bonded and bond.distance > 4
    si_o = coordination(atoms, 'O', 'Si')
    assert list(si_o[agent]) == [2, 2]
    assert set(si_o[:64]) == {-1}
    molecule = Atoms('O2', positions=[[0, 0, 0], [0, 0, 1.26]], cell=[10, 10, 10], pbc=True)
    assert o2_bond(molecule, [0, 1]).bonded


def test_verify_dissociation_accepts_bridging_oxygens():
    atoms, agent = _si_with_two_bridging_o()
    result = verify_dissociation(atoms, agent, DEFAULT_OXIDATION_PES, seed=7)
    assert result.dissociated, result.reasons
    assert all(len(n) >= 2 for n in result.si_neighbours_after)
    assert result.oo_distance_after > 2.0
    assert result.force_calls > 1


def test_verify_dissociation_rejects_a_molecule_and_unbound_atoms():
    molecule = Atoms('O2', positions=[[5, 5, 5], [5, 5, 6.26]], cell=[12, 12, 12], pbc=True)
    bonded = verify_dissociation(molecule, [0, 1], DEFAULT_OXIDATION_PES, seed=0)
    assert not bonded.dissociated
    assert any('not beyond' in reason for reason in bonded.reasons)
    assert bonded.force_calls == 0  # no perturb-and-relax when the first criteria already fail
    apart = Atoms('O2', positions=[[2, 5, 5], [8, 5, 5]], cell=[12, 12, 12], pbc=True)
    unbound = verify_dissociation(apart, [0, 1], DEFAULT_OXIDATION_PES, seed=0)
    assert not unbound.dissociated
    assert any('bonded to no Si' in reason for reason in unbound.reasons)


def test_lj7_four_lowest_minima():
    minima = find_minima(seed=0)
    energies = [m.energy for m in minima]
    for found, reference in zip(energies, [-12.535, -11.501, -11.477, -11.403], strict=True):
        assert found == pytest.approx(reference, abs=0.002)


def test_lj7_collective_variables_are_rotation_invariant_and_distinguish_minima():
    minima = find_minima(seed=0)
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    ground = minima[0].positions
    assert collective_variables(ground @ rotation.T + 3.0) == pytest.approx(collective_variables(ground))
    points = {(round(m.mu2, 2), round(m.mu3, 2)) for m in minima}
    assert len(points) == 4
    assert collective_variables(hexagon())[0] > 0  # the centre atom is more coordinated than the ring
