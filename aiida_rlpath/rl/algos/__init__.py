"""RL algorithms, one per module."""
