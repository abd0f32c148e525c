"""The in-process LAMMPS library, the shipped potentials, SevenNet checkpoints and torch are usable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from lammps_inputs import SI_DIAMOND_TERSOFF_COMMANDS, SI_TERSOFF_ENERGY_PER_ATOM

from aiida_rlpath.physics import runtime


def _clean_env() -> dict[str, str]:
    """The environment of a user who set nothing: no LD_LIBRARY_PATH."""
    return {key: value for key, value in os.environ.items() if key != 'LD_LIBRARY_PATH'}


def test_ensure_lammps_library_reports_version_and_packages():
    info = runtime.ensure_lammps_library()
    assert info.version >= 20240829
    for package in ('REAXFF', 'MANYBODY'):
        assert package in info.packages


def test_inprocess_library_works_without_ld_library_path():
    """A fresh interpreter with no LD_LIBRARY_PATH computes a Tersoff energy through the helper."""
    code = textwrap.dedent(
        f"""
        from aiida_rlpath.physics.runtime import lammps_potential_path, new_lammps
        lmp = new_lammps()
        for line in {SI_DIAMOND_TERSOFF_COMMANDS!r}:
            lmp.command(line.format(potential=lammps_potential_path('Si.tersoff')))
        print('ENERGY', lmp.get_thermo('pe') / lmp.get_natoms())
        """
    )
    completed = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, env=_clean_env(), timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    energy = float(completed.stdout.split('ENERGY')[-1])
    assert energy == pytest.approx(SI_TERSOFF_ENERGY_PER_ATOM, abs=0.01)


def test_ase_lammpslib_after_helper():
    """ASE's LAMMPSlib (the physics core's route to LAMMPS) gives the same Tersoff energy in eV."""
    from ase.build import bulk
    from ase.calculators.lammpslib import LAMMPSlib

    runtime.ensure_lammps_library()
    atoms = bulk('Si', 'diamond', a=5.432, cubic=True)
    potential = runtime.lammps_potential_path('Si.tersoff')
    atoms.calc = LAMMPSlib(
        lmpcmds=['pair_style tersoff', f'pair_coeff * * {potential} Si'],
        atom_types={'Si': 1},
        log_file=None,
        keep_alive=True,
    )
    energy = atoms.get_potential_energy() / len(atoms)
    forces = atoms.get_forces()
    assert energy == pytest.approx(SI_TERSOFF_ENERGY_PER_ATOM, abs=0.01)
    assert abs(forces).max() < 1e-6  # perfect crystal: forces vanish by symmetry


@pytest.mark.parametrize('filename', ['SiO.tersoff', 'ffield.comb', 'AlFe_mm.eam.fs', 'Si.tersoff'])
def test_shipped_potentials_found(filename):
    path = runtime.lammps_potential_path(filename)
    assert path.is_file()
    assert path.stat().st_size > 0


def test_missing_potential_names_the_file():
    with pytest.raises(FileNotFoundError, match=r'no_such\.tersoff'):
        runtime.lammps_potential_path('no_such.tersoff')


def test_lmp_executable_runs_an_input(tmp_path):
    executable = runtime.lmp_executable()
    assert executable is not None
    potential = runtime.lammps_potential_path('Si.tersoff')
    script = tmp_path / 'in.si'
    script.write_text('\n'.join(line.format(potential=potential) for line in SI_DIAMOND_TERSOFF_COMMANDS))
    completed = subprocess.run(
        [str(executable), '-in', str(script), '-log', 'none'],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(),
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    # thermo output: a header line 'Step PotEng' followed by '0  <energy>'
    lines = completed.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ['Step', 'PotEng'])
    energy = float(lines[header + 1].split()[1]) / 8
    assert energy == pytest.approx(SI_TERSOFF_ENERGY_PER_ATOM, abs=0.01)


def test_sevennet_checkpoint_shipped_and_loadable():
    path = runtime.sevennet_checkpoint('7net-0')
    assert path.name == 'checkpoint_sevennet_0.pth'
    assert path.stat().st_size > 1_000_000


def test_unknown_sevennet_checkpoint():
    with pytest.raises(KeyError, match='unknown SevenNet checkpoint'):
        runtime.sevennet_checkpoint('7net-imaginary')


def test_torch_info_is_cpu_here():
    info = runtime.torch_info()
    assert info['version'] is not None
    assert info['device'] in ('cpu', 'cuda')
    assert info['cuda'] == (info['device'] == 'cuda')
