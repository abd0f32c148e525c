"""Equivariant policies and value networks."""
