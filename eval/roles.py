"""The backends a run compares, as data: a role names a backend, whether criteria may measure against it, and
its mask cache. The gate, the intervals, the report, the gallery and the Modal app iterate over ROLES, so a
new backend is its own module (an eval.backends.base.Backend with `for_run`) plus one line here.

Backends are named by dotted path and imported only when a run builds them: the scoring, deciding and
rendering code reads ROLES without importing torch or onnxruntime.
"""

import dataclasses
import importlib
import typing

# ImageScore.source_backend values of the three roles every run knows.
CANDIDATE, BASELINE, INCUMBENT = "candidate", "rembg", "incumbent"


@dataclasses.dataclass(frozen=True)
class Role:
    name: str  # ImageScore.source_backend, the metrics' key and the report's column label
    backend: str  # "module.Class": an eval.backends.base.Backend whose for_run builds it for a run (or skips it)
    reference: bool  # criteria may measure the candidate's regression against it (`vs: <name>`)
    cache: str  # its mask cache's folder under the gate's cache directory

    def backend_class(self):
        module, _, name = self.backend.rpartition(".")
        return getattr(importlib.import_module(module), name)


class ModelInputs(typing.NamedTuple):
    """The pinned model inputs a run's backends are built from (PreparedRun holds them)."""

    baseline_config: object  # eval.inputs.baseline_config.BaselineConfig
    checkpoint: object  # eval.inputs.checkpoint.Checkpoint: the candidate
    incumbent: object = None  # eval.inputs.checkpoint.Checkpoint, or None when no incumbent is compared


# In column order: the production baseline, the candidate, then every other backend compared with it.
ROLES = (
    Role(BASELINE, "eval.backends.rembg_backend.RembgBackend", reference=True, cache="baseline-masks"),
    Role(CANDIDATE, "eval.backends.yolo_backend.YoloSegBackend", reference=False, cache="candidate-masks"),
    Role(INCUMBENT, "eval.backends.incumbent_backend.IncumbentBackend", reference=True, cache="incumbent-masks"),
)


def names():
    return tuple(role.name for role in ROLES)


def references():
    """What a criterion's `vs` may name; the first (the production baseline) is the default."""
    return tuple(role.name for role in ROLES if role.reference)


def ordered(backend_names):
    """`backend_names` in column order: the roles' order, then any name no role has (an older run's) by name."""
    order = names()
    return sorted(backend_names, key=lambda name: (order.index(name), "") if name in order else (len(order), name))


def comparators(backend_names):
    """The backends shown beside the candidate and rembg (the incumbent, any added role), in column order."""
    return [name for name in ordered(backend_names) if name not in (CANDIDATE, BASELINE)]
