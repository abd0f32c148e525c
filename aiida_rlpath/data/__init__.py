"""AiiDA data types of aiida-rlpath (entry points ``rlpath.*``)."""
