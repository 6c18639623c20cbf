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
import re
import shutil
import signal
import stat
import tempfile

from eval.digests import file_digest
from eval.errors import GateInputError
from eval.inputs.safe_paths import read_bytes

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "pottery-gate-manifest/v1"
# A detached signature over manifest.json's bytes (promotion/signing.py makes it): the gate writes it when the
# run is signed, and the manifest then names it in "signature", so it is one of the gate's files.
SIGNATURE = "manifest.sig"
TIMINGS = "timings.json"
# Files whose bytes depend on the machine (eval/timings.py): listed with a null digest so the manifest stays
# reproducible. No other entry may have one.
UNPINNED = frozenset({TIMINGS})
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _entry_problem(name, digest):
    """Why manifest entry `name: digest` is not one the gate could have written, or None.

    The manifest is read back from a folder anyone may have edited, and it decides what gets deleted, so
    an entry must be a plain relative path inside the folder, in the form the gate writes it.
    """
    if not name or "\x00" in name or "\\" in name or not name.isprintable():
        return "is not a plain file name (empty, or a NUL, backslash or control character)"
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return "is not a plain relative path inside the folder (absolute, '.', '..' or an empty component)"
    if name in (MANIFEST, SIGNATURE):
        return f"lists {name}, which is never one of the files it covers"
    if digest is None:
        return None if name in UNPINNED else f"has no digest; only {', '.join(sorted(UNPINNED))} may have none"
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        return f"has a digest that is not 64 lowercase hex digits ({digest!r})"
    return None


def read_manifest(folder):
    """(manifest document, its sha256) of `folder`, or (None, None) when it has no manifest.json.

    A manifest that is there but unreadable, malformed, or lists an entry the gate would never write (see
    _entry_problem) is refused naming the entry: it is never used to decide what to delete. (A symlinked
    manifest may be read, as a Bazel runfiles tree links every file; publishing refuses any symlink in the
    folder, that one included.)
    """
    path = folder / MANIFEST
    if not os.path.lexists(path):
        return None, None
    try:
        data = read_bytes(path)
        document = json.loads(data, parse_constant=_refuse_constant)
    except OSError as err:
        raise GateInputError(path, f"cannot read ({err.strerror or err})") from None
    except ValueError as err:
        raise GateInputError(path, f"is not valid JSON ({err})") from None
    if (not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT
            or not isinstance(document.get("files"), dict) or not isinstance(document.get("run_key"), str)):
        raise GateInputError(path, f"is not a gate manifest ({MANIFEST_FORMAT} with run_key and files)")
    if document.get("signature", SIGNATURE) != SIGNATURE:
        raise GateInputError(path, f"names a signature file other than {SIGNATURE}")
    for name, digest in sorted(document["files"].items()):
        problem = _entry_problem(name, digest)
        if problem:
            raise GateInputError(path, f"entry {name!r} {problem}; the gate replaces only "
                                       "folders whose manifest it could have written")
    return document, hashlib.sha256(data).hexdigest()


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _own_files(manifest):
    """The names the gate wrote besides the listed files: the manifest, and its signature when it names one."""
    return {MANIFEST, *((SIGNATURE,) if "signature" in manifest else ())}


def _not_written_by_the_gate(folder, manifest):
    """Sorted relative paths under `folder` that the manifest does not account for, that changed, or that it
    lists with a digest and are missing (an unpinned file, such as a committed example's timings.json, may
    be absent)."""
    files = manifest["files"]
    own = _own_files(manifest)
    expected = {*own, *files}
    parents = {p.as_posix() for name in expected for p in pathlib.PurePosixPath(name).parents} - {"."}
    strangers = []
    seen = set()
    for directory, subdirs, names in os.walk(folder):  # never follows symlinks
        here = pathlib.Path(directory)
        for name in subdirs + names:
            path = here / name
            relative = path.relative_to(folder).as_posix()
            seen.add(relative)
            if path.is_symlink():
                strangers.append(relative)
            elif name in subdirs:
                if relative not in parents:
                    strangers.append(relative + "/")
            elif relative not in expected or not stat.S_ISREG(path.lstat().st_mode):
                strangers.append(relative)
            elif relative not in own and files[relative] is not None and file_digest(path) != files[relative]:
                strangers.append(f"{relative} (modified since the gate wrote it)")
        subdirs[:] = [d for d in subdirs if not (here / d).is_symlink()]
    strangers.extend(f"{name} (listed in {MANIFEST} but missing)" for name, digest in files.items()
                     if name not in seen and digest is not None)
    return sorted(strangers)


def _state(folder, run_key, overwrite):
    """The sha256 of the manifest of the report `folder` holds (None: absent or empty); refuses the rest."""
    if folder.is_symlink():
        raise GateInputError(folder, "output path is a symbolic link; name the folder itself")
    if folder.exists() and not folder.is_dir():
        raise GateInputError(folder, "output path exists and is not a directory")
    if not folder.exists() or not any(folder.iterdir()):
        return None
    manifest, digest = read_manifest(folder)
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


def _umask():
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    """Delete the regular files under `folder` that `manifest` lists (and the folders they leave empty).

    The folder is walked, never joined with a listed name, so whatever a manifest says, only files found
    inside the folder (symlinks not followed) are ever deleted; anything else stays.
    """
    listed = {*_own_files(manifest), *manifest["files"]}
    for directory, _, names in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        here = pathlib.Path(directory)
        for name in names:
            path = here / name
            if path.relative_to(folder).as_posix() in listed and stat.S_ISREG(path.lstat().st_mode):
                path.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(directory)


@dataclasses.dataclass(frozen=True)
class Destination:
    """A checked output folder: publishing into it refuses if it changed since the check."""

    path: pathlib.Path
    run_key: str
    overwrite: bool
    seen: str | None  # sha256 of the manifest found at check time; None: absent or empty

    def publish(self, files, signer=None, last=None):
        """Write {relative path: bytes} and the manifest as the complete content of the folder, atomically.

        `last`, when given, returns more files once `files` are written (timings.json, which times the writing).
        The machine-dependent files (UNPINNED) are listed as the gate's without a digest. With a `signer`
        (manifest bytes -> signature bytes), the manifest names SIGNATURE and the signature is written there.
        """
        folder = self.path
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = _staging(folder, "partial")
        try:
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the report from the group
            _write_files(staging, files)
            files = {**files, **_write_files(staging, last() if last else {})}
            manifest = {"format": MANIFEST_FORMAT, "run_key": self.run_key,
                        "files": {name: None if name in UNPINNED else hashlib.sha256(data).hexdigest()
                                  for name, data in sorted(files.items())},
                        **({"signature": SIGNATURE} if signer else {})}
            manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
            (staging / MANIFEST).write_bytes(manifest_bytes)
            if signer:
                (staging / SIGNATURE).write_bytes(signer(manifest_bytes))
            with _exclusively(folder.parent):
                if _state(folder, self.run_key, self.overwrite) != self.seen:
                    raise GateInputError(folder, "another run published a report there while this one was "
                                                 "evaluating; this run's report was not written")
                old, _ = read_manifest(folder)
                retired = _staging(folder, "old") if old else None
                if retired:
                    os.replace(folder, retired)
                os.replace(staging, folder)  # also replaces an empty folder
            if retired:
                _remove_gate_files(retired, old)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # only ever holds this run's files


def _write_files(folder, files):
    """Write {relative path: bytes} under `folder`; returns `files`."""
    for relative, data in sorted(files.items()):
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


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
