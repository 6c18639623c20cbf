"""Render: metrics.json, per_image.csv, report.md, gallery PNGs; atomic publishing."""
