"""The ``aiida-rlpath`` console script, built on AiiDA's ``VerdiCommandGroup``.

Every sub-command that reads or writes the provenance graph runs on the profile given with ``-p/--profile``
(default: AiiDA's default profile); ``setup`` creates the embedded profile when there is none.
"""

import warnings

# aiida warns when it creates its configuration folder on import; `setup` reports the folder it uses instead.
warnings.filterwarnings('ignore', message='Creating AiiDA configuration folder', category=UserWarning)

import click  # noqa: E402
from aiida.cmdline.groups import VerdiCommandGroup  # noqa: E402
from aiida.cmdline.params import options, types  # noqa: E402


@click.group('aiida-rlpath', cls=VerdiCommandGroup, context_settings={'help_option_names': ['-h', '--help']})
@options.PROFILE(type=types.ProfileParamType(), expose_value=False)
@click.version_option(package_name='aiida-rlpath', prog_name='aiida-rlpath')
def cmd_root():
    """aiida-rlpath: RL discovery of rare-event atomistic pathways with full AiiDA provenance."""


from .crystal import cmd_crystal  # noqa: E402
from .demo import cmd_demo  # noqa: E402
from .langevin import cmd_langevin  # noqa: E402
from .map import cmd_map  # noqa: E402
from .realize import cmd_realize  # noqa: E402
from .relax import cmd_relax  # noqa: E402
from .setup import cmd_setup  # noqa: E402
from .status import cmd_status  # noqa: E402

cmd_root.add_command(cmd_crystal)
cmd_root.add_command(cmd_demo)
cmd_root.add_command(cmd_langevin)
cmd_root.add_command(cmd_map)
cmd_root.add_command(cmd_realize)
cmd_root.add_command(cmd_relax)
cmd_root.add_command(cmd_setup)
cmd_root.add_command(cmd_status)
