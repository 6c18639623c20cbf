"""Locating, pinning and safely unpickling the candidate checkpoint.

An ultralytics `.pt` is a pickle, and a pickle may name any callable for the loader to run. So the file is
read once: its digest, checked against the pin (--checkpoint_sha256 or an allowlist of approved digests) and
recorded in every report and the run key, is the digest of the very bytes the model is built from, and the
path is never reopened (a file swapped after the check changes nothing). Those bytes are unpickled with
torch's `weights_only` loader, which constructs only what it is told is safe: tensors (torch's default),
the nn.Module classes of torch.nn and ultralytics.nn, and a few plain data types (_data_globals). A
checkpoint that names anything else is refused before any of it runs, pinned or not: the pin says which
file was approved, not that its code may run.
"""

import dataclasses
import hashlib
import importlib
import io
import pathlib
import pickle
import re
import threading

from eval import runtime
from eval.errors import GateInputError
from eval.inputs import volumes
from eval.inputs.safe_paths import open_regular, read_text

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6

# A checkpoint may construct nn.Module subclasses found in these modules (and their submodules): torch's
# layers and ultralytics' blocks, heads and models. A module outside them is never imported on a pickle's say.
_MODEL_CLASS_MODULES = ("torch.nn.modules", "ultralytics.nn.modules", "ultralytics.nn.tasks")
_LOAD_LOCK = threading.Lock()  # torch's safe_globals edits a process-wide set: one restricted load at a time


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    spec: str  # what the user passed (path or modal:// URI)
    path: pathlib.Path  # local file, for its name only: the model is built from `data`
    sha256: str  # of `data`
    data: bytes = dataclasses.field(repr=False, compare=False)  # the file's bytes, read once

    @property
    def name(self):
        return self.path.stem


def read_allowlist(path):
    """Approved sha256 digests, one per line (`#` comments and blank lines ignored)."""
    try:
        lines = read_text(path).splitlines()
    except OSError as err:
        raise GateInputError(path, f"cannot read checkpoint allowlist ({err.strerror})") from None
    except UnicodeDecodeError:
        raise GateInputError(path, "checkpoint allowlist is not UTF-8 text") from None
    digests = set()
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip().lower()
        if entry and not re.fullmatch(r"[0-9a-f]{64}", entry.split()[0]):
            raise GateInputError(f"{path}:{number}", "expected a 64-hex-digit sha256 digest")
        if entry:
            digests.add(entry.split()[0])
    return digests


def check_pin(pinned_sha256, flag="--checkpoint_sha256"):
    """Refuse a pin that is not a sha256 digest (an empty one must not silently mean "unpinned")."""
    if pinned_sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", pinned_sha256):
        raise GateInputError(flag, f"{pinned_sha256!r} is not a 64-hex-digit sha256 digest")


def resolve_checkpoint(spec, pinned_sha256=None, allowlist=None, open_store=volumes.ModalVolumeStore,
                       pin_flag="--checkpoint_sha256"):
    """Local path + digest of the checkpoint at `spec`, refused unless it matches every given pin."""
    check_pin(pinned_sha256, pin_flag)
    if volumes.is_volume_uri(spec):
        path = volumes.fetch(spec, runtime.cache_dir() / "volumes", open_store)
    else:
        path = pathlib.Path(spec)
    if not path.is_file():
        raise GateInputError(spec, "checkpoint file not found")
    try:
        with open_regular(path, where=spec) as handle:
            data = handle.read()  # read once: what is hashed here is what load_state unpickles
    except OSError as err:
        raise GateInputError(spec, f"cannot read checkpoint ({err.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if not data.startswith(_ZIP_MAGIC):
        raise GateInputError(spec, "not a torch checkpoint (expected the zip format torch.save writes)")
    if pinned_sha256 is not None and digest != pinned_sha256.lower():
        raise GateInputError(spec, f"sha256 {digest} differs from the pinned {pin_flag} {pinned_sha256}")
    if allowlist is not None and digest not in allowlist:
        raise GateInputError(spec, f"sha256 {digest} is not in the checkpoint allowlist")
    return Checkpoint(str(spec), path, digest, data)


def _forward_of(obj, name):
    """`getattr` as checkpoints use it, and only so: a layer's (fused) forward method, pickled by reference."""
    import torch

    layer_class = obj if isinstance(obj, type) else type(obj)
    if name in ("forward", "forward_fuse") and issubclass(layer_class, torch.nn.Module):
        method = getattr(layer_class, name)
        return method if obj is layer_class else method.__get__(obj)
    raise pickle.UnpicklingError(f"getattr({layer_class.__name__}, {name!r}) is not a layer's forward method")


def _data_globals():
    """The non-model globals an ultralytics checkpoint may reference, by the name its pickle uses."""
    import numpy as np
    from ultralytics.utils import IterableSimpleNamespace

    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar reconstructor (numpy.core or numpy._core)
    return {
        "numpy.core.multiarray.scalar": scalar,
        "numpy._core.multiarray.scalar": scalar,
        "numpy.dtype": np.dtype,
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        # Paths in train_args, saved on either OS: rebuilt as plain local paths.
        **{f"{module}.{kind}": pathlib.Path for module in ("pathlib", "pathlib._local")
           for kind in ("PosixPath", "WindowsPath")},
        "builtins.getattr": _forward_of,
    }


def _model_class(name):
    """The class `name` ("module.Class") if it is an nn.Module subclass of _MODEL_CLASS_MODULES, else None."""
    import torch

    module, _, attr = name.rpartition(".")
    if not any(module == allowed or module.startswith(allowed + ".") for allowed in _MODEL_CLASS_MODULES):
        return None
    try:
        candidate = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    return candidate if isinstance(candidate, type) and issubclass(candidate, torch.nn.Module) else None


def load_state(checkpoint):
    """The checkpoint's object (an ultralytics checkpoint is a dict), unpickled from `checkpoint.data`.

    Raises GateInputError naming every global outside the allowlist, before anything is unpickled; torch's
    `weights_only` loader then enforces the same list (it also stops what a static scan of the pickle cannot
    see). Call after runtime.prepare(): it imports torch and ultralytics.
    """
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(checkpoint.data))
    except Exception as err:  # torch raises many types for a damaged archive
        raise GateInputError(checkpoint.spec, f"cannot load as an ultralytics checkpoint ({_one_line(err)})") from None
    data_globals = _data_globals()
    allowed = {name: data_globals.get(name) or _model_class(name) for name in names}
    refused = sorted(name for name, obj in allowed.items() if obj is None)
    if refused:
        raise GateInputError(checkpoint.spec, f"refused to load: it references {', '.join(refused)}, which "
                                              f"{'is' if len(refused) == 1 else 'are'} not what an ultralytics "
                                              "checkpoint holds (a torch or ultralytics model class or plain data); "
                                              "nothing from it was run")
    safe = [(obj, name) for name, obj in allowed.items()]
    if "numpy.dtype" in allowed:
        import numpy as np

        # A dtype is built as its class (numpy.dtypes.Float64DType, ...), which the pickle never names.
        safe += [kind for kind in vars(np.dtypes).values() if isinstance(kind, type) and issubclass(kind, np.dtype)]
    with _LOAD_LOCK, torch.serialization.safe_globals(safe):
        try:
            return torch.load(io.BytesIO(checkpoint.data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:  # what the static scan missed, or a refused getattr
            detail = " ".join(str(err).split("WeightsUnpickler error:")[-1].split()).split(" Check the ")[0]
            raise GateInputError(checkpoint.spec, f"refused to load: {detail}; nothing from it was run") from None
        except Exception as err:
            raise GateInputError(checkpoint.spec,
                                 f"cannot load as an ultralytics checkpoint ({_one_line(err)})") from None


def _one_line(err):
    """`TypeName: message` on one line: the CLI prints a single error line."""
    return f"{type(err).__name__}: {' '.join(str(err).split())}"
