"""Trend across gate runs: reads report folders (metrics.json, timings.json) and writes a trend report."""
