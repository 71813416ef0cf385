"""Benchmarks and the demo: tools, not tests (see README, Performance)."""
