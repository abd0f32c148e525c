"""The `aiida-rlpath` console script: setup (idempotent, respects the default profile) and status."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from aiida_rlpath.cli import cmd_root

STATUS_KEYS = {
    'profile',
    'storage_backend',
    'broker',
    'daemon',
    'lammps_inprocess',
    'lammps_executable',
    'sevennet',
    'torch',
}


def _invoke(args, **kwargs):
    result = CliRunner().invoke(cmd_root, args, catch_exceptions=False, **kwargs)
    return result


@pytest.fixture
def _reload_test_profile(aiida_profile):
    """Load the session test profile again once the temporary config below is gone."""
    from aiida.manage.configuration import load_profile

    yield
    load_profile(aiida_profile.name, allow_switch=True)


@pytest.fixture
def isolated_config(_reload_test_profile, aiida_config_tmp):
    """An empty AiiDA config folder, for `setup` to fill."""
    assert aiida_config_tmp.profile_names == []
    return aiida_config_tmp


def test_root_help_lists_commands():
    result = _invoke(['--help'])
    assert result.exit_code == 0
    for name in ('setup', 'status'):
        assert name in result.output


def test_status_json_on_test_profile(aiida_profile, lmp_code):
    result = _invoke(['-p', aiida_profile.name, 'status', '--json'])
    data = json.loads(result.output.strip().splitlines()[-1])
    assert set(data) >= STATUS_KEYS
    assert data['profile'] == aiida_profile.name
    assert data['storage_backend'] == 'core.sqlite_dos'
    assert data['broker']['backend'] == 'core.zeromq'
    assert data['lammps_inprocess']['ok'] is True
    assert data['lammps_inprocess']['missing_packages'] == []
    assert data['lammps_executable']['ok'] is True
    assert data['sevennet']['ok'] is True
    assert data['lmp_code']['label'] == lmp_code.full_label
    assert data['torch']['version'].startswith('2.')
    assert data['ok'] is True
    assert result.exit_code == 0


def test_status_table_on_test_profile(aiida_profile):
    result = _invoke(['-p', aiida_profile.name, 'status'])
    assert result.exit_code == 0
    for label in ('profile:', 'storage:', 'broker:', 'daemon:', 'lammps lib:', 'lammps exe:', 'sevennet:', 'torch:'):
        assert label in result.output


def test_status_unknown_profile_is_a_usage_error():
    result = CliRunner().invoke(cmd_root, ['-p', 'no-such-profile', 'status'])
    assert result.exit_code == 2
    assert 'no-such-profile' in result.output


def test_setup_creates_everything_then_is_idempotent(isolated_config):
    from aiida.orm import Computer, InstalledCode, QueryBuilder

    first = json.loads(_invoke(['setup', '--json']).output.strip().splitlines()[-1])
    assert first['profile'] == 'rlpath'
    assert first['config_dir'] == str(isolated_config.dirpath)
    assert first['profile_created'] is True
    assert first['storage_backend'] == 'core.sqlite_dos'
    assert first['broker_backend'] == 'core.zeromq'
    assert first['made_default'] is True
    assert first['computer_created'] is True
    assert first['code'] == 'lmp@localhost'
    assert first['code_created'] is True
    assert isolated_config.default_profile_name == 'rlpath'

    second = json.loads(_invoke(['setup', '--json']).output.strip().splitlines()[-1])
    assert second['profile_created'] is False
    assert second['computer_created'] is False
    assert second['code_created'] is False
    assert second['warnings'] == []
    assert QueryBuilder().append(Computer, filters={'label': 'localhost'}).count() == 1
    assert QueryBuilder().append(InstalledCode, filters={'label': 'lmp'}).count() == 1


def test_setup_never_clobbers_another_default_without_force(isolated_config, aiida_profile_factory):
    with aiida_profile_factory(isolated_config, name='mine'):
        pass
    isolated_config.set_default_profile('mine', overwrite=True)
    isolated_config.store()

    report = json.loads(_invoke(['setup', '--json']).output.strip().splitlines()[-1])
    assert report['profile_created'] is True
    assert report['made_default'] is False
    assert isolated_config.default_profile_name == 'mine'
    assert any('default profile stays `mine`' in warning for warning in report['warnings'])

    forced = json.loads(_invoke(['setup', '--force', '--json']).output.strip().splitlines()[-1])
    assert forced['profile_created'] is False
    assert forced['made_default'] is True
    assert isolated_config.default_profile_name == 'rlpath'
    assert set(isolated_config.profile_names) == {'mine', 'rlpath'}


def test_setup_keeps_a_stale_lmp_code_unless_forced(isolated_config):
    from aiida.orm import InstalledCode, QueryBuilder, load_code

    _invoke(['setup'])
    # As if the environment had moved: `lmp@localhost` now points at an executable of another venv.
    current = load_code('lmp@localhost')
    current.label = 'lmp-original'
    other = InstalledCode(label='lmp', computer=current.computer, filepath_executable='/opt/old-venv/bin/lmp').store()

    kept = json.loads(_invoke(['setup', '--json']).output.strip().splitlines()[-1])
    assert kept['code_executable'] == '/opt/old-venv/bin/lmp'
    assert any('--force' in warning for warning in kept['warnings'])

    replaced = json.loads(_invoke(['setup', '--force', '--json']).output.strip().splitlines()[-1])
    assert replaced['code_created'] is True
    assert replaced['code_executable'] != '/opt/old-venv/bin/lmp'
    assert load_code('lmp@localhost').filepath_executable.as_posix() == replaced['code_executable']
    old = QueryBuilder().append(InstalledCode, filters={'id': other.pk}).one()[0]
    assert old.label == f'lmp-old-{other.pk}' and old.is_hidden  # kept, renamed, hidden: never deleted


def test_fresh_user_flow_in_a_new_aiida_path(tmp_path):
    """As a new user: `aiida-rlpath setup` then `aiida-rlpath status --json` in a fresh AIIDA_PATH."""
    env = {key: value for key, value in os.environ.items() if key != 'LD_LIBRARY_PATH'}
    env['AIIDA_PATH'] = str(tmp_path)
    script = [sys.executable, '-m', 'aiida_rlpath.cli']
    setup = subprocess.run([*script, 'setup'], capture_output=True, text=True, env=env, timeout=300)
    assert setup.returncode == 0, setup.stderr
    assert 'Created profile `rlpath`' in setup.stdout
    assert (tmp_path / '.aiida' / 'config.json').is_file()
    status = subprocess.run([*script, 'status', '--json'], capture_output=True, text=True, env=env, timeout=300)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout.strip().splitlines()[-1])
    assert data['profile'] == 'rlpath'
    assert data['config_dir'] == str(tmp_path / '.aiida')
    assert data['ok'] is True
