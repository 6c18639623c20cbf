"""The baseline-mask cache (issue 8.7): every entry is verified on read, so corruption costs time, never a result.

The real production rembg backend computes the masks; the tests corrupt the cache's files as they find them
on disk (whatever the entry format), byte by byte, and check that what the gate is given, and what it
scores, does not change. The exhaustive byte-by-byte loop replays rembg's real mask (one inference, not
hundreds); the gate-level test runs rembg and the candidate for real at one position per entry region.
"""

import pathlib
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.backends.base import Backend
from eval.backends.cached import MAGIC, CachedBackend, decode_entry, encode_entry
from eval.backends.rembg_backend import RembgBackend
from eval.gate import score_items
from eval.inputs.baseline_config import load_baseline_config
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import load_snapshot
from tests.support import BASELINE_CONFIG, CRITERIA, DEMO_CHECKPOINT, pot_photo, scratch_dir, write_snapshot


@pytest.fixture(scope="module")
def rembg():
    return RembgBackend(load_baseline_config(BASELINE_CONFIG))


def entries(cache_dir):
    return sorted(p for p in pathlib.Path(cache_dir).rglob("*") if p.is_file() and not p.name.startswith("."))


def corrupted(data, position, flip):
    return data[:position] + bytes([data[position] ^ flip]) + data[position + 1:]


class Replay(Backend):
    """rembg's provenance and the mask it computed once, counted: the cache, not rembg, is under test."""

    def __init__(self, rembg, mask):
        self.name, self._rembg, self._mask, self.calls = rembg.name, rembg, mask, 0

    def provenance(self):
        return self._rembg.provenance()

    def predict(self, images):
        self.calls += len(images)
        return [self._mask.copy() for _ in images]


def test_every_byte_of_an_entry_is_covered_by_its_digest(rembg, tmp_path):
    photo = np.asarray(pot_photo(width=20, height=14)[0])
    clean = rembg.predict([photo])[0]
    assert 0 < clean.sum() < clean.size, "a mask with both values, so a flipped bit would show"
    replay = Replay(rembg, clean)
    CachedBackend(replay, tmp_path).predict([photo])
    [entry] = entries(tmp_path)
    original = entry.read_bytes()
    variants = [corrupted(original, i, flip) for i in range(len(original)) for flip in (0x01, 0x80, 0xFF)]
    variants += [original[:cut] for cut in range(len(original))] + [original + b"\x00", b""]
    recomputed = 0
    for variant in variants:
        entry.write_bytes(variant)
        cache = CachedBackend(replay, tmp_path)
        mask = cache.predict([photo])[0]
        assert (mask == clean).all(), f"a corrupted entry changed the mask: {variant!r}"
        assert entry.read_bytes() == original, "the corrupted entry is rewritten"
        recomputed += cache.misses
    assert recomputed == len(variants)  # every corruption was detected, none read as a (wrong) hit
    assert replay.calls == len(variants) + 1
    assert CachedBackend(replay, tmp_path).predict([photo])[0].tolist() == clean.tolist()  # a clean hit
    assert replay.calls == len(variants) + 1


def test_an_entry_under_another_key_or_of_another_shape_is_not_read():
    mask = np.zeros((3, 5), bool)
    mask[1, 1:4] = True
    data = encode_entry("a" * 64, mask)
    assert data.startswith(MAGIC)
    assert (decode_entry("a" * 64, data, (3, 5)) == mask).all()
    assert decode_entry("b" * 64, data, (3, 5)) is None  # copied under another image's name
    assert decode_entry("a" * 64, data, (5, 3)) is None


@settings(max_examples=200)
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 9)), data=st.data())
def test_an_entry_round_trips_and_any_changed_byte_is_refused(shape, data):
    bits = data.draw(st.lists(st.booleans(), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    mask = np.array(bits, bool).reshape(shape)
    key = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    entry = encode_entry(key, mask)
    assert (decode_entry(key, entry, shape) == mask).all()
    position = data.draw(st.integers(0, len(entry) - 1))
    assert decode_entry(key, corrupted(entry, position, data.draw(st.integers(1, 255))), shape) is None
    assert decode_entry(key, entry[:data.draw(st.integers(0, len(entry) - 1))], shape) is None


def test_a_corrupted_cache_never_changes_the_gate_result(rembg):
    """Score, corrupt every entry at one position, score again: the same scores, for each region of an entry."""
    from eval.backends.yolo_backend import YoloSegBackend
    from eval.inputs.checkpoint import resolve_checkpoint

    work = scratch_dir()
    snapshot = load_snapshot(write_snapshot(work / "snap", n_test=2))
    criteria = load_criteria(CRITERIA)
    candidate = YoloSegBackend(resolve_checkpoint(str(DEMO_CHECKPOINT)), torch_threads=1)
    items = [i for i in snapshot.items if i.corpus == "test"]

    def scores():
        shard = score_items(items, criteria, {"rembg": CachedBackend(rembg, work / "cache"), "candidate": candidate})
        scored, not_evaluated, *_ = shard.result()
        assert not_evaluated == ()
        return scored

    reference = scores()
    files = entries(work / "cache")
    originals = {f: f.read_bytes() for f in files}
    assert len(files) == 2
    head = len(MAGIC) + 32
    for position in (3, len(MAGIC) + 7, head + 1, head + 6, head + 40, min(map(len, originals.values())) - 1):
        for f, data in originals.items():
            f.write_bytes(corrupted(data, position, 0x10))
        assert scores() == reference, position
        assert {f: f.read_bytes() for f in files} == originals


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
