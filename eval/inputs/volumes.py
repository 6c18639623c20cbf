"""`modal://<volume>/<path>` inputs: one small store interface for Modal Volumes and local stand-ins.

The gate (and the Modal app) only need "list the files under a path" and "stream a file"; keeping that
behind VolumeStore lets tests use a local directory in place of a Volume, through the same code.
"""

import abc
import os
import pathlib
import posixpath
import re
import shutil
import tempfile

from eval.errors import GateInputError
from eval.inputs.safe_paths import open_regular

SCHEME = "modal://"
_URI = re.compile(r"^modal://(?P<volume>[A-Za-z0-9][A-Za-z0-9._-]{0,63})/(?P<path>[^\x00]+)$")


def is_volume_uri(spec):
    return str(spec).startswith(SCHEME)


def parse_uri(uri):
    """(volume name, normalised path inside it) of a modal:// URI."""
    match = _URI.match(uri)
    if not match:
        raise GateInputError(uri, "malformed Modal Volume URI; expected modal://<volume-name>/<path/in/volume>")
    path = match["path"].strip("/")
    if not path or ".." in path.split("/"):
        raise GateInputError(uri, "the path inside the volume must be non-empty and may not contain '..'")
    return match["volume"], posixpath.normpath(path)


class VolumeStore(abc.ABC):
    @abc.abstractmethod
    def list_files(self, path):
        """Sorted paths (relative to the volume root) of the files at or under `path`."""

    @abc.abstractmethod
    def read(self, path):
        """Iterator of the byte chunks of the file at `path`."""


class ModalVolumeStore(VolumeStore):
    """A named Modal Volume, read through modal's Volume API (needs Modal credentials)."""

    def __init__(self, name):
        import modal  # deferred: nothing Modal-related may run when the gate only reads local files

        self._volume = modal.Volume.from_name(name)

    def list_files(self, path):
        from modal.volume import FileEntryType

        entries = self._volume.listdir(path, recursive=True)
        return sorted(e.path.lstrip("/") for e in entries if e.type == FileEntryType.FILE)

    def read(self, path):
        return self._volume.read_file(path)


class LocalDirStore(VolumeStore):
    """A local directory standing in for a Volume (tests, and volumes mounted into a Modal container)."""

    def __init__(self, root):
        self._root = pathlib.Path(root)

    def list_files(self, path):
        target = self._root / path
        if target.is_file():
            return [path]
        return sorted(p.relative_to(self._root).as_posix() for p in target.rglob("*") if p.is_file())

    def read(self, path):
        with open_regular(self._root / path) as handle:
            yield from iter(lambda: handle.read(1 << 20), b"")


def fetch(uri, destination, open_store=ModalVolumeStore):
    """Mirror the file or directory at `uri` as `destination`/<volume>/<path>; return that local path.

    The mirror equals the Volume: everything is downloaded into a staging folder next to it and swapped
    in whole, so a file deleted from the Volume is gone locally too (and from the dataset digest), and an
    interrupted download leaves the previous mirror as it was. Only the mirror of `path` is replaced:
    the rest of the gate's cache (other paths of the same Volume) is left alone.
    """
    volume, path = parse_uri(uri)
    try:
        store = open_store(volume)
        files = store.list_files(path)
    except GateInputError:
        raise
    except Exception as err:  # modal raises its own types for auth, missing volumes and networking
        raise GateInputError(uri, f"cannot list the Modal Volume ({type(err).__name__}: {err})") from None
    if not files:
        raise GateInputError(uri, "nothing found at this path in the volume")
    target = pathlib.Path(destination) / volume / path
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        mirror = staging / "mirror"
        for name in files:
            relative = posixpath.relpath(name, path)
            if ".." in relative.split("/"):
                raise GateInputError(f"{SCHEME}{volume}/{name}", f"listed under {path} but lies outside it")
            local = mirror if name == path else mirror / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(local, "wb") as out:
                    for chunk in store.read(name):
                        out.write(chunk)
            except Exception as err:
                raise GateInputError(f"{SCHEME}{volume}/{name}", f"download failed ({type(err).__name__}: "
                                                                 f"{err})") from None
        if os.path.lexists(target):
            os.replace(target, staging / "previous")
        os.replace(mirror, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # the previous mirror, or a partial download
    return target
