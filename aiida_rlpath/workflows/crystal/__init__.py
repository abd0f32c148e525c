"""Work chain of RL crystal design against property targets (``rlpath.crystal.design``)."""

from .design import CrystalDesignWorkChain

__all__ = ('CrystalDesignWorkChain',)
