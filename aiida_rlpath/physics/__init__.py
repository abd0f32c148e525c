"""Physics core: potential-energy surfaces, relaxation, NEB, bond analysis and transition-state theory.

Nothing in this package imports :mod:`aiida`; the provenance shell wraps these functions.
"""
