"""A content-addressed mask cache in front of any backend: the baseline and the incumbent never change between
candidates, and the candidate's own entries let an interrupted run resume.

Key: sha256 of the decoded pixels (eval.inputs.images.digest_of) under the backend's fingerprint (its versions,
weight digest and every mask-changing setting), so a cached mask is reused only where the backend would compute
the same one.

An entry is `MAGIC`, then the sha256 of (key, payload), then the payload: the mask's height and width and
its pixels packed 8 to a byte. Every read recomputes the digest, so a flipped, missing or extra byte
anywhere in an entry, or an entry copied under another key's name, is detected and the mask recomputed
(and rewritten): a corrupted cache can cost time, never change a result. Entries are written atomically;
the directory is safe to share between concurrent runs and CI jobs.
"""

import hashlib
import os
import pathlib
import struct

import numpy as np

from eval.backends.base import Backend
from eval.inputs import images as images_lib
from eval.inputs.safe_paths import read_bytes

MAGIC = b"pottery-gate-mask/v1\n"
_DIGEST_BYTES = 32
_SHAPE = struct.Struct(">II")


def encode_entry(key, mask):
    """The bytes stored for `mask` under `key` (a hex digest)."""
    payload = _SHAPE.pack(*mask.shape) + np.packbits(mask, axis=None).tobytes()
    return MAGIC + hashlib.sha256(key.encode() + payload).digest() + payload


def decode_entry(key, data, shape):
    """The mask stored in `data` under `key`, or None unless it is intact and `shape` (H, W)."""
    head = len(MAGIC) + _DIGEST_BYTES
    payload = data[head:]
    if data[:len(MAGIC)] != MAGIC or hashlib.sha256(key.encode() + payload).digest() != data[len(MAGIC):head]:
        return None
    if len(payload) < _SHAPE.size or _SHAPE.unpack_from(payload) != tuple(shape):
        return None
    height, width = shape
    bits = np.frombuffer(payload, np.uint8, offset=_SHAPE.size)
    if bits.size != (height * width + 7) // 8:
        return None
    return np.unpackbits(bits, count=height * width).astype(bool).reshape(height, width)


class CachedBackend(Backend):
    def __init__(self, inner, cache_dir, meter=None):
        self._inner, self._meter = inner, meter  # an eval.timings.Meter counts what the cache served
        self.name = inner.name
        self._dir = pathlib.Path(cache_dir) / inner.fingerprint()[:32]
        self.hits = self.misses = self.rejected = 0

    def provenance(self):
        return self._inner.provenance()  # the cache never changes what is computed

    def _path(self, key):
        return self._dir / key[:2] / f"{key}.mask"

    def _read(self, key, shape):
        try:
            data = read_bytes(self._path(key))
        except FileNotFoundError:
            return None
        except OSError:
            self.rejected += 1
            return None
        mask = decode_entry(key, data, shape[:2])
        self.rejected += mask is None
        return mask

    def _write(self, key, mask):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(encode_entry(key, mask))
        os.replace(partial, path)

    def predict(self, images):
        rejected = self.rejected
        keys = [images_lib.digest_of(image) for image in images]
        masks = [self._read(k, image.shape) for k, image in zip(keys, images)]
        todo = [i for i, m in enumerate(masks) if m is None]
        if todo:
            for i, mask in zip(todo, self._inner.predict([images[i] for i in todo])):
                masks[i] = mask
                self._write(keys[i], mask)
        self.hits += len(images) - len(todo)
        self.misses += len(todo)
        if self._meter is not None:
            self._meter.served(self.name, len(images) - len(todo), len(todo), self.rejected - rejected)
        return masks
