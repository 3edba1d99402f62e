"""Operability commands, run from the repository root as ``python -m tools.<command>``."""
