"""Benchmarks: `make bench` runs them against a stack of their own and writes
bench/results/latest.json. Never part of `make test`."""
