"""Reproducible benchmarks: each prints one JSON line; ratios are against the plain library, same run."""
