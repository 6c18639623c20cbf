"""Tracked runs (#445): a finished gate report folder logged to Weights & Biases."""
