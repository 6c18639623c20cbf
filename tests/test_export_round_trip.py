"""Round trip: the demo CropRun database exports back to the committed demo snapshot, and the gate on the
export gives the committed golden report's metrics rows (one gate run)."""

import json
import sys

import pytest

from croprun_export.export import ExportOptions, export_snapshot
from demo.build_croprun_db import DEMO_AS_OF
from eval.inputs.snapshot import load_snapshot
from tests.support import (DEMO_CHECKPOINT, DEMO_INCUMBENT, DEMO_REPORT, DEMO_SNAPSHOT, REPO, files_of, run_cli,
                           scratch_dir)

DEMO_DB = (REPO / "demo" / "assets" / "croprun.sqlite").resolve()
SCHEMA = REPO / "configs" / "croprun_schema.yaml"
_ROWS = ("recommendation", "deciding_criterion", "criteria_results", "aggregates", "per_image", "not_evaluated",
         "excluded_rows")


@pytest.fixture(scope="module")
def exported():
    base = scratch_dir()
    result = export_snapshot(ExportOptions(
        database_url=f"sqlite:///{DEMO_DB}", media_root=str(DEMO_SNAPSHOT), test_split=str(DEMO_SNAPSHOT / "test"),
        as_of=DEMO_AS_OF, version="demo-db-v1", output=str(base / "snapshots"), schema=str(SCHEMA), quiet=True))
    return base, result


def test_the_export_is_the_committed_snapshot_but_for_its_manifest(exported):
    _, result = exported
    ours, committed = load_snapshot(result.path), load_snapshot(DEMO_SNAPSHOT)
    describe = lambda s: [(i.corpus, i.image_id, i.truth_kind, i.notes, i.source) for i in s.items]  # noqa: E731
    assert describe(ours) == describe(committed)
    assert ours.exclusions == committed.exclusions
    for part in ("flagged", "test"):
        assert files_of(result.path / part) == files_of(DEMO_SNAPSHOT / part), part
    assert ours.export["excluded_rows"] == {"no ground-truth annotation": 3, "source.type is not 'human'": 3}
    assert ours.export["croprun_rows"] == 30 and ours.export["database"] == {"kind": "sqlite", "name": "croprun.sqlite"}


# Interval bounds (and what quotes them: summaries, confidence-rule margins) come from a bootstrap seeded by
# the run key, which includes the dataset digest; the export's snapshot has its own digest, so only those
# Monte Carlo figures may differ from the golden's. Everything measured must be equal.
_INTERVAL_FIELDS = ("interval", "intervals", "summary", "margin", "images_needed")


def _without_intervals(value):
    if isinstance(value, dict):
        return {k: _without_intervals(v) for k, v in value.items() if k not in _INTERVAL_FIELDS}
    if isinstance(value, list):
        return [_without_intervals(v) for v in value]
    return value


def test_the_gate_on_the_export_gives_the_golden_metrics_rows(exported):
    base, result = exported
    done = run_cli("--checkpoint", str(DEMO_CHECKPOINT), "--incumbent_checkpoint", str(DEMO_INCUMBENT),  # as the demo
                   "--dataset", str(result.path),
                   "--output_dir", str(base / "report"), "--quiet")
    assert done.returncode in (0, 1), done.stderr
    metrics = json.loads((base / "report" / "metrics.json").read_text())
    golden = json.loads((DEMO_REPORT / "metrics.json").read_text())
    for key in _ROWS:
        assert _without_intervals(metrics[key]) == _without_intervals(golden[key]), key
    assert metrics["provenance"]["dataset"]["export"] == load_snapshot(result.path).export
    assert metrics["provenance"]["dataset"]["sha256"] == result.sha256
    report = (base / "report" / "report.md").read_text()
    assert ("| exported from | CropRun sqlite database croprun.sqlite, rows created up to 2026-11-20T00:00:00Z "
            "(30 rows)") in report
    assert "excluded: no ground-truth annotation 3, source.type is not 'human' 3 |" in report


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
