"""Publishing a run's files atomically: a report folder is either complete or absent.

Files are written into a hidden sibling directory and renamed into place only when all of them are
written, so a crash or Ctrl-C never leaves a finished-looking report.md. A folder holding another
run's report is not replaced unless the caller allows it.
"""

import json
import os
import pathlib
import shutil

from eval.errors import GateInputError

RUN_KEY_FIELD = "run_key"


def _existing_run_key(output_dir):
    try:
        return json.loads((output_dir / "metrics.json").read_text())["provenance"][RUN_KEY_FIELD]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_destination(output_dir, run_key, overwrite):
    """Refuse (before any work) to replace a different run's report unless `overwrite`.

    Publishing replaces the whole folder, so `overwrite` only ever applies to a folder holding a gate
    report: a mistyped --output_dir (the repository, a home directory) is never deleted.
    """
    output_dir = pathlib.Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise GateInputError(output_dir, "output path exists and is not a directory")
    if not output_dir.exists() or not any(output_dir.iterdir()):
        return
    existing = _existing_run_key(output_dir)
    if existing is None:
        raise GateInputError(output_dir, "is not empty and holds no gate report (no metrics.json with a "
                                         "run key); choose another --output_dir (--overwrite never replaces it)")
    if existing != run_key and not overwrite:
        raise GateInputError(output_dir, "holds the report of a different run; choose another "
                                         "--output_dir or pass --overwrite")


def publish(output_dir, files):
    """Write {relative path: bytes} as the complete content of `output_dir`, atomically."""
    output_dir = pathlib.Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.parent / f".{output_dir.name}.partial-{os.getpid()}"
    retired = output_dir.parent / f".{output_dir.name}.old-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for relative, data in sorted(files.items()):
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if output_dir.exists():
            os.replace(output_dir, retired)
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
