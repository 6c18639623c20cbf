"""modal:// mirrors (#8 item 15): the local mirror equals the Volume, through LocalDirStore (the same code path).

A file deleted from the Volume disappears from the mirror and from the dataset digest; the rest of the
gate's cache is left alone; an interrupted download keeps the previous mirror whole.
"""

import sys

import pytest

from eval.errors import GateInputError
from eval.inputs import volumes
from eval.inputs.snapshot import load_snapshot
from tests.support import crop_run, files_of, write_snapshot


@pytest.fixture
def world(tmp_path):
    """A Volume `vol` (a local folder) holding a snapshot and a checkpoint, and an empty cache."""
    volume = tmp_path / "volumes" / "vol"
    rows = [crop_run("cr-1", "glossy"), crop_run("cr-2", "shadow")]
    write_snapshot(volume / "datasets" / "snap", n_test=3, rows=rows)
    (volume / "ckpt").mkdir()
    (volume / "ckpt" / "best.pt").write_bytes(b"weights")
    return volume, tmp_path / "cache", lambda name: volumes.LocalDirStore(tmp_path / "volumes" / name)


def test_refetch_drops_files_deleted_from_the_volume(world):
    volume, cache, store = world
    local = volumes.fetch("modal://vol/datasets/snap", cache, store)
    before = load_snapshot(local)
    assert files_of(local) == files_of(volume / "datasets" / "snap")
    (volume / "datasets" / "snap" / "test" / "images" / "t2.png").unlink()
    (volume / "datasets" / "snap" / "test" / "masks" / "t2.png").unlink()
    again = volumes.fetch("modal://vol/datasets/snap", cache, store)
    assert again == local
    assert files_of(local) == files_of(volume / "datasets" / "snap")
    after = load_snapshot(local)
    assert [i.image_id for i in after.items if i.corpus == "test"] == ["t0", "t1"]
    assert after.sha256 != before.sha256


def test_refetch_picks_up_changed_and_added_files(world):
    volume, cache, store = world
    local = volumes.fetch("modal://vol/datasets/snap", cache, store)
    (volume / "datasets" / "snap" / "extra.txt").write_text("new")
    (volume / "datasets" / "snap" / "snapshot.yaml").write_text("format: pottery-gate-snapshot/v1\nversion: v2\n")
    volumes.fetch("modal://vol/datasets/snap", cache, store)
    assert files_of(local) == files_of(volume / "datasets" / "snap")
    assert load_snapshot(local).version == "v2"


def test_only_the_fetched_paths_mirror_is_replaced(world):
    volume, cache, store = world
    checkpoint = volumes.fetch("modal://vol/ckpt/best.pt", cache, store)
    volumes.fetch("modal://vol/datasets/snap", cache, store)
    (cache / "vol" / "keep.txt").write_text("someone else's")  # outside the fetched path's mirror
    (volume / "datasets" / "snap" / "snapshot.yaml").unlink()
    volumes.fetch("modal://vol/datasets/snap", cache, store)
    assert checkpoint.read_bytes() == b"weights"
    assert (cache / "vol" / "keep.txt").read_text() == "someone else's"
    assert not (cache / "vol" / "datasets" / "snap" / "snapshot.yaml").exists()


def test_interrupted_download_keeps_the_previous_mirror(world):
    volume, cache, store = world
    local = volumes.fetch("modal://vol/datasets/snap", cache, store)
    before = files_of(local)

    class Failing(volumes.LocalDirStore):
        def read(self, path):
            if path.endswith("t1.png"):
                raise ConnectionError("reset by peer")
            return super().read(path)

    (volume / "datasets" / "snap" / "test" / "images" / "t0.png").unlink()
    with pytest.raises(GateInputError, match="download failed"):
        volumes.fetch("modal://vol/datasets/snap", cache, lambda name: Failing(volume))
    assert files_of(local) == before
    assert sorted(p.name for p in local.parent.iterdir()) == ["snap"]  # no staging folder left


def test_a_listing_outside_the_path_is_refused(world):
    volume, cache, _ = world

    class Escaping(volumes.LocalDirStore):
        def list_files(self, path):
            return [f"{path}/../../ckpt/best.pt"]

    with pytest.raises(GateInputError, match="lies outside it"):
        volumes.fetch("modal://vol/datasets/snap", cache, lambda name: Escaping(volume))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
