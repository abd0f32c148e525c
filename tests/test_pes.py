"""Potential-energy surfaces: spec as data, every backend builds, and physical reference values."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.optimize import minimize_scalar

from aiida_rlpath.physics.pes import (
    DEFAULT_OXIDATION_PES,
    PES_KINDS,
    PESSpec,
    UnsupportedSpeciesError,
    lj2d_energy_forces,
)

O2_REDUCED_MASS_KG = 15.999 / 2 * 1.66053907e-27
EV_PER_A2_TO_N_PER_M = 16.02176634


def _o2(distance: float, box: float = 40.0) -> Atoms:
    return Atoms('O2', positions=[[20, 20, 20], [20, 20, 20 + distance]], cell=[box] * 3, pbc=True)


@pytest.fixture(scope='module')
def default_o2_curve():
    """Bond length (Å), well depth (eV) and harmonic wavenumber (cm^-1) of O2 on the default PES."""
    calc = DEFAULT_OXIDATION_PES.calculator(['O'])

    def energy(distance):
        atoms = _o2(distance)
        atoms.calc = calc
        return atoms.get_potential_energy()

    best = minimize_scalar(energy, bounds=(1.0, 1.5), method='bounded', options={'xatol': 1e-5})
    apart = Atoms('O2', positions=[[5, 20, 20], [35, 20, 20]], cell=[40] * 3, pbc=True)
    apart.calc = calc
    well_depth = apart.get_potential_energy() - best.fun
    h = 2e-3
    curvature = (energy(best.x + h) - 2 * best.fun + energy(best.x - h)) / h**2  # eV/Å²
    omega = np.sqrt(curvature * EV_PER_A2_TO_N_PER_M / O2_REDUCED_MASS_KG)
    wavenumber = omega / (2 * np.pi * 2.99792458e10)
    return best.x, well_depth, wavenumber


def test_spec_round_trip_and_stable_hash():
    spec = PESSpec('reaxff')
    assert spec.potential == 'ffield.reax.021.CHONSSi'
    assert spec.elements == ('Si', 'O', 'H')
    again = PESSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.content_hash() == spec.content_hash()
    assert PESSpec('reaxff', 'ffield.reax.2011X4.CHONSSi').content_hash() != spec.content_hash()
    assert len({PESSpec(kind).content_hash() for kind in PES_KINDS}) == len(PES_KINDS)


def test_unknown_kind_and_species_are_clear_errors():
    with pytest.raises(ValueError, match='unknown PES kind `morse`'):
        PESSpec('morse')
    with pytest.raises(UnsupportedSpeciesError, match=r"not \['Fe'\]"):
        DEFAULT_OXIDATION_PES.calculator(['Si', 'O', 'Fe'])


def test_default_pes_o2_bond_length_and_energy(default_o2_curve):
    bond_length, well_depth, _ = default_o2_curve
    assert 1.1 <= bond_length <= 1.35  # experiment 1.207 Å
    assert 4.0 <= well_depth <= 6.5  # experiment De = 5.21 eV


def test_default_pes_o2_is_smooth_with_physical_stiffness(default_o2_curve):
    """The reason 021 is the default: a smooth O–O well with O2's stretching frequency (1580 cm^-1)."""
    _, _, wavenumber = default_o2_curve
    assert 1300 <= wavenumber <= 1900


@pytest.mark.parametrize(
    ('kind', 'structure', 'per_atom'),
    [
        ('tersoff', bulk('Si', 'diamond', 5.432, cubic=True), -4.63),  # Munetoh SiO.tersoff, Si part
        ('comb', bulk('Si', 'diamond', 5.431, cubic=True), -4.63),
        ('eam/fs', bulk('Al', 'fcc', 4.05, cubic=True), -3.36),  # Mendelev Al cohesive energy
        ('reaxff', bulk('Si', 'diamond', 5.425, cubic=True), None),
    ],
)
def test_lammps_backends_give_cohesive_energies(kind, structure, per_atom):
    atoms = structure.copy()
    atoms.calc = PESSpec(kind).calculator(atoms.get_chemical_symbols())
    energy = atoms.get_potential_energy() / len(atoms)
    assert np.abs(atoms.get_forces()).max() < 1e-3  # perfect crystals: no forces
    if per_atom is None:
        assert -6.0 < energy < -3.0
    else:
        assert energy == pytest.approx(per_atom, abs=0.02)


def test_sevennet_backend_offline():
    atoms = bulk('Si', 'diamond', 5.43, cubic=True)
    atoms.calc = PESSpec('sevennet').calculator()
    energy = atoms.get_potential_energy() / len(atoms)
    assert energy == pytest.approx(-5.4, abs=0.1)  # PBE Si cohesive energy scale in MPtrj
    assert np.abs(atoms.get_forces()).max() < 1e-3


def test_lj2d_forces_match_finite_differences():
    xy = np.array([[0, 0], [1.1, 0.1], [0.5, 1.0], [-0.6, 0.9], [-1.0, -0.2], [-0.4, -1.0], [0.6, -0.95]])
    _, forces = lj2d_energy_forces(xy)
    h = 1e-6
    for i in range(len(xy)):
        for k in range(2):
            plus, minus = xy.copy(), xy.copy()
            plus[i, k] += h
            minus[i, k] -= h
            numeric = -(lj2d_energy_forces(plus)[0] - lj2d_energy_forces(minus)[0]) / (2 * h)
            assert forces[i, k] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


def test_lj2d_dimer_minimum():
    atoms = Atoms('X2', positions=[[0, 0, 0], [2 ** (1 / 6), 0, 0]])
    atoms.calc = PESSpec('lj2d').calculator()
    assert atoms.get_potential_energy() == pytest.approx(-1.0)
    assert np.abs(atoms.get_forces()).max() < 1e-10


def test_shipped_reaxff_files_are_byte_identical_to_their_sources():
    """The sha256 sums published in the potentials README (the files are cited data: never re-encode them)."""
    import hashlib
    import re

    from aiida_rlpath.physics.pes import POTENTIALS_DIR

    published = dict(
        (name, digest)
        for digest, name in re.findall(r'([0-9a-f]{64})  (\S+)', (POTENTIALS_DIR / 'README.md').read_text())
    )
    assert set(published) == {'ffield.reax.2011X4.CHONSSi', 'ffield.reax.021.CHONSSi', 'ffield.reax.SiOH'}
    for name, digest in published.items():
        assert hashlib.sha256((POTENTIALS_DIR / name).read_bytes()).hexdigest() == digest
