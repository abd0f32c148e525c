"""Langevin work chains: RL importance sampling of rare LJ7 transitions (``rlpath.langevin.sampling``)."""
