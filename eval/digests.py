"""File digests for provenance and pins, streamed so 176 MB weights never sit in memory."""

import hashlib

from eval.inputs.safe_paths import open_regular


def file_digest(path, algorithm="sha256"):
    """Hex digest of the file at `path` (md5 only where an upstream checksum is md5, as rembg's is)."""
    with open_regular(path) as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()
