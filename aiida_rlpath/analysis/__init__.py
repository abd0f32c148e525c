"""QueryBuilder queries, plots and exports over aiida-rlpath provenance graphs."""
