"""Seeded calcfunctions wrapping the physics core and the RL transition functions."""
