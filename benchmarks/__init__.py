"""Benchmark harness for the workshop: see benchmarks/run.py and BENCHMARKS.md."""
