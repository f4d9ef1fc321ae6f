"""Agents under test: the launch contract, the mock Fleet server and scenario runtime."""
