"""MAP work chains: Ape-X DQN training of a water diffusing through silica glass, and piecewise-NEB pathways."""

from .pathway import MapPathwayWorkChain, MapSegmentWorkChain
from .training import MapActorWorkChain, MapTrainingWorkChain

__all__ = ('MapActorWorkChain', 'MapPathwayWorkChain', 'MapSegmentWorkChain', 'MapTrainingWorkChain')
