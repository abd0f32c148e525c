"""aiida-rlpath: reinforcement-learning discovery of rare-event atomistic pathways with AiiDA provenance."""

__version__ = '0.1.0'
