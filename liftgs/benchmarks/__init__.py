"""Benchmarks behind ``liftgs bench ...``: scripts that print median timings (never run by the tests)."""
