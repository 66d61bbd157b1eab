"""Benchmarks behind `dgterm bench`: slow, never part of the test suite."""
