"""The scripts in examples/ run under `verdi run` on the test profile and give physical answers."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / 'examples'


def test_si_tersoff_energy_example_under_verdi_run(aiida_profile):
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    completed = subprocess.run(
        [str(verdi), '-p', aiida_profile.name, 'run', str(EXAMPLES / 'si_tersoff_energy.py'), '5.432'],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    match = re.search(r'E = (-?\d+\.\d+) eV/atom\s+\(calcfunction PK (\d+)', completed.stdout)
    assert match, completed.stdout
    assert float(match.group(1)) == pytest.approx(-4.63, abs=0.01)

    from aiida.orm import load_node

    node = load_node(int(match.group(2)))
    assert node.is_finished_ok
    assert node.outputs.result.value == pytest.approx(float(match.group(1)), abs=1e-4)
    assert node.inputs.lattice_constant.value == pytest.approx(5.432)


def test_realize_episode_example_under_verdi_run(aiida_profile):
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    script = EXAMPLES / 'realize_random_episode.py'
    completed = subprocess.run(
        [str(verdi), '-p', aiida_profile.name, 'run', str(script), '--bare', '--steps', '1', '--seed', '3'],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    match = re.search(r'RealizeEpisodeWorkChain<(\d+)> exit status 0: 1 steps', completed.stdout)
    assert match, completed.stdout

    from aiida.orm import Log, load_node

    node = load_node(int(match.group(1)))
    assert node.is_finished_ok
    assert len(node.outputs.summary['steps']) == 1
    assert any('step 00: ' in log.message for log in Log.collection.get_logs_for(node))
