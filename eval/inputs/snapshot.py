"""The dataset snapshot contract: the two corpora the gate evaluates, read from one directory.

    <snapshot>/
      snapshot.yaml            format: pottery-gate-snapshot/v1, version: <dataset version>[, description]
      test/images/<stem>.<ext> held-out test split as exported for training (#415)
      test/masks/<stem>.png    its ground truth as a mask PNG, or
      test/labels/<stem>.txt   as YOLO-seg polygon labels (rasterised at image size); not both
      flagged/croprun.jsonl    CropRun rows (#421), one JSON object per line:
                               {"id", "image", "source": {"type", "backend", "deployment", "version"},
                                "notes", "annotation": {"kind": "crop_annotation"|"hand_label", "mask"} | null
                                [, "excluded": <reason>]}
                               paths are relative to flagged/ and may not leave the snapshot

Flagged corpus = rows with source.type == "human" and a ground-truth annotation; every other row is
excluded and counted by reason. An empty croprun.jsonl (no rows, or blank lines only) is a snapshot whose
database had no flagged row yet: it loads with an empty flagged corpus, like one whose every row is
excluded, and every criterion on the flagged corpus is then insufficient data (never a go). The test split,
which every run needs, may not be empty. A row may carry the reason it was excluded when the snapshot was made
(`excluded`, e.g. a malformed CropRun.source: croprun_export/export.py), so the counts cover every row of
the database. snapshot.yaml may record where the snapshot came from (`export`: the database, as_of, the
schema mapping's digest, counts per exclusion reason), which the report shows. Structural problems (missing files or
folders, malformed rows, duplicate ids, paths escaping the root) raise GateInputError; a problem confined to one image
(a missing or undecodable file) is attached to that item so the gate can report it and refuse "go".
Each photo is then evaluated once per corpus (eval/inputs/duplicates.py: rows showing the same pixels with
the same ground truth are merged and the rest listed as excluded; with different ground truth none is
evaluated). Exclusions are sorted by row id, so the order of the rows changes no output.
"""

import dataclasses
import hashlib
import json
import os
import pathlib

import jsonschema

from eval import timings
from eval.digests import file_digest
from eval.errors import GateInputError
from eval.inputs.duplicates import merge_duplicates
from eval.inputs.safe_paths import open_regular, read_text, resolve_inside
from eval.inputs.yaml_config import load_yaml

FORMAT = "pottery-gate-snapshot/v1"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
TEST, FLAGGED = "test", "flagged"
NOT_HUMAN = "source.type is not 'human'"
NO_ANNOTATION = "no ground-truth annotation"

VERSION_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\\Z"  # names the report folder
_COUNT = {"type": "integer", "minimum": 0}
_EXPORT_SCHEMA = {  # written by croprun_export/export.py
    "type": "object",
    "additionalProperties": False,
    "required": ["database", "as_of", "schema_mapping_sha256", "croprun_rows", "excluded_rows"],
    "properties": {
        "database": {"type": "object", "additionalProperties": False, "required": ["kind", "name"],
                     "properties": {"kind": {"enum": ["sqlite", "postgresql"]}, "name": {"type": "string"}}},
        "as_of": {"type": "string", "minLength": 1},
        "schema_mapping_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}\\Z"},
        "croprun_rows": _COUNT,
        "excluded_rows": {"type": "object", "additionalProperties": _COUNT},
        "exclude_missing_truth": {"type": "boolean"},
        "test_split": {"type": "string"},
    },
}
_MANIFEST_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["format", "version"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"type": "string", "pattern": VERSION_PATTERN},
        "description": {"type": "string"},
        "export": _EXPORT_SCHEMA,
    },
}
_SOURCE_FIELD = {"type": ["string", "null"]}
_ROW_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "image", "source", "notes", "annotation"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "image": {"type": "string", "minLength": 1},
        "source": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "backend", "deployment", "version"],
            "properties": {f: _SOURCE_FIELD for f in ("type", "backend", "deployment", "version")},
        },
        "notes": {"type": ["string", "null"]},
        "excluded": {"type": "string", "minLength": 1, "maxLength": 200},
        "annotation": {"oneOf": [
            {"type": "null"},
            {"type": "object", "additionalProperties": False, "required": ["kind", "mask"],
             "properties": {"kind": {"enum": ["crop_annotation", "hand_label"]},
                            "mask": {"type": "string", "minLength": 1}}},
        ]},
    },
}


@dataclasses.dataclass(frozen=True)
class EvalItem:
    """One image to evaluate, with where its ground truth is and what the row said about it."""

    corpus: str
    image_id: str
    image_path: pathlib.Path
    truth_path: pathlib.Path | None
    truth_format: str  # "png" or "yolo"
    truth_kind: str  # "mask", "polygons", "crop_annotation" or "hand_label"
    notes: str = ""
    source: tuple = ()  # sorted (field, value) pairs of CropRun.source
    problem: str | None = None  # set when this image cannot be evaluated
    merged: tuple = ()  # (row id, notes, source) of rows showing the same photo, merged into this one

    @property
    def rows(self):
        """(row id, notes, source dict) of every row this item stands for: its own, then the merged ones."""
        return tuple((row_id, notes, dict(source))
                     for row_id, notes, source in ((self.image_id, self.notes, self.source), *self.merged))


@dataclasses.dataclass(frozen=True)
class Exclusion:
    row_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class UnlabelledRow:
    """A human-flagged row excluded for lack of ground truth: what a labeller would annotate next."""

    row_id: str
    image: str  # as croprun.jsonl gives it, relative to flagged/
    notes: str
    source: tuple  # sorted (field, value) pairs of CropRun.source


@dataclasses.dataclass(frozen=True)
class Snapshot:
    root: pathlib.Path
    version: str
    sha256: str  # digest of every file the evaluation reads, with its relative path
    items: tuple  # EvalItem, sorted by (corpus, image_id), each photo once per corpus (eval/inputs/duplicates.py)
    exclusions: tuple  # Exclusion of rows not evaluated, by the contract or as duplicates; sorted by row id
    export: dict | None = None  # snapshot.yaml's `export` provenance, when a database export made it
    duplicates: tuple = ()  # the exclusions of rows (or test images) merged into another showing the same photo
    unlabelled: tuple = ()  # UnlabelledRow of the rows excluded as NO_ANNOTATION, sorted by row id


def _test_items(root):
    split = root / TEST
    images_dir = split / "images"
    if not images_dir.is_dir():
        raise GateInputError(images_dir, "missing: the test split needs test/images/ (see eval/inputs/snapshot.py)")
    items, stems = [], {}
    for path in sorted(images_dir.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise GateInputError(path, f"not an image file; expected one of {', '.join(IMAGE_SUFFIXES)}")
        if path.stem in stems:
            raise GateInputError(path, f"duplicate image id {path.stem!r} (also {stems[path.stem].name})")
        stems[path.stem] = path
        image = resolve_inside(root, f"{TEST}/images/{path.name}", path)
        mask = resolve_inside(root, f"{TEST}/masks/{path.stem}.png", path)
        labels = resolve_inside(root, f"{TEST}/labels/{path.stem}.txt", path)
        if mask.exists() and labels.exists():
            items.append(EvalItem(TEST, path.stem, image, mask, "png", "mask",
                                  problem=f"both {mask.name} and {labels.name} exist; keep one ground truth"))
        elif mask.exists() or labels.exists():
            items.append(EvalItem(TEST, path.stem, image, mask if mask.exists() else labels,
                                  "png" if mask.exists() else "yolo", "mask" if mask.exists() else "polygons"))
        else:
            items.append(EvalItem(TEST, path.stem, image, None, "png", "mask",
                                  problem=f"no ground truth: expected test/masks/{path.stem}.png "
                                          f"or test/labels/{path.stem}.txt"))
    if not items:
        raise GateInputError(images_dir, "empty corpus: no images in the test split")
    return items


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs):
    """json.loads keeps the last of two equal keys; a row saying two things must not be guessed at."""
    row = {}
    for key, value in pairs:
        if key in row:
            raise _DuplicateKey(f"duplicate key {key!r}")
        row[key] = value
    return row


def _flagged_rows(path):
    """Yield (line number, row dict) of a CropRun JSONL export, validating each row."""
    try:
        # Lines end at "\n" only: str.splitlines() also splits at U+2028, U+0085 and other characters
        # that JSON allows unescaped inside a string, which would break valid rows apart.
        lines = read_text(path).split("\n")
    except FileNotFoundError:
        raise GateInputError(path, "missing: the flagged corpus needs flagged/croprun.jsonl") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GateInputError(path, f"cannot read ({err})") from None
    validator = jsonschema.Draft202012Validator(_ROW_SCHEMA)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_refuse_duplicate_keys)
        except json.JSONDecodeError as err:
            raise GateInputError(f"{path}:{number}", f"malformed JSON ({err.msg} at column {err.colno})") from None
        except (ValueError, RecursionError) as err:  # duplicate keys, integers too long, absurd nesting
            problem = "nested too deeply" if isinstance(err, RecursionError) else err
            raise GateInputError(f"{path}:{number}", f"malformed JSON ({problem})") from None
        try:
            json.dumps(row, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise GateInputError(f"{path}:{number}", "not valid Unicode: a \\ud800-\\udfff escape "
                                                     "without its surrogate pair") from None
        error = jsonschema.exceptions.best_match(validator.iter_errors(row))
        if error is not None:
            field = ".".join(str(p) for p in error.absolute_path) or "row"
            raise GateInputError(f"{path}:{number}", f"{field}: {error.message}")
        yield number, row


def _flagged_items(root):
    jsonl = resolve_inside(root, "croprun.jsonl", root / FLAGGED / "croprun.jsonl", base=root / FLAGGED)
    items, exclusions, unlabelled, lines = [], [], [], {}
    for number, row in _flagged_rows(jsonl):
        where = f"{jsonl}:{number}"
        if row["id"] in lines:
            raise GateInputError(where, f"duplicate CropRun id {row['id']!r} (first on line {lines[row['id']]})")
        lines[row["id"]] = number
        if "excluded" in row:
            exclusions.append(Exclusion(row["id"], row["excluded"]))
            continue
        if row["source"]["type"] != "human":
            exclusions.append(Exclusion(row["id"], NOT_HUMAN))
            continue
        if row["annotation"] is None:
            exclusions.append(Exclusion(row["id"], NO_ANNOTATION))
            unlabelled.append(UnlabelledRow(row["id"], row["image"], row["notes"] or "",
                                            tuple(sorted(row["source"].items()))))
            continue
        image = resolve_inside(root, row["image"], where, base=root / FLAGGED)
        truth = resolve_inside(root, row["annotation"]["mask"], where, base=root / FLAGGED)
        items.append(EvalItem(FLAGGED, row["id"], image, truth, "png", row["annotation"]["kind"],
                              notes=row["notes"] or "", source=tuple(sorted(row["source"].items()))))
    return items, exclusions, tuple(sorted(unlabelled, key=lambda r: r.row_id))


def _with_missing_files(item):
    """Attach the first problem of the item's files: a missing or unreadable file sinks this image only."""
    for path in (item.image_path, item.truth_path):
        if item.problem is not None or path is None:
            continue
        try:
            if not os.path.lexists(path):
                return dataclasses.replace(item, problem=f"{path}: file not found")
            open_regular(path).close()
        except OSError as err:
            return dataclasses.replace(item, problem=f"{path}: cannot read ({err.strerror or err})")
    return item


def load_snapshot(root, meter=None):
    """Read the snapshot at `root` (see the module docstring for the contract); a `meter` (eval.timings.Meter)
    times the duplicate check."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise GateInputError(root, "dataset snapshot directory not found")
    manifest, _ = load_yaml(resolve_inside(root, "snapshot.yaml", root / "snapshot.yaml"), _MANIFEST_SCHEMA)
    flagged, exclusions, unlabelled = _flagged_items(root)
    items = sorted((_with_missing_files(i) for i in _test_items(root) + flagged),
                   key=lambda i: (i.corpus, i.image_id))
    read = {root / "snapshot.yaml", root / FLAGGED / "croprun.jsonl"}
    read.update(p for i in items if i.problem is None for p in (i.image_path, i.truth_path))
    # Digested before duplicates are merged: which rows are merged depends on every one of these files.
    digests = {p: file_digest(p) for p in sorted(read)}
    listing = "".join(f"{p.relative_to(root).as_posix()}\t{digest}\n" for p, digest in digests.items())
    with timings.stage(meter, "duplicate_check"):
        items, merged = merge_duplicates(items, digests)
    duplicates = tuple(Exclusion(*row) for row in merged)
    return Snapshot(root, manifest["version"], hashlib.sha256(listing.encode()).hexdigest(), items,
                    tuple(sorted((*exclusions, *duplicates), key=lambda e: (e.row_id, e.reason))),
                    manifest.get("export"), duplicates, unlabelled)
