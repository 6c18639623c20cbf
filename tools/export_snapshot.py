"""Export the flagged corpus from the CropRun database into a versioned dataset snapshot for the gate.

Every CropRun row created up to --as_of goes into flagged/croprun.jsonl with its ground truth (the
newest CropAnnotation mask of its image, else the newest hand label); the test split is copied from the
training export; photos come from the media storage. The gate reads the result unchanged:

    bazel run //tools:export_snapshot -- --database_url=postgresql://reader@db.internal/crops \\
        --media_root=modal://media/crops --test_split=/exports/pottery-2026-11/data.yaml \\
        --as_of=2026-11-20T00:00:00Z --version=pottery-2026-11-20 --output=/snapshots

writes /snapshots/pottery-2026-11-20/ atomically and prints its path, version, content digest and the
gate command to run on it. The same database and --as_of give the same bytes; an existing version with
different content is refused (versions are immutable). The database is opened read-only; a password in
the URL (or libpq's PGPASSWORD, PGHOST, ... variables) is used to connect and never printed or stored.

Exit status: 0 the snapshot exists (written now, or already there with identical content); 2 it could
not be made (the message names the input and the problem; nothing is left half-written).
"""

import datetime
import pathlib
import shlex
import sys
import traceback

from absl import app, flags

from croprun_export.database import redact
from croprun_export.export import ExportOptions, export_snapshot, utc_text
from eval import cli, sanitise
from eval.errors import GateInputError

_ROOT = pathlib.Path(__file__).absolute().parent.parent  # runfiles root of this workspace, or the source tree

_DATABASE_URL = flags.DEFINE_string(
    "database_url", None, "The CropRun database: sqlite:///path/to/file.sqlite, or "
    "postgresql://user@host:port/dbname (psycopg 3; password from the URL or PGPASSWORD/~/.pgpass). "
    "The demo's: sqlite:///demo/assets/croprun.sqlite.", required=True)
_MEDIA_ROOT = cli.DEFINE_path(
    "media_root", None, "Where the database's file paths (photos, mask PNGs) point: a folder or "
    "modal://<volume>/<path>. The demo's: demo/assets/snapshot.", required=True)
_TEST_SPLIT = cli.DEFINE_path(
    "test_split", None, "The held-out test split (#415): an ultralytics dataset YAML (its `test` images and "
    "YOLO-seg labels are copied) or a folder in the snapshot's test/ layout (images/, masks/ or labels/).",
    required=True)
_AS_OF = flags.DEFINE_string(
    "as_of", None, "Export the rows (and annotations) created up to this moment, ISO 8601 with a time zone, "
    "e.g. 2026-11-20T00:00:00Z. Fixes what the snapshot contains.", required=True)
_VERSION = flags.DEFINE_string(
    "version", None, "Snapshot version (names the folder and the gate's report); immutable once written.",
    required=True)
_OUTPUT = cli.DEFINE_path("output", None, "Folder of snapshots; the export goes to <output>/<version>/.",
                          required=True)
_SCHEMA = cli.DEFINE_path(
    "schema", None, "Table and column names of the CropRun service (YAML). Default: configs/croprun_schema.yaml "
    "of the checkout, Django's names for an app `crops`.")
_EXCLUDE_MISSING_TRUTH = flags.DEFINE_bool(
    "exclude_missing_truth", False, "Exclude and count human rows whose photo or ground truth is missing or "
    "unusable, instead of refusing the export with their list.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress lines on stderr.")

EXIT_OK, EXIT_ERROR = 0, cli.EXIT_ERROR


def _as_of(text):
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise GateInputError("--as_of", f"{text!r} is not an ISO 8601 timestamp (e.g. 2026-11-20T00:00:00Z)") from None


def main(argv):
    del argv  # only the program name: cli.parse_flags refuses anything else
    try:
        options = ExportOptions(
            database_url=_DATABASE_URL.value, media_root=_MEDIA_ROOT.value,
            test_split=_TEST_SPLIT.value, as_of=_as_of(_AS_OF.value), version=_VERSION.value,
            output=_OUTPUT.value, schema=_SCHEMA.value or str(_ROOT / "configs" / "croprun_schema.yaml"),
            exclude_missing_truth=_EXCLUDE_MISSING_TRUTH.value, quiet=_QUIET.value)
        result = export_snapshot(options)
    except GateInputError as err:
        print(f"error: {sanitise.text(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted; no snapshot was written", file=sys.stderr)
        return EXIT_ERROR
    except Exception:  # an unexpected failure must still exit 2 with nothing half-written
        print(redact(traceback.format_exc(), _DATABASE_URL.value), end="", file=sys.stderr)
        print("error: the export could not be completed (unexpected failure above)", file=sys.stderr)
        return EXIT_ERROR
    excluded = ", ".join(f"{reason}: {count}" for reason, count in result.excluded.items()) or "none"
    print(f"snapshot: {sanitise.text(result.path)}" + ("" if result.created else " (already there, identical)"))
    print(f"version: {sanitise.text(result.version)}")
    print(f"sha256: {result.sha256}")
    print(f"rows: {result.rows} up to {utc_text(options.as_of)}; flagged corpus {result.flagged}; "
          f"excluded {sanitise.text(excluded)}")
    print("gate: bazel run //tools:eval_crop_model -- "
          + sanitise.text(shlex.join([f"--dataset={result.path}"]))
          + " --checkpoint=<best.pt> --checkpoint_sha256=<sha256 of best.pt>")
    return EXIT_OK


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
