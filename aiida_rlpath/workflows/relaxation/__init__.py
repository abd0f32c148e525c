"""Work chains of RL crystal relaxation: TD3 training (``rlpath.relax.training``) and the benchmark against
classical optimizers (``rlpath.relax.benchmark``)."""

from .benchmark import RelaxBenchmarkWorkChain
from .training import RelaxTrainingWorkChain

__all__ = ('RelaxBenchmarkWorkChain', 'RelaxTrainingWorkChain')
