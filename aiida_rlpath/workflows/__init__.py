"""Work chains of aiida-rlpath (entry points ``rlpath.*``)."""
