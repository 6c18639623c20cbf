"""The gate's run options, each declared once: its default, its bounds and its help.

`GateOptions` is the one list. Each field's metadata holds an `Option`, from which everything else derives:
the CLI's absl flags (`define_flags`, bounds as absl validators, help text), the Modal app's request checks
(`problems`) and its warm-container key (`backend_key`). A value is judged by the same `Option.problem`
wherever it comes from, and the rules across options by the same `cross_problems`, so the CLI and the Modal
app accept and refuse the same values. Constructing a `GateOptions` checks it too: an out-of-range value
cannot reach a model by any entry point.

A new option is one field here; a tool that should offer it as a flag gets it from `define_flags`.
"""

import dataclasses
import math
import numbers
import re

from eval.errors import GateInputError
from eval.runtime import EMPTY_PATH

PATH, TEXT, SHA256, INT, FLOAT, BOOL = "path", "text", "sha256", "int", "float", "bool"
MAX_IMGSZ = 8192  # a sanity bound on inference sizes: a photo letterboxed to 8192² is ~800 MB of float32
_SHA256 = re.compile(r"[0-9a-fA-F]{64}\Z")


@dataclasses.dataclass(frozen=True)
class Option:
    """How one GateOptions field is given and checked.

    `flag` is the CLI flag's name (None: the tool sets the field itself); the Modal app spells it with
    dashes. `volume`: a path that may also be modal://<volume>/<path>. `builds_backends`: the backends a run builds (and
    so the masks) depend on the value, so a warm container may reuse its models only for equal values.
    """

    kind: str
    help: str
    flag: str | None = None
    lower: float | None = None
    upper: float | None = None
    volume: bool = False
    builds_backends: bool = False

    def problem(self, value):
        """Why `value` is refused for this option, or None; None (not given) is always accepted."""
        if value is None:
            return None
        if self.kind in (INT, FLOAT):
            return self._number_problem(value)
        if self.kind == BOOL:
            return None if isinstance(value, bool) else "must be true or false"
        if not isinstance(value, str):
            return "must be a string"
        if self.kind == PATH and not value.strip():
            return EMPTY_PATH
        if self.kind == SHA256 and not _SHA256.match(value):
            return f"{value!r} is not a 64-hex-digit sha256 digest"
        return None

    def _number_problem(self, value):
        integral = self.kind == INT
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if integral else numbers.Real):
            return "must be an integer" if integral else "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
        if self.lower is not None and value < self.lower:
            return f"must be at least {self.lower}, got {value}"
        if self.upper is not None and value > self.upper:
            return f"must be at most {self.upper}, got {value}"
        return None


def _option(default, kind, help, **option):  # absl's name for it
    return dataclasses.field(default=default, metadata={"option": Option(kind, help, **option)})


@dataclasses.dataclass(frozen=True)
class GateOptions:
    """One run's options. Defaults are the CLI's; paths are as the user gave them (see eval.cli)."""

    checkpoint: str = _option(
        None, PATH, "Candidate YOLO-seg checkpoint (.pt): a local path or modal://<volume>/<path>. Default (only "
        "with no --dataset either): the bundled demo checkpoint.", flag="checkpoint", volume=True)
    dataset: str = _option(
        None, PATH, "Dataset snapshot directory (see eval/inputs/snapshot.py) or modal://<volume>/<path>. "
        "Default (only with no --checkpoint either): the bundled demo snapshot.", flag="dataset", volume=True)
    criteria: str = _option(
        None, PATH, "Success criteria and failure-class taxonomy (#413). Default: configs/success_criteria.yaml "
        "of the gate's checkout.", flag="criteria")
    baseline_config: str = _option(
        None, PATH, "How production runs rembg. Default: configs/rembg_production.yaml of the gate's checkout.",
        flag="baseline_config")
    reports_root: str = _option(None, PATH, "Where the default output folder goes (set by the tool).")
    output_dir: str | None = _option(
        None, PATH, "Where to write the report folder. Default: reports/<checkpoint>-<dataset version>/ in the "
        "checkout.", flag="output_dir")
    checkpoint_sha256: str | None = _option(
        None, SHA256, "Refuse the checkpoint unless its sha256 is this digest (checked before loading).",
        flag="checkpoint_sha256")
    checkpoint_allowlist: str | None = _option(
        None, PATH, "File of approved checkpoint sha256 digests, one per line (applies to the incumbent too).",
        flag="checkpoint_allowlist")
    overwrite: bool = _option(
        False, BOOL, "Replace an output folder that holds a different run's report (never one holding files the "
        "gate did not write).", flag="overwrite")
    batch_size: int = _option(8, INT, "Images per candidate inference batch; changes no number.", flag="batch_size",
                              lower=1)
    conf: float = _option(0.25, FLOAT, "Candidate detection confidence threshold.", flag="candidate_conf",
                          lower=0.0, upper=1.0, builds_backends=True)
    imgsz: int = _option(0, INT, "Candidate inference size; 0 = the checkpoint's training size.",
                         flag="candidate_imgsz", lower=0, upper=MAX_IMGSZ, builds_backends=True)
    device: str = _option("cpu", TEXT, "Torch device for the candidate and the incumbent (cpu, cuda:0, ...).",
                          flag="device", builds_backends=True)
    torch_threads: int = _option(2, INT, "Torch intra-op threads, fixed so results do not depend on the machine.",
                                 flag="torch_threads", lower=1, builds_backends=True)
    gallery_size: int = _option(3, INT, "Cases in each gallery section.", flag="gallery_size", lower=0)
    quiet: bool = _option(False, BOOL, "No progress lines on stderr.", flag="quiet")
    baseline_cache: bool = _option(
        True, BOOL, "Reuse every backend's masks (rembg, candidate, incumbent) cached by content (image pixels, "
        "library versions, weights and settings digests) under $GATE_CACHE_DIR; results are identical either way.",
        flag="baseline_cache", builds_backends=True)
    demo: bool = _option(False, BOOL, "The run is the bundled demo (set by the tool).")
    incumbent_checkpoint: str | None = _option(
        None, PATH, "The YOLO-seg checkpoint production serves now (local or modal://): a third backend, run on "
        "the same images with the candidate's settings and shown beside it; criteria with `vs: incumbent` "
        "measure regression against it (and need it). Default for the demo: the demo incumbent.",
        flag="incumbent_checkpoint", volume=True)
    incumbent_sha256: str | None = _option(
        None, SHA256, "Refuse the incumbent unless its sha256 is this digest (checked before loading; required "
        "when --checkpoint_sha256 pins the candidate without --checkpoint_allowlist).", flag="incumbent_sha256")

    def __post_init__(self):
        for flag, problem in problems(dataclasses.asdict(self)):
            raise GateInputError(flag, problem)

    def settings(self):
        """The run's settings as a tracked run's config records them (paths as the user gave them)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("quiet", "reports_root")}

    def backend_key(self):
        """The values the backends a run builds depend on (a warm container reuses its models for equal keys)."""
        return tuple((name, getattr(self, name)) for name, option in options().items() if option.builds_backends)


def options():
    """{field name: Option} of every GateOptions field, in declaration order."""
    return {f.name: f.metadata["option"] for f in dataclasses.fields(GateOptions)}


def defaults():
    """{field name: default} of every GateOptions field."""
    return {f.name: f.default for f in dataclasses.fields(GateOptions)}


def flag_name(field):
    """How a message names `field`: its CLI flag, or the field itself when it is not a flag."""
    return f"--{options()[field].flag or field}"


def cross_problems(values):
    """(flag, problem) pairs for rules across options; `values` maps field names to values (missing = default)."""
    given = {**defaults(), **values}
    if given["incumbent_sha256"] is not None and given["incumbent_checkpoint"] is None:
        yield "--incumbent_sha256", "pins an incumbent, but --incumbent_checkpoint names none"
    if (given["incumbent_checkpoint"] is not None and given["incumbent_sha256"] is None
            and given["checkpoint_sha256"] is not None and given["checkpoint_allowlist"] is None):
        yield "--incumbent_sha256", "the candidate is pinned but the incumbent is not; pin both"


def problems(values):
    """(flag, problem) for every value in `values` (field name -> value) an option refuses, then cross rules."""
    table = options()
    for name, value in values.items():
        problem = table[name].problem(value)
        if problem is not None:
            yield flag_name(name), problem
    yield from cross_problems(values)
