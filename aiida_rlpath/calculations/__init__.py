"""Calculation processes of aiida-rlpath: seeded calcfunctions and CalcJobs."""
