"""The scripts in examples/ run under `verdi run` on the test profile and give physical answers."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / 'examples'


def _verdi_run(profile, script: str, *args: str) -> str:
    """Run ``verdi -p PROFILE run examples/SCRIPT ARGS`` as a user would; return its standard output."""
    verdi = pathlib.Path(sys.executable).parent / 'verdi'
    completed = subprocess.run(
        [str(verdi), '-p', profile.name, 'run', str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_si_tersoff_energy_example_under_verdi_run(aiida_profile):
    stdout = _verdi_run(aiida_profile, 'si_tersoff_energy.py', '5.432')
    match = re.search(r'E = (-?\d+\.\d+) eV/atom\s+\(calcfunction PK (\d+)', stdout)
    assert match, stdout
    assert float(match.group(1)) == pytest.approx(-4.63, abs=0.01)

    from aiida.orm import load_node

    node = load_node(int(match.group(2)))
    assert node.is_finished_ok
    assert node.outputs.result.value == pytest.approx(float(match.group(1)), abs=1e-4)
    assert node.inputs.lattice_constant.value == pytest.approx(5.432)


def test_realize_episode_example_under_verdi_run(aiida_profile):
    stdout = _verdi_run(aiida_profile, 'realize_random_episode.py', '--bare', '--steps', '1', '--seed', '3')
    match = re.search(r'RealizeEpisodeWorkChain<(\d+)> exit status 0: 1 steps', stdout)
    assert match, stdout

    from aiida.orm import Log, load_node

    node = load_node(int(match.group(1)))
    assert node.is_finished_ok
    assert len(node.outputs.summary['steps']) == 1
    assert any('step 00: ' in log.message for log in Log.collection.get_logs_for(node))


def test_realize_training_example_under_verdi_run(aiida_profile):
    args = [
        '--cycles',
        '1',
        '--episodes',
        '1',
        '--steps',
        '1',
        '--size',
        'tiny',
        '--oxide-thickness',
        '0',
        '--seed',
        '1',
    ]
    stdout = _verdi_run(aiida_profile, 'realize_training.py', *args)
    match = re.search(r'RealizeTrainingWorkChain<(\d+)> exit status 0', stdout)
    assert match, stdout
    assert 'cycle_00: success rate' in stdout

    from aiida.orm import load_node

    node = load_node(int(match.group(1)))
    assert node.is_finished_ok and any(c.process_label == 'oxidation_system' for c in node.called)  # grew its start


def test_langevin_example_under_verdi_run(aiida_profile):
    args = ['--beta', '5', '--cycles', '1', '--warmup-cycles', '0', '--paths', '40', '--production-paths', '80',
            '--max-steps', '600', '--seed', '2']  # fmt: skip
    stdout = _verdi_run(aiida_profile, 'langevin_lj7_rate.py', *args)
    match = re.search(r'LangevinSamplingWorkChain<(\d+)> exit status (\d+)', stdout)
    assert match, stdout

    from aiida.orm import load_node

    node = load_node(int(match.group(1)))
    assert node.exit_status == int(match.group(2))
    assert 'flux' in node.outputs and node.outputs.flux['crossings'] > 0
    if node.is_finished_ok:
        assert re.search(r'k = \S+ ± \S+ 1/tau', stdout)
        assert node.outputs.rate['rate'] > 0
    else:  # no production path reached C3 in this tiny run: a defined exit code, not a crash
        assert node.exit_status == 301


def test_relax_benchmark_example_under_verdi_run(aiida_profile):
    stdout = _verdi_run(aiida_profile, 'relax_benchmark.py', '--sizes', '2', '--distortions', '1', '--seed', '1')
    match = re.search(r'RelaxBenchmarkWorkChain<(\d+)> exit status 0', stdout)
    assert match, stdout
    assert re.search(r'median force calls: rl \d+, bfgs \d+, lbfgs \d+, fire \d+, cg \d+', stdout), stdout

    from aiida.orm import load_node

    node = load_node(int(match.group(1)))
    relaxations = [c for c in node.called if c.process_label == 'relax_structure']
    assert len(relaxations) == 5 and all(c.outputs.result['converged'] for c in relaxations)


def test_crystal_design_example_under_verdi_run(aiida_profile):
    stdout = _verdi_run(aiida_profile, 'crystal_design.py', '--episodes', '4', '--episodes-per-round', '2',
                        '--prototypes', 'rocksalt', '--vocabulary', 'Li,Na,F,Cl', '--seed', '1')  # fmt: skip
    match = re.search(r'CrystalDesignWorkChain<(\d+)> exit status 0', stdout)
    assert match, stdout
    best = re.search(r'best: (\w+) \(rocksalt\) (\d+\.\d+), reward (\d\.\d+); (\d+) evaluations, (\d+) cache hits',
                     stdout)  # fmt: skip
    assert best, stdout
    assert best.group(1) in {'LiF', 'LiCl', 'NaF', 'NaCl'} and 1.0 < float(best.group(2)) < 3.5
    assert int(best.group(4)) + int(best.group(5)) == 4

    from aiida.orm import load_node

    node = load_node(int(match.group(1)))
    assert len([c for c in node.called if c.process_label == 'design_update']) == 2


def test_map_example_under_verdi_run(aiida_profile):
    stdout = _verdi_run(aiida_profile, 'map_training.py', '--rounds', '1', '--steps', '3', '--max-steps', '3',
                        '--seed', '1')  # fmt: skip
    match = re.search(r'MapTrainingWorkChain<(\d+)> exit status 0', stdout)
    assert match, stdout
    assert re.search(r'round 0: mean progress [+-]\d+\.\d+ Å', stdout)
    assert re.search(r'episode round 0 actor \d: progress .* tau = \S+ s', stdout)

    from aiida.orm import load_node

    node = load_node(int(match.group(1)))
    labels = {link.link_label for link in node.base.links.get_outgoing().all()}
    assert {'system', 'round_00_actor_00', 'round_00_actor_01', 'learner_00', 'pathway_00', 'summary'} <= labels
    assert node.outputs.system['atoms'] == 75
