"""The pottery crop-model promotion gate: load -> predict -> score -> decide -> render."""

__version__ = "1.1.0"
