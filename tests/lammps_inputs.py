"""Small LAMMPS inputs with known answers, shared by the tests."""

#: Tersoff (1988) Si in the diamond structure at a = 5.432 Å: cohesive energy 4.63 eV/atom.
SI_TERSOFF_ENERGY_PER_ATOM = -4.63

SI_DIAMOND_TERSOFF_COMMANDS = [
    'units metal',
    'boundary p p p',
    'lattice diamond 5.432',
    'region box block 0 1 0 1 0 1',
    'create_box 1 box',
    'create_atoms 1 box',
    'mass 1 28.0855',
    'pair_style tersoff',
    'pair_coeff * * {potential} Si',
    'thermo_style custom step pe',
    'run 0',
]


def si_diamond_script(potential: str) -> str:
    """Return the input script for one 8-atom Si diamond cell evaluated with Tersoff ``potential`` (a path)."""
    lines = [line.format(potential=potential) for line in SI_DIAMOND_TERSOFF_COMMANDS]
    lines.append('print "RLPATH_ENERGY $(pe)"')
    return '\n'.join(lines) + '\n'
