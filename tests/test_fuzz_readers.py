"""A bounded fuzz of the gate's file readers: whatever the bytes, a reader succeeds or raises GateInputError
(exit 2), never another exception and never a hang (each example runs under a 20 s alarm).

Covered: the snapshot (snapshot.yaml and flagged/croprun.jsonl rows), the success criteria, the baseline
config, and a published report (metrics.json and manifest.json) through eval.report.artifacts, the loader
of the trend report and tracking. Documents are mutated from valid ones (one value replaced by arbitrary
JSON, or a key dropped) as well as generated raw. FUZZ_EXAMPLES sets the examples per reader (default 25,
what the suite runs); a long run: `FUZZ_EXAMPLES=3000 .venv/bin/python -m pytest tests/test_fuzz_readers.py`.
"""

import contextlib
import json
import os
import signal
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eval.errors import GateInputError
from eval.inputs.baseline_config import load_baseline_config
from eval.inputs.criteria import load_criteria
from eval.inputs.snapshot import load_snapshot
from eval.report import artifacts, outputs
from tests.support import (BASELINE_CONFIG, DEMO_REPORT, VALID_CRITERIA, crop_run, scratch_dir,
                           write_snapshot)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=EXAMPLES <= 25, suppress_health_check=list(HealthCheck))

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                     st.text(max_size=20), st.sampled_from(["", "..", "/etc/passwd", "NaN", "\x00", "é" * 300]))
JSON_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)


def _paths(value, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value, the root excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield prefix + (key,)
        yield from _paths(item, prefix + (key,))


@st.composite
def mutated(draw, document):
    """`document` (a JSON value) with one value replaced by arbitrary JSON or one key dropped."""
    document = json.loads(json.dumps(document))
    paths = list(_paths(document))
    if not paths:
        return draw(JSON_VALUES)
    path = draw(st.sampled_from(paths))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return document


@contextlib.contextmanager
def _alarm(seconds=20):
    def hung(signum, frame):
        raise TimeoutError(f"a reader ran for over {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _succeeds_or_refuses(call):
    with _alarm(), contextlib.suppress(GateInputError):
        call()


_ROW = crop_run("cr-1", "glossy glaze reflection")
_SNAPSHOT = scratch_dir() / "snapshot"
write_snapshot(_SNAPSHOT)


@FUZZ
@given(rows=st.lists(st.one_of(mutated(_ROW), JSON_VALUES.map(json.dumps).map(str.encode),
                               st.binary(max_size=40)), max_size=4),
       manifest=st.one_of(st.just({"format": "pottery-gate-snapshot/v1", "version": "v"}),
                          mutated({"format": "pottery-gate-snapshot/v1", "version": "v"})))
def test_snapshot_rows_and_manifest(rows, manifest):
    lines = [row if isinstance(row, bytes) else json.dumps(row).encode() for row in rows]
    (_SNAPSHOT / "flagged" / "croprun.jsonl").write_bytes(b"\n".join(lines))
    (_SNAPSHOT / "snapshot.yaml").write_text(yaml.safe_dump(manifest) if isinstance(manifest, dict)
                                             else json.dumps(manifest))
    _succeeds_or_refuses(lambda: load_snapshot(_SNAPSHOT))


_CRITERIA = yaml.safe_load(VALID_CRITERIA)
_BASELINE = yaml.safe_load(BASELINE_CONFIG.read_text())
_YAML_FILE = scratch_dir() / "config.yaml"


def _yaml_text(document):
    return document if isinstance(document, str) else yaml.safe_dump(document, allow_unicode=True)


@FUZZ
@given(document=st.one_of(mutated(_CRITERIA), st.text(max_size=200)))
def test_criteria(document):
    _YAML_FILE.write_text(_yaml_text(document))
    _succeeds_or_refuses(lambda: load_criteria(_YAML_FILE))


@FUZZ
@given(document=st.one_of(mutated(_BASELINE), st.text(max_size=200)))
def test_baseline_config(document):
    _YAML_FILE.write_text(_yaml_text(document))
    _succeeds_or_refuses(lambda: load_baseline_config(_YAML_FILE))


_METRICS = json.loads((DEMO_REPORT / "metrics.json").read_text())


@FUZZ
@given(document=mutated(_METRICS), manifest_edit=st.one_of(st.none(), JSON_VALUES),
       publish=st.booleans())
def test_a_published_report_through_the_loader(document, manifest_edit, publish):
    folder = scratch_dir() / "report"
    data = json.dumps(document).encode()
    if publish:  # a well-formed folder holding a mutated metrics.json: only schema and decision can refuse it
        outputs.check_destination(folder, "fuzz", False).publish({"metrics.json": data})
    else:
        folder.mkdir()
        (folder / "metrics.json").write_bytes(data)
        manifest = {"format": outputs.MANIFEST_FORMAT, "run_key": "fuzz", "files": {"metrics.json": None}}
        if manifest_edit is not None:
            manifest["files"] = manifest_edit
        (folder / outputs.MANIFEST).write_text(json.dumps(manifest))
    _succeeds_or_refuses(lambda: artifacts.load_report(folder))
    _succeeds_or_refuses(lambda: artifacts.load_report(folder / "metrics.json"))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
