"""Mask-producing backends: one module per family, all behind eval.backends.base.Backend."""
