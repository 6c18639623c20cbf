"""Process-wide settings that make inference offline and deterministic.

ultralytics, onnxruntime and torch read these at import time or keep global state, so backends call
`prepare()` before importing them (their imports are deferred for that reason).
"""

import os
import pathlib
import shutil

_OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",  # no DNS/connectivity probes at import
    "YOLO_AUTOINSTALL": "0",  # never pip-install a missing requirement at run time
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime's native telemetry thread
    "YOLO_VERBOSE": "False",
}
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


def prepare(torch_threads):
    """Set offline switches and fixed thread counts; idempotent. Call before importing the backends' libs."""
    for name, value in {**_OFFLINE_ENV, **_THREAD_ENV}.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(_ultralytics_config_dir()))
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(torch_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
