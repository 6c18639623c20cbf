"""Reading a published report back: the one loader for every consumer of what the gate wrote.

Trend, tracking and the benchmarks read a run through `load_report`, never through a JSON parser of their
own, because a report folder is user-editable input by the time anyone reads it:

- A report folder must hold the gate's manifest.json (its entries checked by eval.report.outputs), and every
  file it lists must be there, a regular file, with the recorded sha256 (a null digest only for the
  machine-dependent timings.json, which may also be absent). A metrics file passed alone is checked with the
  manifest beside it when there is one; without one only the checks below apply.
- metrics.json must be strict JSON (NaN and Infinity are refused) and valid against the JSON Schema of its
  version, checked into the repository as schemas/metrics-v<N>.json: a new field is added there.
- Its recommendation must follow from its criteria: go exactly when every criterion passes, and the
  deciding criterion is one of the criteria, with the same status.

The gate checks what it writes with the same `check_metrics`, so it can never publish a metrics.json that
this loader would refuse.
"""

import dataclasses
import functools
import json
import os
import pathlib
import stat

import jsonschema

from eval.digests import file_digest
from eval.errors import GateInputError
from eval.inputs.safe_paths import read_bytes
from eval.report import outputs

METRICS = "metrics.json"
SCHEMAS = {"pottery-gate-metrics/v1": "metrics-v1.json", "pottery-gate-metrics/v2": "metrics-v2.json"}
TIMINGS_SCHEMA_PREFIX = "pottery-gate-timings/"
_SCHEMA_DIR = pathlib.Path(__file__).parent / "schemas"
_SHOWN = 200  # characters of a schema error shown: the offending value may be a whole table


@dataclasses.dataclass(frozen=True)
class Report:
    """A run as published: its metrics document, and its timings when read from the folder."""

    source: pathlib.Path  # the metrics.json read
    metrics: dict
    timings: dict | None  # timings.json as written; None for a metrics.json alone or a run without one

    @property
    def folder(self):
        return self.source.parent


def parse_json(data, where):
    """The JSON object in `data` (bytes); NaN, Infinity, bad UTF-8 and non-objects are refused naming `where`."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise GateInputError(where, "is not UTF-8 text") from None
    except (ValueError, RecursionError) as err:
        raise GateInputError(where, f"is not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise GateInputError(where, "is not a JSON object")
    return document


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


@functools.cache
def _validator(schema):
    document = json.loads((_SCHEMA_DIR / SCHEMAS[schema]).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(document)


def check_metrics(document, where):
    """Refuse a metrics document that is not valid against its schema version or whose decision does not
    follow from its criteria."""
    schema = document.get("schema")
    if schema not in SCHEMAS:
        raise GateInputError(where, f"unknown metrics schema {str(schema)[:_SHOWN]!r}; known: {', '.join(SCHEMAS)}")
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(document))
    if error is not None:
        at = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise GateInputError(where, f"not a valid {schema} document: {at}: {error.message[:_SHOWN]}")
    _check_decision(document, where)


def _check_decision(document, where):
    results = document["criteria_results"]
    every_pass = all(r["status"] == "pass" for r in results)
    if (document["recommendation"] == "go") != every_pass:
        raise GateInputError(where, f"recommendation {document['recommendation']!r} does not follow from the "
                                    f"criteria ({'all pass' if every_pass else 'not all pass'}): go only when "
                                    "every criterion passes")
    deciding = document["deciding_criterion"]
    same = [r for r in results if r["id"] == deciding["id"]]
    if len(same) != 1 or same[0]["status"] != deciding["status"]:
        raise GateInputError(where, f"deciding criterion {deciding['id']!r} is not exactly one of the criteria "
                                    "results with the same status")
    if (deciding["status"] == "pass") != every_pass:
        raise GateInputError(where, f"deciding criterion {deciding['id']!r} has status {deciding['status']!r}, "
                                    f"which cannot decide a {document['recommendation']}")


def _checked_files(folder):
    """The manifest's {name: digest} of `folder`, every listed file verified present, regular and unchanged."""
    manifest, _ = outputs.read_manifest(folder)
    if manifest is None:
        raise GateInputError(folder, f"has no {outputs.MANIFEST}: not a report folder the gate published")
    for name, digest in sorted(manifest["files"].items()):
        path = folder / name
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)  # a link to a file is read (Bazel's runfiles are links)
        except OSError as err:
            if isinstance(err, FileNotFoundError) and digest is None:  # unpinned: a committed example leaves it out
                continue
            raise GateInputError(path, f"is listed in {outputs.MANIFEST} but missing or unreadable "
                                       f"({err.strerror})") from None
        if not regular:
            raise GateInputError(path, "is not a regular file (a folder or special file)")
        if digest is not None and file_digest(path) != digest:
            raise GateInputError(path, f"differs from the sha256 in {outputs.MANIFEST}: modified since the gate "
                                       "wrote it")
    if manifest["files"].get(METRICS) is None:
        raise GateInputError(folder, f"its {outputs.MANIFEST} lists no {METRICS}: not a gate report folder")
    return manifest["files"]


def _timings(path):
    document = parse_json(read_bytes(path), path)
    if not str(document.get("schema", "")).startswith(TIMINGS_SCHEMA_PREFIX):
        raise GateInputError(path, f"not a gate timings file (no {TIMINGS_SCHEMA_PREFIX} schema)")
    return document


def load_report(spec):
    """The run at `spec`: a report folder, or a metrics file (its folder checked against the manifest there,
    if any: a report's metrics.json passed alone is held to its digest)."""
    path = pathlib.Path(spec)
    if path.is_dir():
        folder, source, alone = path, path / METRICS, False
    elif os.path.lexists(path):
        folder, source, alone = path.parent, path, True
    else:
        raise GateInputError(spec, f"no {METRICS} here: pass a gate report folder or its {METRICS}")
    listed = {}
    if not alone or os.path.lexists(folder / outputs.MANIFEST):
        listed = _checked_files(folder)
    try:
        document = parse_json(read_bytes(source), source)
    except OSError as err:
        raise GateInputError(source, f"cannot read ({err.strerror or err})") from None
    check_metrics(document, source)
    timings_path = folder / outputs.TIMINGS
    timings = _timings(timings_path) if not alone and outputs.TIMINGS in listed and timings_path.exists() else None
    return Report(source, document, timings)
