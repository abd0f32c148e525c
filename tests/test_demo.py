"""`aiida-rlpath demo` as a new user runs it: no profile yet, one command, a trained run with tables and plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_makes_a_profile_trains_reports_and_ends_with_json(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != 'LD_LIBRARY_PATH'}
    env['AIIDA_PATH'] = str(tmp_path / 'config')  # a user with no AiiDA profile at all
    out = tmp_path / 'demo'
    completed = subprocess.run(
        [sys.executable, '-m', 'aiida_rlpath.cli', 'demo', '--cycles', '1', '--episodes', '1', '--json',
         '--output-dir', str(out)],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert 'made `rlpath`' in completed.stdout
    assert 'success_rate' in completed.stdout and 'verdi process status' in completed.stdout
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert set(result) == {'workchain_pk', 'cycles'} and len(result['cycles']) == 1
    cycle = result['cycles'][0]
    assert {'success_rate', 'mean_effective_barrier_eV', 'events'} <= set(cycle)
    assert 0.0 <= cycle['success_rate'] <= 1.0
    assert (out / f'realize_{result["workchain_pk"]}_training.png').is_file()
    assert (out / f'realize_{result["workchain_pk"]}_barriers.png').is_file()
