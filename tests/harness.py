"""The test-facing entry to ``tools.mockrun``: run the real program under Pulumi's mock runtime."""

from tools.mockrun import ROOT, Invoke, Resource, Run, run_program

__all__ = ["ROOT", "Invoke", "Resource", "Run", "run_program"]
