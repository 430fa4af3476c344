"""Benchmarks of tagstream (python -m benchmarks.<name>)."""
