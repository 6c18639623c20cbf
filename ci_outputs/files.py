"""Writing what CI reads: the JUnit file, whole or not at all, and the step summary, appended.

A JUnit file is written beside its destination and renamed into place, so a CI system never parses half a
report. The step summary file belongs to the CI job (GitHub appends every step's summary to it): the gate only
appends. Either failing is a GateInputError naming the file: CI would otherwise read a missing result as a pass.
"""

import os
import pathlib

from ci_outputs.junit import junit_xml
from ci_outputs.step_summary import step_summary
from eval.errors import GateInputError

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def write_junit(path, metrics):
    """Write the run's JUnit XML to `path` (replacing a previous file there, never a folder); the file's mode
    follows the umask, like any tool's output."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise GateInputError(path, "is a folder; --junit_xml names the file to write")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(junit_xml(metrics))
            os.replace(partial, path)
        finally:
            if os.path.lexists(partial):
                os.unlink(partial)
    except OSError as err:
        raise GateInputError(path, f"cannot write the JUnit file ({err.strerror})") from None


def append_step_summary(metrics, report_location, environ=os.environ):
    """Append the run's summary to the file $GITHUB_STEP_SUMMARY names, when it is set."""
    target = environ.get(STEP_SUMMARY_ENV)
    if not target:
        return
    path = pathlib.Path(target)
    if path.exists() and not path.is_file():
        raise GateInputError(f"${STEP_SUMMARY_ENV}", f"{target} is not a regular file")
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(step_summary(metrics, report_location))
    except OSError as err:
        raise GateInputError(f"${STEP_SUMMARY_ENV}", f"cannot append to {target} ({err.strerror})") from None

