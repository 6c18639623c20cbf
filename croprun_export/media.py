"""The service's media storage (photos, mask PNGs): a local folder or a `modal://<volume>/<path>` Volume.

Both go through the gate's VolumeStore interface (eval/inputs/volumes.py), so tests read a local folder
through exactly the code a Volume uses. Storage paths come from database rows: an absolute path, a
`..` or (locally) a symlink leading out of the root is refused like a missing file, never followed.
"""

import pathlib
import posixpath

from eval.errors import GateInputError
from eval.inputs import volumes
from eval.inputs.safe_paths import resolve_inside
from eval.runtime import user_path


class MediaMissing(Exception):
    """The file a row points at is not in the storage (or its path is not a safe relative path)."""


class Media:
    def __init__(self, spec, open_store=volumes.ModalVolumeStore):
        self.spec = spec
        if volumes.is_volume_uri(spec):
            volume, self._prefix = volumes.parse_uri(spec)
            self._local_root = None
            try:
                self._store = open_store(volume)
            except Exception as err:  # modal raises its own types for auth, missing volumes and networking
                raise GateInputError(spec, f"cannot open the Modal Volume ({type(err).__name__}: {err})") from None
        else:
            self._local_root = pathlib.Path(user_path(spec))
            if not self._local_root.is_dir():
                raise GateInputError(spec, "media root not found (a folder, or modal://<volume>/<path>)")
            self._prefix = ""
            self._store = volumes.LocalDirStore(self._local_root)

    def read(self, relative):
        """Bytes of the file at storage path `relative`; raises MediaMissing."""
        if not isinstance(relative, str) or not relative.strip():
            raise MediaMissing("no file path")
        if self._local_root is not None:
            try:
                resolve_inside(self._local_root, relative, relative)
            except GateInputError as err:
                raise MediaMissing(err.problem) from None
        elif relative.startswith("/") or ".." in relative.split("/") or "\x00" in relative:
            raise MediaMissing(f"path {relative!r} escapes the media root (absolute or '..')")
        try:
            return b"".join(self._store.read(posixpath.join(self._prefix, relative)))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise MediaMissing("file not found") from None
        except OSError as err:
            raise GateInputError(f"{self.spec}/{relative}", f"cannot read ({err.strerror or err})") from None
