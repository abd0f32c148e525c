"""Test fixtures: a temporary AiiDA profile (SQLite + ZeroMQ broker) that never touches the user's config."""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import tempfile

import pytest

# Importing aiida creates its configuration folder; point it at a throw-away one before anything imports aiida,
# so that a test run never creates or reads the user's ~/.aiida. The fixtures below make the real test profile.
os.environ['AIIDA_PATH'] = tempfile.mkdtemp(prefix='rlpath-tests-aiida-')
atexit.register(shutil.rmtree, os.environ['AIIDA_PATH'], ignore_errors=True)

pytest_plugins = ['aiida.tools.pytest_fixtures']


@pytest.fixture(scope='session', autouse=True)
def aiida_profile(aiida_config, aiida_profile_factory):
    """Session test profile on ``core.sqlite_dos`` with the ``core.zeromq`` broker, so ``submit`` works.

    The broker service is run by aiida-core's ``run_aiida_broker_service`` fixture for the whole session
    (``supervised_by_daemon: False``); daemon workers started by ``started_daemon_client`` connect to it.
    """
    with aiida_profile_factory(
        aiida_config, broker_backend='core.zeromq', broker_config={'supervised_by_daemon': False}
    ) as profile:
        yield profile


@pytest.fixture
def lmp_code(aiida_profile, tmp_path_factory):
    """The ``lmp@localhost`` InstalledCode, made on the test profile by the same code as ``aiida-rlpath setup``.

    Function-scoped: provisioning is idempotent, and a node loaded earlier may belong to a storage instance that
    a test switching profiles has since closed.
    """
    from aiida_rlpath.cli.setup import SetupReport, provision_loaded_profile

    report = SetupReport(
        profile=aiida_profile.name,
        profile_created=False,
        config_dir=os.environ['AIIDA_PATH'],
        storage_backend=aiida_profile.storage_backend,
        broker_backend=aiida_profile.process_control_backend,
        default_profile=aiida_profile.name,
        made_default=False,
    )
    provision_loaded_profile(report, pathlib.Path(tmp_path_factory.mktemp('scratch')))
    from aiida.orm import load_code

    return load_code(report.code)


@pytest.fixture(scope='session')
def water_glass():
    """MAP start: a 72-atom melt-quenched glass with one H2O, relaxed on ReaxFF (about 20 s; shared by the MAP
    test modules). Returns (atoms, water indices, build metadata)."""
    from aiida_rlpath.systems.silica import MeltQuench, build_water_in_glass

    schedule = MeltQuench(melt_steps=5000, quench_steps=20_000, settle_steps=200, minimize_steps=200)
    return build_water_in_glass(seed=4, units=24, schedule=schedule)
