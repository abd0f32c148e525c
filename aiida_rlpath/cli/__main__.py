"""``python -m aiida_rlpath.cli`` runs the ``aiida-rlpath`` console script."""

from aiida_rlpath.cli import cmd_root

if __name__ == '__main__':
    cmd_root()
