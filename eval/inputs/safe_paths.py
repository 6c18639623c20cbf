"""Resolving user-written relative paths without leaving a snapshot's root."""

import os
import pathlib

from eval.errors import GateInputError


def resolve_inside(root, relative, where, base=None):
    """Return `base/relative` (`base` defaults to `root`), refusing anything that could escape `root`.

    Snapshot rows are user data: an absolute path, a `..` component or a symlink that resolves outside
    the root could make the gate read (and publish in its gallery) files it was never meant to see.
    `base` is a folder inside `root` that rows are relative to; the check is against `root` itself, so
    a symlinked `base` cannot lead outside either.
    """
    root = pathlib.Path(root)
    if not isinstance(relative, str) or not relative:
        raise GateInputError(where, f"path must be a non-empty string, got {relative!r}")
    if "\x00" in relative:
        raise GateInputError(where, f"path {relative!r} contains a NUL character")
    candidate = pathlib.PurePosixPath(relative)
    if candidate.is_absolute() or "\\" in relative or ".." in candidate.parts:
        raise GateInputError(where, f"path {relative!r} escapes the snapshot root (absolute or '..')")
    path = pathlib.Path(base if base is not None else root) / candidate
    try:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
    except (OSError, ValueError) as err:  # a name too long, or not encodable on this file system
        raise GateInputError(where, f"path {relative!r} cannot be resolved ({err})") from None
    if os.path.commonpath([real_root, real]) != real_root:
        raise GateInputError(where, f"path {relative!r} resolves outside the snapshot root (symlink?)")
    return path
