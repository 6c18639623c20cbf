"""Phone photos at scale (issue 20): bounded memory per photo, each photo decoded once, the candidate's masks
cached like the other backends' (an interrupted run resumes; a corrupted entry is recomputed, never trusted).

The real candidate (the demo checkpoint) runs on generated 4032x3024 photos; decodes are counted by wrapping
the real decoder, which still decodes.
"""

import functools
import sys
import threading
import types

import numpy as np
import psutil
import pytest

from eval import gate
from eval.backends.cached import CachedBackend
from eval.inputs import images
from eval.inputs.snapshot import load_snapshot
from eval.options import GateOptions
from eval.pipeline import make_backends
from eval.roles import ModelInputs
from tests.support import BASELINE_CONFIG, CRITERIA, DEMO_CHECKPOINT, pot_photo, scratch_dir, write_snapshot

PHONE = (4032, 3024)


def phone_photos(n):
    return [np.asarray(pot_photo(*PHONE, shift=40 * k)[0]) for k in range(n)]


@pytest.fixture(scope="module")
def backends():
    options = GateOptions(checkpoint=str(DEMO_CHECKPOINT), dataset="unused", criteria=str(CRITERIA),
                          baseline_config=str(BASELINE_CONFIG), reports_root=str(scratch_dir()), torch_threads=1,
                          conf=0.01)  # a low threshold: several instances per photo, each a full-size mask
    return make_backends(options, ModelInputs(_baseline_config(), _checkpoint()))


def _baseline_config():
    from eval.inputs.baseline_config import load_baseline_config

    return load_baseline_config(BASELINE_CONFIG)


def _checkpoint():
    from eval.inputs.checkpoint import resolve_checkpoint

    return resolve_checkpoint(str(DEMO_CHECKPOINT))


def peak_growth(action):
    """Highest RSS above the starting RSS while `action` runs (sampled every millisecond)."""
    process, stop = psutil.Process(), threading.Event()
    start = peak = process.memory_info().rss

    def sample():
        nonlocal peak
        while not stop.wait(0.001):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        action()
    finally:
        stop.set()
        sampler.join()
    return max(peak, process.memory_info().rss) - start


def test_candidate_memory_per_phone_photo_does_not_grow_with_its_instances(backends):
    """Per photo: its RGB and BGR copies (3 + 3 bytes a pixel), the union mask (1) and one instance's float
    upsample at a time (4), however many instances were found. Holding every instance's full-size mask (and a
    bool copy of them) costs 2 bytes a pixel more with every instance."""
    from eval.backends.yolo_backend import YoloSegBackend

    many = backends["candidate"]._inner  # the model itself, not its cache; conf 0.01
    few = YoloSegBackend(_checkpoint(), conf=0.5, torch_threads=1)
    photos = phone_photos(2)
    counts = [len(b._request([np.ascontiguousarray(photos[0][..., ::-1])])[0].boxes) for b in (many, few)]
    assert counts[0] >= counts[1] + 3, counts
    growth = []
    for backend in (many, few):
        backend.predict(photos)  # warm: ultralytics' first-call allocations are not per photo
        growth.append(peak_growth(functools.partial(backend.predict, photos)))
    mib = [f"{g / 2**20:.0f} MiB" for g in growth]
    assert growth[0] <= 10 * PHONE[0] * PHONE[1] * len(photos), mib
    assert growth[0] - growth[1] <= 2 * PHONE[0] * PHONE[1], f"{counts} instances: {mib}"


def test_batches_are_bounded_by_pixels_and_by_count(monkeypatch):
    small, phone = (1024, 768), PHONE
    monkeypatch.setattr(images, "oriented_size", lambda path: path)  # an item's "path" is its size here
    items = [types.SimpleNamespace(problem=None, image_path=size, corpus="test")
             for size in [phone] * 5 + [small] * 20]
    batches = gate.batches(items, 8)
    sizes = [[i.image_path for i in b] for b in batches]
    assert all(len(b) <= 8 and (len(b) == 1 or sum(w * h for w, h in b) <= gate.BATCH_PIXELS) for b in sizes)
    assert max(b.count(phone) for b in sizes) == 2  # two phone photos at a time, eight small ones
    assert sum(len(b) for b in sizes) == 25 and max(b.count(small) for b in sizes) == 8


def test_a_rerun_decodes_each_photo_once(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path / "cache"))
    root = write_snapshot(tmp_path / "snap", n_test=3)
    decoded = []
    real = images.load_rgb

    def counting(path):
        decoded.append(path)
        return real(path)

    monkeypatch.setattr(images, "load_rgb", counting)
    first = load_snapshot(root)
    photos = {i.image_path for i in first.items}
    # a first run digests each photo file for duplicate detection (files with equal bytes once)
    assert decoded and len(set(decoded)) == len(decoded) and set(decoded) <= photos
    decoded.clear()
    again = load_snapshot(root)
    assert decoded == [] and again == first, "a rerun reads the digests from the cache"
    for item in again.items:
        gate._decode(item)
    assert sorted(decoded) == sorted(photos)


def test_a_corrupted_pixel_digest_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path / "cache"))
    root = write_snapshot(tmp_path / "snap", n_test=3)
    reference = load_snapshot(root)
    entries = sorted((tmp_path / "cache" / "pixel-digests").rglob("*.json"))
    assert len(entries) == 3  # one per distinct photo file
    originals = {e: e.read_bytes() for e in entries}
    other = entries[1].read_bytes()
    entries[0].write_bytes(other)  # another file's entry under this one's name
    entries[1].write_bytes(other.replace(b'"pixels_sha256": "', b'"pixels_sha256": "0'))  # a forged digest
    entries[2].write_bytes(b"{")
    assert load_snapshot(root) == reference
    assert {e: e.read_bytes() for e in entries} == originals  # recomputed and rewritten


def test_the_candidate_resumes_from_its_cache_and_never_trusts_a_corrupted_entry(backends, tmp_path):
    candidate = backends["candidate"]
    assert isinstance(candidate, CachedBackend) and candidate.name == "candidate"
    photos = [np.asarray(pot_photo(320, 240, shift=s)[0]).view(images.Photo) for s in (0, 9, 17)]
    reference = candidate._inner.predict(photos)
    cache = CachedBackend(candidate._inner, tmp_path)  # the same backend, a fresh cache directory
    cache.predict(photos[:1])  # a run interrupted after its first photo
    assert (cache.hits, cache.misses) == (0, 1)
    resumed = cache.predict(photos)
    assert (cache.hits, cache.misses) == (1, 3)  # only the two photos not done before are computed
    assert all(np.array_equal(a, b) for a, b in zip(resumed, reference))
    [entry] = [e for e in tmp_path.rglob("*.mask") if images.digest_of(photos[0]) in e.name]
    data = entry.read_bytes()
    entry.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped pixel bit
    again = cache.predict(photos)
    assert (cache.hits, cache.misses, cache.rejected) == (3, 4, 1)
    assert all(np.array_equal(a, b) for a, b in zip(again, reference)) and entry.read_bytes() == data


def test_every_backend_is_cached_under_its_own_fingerprint(backends):
    options = GateOptions(checkpoint=str(DEMO_CHECKPOINT), dataset="unused", criteria=str(CRITERIA),
                          baseline_config=str(BASELINE_CONFIG), reports_root="unused", conf=0.3)
    other = make_backends(options, ModelInputs(_baseline_config(), _checkpoint()))
    assert isinstance(other["candidate"], CachedBackend) and isinstance(other["rembg"], CachedBackend)
    assert other["candidate"]._dir != backends["candidate"]._dir  # conf changes masks: another cache
    assert other["rembg"]._dir == backends["rembg"]._dir


def test_the_cpu_memory_arena_is_a_baseline_config_field_that_changes_no_mask(tmp_path):
    from eval.backends.rembg_backend import RembgBackend
    from eval.inputs.baseline_config import load_baseline_config

    text = BASELINE_CONFIG.read_text()
    assert "enable_cpu_mem_arena" not in text  # absent: off (production's new_session leaves onnxruntime's on)
    on = tmp_path / "arena-on.yaml"
    threads = "  inter_op_num_threads: 1\n"
    on.write_text(text.replace(threads, f"{threads}  enable_cpu_mem_arena: true\n"))
    configs = [load_baseline_config(on), load_baseline_config(BASELINE_CONFIG)]
    assert [c.enable_cpu_mem_arena for c in configs] == [True, False] and configs[0].sha256 != configs[1].sha256
    pooled, unpooled = (RembgBackend(c, 1) for c in configs)
    assert [b._session.inner_session.get_session_options().enable_cpu_mem_arena for b in (pooled, unpooled)] == [
        True, False]
    photos = [np.asarray(pot_photo(640, 480, shift=40 * k)[0]) for k in range(2)]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(pooled.predict(photos), unpooled.predict(photos)))
    assert pooled.fingerprint() != unpooled.fingerprint()  # the config's digest is in the provenance

if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
