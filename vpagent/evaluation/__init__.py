"""Evaluation: datasets, metrics, and `vpagent eval`."""
