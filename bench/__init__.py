"""Benchmarks: ``python -m bench`` runs them all and writes bench/RESULTS.md; each module also runs alone."""
