"""The CLI's flags (#8 items 2, 13, 14): empty path values, non-finite floats, paths relative to the user.

No model runs here: every case is refused (or resolved) before the gate loads one.
"""

import os
import shutil
import subprocess
import sys

import pytest
from absl import flags

from eval import cli
from tests.support import DEMO_CHECKPOINT, REPO, run_cli, write_snapshot
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
    """Today's main: `--criteria=` printed `error: : file not found`; `--checkpoint=` ran the bundled demo."""
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
    assert f"error: {missing}: required with {given}" in proc.stderr


def test_candidate_conf_nan_through_the_real_cli():
    proc = run_cli("--candidate_conf=nan", "--quiet", timeout=300)
    assert proc.returncode == EXIT_ERROR and "must be a finite number" in proc.stderr, proc.stderr


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
