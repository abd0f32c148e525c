"""Gymnasium environments composed of the physics core's pure functions; no AiiDA import."""
