"""Benchmarks run by hand (`make bench`), never by the test suite; their figures go to docs/performance.md."""
