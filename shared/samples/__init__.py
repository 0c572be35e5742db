"""Deterministic synthetic data sets for demos, tests and benchmarks (`cloudact sample-data ...`)."""
