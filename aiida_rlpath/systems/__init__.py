"""Builders of atomistic systems (Si/a-SiO2 slabs, silica glass, Al-Fe cells, LJ7); no AiiDA import."""
