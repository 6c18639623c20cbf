"""The CLI's flags: empty path values, non-finite floats, paths relative to the user, the same values
accepted and refused as the Modal app, and every tool's --help.

No model runs here: every case is refused (or resolved) before the gate loads one.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest
from absl import flags

from eval import cli
from eval.errors import GateInputError
from eval.options import GateOptions, options
from modal_app import gate_app
from tests.support import CLI, COMPARE_CLI, DEMO_CHECKPOINT, REPO, run_cli, write_snapshot
from tools import eval_crop_model  # noqa: F401 - defines the CLI's flags on flags.FLAGS

EXIT_ERROR = 2
PATH_FLAGS = ["checkpoint", "dataset", "criteria", "baseline_config", "output_dir", "checkpoint_allowlist",
              "incumbent_checkpoint", "wandb_dir"]


def parse(*argv):
    """The CLI's own flags_parser, in this process; returns the exit status it would end with (None: parsed)."""
    flags.FLAGS.unparse_flags()
    try:
        cli.parse_flags(["eval_crop_model", *argv])
        return None
    except SystemExit as done:
        return done.code
    finally:
        flags.FLAGS.unparse_flags()


def test_every_path_flag_is_a_path_flag():
    """A path flag added later with DEFINE_string would slip past the empty-value rule: list them all here."""
    declared = {name for name in flags.FLAGS if flags.FLAGS[name].flag_type() == "path"}
    assert set(PATH_FLAGS) <= declared, declared


@pytest.mark.parametrize("name", PATH_FLAGS)
@pytest.mark.parametrize("value", ["", " ", "\t"], ids=["empty", "space", "tab"])
def test_an_empty_path_value_is_an_error(name, value, capsys):
    assert parse(f"--{name}={value}") == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: flag --{name}=" in err and "is empty" in err, err


def test_float_flags_refuse_nan_and_infinity(capsys):
    floats = [name for name in flags.FLAGS if flags.FLAGS[name].flag_type() == "float"]
    assert "candidate_conf" in floats
    for name in floats:
        for value in ("nan", "NaN", "inf", "-inf", "+infinity"):
            assert parse(f"--{name}={value}") == EXIT_ERROR, (name, value)
            assert f"--{name}=" in capsys.readouterr().err
        assert parse(f"--{name}=0.5") is None


def test_any_float_flag_defined_later_is_checked_too(capsys):
    values = flags.FlagValues()
    flags.DEFINE_float("unbounded", 1.0, "A float with no bounds.", flag_values=values)
    flags.DEFINE_multi_float("several", [], "Several floats.", flag_values=values)
    for argv in (["--unbounded=nan"], ["--several=1", "--several=inf"]):
        with pytest.raises(SystemExit) as done:
            cli.parse_flags(["prog", *argv], flag_values=values)
        assert done.value.code == EXIT_ERROR
        assert "must be a finite number" in capsys.readouterr().err
        values.unparse_flags()


def test_empty_values_through_the_real_cli():
    """An empty path flag is a refusal naming the flag: not `error: : file not found` (`--criteria=`), nor the
    bundled demo (`--checkpoint=`)."""
    for flag in ("--criteria=", "--checkpoint=", "--dataset="):
        proc = run_cli(flag, "--quiet", timeout=300)
        assert proc.returncode == EXIT_ERROR, (flag, proc.stdout, proc.stderr)
        assert "is empty" in proc.stderr and "recommendation" not in proc.stdout, proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("given, missing", [("--checkpoint", "--dataset"), ("--dataset", "--checkpoint")])
def test_the_demo_runs_only_when_both_inputs_are_left_out(tmp_path, given, missing):
    value = DEMO_CHECKPOINT if given == "--checkpoint" else write_snapshot(tmp_path / "snap")
    proc = run_cli(f"{given}={value}", "--quiet", timeout=300)
    assert proc.returncode == EXIT_ERROR, (proc.stdout, proc.stderr)
    assert f"{missing} is required with {given}" in proc.stderr


def test_candidate_conf_nan_through_the_real_cli():
    proc = run_cli("--candidate_conf=nan", "--quiet", timeout=300)
    assert proc.returncode == EXIT_ERROR and "must be a finite number" in proc.stderr, proc.stderr


# --- One options model: the CLI and the Modal app accept and refuse the same values ----------------------------

_HEX = "0123456789abcdef" * 4
# (option flag, value, accepted): each row goes through the CLI's flag parsing and the Modal app's request.
_VALUES = [
    ("batch_size", 0, False), ("batch_size", 1, True), ("batch_size", 10**6, True),
    ("candidate_conf", -0.01, False), ("candidate_conf", 0.0, True), ("candidate_conf", 1.0, True),
    ("candidate_conf", 1.01, False), ("candidate_conf", float("nan"), False), ("candidate_conf", float("inf"), False),
    ("candidate_imgsz", -1, False), ("candidate_imgsz", 0, True), ("candidate_imgsz", 8192, True),
    ("candidate_imgsz", 8193, False), ("torch_threads", 0, False), ("torch_threads", 1, True),
    ("gallery_size", -1, False), ("gallery_size", 0, True),
    ("checkpoint_sha256", "abc", False), ("checkpoint_sha256", _HEX, True), ("checkpoint_sha256", _HEX + "0", False),
    ("checkpoint_sha256", "g" * 64, False),
]


def _cli_accepts(flag, value):
    return parse("--checkpoint=modal://ckpts/best.pt", "--dataset=modal://data/snap", f"--{flag}={value}") is None


def _modal_accepts(**given):
    try:
        gate_app.make_request(checkpoint="modal://ckpts/best.pt", dataset="modal://data/snap", **given)
        return True
    except GateInputError:
        return False


@pytest.mark.parametrize("flag, value, accepted", _VALUES)
def test_cli_and_modal_accept_and_refuse_the_same_values(flag, value, accepted, capsys):
    assert _cli_accepts(flag, value) is accepted
    assert _modal_accepts(**{flag: value}) is accepted
    capsys.readouterr()


@pytest.mark.parametrize("given, accepted", [
    ({"incumbent_sha256": _HEX}, False),  # a pin for no incumbent
    ({"incumbent_checkpoint": "modal://prod/best.pt", "checkpoint_sha256": _HEX}, False),  # one of two pinned
    ({"incumbent_checkpoint": "modal://prod/best.pt", "checkpoint_sha256": _HEX, "incumbent_sha256": _HEX}, True),
    ({"incumbent_checkpoint": "modal://prod/best.pt"}, True),
])
def test_rules_across_options_are_the_same_for_cli_and_modal(given, accepted, capsys):
    argv = [f"--{flag}={value}" for flag, value in given.items()]
    assert (parse("--checkpoint=modal://ckpts/best.pt", "--dataset=modal://data/snap", *argv) is None) is accepted
    assert _modal_accepts(**given) is accepted
    capsys.readouterr()


def test_options_are_checked_however_they_are_built():
    """Library callers (bench, tests, the Modal coordinator) get the same refusal as the flags."""
    with pytest.raises(GateInputError, match="--candidate_imgsz: must be at most 8192"):
        GateOptions(checkpoint="c.pt", dataset="d", imgsz=9000)
    with pytest.raises(GateInputError, match="--batch_size: must be an integer"):
        GateOptions(checkpoint="c.pt", dataset="d", batch_size=2.5)
    assert {name for name, _ in GateOptions().backend_key()} == {
        name for name, option in options().items() if option.builds_backends} >= {"conf", "imgsz", "device"}


# --- --help: every tool lists its own flags and tells the truth --------------------------------------------------

_TOOLS = [CLI, COMPARE_CLI, REPO / "tools" / "export_snapshot.py"]


def _help(tool, which):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(tool), f"--{which}"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.stdout, proc.stderr
    return proc.stdout


def _listed(text):
    return set(re.findall(r"^  --(?:\[no\])?(\w+):", text, flags=re.MULTILINE))


def _own_sections(helpfull):
    """The flags --helpfull lists under the tool's modules, leaving out absl's own (logging, --help...)."""
    sections = re.split(r"^(\S.*):$", helpfull, flags=re.MULTILINE)
    return {name for title, body in zip(sections[1::2], sections[2::2]) if not title.startswith("absl")
            for name in _listed(body)}


@pytest.mark.parametrize("tool", _TOOLS, ids=lambda p: p.stem)
def test_help_lists_every_flag_of_the_tool(tool):
    short, full = _help(tool, "help"), _help(tool, "helpfull")
    own = _own_sections(full)
    assert own and own == _listed(short), (own ^ _listed(short))
    defaults = [line for line in short.splitlines() if "(default:" in line]
    assert defaults and not [line for line in defaults if str(REPO) in line], "a default shows a machine path"


def test_the_gate_help_names_its_inputs_and_says_true_things():
    text = _help(CLI, "help")
    for flag in ("checkpoint", "dataset", "criteria", "output_dir", "incumbent_checkpoint", "batch_size",
                 "wandb_entity", "baseline_cache"):
        assert f"--{flag}" in text or f"--[no]{flag}" in text, flag
    assert "runs its code" not in text and "no code from one runs" in " ".join(text.split())


def test_no_matplotlib_log_line_reaches_a_tool_output(tmp_path):
    """A fresh cache makes matplotlib build its font list and log it; absl would print that on stderr."""
    script = (
        "from absl import app\n"
        "from eval.report import plotting\n"
        "def main(argv):\n"
        "    with plotting.figure({}) as (fig, axes):\n"
        "        axes.plot([0, 1], [0, 1])\n"
        "        plotting.png(fig)\n"
        "app.run(main)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GATE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("MPLCONFIGDIR", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# --- Item 13: ./dev from another folder -------------------------------------------------------------------------

_FAKE_BAZEL = """#!/usr/bin/env bash
# Stands in for `bazel run //tools:eval_crop_model -- flags...`: runs the real CLI the way bazel run does,
# with BUILD_WORKING_DIRECTORY set to the directory bazel was started in.
[[ "$1" == run ]] || exit 99
shift 3
export BUILD_WORKING_DIRECTORY="$PWD" BUILD_WORKSPACE_DIRECTORY="$PWD" PYTHONPATH="{repo}"
exec "{python}" "{repo}/tools/eval_crop_model.py" "$@"
"""


@pytest.fixture
def checkout(tmp_path):
    """A copy of ./dev in a stand-in checkout (bootstrap is a no-op) with a stand-in `bazel` on PATH."""
    fake = tmp_path / "checkout"
    (fake / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "dev", fake / "dev")
    (fake / "scripts" / "bootstrap.sh").write_text("exit 0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bazel").write_text(_FAKE_BAZEL.format(repo=REPO, python=sys.executable))
    (bin_dir / "bazel").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("GATE_CALLER_DIR", None)
    return fake, env


@pytest.mark.parametrize("where", ["outside", "inside"])
@pytest.mark.parametrize("command", [["demo"], ["bazel", "run", "//tools:eval_crop_model", "--"]],
                         ids=["demo", "bazel-run"])
def test_relative_paths_are_relative_to_where_the_user_typed_them(checkout, tmp_path, where, command):
    fake, env = checkout
    here = tmp_path / "elsewhere" if where == "outside" else fake / "sub"
    here.mkdir()
    proc = subprocess.run(["bash", str(fake / "dev"), *command, "--criteria=c.yaml", "--quiet"], cwd=here,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == EXIT_ERROR, (proc.stdout, proc.stderr)
    assert f"error: {here / 'c.yaml'}: file not found" in proc.stderr, proc.stderr


def test_an_absolute_path_is_kept(checkout, tmp_path):
    fake, env = checkout
    proc = subprocess.run(["bash", str(fake / "dev"), "demo", f"--criteria={tmp_path / 'abs.yaml'}", "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert f"error: {tmp_path / 'abs.yaml'}: file not found" in proc.stderr, proc.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
