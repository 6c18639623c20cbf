"""One photo is one piece of evidence: items of a corpus that show the same photo are evaluated once.

A photo listed in three CropRun rows would otherwise count three times toward `min_images` and weigh
three times in every mean and pass rate. The snapshot loader applies these rules, so a hand-made snapshot
is covered as well as a database export:

- Identity is by content, within one corpus: two items show the same photo when their photos decode to
  the same pixels (eval/inputs/images.py's `load_rgb`: EXIF orientation applied, 8-bit RGB exactly as
  production decodes it). The same file under two names, a PNG and a lossless TIFF of it, a grey and an RGB
  copy: every backend is handed the same array for each, so each predicts the same mask for each, and they
  are one observation whatever their bytes. Files with equal bytes are decoded once. Near-duplicates (a
  re-encoded JPEG, a resized or re-cropped copy) have other pixels and stay separate items: telling them
  from two shots of one pot is a judgement, not an identity.
- Same photo, same ground truth (equal masks as decoded for scoring): MERGED. The item with the smallest id
  is kept (the snapshot's stable order, so row order changes nothing); it carries the other rows
  (`EvalItem.merged`) and is classified by all of them (the union of their failure classes); the others
  are excluded, `duplicate of <corpus> image <kept id>`, and listed with the excluded rows.
- Same photo, different ground truth: a contradiction the gate cannot settle, and choosing by id or row
  order would let bookkeeping pick the truth. Every item of the group is not evaluated (the reason names
  the others), so the run cannot end in go (exit 2) until the snapshot keeps one mask for the photo.
- Across corpora a photo may be in both (a test image production later flagged): each corpus has its own
  aggregates and criteria and counts it once, so both items stay.
- An item whose photo or mask cannot be decoded is left as it is; scoring reports it.

Cost: a photo's identity is cached by file content (eval.runtime.cache_dir()/pixel-digests, keyed by the
file's sha256 and the decoder's version; an entry verifies itself, so a corrupted one is recomputed), so a
rerun, or the next candidate on the same snapshot, decodes no photo here: each is decoded once, for scoring.
A first run decodes each distinct photo file here once more (~0.2 s per 12-Mpixel JPEG on a busy 2-core
machine): handing decoded photos from the loader to scoring would hold a whole corpus in memory.
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import os

import numpy as np
import PIL

from eval import runtime
from eval.errors import GateInputError
from eval.inputs import images
from eval.inputs.safe_paths import read_text

_MAX_NAMED = 3  # other ids a conflict's reason names


# What a cached identity depends on besides the file's bytes: the decoder (images.load_rgb's rules and Pillow).
_DECODER = f"pottery-gate-pixels/v1 pillow {PIL.__version__}"


def _identity_path(file_sha256):
    key = hashlib.sha256(f"{_DECODER}\n{file_sha256}".encode()).hexdigest()
    return runtime.cache_dir() / "pixel-digests" / key[:2] / f"{key}.json"


def _identity_entry(file_sha256, identity):
    body = {"decoder": _DECODER, "file_sha256": file_sha256, "pixels_sha256": identity[0], "size": list(identity[1])}
    text = json.dumps(body, sort_keys=True)
    return json.dumps({"body": body, "sha256": hashlib.sha256(text.encode()).hexdigest()}, sort_keys=True)


def _cached_identity(file_sha256):
    """The cached identity of the file with this digest, or None when absent or not intact."""
    try:
        entry = json.loads(read_text(_identity_path(file_sha256)))
        body = entry["body"]
        identity = body["pixels_sha256"], tuple(body["size"])
    except (OSError, ValueError, TypeError, KeyError, GateInputError):  # a FIFO or folder there: not intact
        return None
    return identity if _identity_entry(file_sha256, identity) == json.dumps(entry, sort_keys=True) else None


def _store_identity(file_sha256, identity):
    path = _identity_path(file_sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(_identity_entry(file_sha256, identity), encoding="utf-8")
    os.replace(partial, path)


def _photo_identity(path, file_sha256):
    """(sha256 of the decoded pixels and their shape, (width, height)), or None if the photo cannot be decoded."""
    cached = _cached_identity(file_sha256)
    if cached is not None:
        return cached
    try:
        photo = images.load_rgb(path)
    except GateInputError:
        return None
    identity = photo.digest, images.image_size(photo)
    _store_identity(file_sha256, identity)
    return identity


def _truth(item, size):
    try:
        return images.load_truth(item.truth_path, item.truth_format, size)
    except GateInputError:
        return None


def _named(ids):
    shown = ", ".join(ids[:_MAX_NAMED])
    return shown if len(ids) <= _MAX_NAMED else f"{shown} and {len(ids) - _MAX_NAMED} more"


def merge_duplicates(items, file_digests):
    """Return (items, exclusions): `items` with each photo once per corpus, and (row id, reason) of the rest.

    `items` are EvalItems sorted by (corpus, image_id); `file_digests` maps every readable file to its
    sha256 (the snapshot digests them anyway), so byte-identical files are decoded once.
    """
    readable = [i for i in items if i.problem is None]
    paths = {file_digests[i.image_path]: i.image_path for i in readable}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        identity = dict(zip(paths, pool.map(_photo_identity, paths.values(), paths)))
    groups = collections.defaultdict(list)
    for item in readable:
        photo = identity[file_digests[item.image_path]]
        if photo is not None:
            groups[(item.corpus, photo)].append(item)
    replaced, exclusions = {}, []
    for (_, (_, size)), group in groups.items():
        truths = [(item, _truth(item, size)) for item in group]
        truths = [(item, truth) for item, truth in truths if truth is not None]
        if len(truths) < 2:
            continue
        (kept, truth), others = truths[0], [item for item, _ in truths[1:]]
        if all(np.array_equal(truth, other) for _, other in truths[1:]):
            replaced[kept] = dataclasses.replace(kept, merged=tuple((o.image_id, o.notes, o.source) for o in others))
            replaced.update((o, None) for o in others)
            exclusions.extend((o.image_id, f"duplicate of {kept.corpus} image {kept.image_id}") for o in others)
            continue
        ids = [item.image_id for item, _ in truths]
        for item, _ in truths:
            replaced[item] = dataclasses.replace(item, problem=(
                f"conflicting ground truth: the same photo as {_named([i for i in ids if i != item.image_id])} "
                "with a different mask; keep one mask for the photo"))
    kept_items = (replaced.get(item, item) for item in items)
    return tuple(item for item in kept_items if item is not None), tuple(exclusions)
