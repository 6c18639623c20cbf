"""Publishing a run's files atomically, replacing only what the gate wrote.

A report folder is either complete or absent: files are written into a hidden sibling folder and renamed
into place once all are written, so a crash, Ctrl-C or SIGTERM never leaves a finished-looking report.md.

The gate deletes only what it wrote. Every folder it publishes holds `manifest.json`: the run key and the
sha256 of every file it wrote there (null for a machine-dependent file such as timings.json, so the
manifest stays reproducible). A folder is replaced only when it holds exactly those files, unmodified: a
reviewer's REVIEW.md, an edited report.md or a folder without a manifest makes it refuse, with or without
`overwrite` (which only allows replacing a different run's report).

The destination is checked twice: before any work (`check_destination`, which also creates and removes
a probe, so an unusable path fails before any model runs) and again at publication, under an exclusive
lock on the parent folder, against what the first check saw: if another run published there meanwhile,
this one refuses instead of silently replacing it.
"""

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import signal
import tempfile

from eval.errors import GateInputError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "pottery-gate-manifest/v1"


def _sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _read_manifest(folder):
    """(manifest document, its sha256) of `folder`, or (None, None) when it holds no valid manifest."""
    path = folder / MANIFEST
    try:
        if not path.is_file() or path.is_symlink():
            return None, None
        data = path.read_bytes()
        document = json.loads(data)
        if document.get("format") != MANIFEST_FORMAT or not isinstance(document.get("files"), dict):
            return None, None
        return document, hashlib.sha256(data).hexdigest()
    except (OSError, ValueError, AttributeError):
        return None, None


def _not_written_by_the_gate(folder, manifest):
    """Sorted relative paths under `folder` that the manifest does not account for, or that changed."""
    files = manifest["files"] if manifest else {}
    expected = {MANIFEST, *files}
    parents = {p.as_posix() for name in expected for p in pathlib.PurePosixPath(name).parents} - {"."}
    strangers = []
    for directory, subdirs, names in os.walk(folder):  # never follows symlinks
        here = pathlib.Path(directory)
        for name in subdirs + names:
            path = here / name
            relative = path.relative_to(folder).as_posix()
            if path.is_symlink():
                strangers.append(relative)
            elif name in subdirs:
                if relative not in parents:
                    strangers.append(relative + "/")
            elif relative not in expected or not path.is_file():
                strangers.append(relative)
            elif relative != MANIFEST and files[relative] is not None and _sha256(path) != files[relative]:
                strangers.append(f"{relative} (modified since the gate wrote it)")
        subdirs[:] = [d for d in subdirs if not (here / d).is_symlink()]
    return sorted(strangers)


def _state(folder, run_key, overwrite):
    """The sha256 of the manifest of the report `folder` holds (None: absent or empty); refuses the rest."""
    if folder.is_symlink():
        raise GateInputError(folder, "output path is a symbolic link; name the folder itself")
    if folder.exists() and not folder.is_dir():
        raise GateInputError(folder, "output path exists and is not a directory")
    if not folder.exists() or not any(folder.iterdir()):
        return None
    manifest, digest = _read_manifest(folder)
    if manifest is None:
        raise GateInputError(folder, f"is not empty and holds no gate report (no {MANIFEST}); the gate replaces "
                                     "only folders it wrote: choose another --output_dir (--overwrite never "
                                     "replaces it)")
    strangers = _not_written_by_the_gate(folder, manifest)
    if strangers:
        shown = ", ".join(strangers[:5]) + (f" and {len(strangers) - 5} more" if len(strangers) > 5 else "")
        raise GateInputError(folder, f"holds files the gate did not write ({shown}); the gate deletes only what "
                                     "it wrote: move them out or choose another --output_dir (--overwrite "
                                     "never deletes them)")
    if manifest.get("run_key") != run_key and not overwrite:
        raise GateInputError(folder, "holds the report of a different run; choose another --output_dir or pass "
                                     "--overwrite")
    return digest


def _probe(folder):
    """Create and remove what publishing creates (missing parents, a staging folder) to prove it possible."""
    if folder.name in ("", ".", ".."):
        raise GateInputError(folder, "--output_dir must name a folder (it ends in '..' or is a root)")
    missing = []
    ancestor = folder.parent
    while not os.path.lexists(ancestor):
        missing.append(ancestor)
        ancestor = ancestor.parent
    created = []
    try:
        for directory in reversed(missing):
            os.mkdir(directory)
            created.append(directory)
        os.rmdir(_staging(folder, "probe"))
    except OSError as err:
        detail = err.strerror
        if err.errno == errno.ENAMETOOLONG:
            detail += (f": the folder name is {len(os.fsencode(folder.name))} bytes, and the gate stages it under "
                       "a name 20 bytes longer; most file systems allow 255")
        raise GateInputError(folder, f"cannot be created or written ({detail}; at {err.filename})") from None
    finally:
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def _staging(folder, kind):
    """A new, uniquely named hidden sibling folder of `folder`."""
    return pathlib.Path(tempfile.mkdtemp(prefix=f".{folder.name}.{kind}-", dir=folder.parent))


@contextlib.contextmanager
def _exclusively(folder):
    """Hold an exclusive lock on `folder` (released when the process dies, so a crash leaves no stale lock),
    with SIGINT and SIGTERM held back so a swap is never left half-done."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _remove_gate_files(folder, manifest):
    """Delete the files `manifest` lists (and the folders they leave empty); anything else stays."""
    for relative in sorted({MANIFEST, *manifest["files"]}):
        with contextlib.suppress(FileNotFoundError):
            (folder / relative).unlink()
    for directory, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


@dataclasses.dataclass(frozen=True)
class Destination:
    """A checked output folder: publishing into it refuses if it changed since the check."""

    path: pathlib.Path
    run_key: str
    overwrite: bool
    seen: str | None  # sha256 of the manifest found at check time; None: absent or empty

    def publish(self, files, unpinned=()):
        """Write {relative path: bytes} and the manifest as the complete content of the folder, atomically.

        `unpinned` names machine-dependent files: listed as the gate's, their digest is not recorded.
        """
        folder = self.path
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = _staging(folder, "partial")
        try:
            manifest = {"format": MANIFEST_FORMAT, "run_key": self.run_key,
                        "files": {name: None if name in unpinned else hashlib.sha256(data).hexdigest()
                                  for name, data in sorted(files.items())}}
            for relative, data in sorted(files.items()):
                path = staging / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            (staging / MANIFEST).write_bytes((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
            with _exclusively(folder.parent):
                if _state(folder, self.run_key, self.overwrite) != self.seen:
                    raise GateInputError(folder, "another run published a report there while this one was "
                                                 "evaluating; this run's report was not written")
                old, _ = _read_manifest(folder)
                retired = _staging(folder, "old") if old else None
                if retired:
                    os.replace(folder, retired)
                os.replace(staging, folder)  # also replaces an empty folder
            if retired:
                _remove_gate_files(retired, old)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # only ever holds this run's files


def check_destination(output_dir, run_key, overwrite, inputs=()):
    """Refuse, before any work, a destination the gate cannot or may not publish to; return it checked.

    Refused: a path that is not a folder or cannot be created, one inside any of `inputs` (folders the run
    reads, symlinks resolved), a folder holding anything the gate did not write, and a different run's
    report unless `overwrite`.
    """
    folder = pathlib.Path(output_dir)
    for source in inputs:
        real_source = os.path.realpath(source)
        if os.path.commonpath([real_source, os.path.realpath(folder)]) == real_source:
            raise GateInputError(folder, f"is inside the input {source}; the gate never writes into its inputs")
    _probe(folder)
    return Destination(folder, run_key, overwrite, _state(folder, run_key, overwrite))
