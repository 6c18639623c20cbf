"""Locating and pinning the candidate checkpoint before anything loads it.

An ultralytics `.pt` is a pickle: loading it runs code from the file. The digest is therefore checked
against the pin (--checkpoint_sha256 or an allowlist of approved digests) before the file is opened by
torch, and recorded in every report.
"""

import dataclasses
import pathlib
import re

from eval import runtime
from eval.digests import file_digest
from eval.errors import GateInputError
from eval.inputs import volumes

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    spec: str  # what the user passed (path or modal:// URI)
    path: pathlib.Path  # local file
    sha256: str

    @property
    def name(self):
        return self.path.stem


def read_allowlist(path):
    """Approved sha256 digests, one per line (`#` comments and blank lines ignored)."""
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as err:
        raise GateInputError(path, f"cannot read checkpoint allowlist ({err.strerror})") from None
    except UnicodeDecodeError:
        raise GateInputError(path, "checkpoint allowlist is not UTF-8 text") from None
    digests = set()
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip().lower()
        if entry and not re.fullmatch(r"[0-9a-f]{64}", entry.split()[0]):
            raise GateInputError(f"{path}:{number}", "expected a 64-hex-digit sha256 digest")
        if entry:
            digests.add(entry.split()[0])
    return digests


def check_pin(pinned_sha256, flag="--checkpoint_sha256"):
    """Refuse a pin that is not a sha256 digest (an empty one must not silently mean "unpinned")."""
    if pinned_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", pinned_sha256):
        raise GateInputError(flag, f"{pinned_sha256!r} is not a 64-hex-digit sha256 digest")


def resolve_checkpoint(spec, pinned_sha256=None, allowlist=None, open_store=volumes.ModalVolumeStore,
                       pin_flag="--checkpoint_sha256"):
    """Local path + digest of the checkpoint at `spec`, refused unless it matches every given pin."""
    check_pin(pinned_sha256, pin_flag)
    if volumes.is_volume_uri(spec):
        path = volumes.fetch(spec, runtime.cache_dir() / "volumes", open_store)
    else:
        path = pathlib.Path(spec)
    if not path.is_file():
        raise GateInputError(spec, "checkpoint file not found")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        digest = file_digest(path)
    except OSError as err:
        raise GateInputError(spec, f"cannot read checkpoint ({err.strerror})") from None
    if magic != _ZIP_MAGIC:
        raise GateInputError(spec, "not a torch checkpoint (expected the zip format torch.save writes)")
    if pinned_sha256 is not None and digest != pinned_sha256.lower():
        raise GateInputError(spec, f"sha256 {digest} differs from the pinned {pin_flag} {pinned_sha256}")
    if allowlist is not None and digest not in allowlist:
        raise GateInputError(spec, f"sha256 {digest} is not in the checkpoint allowlist")
    return Checkpoint(str(spec), path, digest)
