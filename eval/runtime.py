"""Process-wide settings that make inference offline and deterministic.

ultralytics, onnxruntime and torch read these at import time or keep global state, so backends call
`prepare()` before importing them (their imports are deferred for that reason).
"""

import ctypes
import os
import pathlib
import platform
import shutil

from eval.errors import GateInputError

_OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",  # no DNS/connectivity probes at import
    "YOLO_AUTOINSTALL": "0",  # never pip-install a missing requirement at run time
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime's native telemetry thread
    "YOLO_VERBOSE": "False",
}
# glibc's mallopt parameter (malloc.h) and the value prepare() gives it: see _return_big_buffers_to_the_os.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1 << 20
# Idle OpenMP threads sleep instead of spinning. With more busy threads than cores (a shared CI runner),
# spinning makes torch's 2-thread inference over 10x slower; no value changes. Read when torch loads.
_THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def cache_dir():
    """The gate's cache: GATE_CACHE_DIR, else $XDG_CACHE_HOME/pottery-gate, else ~/.cache/pottery-gate."""
    explicit = os.environ.get("GATE_CACHE_DIR")
    base = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "pottery-gate"
    return pathlib.Path(explicit) if explicit else base


# Why an empty path flag is refused: `--dataset=$UNSET` must not quietly mean "the default" (CLI, Modal app).
EMPTY_PATH = "is empty (an unset variable?); give a path, or leave the flag out for its default"


def user_path(value):
    """A path the user typed, relative to the directory they typed it in, not to the runfiles or checkout.

    That directory is GATE_CALLER_DIR when ./dev ran the command (./dev has to cd into the checkout for
    Bazel), else BUILD_WORKING_DIRECTORY under `bazel run`, else the current directory.
    """
    if value is None or str(value).startswith("modal://") or os.path.isabs(value):
        return value
    caller = os.environ.get("GATE_CALLER_DIR") or os.environ.get("BUILD_WORKING_DIRECTORY", "")
    return os.path.join(caller, value)


# The environment variables the tools read, and what each must name when set. Checked once, up front
# (check_environment, called by every entry point's flag parser), so a mistake is a clean exit 2 naming the
# variable instead of a traceback from whichever library first touches the path.
WRITABLE_DIRS = ("GATE_CACHE_DIR", "XDG_CACHE_HOME", "WANDB_DIR", "MPLCONFIGDIR", "YOLO_CONFIG_DIR")
READABLE_DIRS = ("U2NET_HOME",)
EXISTING_DIRS = ("GATE_CALLER_DIR", "BUILD_WORKING_DIRECTORY", "BUILD_WORKSPACE_DIRECTORY")


def _directory_problem(value, writable, existing):
    """Why `value` cannot serve as such a directory, or None. A missing folder is fine where the tools create
    it, if its nearest existing ancestor is a folder they could create it in."""
    if not value.strip():
        return "is set but empty (an unset variable?); unset it for the default, or give an absolute path"
    if "\x00" in value or not os.path.isabs(value):
        return f"{value!r} is not an absolute path"
    path = pathlib.Path(value)
    if existing and not path.is_dir():
        return f"{value!r} is not an existing folder"
    ancestor = path
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{value!r} is not a folder ({ancestor} is a file)" if ancestor != path else f"{value!r} is not a folder"
    if writable and not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{value!r} is not writable ({ancestor})"
    return None


def check_environment(environ=os.environ):
    """Refuse, before any work, an environment variable the tools read that names an unusable folder."""
    for names, writable, existing in ((WRITABLE_DIRS, True, False), (READABLE_DIRS, False, False),
                                      (EXISTING_DIRS, False, True)):
        for name in names:
            value = environ.get(name)
            problem = None if value is None else _directory_problem(value, writable, existing)
            if problem:
                raise GateInputError(f"${name}", problem)


def _ultralytics_config_dir():
    """A writable ultralytics config dir holding the font its plotting code would otherwise download."""
    config = cache_dir() / "ultralytics-config"
    font = config / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        from matplotlib import get_data_path  # ships DejaVuSans.ttf; any TTF satisfies the check

        font.parent.mkdir(parents=True, exist_ok=True)
        tmp = font.with_suffix(f".tmp{os.getpid()}")
        shutil.copyfile(pathlib.Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", tmp)
        os.replace(tmp, font)
    return config


def matplotlib_config():
    """Point matplotlib at a config directory under the gate's cache before it is imported: its default,
    ~/.config/matplotlib, is read-only in CI sandboxes, where matplotlib would warn on stderr."""
    os.environ.setdefault("MPLCONFIGDIR", str(cache_dir() / "matplotlib-config"))


def _return_big_buffers_to_the_os():
    """Make glibc give every freed buffer of 1 MiB or more back to the OS at once (no-op on another libc).

    A phone photo's buffers (decoded pixels, masks, rembg's and torch's intermediates) are 10 to 50 MB each.
    glibc maps a block of at least its mmap threshold on its own and unmaps it on free, but each time it
    frees one it raises the threshold to that block's size (up to 32 MiB): from then on such buffers come
    from the heap arenas, where freed space between live blocks stays in the process, split among the
    threads' arenas, and peak RSS grows with every new size and thread seen. A fixed threshold also ends
    that adjustment. The price is fresh pages from the kernel for each such buffer, small next to the work
    done on megabytes of pixels. Allocation only: no computed value changes.
    """
    if platform.libc_ver()[0] == "glibc":
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


def prepare(torch_threads):
    """Set offline switches, fixed thread counts and the allocator's threshold; idempotent. Call before importing
    the backends' libs."""
    _return_big_buffers_to_the_os()
    for name, value in {**_OFFLINE_ENV, **_THREAD_ENV}.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(_ultralytics_config_dir()))
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(torch_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
