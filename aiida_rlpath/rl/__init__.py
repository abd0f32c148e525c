"""Models (torch + e3nn) and RL algorithms; no AiiDA import."""
