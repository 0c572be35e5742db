"""Convergence Data Pipeline: the library behind every Cloud Function and the `cloudact` CLI."""

__version__ = "0.1.0"
