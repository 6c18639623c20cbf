"""Resolving user-written relative paths without leaving a snapshot's root, and opening only regular files."""

import os
import pathlib
import stat

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


def open_regular(path, mode="rb", where=None, **kwargs):
    """`open(path, mode, **kwargs)` for reading, refusing anything but a regular file before a byte is read.

    A FIFO opened the ordinary way blocks until a writer appears, and a device or a folder is not data
    the gate can read, so the path is opened with O_NONBLOCK (which never waits) and checked with fstat
    on the descriptor actually opened (no race between a check and the open); the file is then read
    normally. Raises GateInputError naming `where` (default: the path) for a non-regular file and OSError
    as `open` does otherwise (FileNotFoundError for a missing file), so callers keep their own wording.
    """
    if "r" not in mode or any(c in mode for c in "wax+"):
        raise ValueError(f"open_regular reads only, got mode {mode!r}")
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        kind = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(kind):
            raise GateInputError(where if where is not None else path,
                                 f"is not a regular file ({_KINDS.get(stat.S_IFMT(kind), 'special file')}); "
                                 "the gate reads only regular files")
        os.set_blocking(descriptor, True)
        return open(descriptor, mode, closefd=True, **kwargs)
    except BaseException:
        os.close(descriptor)
        raise


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def read_bytes(path, where=None):
    """The bytes of the regular file at `path` (see open_regular)."""
    with open_regular(path, "rb", where) as handle:
        return handle.read()


def read_text(path, where=None, encoding="utf-8"):
    """The text of the regular file at `path` (see open_regular), newlines translated as `open` does."""
    with open_regular(path, "r", where, encoding=encoding) as handle:
        return handle.read()
