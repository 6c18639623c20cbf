"""Round trip: the demo CropRun database exports back to the committed demo snapshot. (The gate on that
export gives the committed golden report's rows: tests/test_end_to_end.py, which has the demo's masks cached.)"""

import sys

import pytest

from eval.inputs.snapshot import load_snapshot
from tests.croprun_db import export_demo
from tests.support import DEMO_SNAPSHOT, files_of, scratch_dir


def test_the_export_is_the_committed_snapshot_but_for_its_manifest():
    result = export_demo(scratch_dir() / "snapshots")
    ours, committed = load_snapshot(result.path), load_snapshot(DEMO_SNAPSHOT)
    describe = lambda s: [(i.corpus, i.image_id, i.truth_kind, i.notes, i.source) for i in s.items]  # noqa: E731
    assert describe(ours) == describe(committed)
    assert ours.exclusions == committed.exclusions
    for part in ("flagged", "test"):
        assert files_of(result.path / part) == files_of(DEMO_SNAPSHOT / part), part
    assert ours.export["excluded_rows"] == {"no ground-truth annotation": 3, "source.type is not 'human'": 3}
    assert ours.export["croprun_rows"] == 30 and ours.export["database"] == {"kind": "sqlite", "name": "croprun.sqlite"}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
