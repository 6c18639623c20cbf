"""CropRun database -> a versioned dataset snapshot the gate reads unchanged (eval/inputs/snapshot.py).

Every CropRun row created up to --as_of goes into flagged/croprun.jsonl, ordered by id, so the gate's
exclusion counts are complete; rows the export cannot use carry `"excluded": <reason>` (a malformed
`source`, an unknown `source.type`, and with --exclude_missing_truth a ground truth or photo that is
missing or unusable). Each row's ground truth is the newest CropAnnotation mask of its image, else the
newest hand label. Photos are copied byte for byte; masks become PNGs (see ground_truth.py).

The snapshot is built in a staging folder beside its destination and renamed into place once the
gate's own loader has read it back, so it is complete or absent. Versions are immutable: an existing
<output>/<version> with the same content is left alone, one with different content is refused. The
output depends only on the database state up to --as_of, the mapping, the media and the test split:
the same inputs give the same bytes and the same digest.
"""

import collections
import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import re
import shutil
import tempfile

import yaml

from croprun_export import database, ground_truth, test_split
from croprun_export.media import Media, MediaMissing
from croprun_export.schema_mapping import load_mapping
from eval.errors import GateInputError
from eval.inputs import images, volumes
from eval.inputs import snapshot as snapshot_contract
from eval.progress import Progress
from eval.runtime import user_path

HUMAN = "human"
MALFORMED_SOURCE = "malformed source JSON"
UNKNOWN_TYPE = "unknown source.type"
TRUTH_UNUSABLE = "ground truth missing or unusable"
PHOTO_UNUSABLE = "photo missing or unusable"
_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
_LISTED = 20


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    database_url: str
    media_root: str  # a folder or modal://<volume>/<path>
    test_split: str  # a folder in the snapshot's test/ layout or an ultralytics dataset YAML
    as_of: datetime.datetime  # timezone-aware
    version: str
    output: str  # the snapshot goes to <output>/<version>
    schema: str  # configs/croprun_schema.yaml or the service's own mapping
    exclude_missing_truth: bool = False
    quiet: bool = False


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: pathlib.Path
    version: str
    sha256: str  # the gate's content digest (eval.inputs.snapshot.load_snapshot)
    rows: int
    flagged: int  # rows in the gate's flagged corpus
    excluded: dict  # reason -> count, the export's and the gate's reasons together
    created: bool  # False: this version already existed with exactly this content


def utc_text(moment):
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _stem(row_id):
    """A file name stem for the row's photo and mask: the id itself when it is a safe name."""
    text = str(row_id)
    if _SAFE_STEM.match(text):
        return text
    return "row-" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _encodable(value):
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:  # lone surrogates: SQLite text that was not UTF-8
        return False


def _source(row, source_types):
    """(source dict for the JSONL row, exclusion reason or None), from the database's view of the JSON."""
    if not row.source_is_object:
        return dict.fromkeys(database.SOURCE_FIELDS), MALFORMED_SOURCE
    source = {}
    for field, (kind, value) in row.source.items():
        if kind in (None, "null"):
            source[field] = None
        elif kind == "string" and isinstance(value, str) and _encodable(value):
            source[field] = value
        else:
            return dict.fromkeys(database.SOURCE_FIELDS), MALFORMED_SOURCE
    return source, None if source["type"] in source_types else UNKNOWN_TYPE


def _text(value, where):
    if value is None:
        return None
    value = str(value)
    if not _encodable(value):
        raise GateInputError(where, "not valid UTF-8 text")
    return value


class _Builder:
    """Writes flagged/ for the rows; collects the media problems of the rows the gate would evaluate."""

    def __init__(self, root, media, mapping):
        self.root, self.media, self.mapping = root, media, mapping
        self.problems = []  # (row id, what, why)
        for sub in ("images", "masks"):
            (root / snapshot_contract.FLAGGED / sub).mkdir(parents=True)

    def photo(self, row, stem):
        """(relative path, local path or None, problem or None) of the row's photo, copied when it exists."""
        suffix = pathlib.PurePosixPath(row.image_file).suffix.lower() if isinstance(row.image_file, str) else ""
        relative = f"images/{stem}{suffix}"
        if row.image_file is None:
            return relative, None, "no image row or no file"
        try:
            data = self.media.read(row.image_file)
        except MediaMissing as err:
            return relative, None, f"{row.image_file!r}: {err}"
        local = self.root / snapshot_contract.FLAGGED / relative
        local.write_bytes(data)
        return relative, local, None

    def truth(self, value, stem, photo):
        """(relative mask path or None, problem or None)."""
        def photo_shape():
            if photo is None:
                raise ground_truth.TruthUnusable("the photo is missing, so the mask's size cannot be checked")
            try:
                return images.load_rgb(photo).shape[:2]
            except GateInputError as err:
                raise ground_truth.TruthUnusable(f"the photo cannot be decoded ({err.problem})") from None

        try:
            png = ground_truth.mask_png(value, photo_shape, self.media)
        except MediaMissing as err:
            return None, f"{value!r}: {err}"
        except ground_truth.TruthUnusable as err:
            return None, str(err)
        relative = f"masks/{stem}.png"
        (self.root / snapshot_contract.FLAGGED / relative).write_bytes(png)
        return relative, None

    def row(self, row, source_types, exclude_missing_truth):
        """(the row's JSONL line, the reason the gate will exclude it or None)."""
        where = f"{self.mapping.table('croprun')} id {row.id!r}"
        stem = _stem(row.id)
        source, excluded = _source(row, source_types)
        image, photo, photo_problem = self.photo(row, stem)
        kind, value = (("crop_annotation", row.annotation_mask) if row.annotation_mask is not None
                       else ("hand_label", row.hand_label_mask))
        annotation = None
        truth_problem = None
        if value is not None:
            mask, truth_problem = self.truth(value, stem, photo)
            annotation = {"kind": kind, "mask": mask} if mask else None
        if excluded is None and source["type"] == HUMAN and value is not None:  # the gate would evaluate it
            for what, problem, reason in (("photo", photo_problem, PHOTO_UNUSABLE),
                                          (kind.replace("_", " "), truth_problem, TRUTH_UNUSABLE)):
                if problem is not None:
                    self.problems.append((row.id, what, problem))  # refused as a whole unless counted
                    excluded = excluded or (reason if exclude_missing_truth else None)
        document = {"id": _text(row.id, where), "image": image, "source": source,
                    "notes": _text(row.notes, f"{where}: {self.mapping.column('croprun', 'notes')}"),
                    "annotation": annotation}
        if excluded:
            document["excluded"] = excluded
        elif source["type"] != HUMAN:
            excluded = snapshot_contract.NOT_HUMAN
        elif annotation is None:
            excluded = snapshot_contract.NO_ANNOTATION
        return json.dumps(document, ensure_ascii=False) + "\n", excluded


def _refuse_problems(problems):
    shown = "; ".join(f"row {row_id!r}: {what} {why}" for row_id, what, why in problems[:_LISTED])
    more = f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
    raise GateInputError("the CropRun database", f"{len(problems)} row(s) of the flagged corpus have a missing or "
                                                 f"unusable photo or ground truth: {shown}{more}. Fix them, or pass "
                                                 f"--exclude_missing_truth to exclude and count them")


def _manifest(options, db, mapping, split_kind, rows, excluded):
    return {
        "format": snapshot_contract.FORMAT,
        "version": options.version,
        "description": f"CropRun rows created up to {utc_text(options.as_of)} in the {db.kind} database "
                       f"{db.name}, exported by //tools:export_snapshot",
        "export": {
            "database": {"kind": db.kind, "name": db.name},
            "as_of": utc_text(options.as_of),
            "schema_mapping_sha256": mapping.sha256,
            "croprun_rows": rows,
            "excluded_rows": excluded,
            "exclude_missing_truth": options.exclude_missing_truth,
            "test_split": split_kind,
        },
    }


def _write_manifest(root, manifest):
    (root / "snapshot.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True),
                                        encoding="utf-8")


def _publish(stage, final, sha256):
    """Rename `stage` to `final`; True if published, False if `final` already holds this very content."""
    for _ in range(2):  # a concurrent export of the same version may create `final` between check and rename
        if final.exists() or final.is_symlink():
            try:
                existing = snapshot_contract.load_snapshot(final).sha256
            except GateInputError as err:
                raise GateInputError(final, f"exists and is not a readable snapshot ({err}); versions are "
                                            f"immutable: choose another --version or --output") from None
            if existing != sha256:
                raise GateInputError(final, f"version {final.name} already exists with different content "
                                            f"(sha256 {existing}, this export {sha256}); versions are immutable: "
                                            f"choose a new --version")
            return False
        try:
            os.rename(stage, final)
            return True
        except OSError:  # someone else published it first: compare with theirs
            continue
    raise GateInputError(final, "could not publish the snapshot (the folder keeps changing)")


def export_snapshot(options, open_store=volumes.ModalVolumeStore):
    """Run the export (see the module docstring); returns an ExportResult. Raises GateInputError."""
    progress = Progress(options.quiet)
    if not re.match(snapshot_contract.VERSION_PATTERN, options.version):
        raise GateInputError("--version", f"{options.version!r} is not a snapshot version "
                                          f"(letters, digits, '.', '_', '-'; at most 64 characters)")
    if options.as_of.tzinfo is None:
        raise GateInputError("--as_of", "needs a time zone, e.g. 2026-11-20T00:00:00Z")
    if options.as_of > datetime.datetime.now(datetime.UTC):
        raise GateInputError("--as_of", "is in the future: rows created later would change the snapshot")
    mapping = load_mapping(options.schema)
    media = Media(options.media_root, open_store)
    output = pathlib.Path(user_path(options.output))
    output.mkdir(parents=True, exist_ok=True)
    db, rows = database.read_rows(options.database_url, mapping, options.as_of)
    if not rows:
        raise GateInputError(db.shown_url, f"no CropRun rows created up to {utc_text(options.as_of)}")
    progress.log(f"{len(rows)} CropRun row(s) up to {utc_text(options.as_of)} from {db.shown_url}")
    stage = pathlib.Path(tempfile.mkdtemp(prefix=f".{options.version}.partial-", dir=output))
    try:
        stage.chmod(0o755)  # mkdtemp's 0700 would become the snapshot's permissions
        split_kind = test_split.copy_test_split(options.test_split, stage / snapshot_contract.TEST)
        builder = _Builder(stage, media, mapping)
        progress.start("CropRun rows", len(rows))
        lines, excluded, reported = [], collections.Counter(), 0
        for number, row in enumerate(rows, start=1):
            line, reason = builder.row(row, mapping.source_types, options.exclude_missing_truth)
            lines.append(line)
            excluded.update([reason] if reason else [])
            if number % 1000 == 0 or number == len(rows):
                progress.advance(number - reported)
                reported = number
        if builder.problems and not options.exclude_missing_truth:
            _refuse_problems(builder.problems)
        (stage / snapshot_contract.FLAGGED / "croprun.jsonl").write_text("".join(lines), encoding="utf-8")
        manifest = _manifest(options, db, mapping, split_kind, len(rows), dict(sorted(excluded.items())))
        _write_manifest(stage, manifest)
        loaded = snapshot_contract.load_snapshot(stage)  # the gate's own loader reads it back and digests it
        # Rows showing one photo are merged by the gate's loader itself (eval/inputs/duplicates.py), not here.
        counted = collections.Counter(e.reason for e in loaded.exclusions if e not in loaded.duplicates)
        if loaded.duplicates:
            progress.log(f"{len(loaded.duplicates)} row(s) show the same photo as another row with the same "
                         "ground truth: the gate evaluates each photo once (excluded as duplicates)")
        if counted != excluded:  # the export's rule for the gate's reasons must be the gate's own
            raise RuntimeError(f"the gate counts exclusions {dict(counted)}, the export {dict(excluded)}")
        final = output / options.version
        created = _publish(stage, final, loaded.sha256)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    flagged = sum(1 for item in loaded.items if item.corpus == snapshot_contract.FLAGGED)
    return ExportResult(final, options.version, loaded.sha256, len(rows), flagged,
                        manifest["export"]["excluded_rows"], created)
