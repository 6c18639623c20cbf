"""The set-up scripts: where bootstrap.sh keeps the venv, and the version report (issue 9)."""

import glob
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.support import REPO, scratch_dir

U2NET_MD5 = "60024c5c889badc19c04ad937298a77b"


@pytest.fixture
def checkout():
    """A copy of bootstrap.sh and the lock in a scratch 'checkout' (bootstrap links <checkout>/.venv), a
    scratch $HOME, and u2net weights that bootstrap's size+mtime stamp accepts without hashing."""
    if not shutil.which("bazel") or not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("bootstrap.sh installs Bazel and PostgreSQL with apt when they are missing; not in a test")
    root = scratch_dir()
    (root / "repo" / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "bootstrap.sh", root / "repo" / "scripts")
    shutil.copy(REPO / "requirements.lock", root / "repo")
    onnx = root / "u2net" / "u2net.onnx"
    onnx.parent.mkdir()
    onnx.write_bytes(b"weights")
    stat = onnx.stat()
    (onnx.parent / ".u2net.onnx.verified").write_text(f"{stat.st_size} {int(stat.st_mtime)} {U2NET_MD5}\n")
    # Should a case wrongly start building a venv, pip fails at once instead of downloading 6 GB.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root / "home"), "U2NET_HOME": str(onnx.parent),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    key = subprocess.run(["bash", "-c", '{ cat "$0"; python3 --version; } | sha256sum | cut -c1-16',
                          root / "repo" / "requirements.lock"], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    return root, env, key


def _ready_venv(path):
    (path / "bin").mkdir(parents=True)
    (path / ".ready").write_text("2026-01-01T00:00:00Z\n")
    return path


def _bootstrap(root, env):
    return subprocess.run(["bash", str(root / "repo" / "scripts" / "bootstrap.sh")], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_venv_lives_apart_from_the_data_cache(checkout):
    """A per-job GATE_CACHE_DIR finds the venv where it is, and gets no venv of its own."""
    root, env, key = checkout
    venv = _ready_venv(root / "home" / ".cache" / "pottery-gate-venvs" / f"venv-{key}")
    job_cache = root / "job-42-cache"
    proc = _bootstrap(root, {**env, "GATE_CACHE_DIR": str(job_cache)})
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(root / "repo" / ".venv") == str(venv)
    assert not job_cache.exists()
    assert "building" not in proc.stderr


def test_a_ready_venv_in_the_old_place_is_used_in_place(checkout):
    """Venvs built before the split (under the data cache) are neither rebuilt nor moved."""
    root, env, key = checkout
    legacy = _ready_venv(root / "home" / ".cache" / "pottery-gate" / f"venv-{key}")
    proc = _bootstrap(root, env)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(root / "repo" / ".venv") == str(legacy)
    assert (legacy / ".ready").exists() and "building" not in proc.stderr


def test_pottery_gate_venv_dir_chooses_the_place(checkout):
    root, env, key = checkout
    _ready_venv(root / "home" / ".cache" / "pottery-gate" / f"venv-{key}")
    chosen = _ready_venv(root / "venvs" / f"venv-{key}")
    proc = _bootstrap(root, {**env, "POTTERY_GATE_VENV_DIR": str(root / "venvs")})
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(root / "repo" / ".venv") == str(chosen)


@pytest.mark.parametrize("value, problem", [("", "set but empty"), ("venvs", "must be an absolute path"),
                                            ("FILE", "exists and is not a folder")])
def test_a_bad_pottery_gate_venv_dir_is_exit_2_naming_it(checkout, value, problem):
    root, env, _ = checkout
    if value == "FILE":
        value = str(root / "a-file")
        (root / "a-file").write_text("")
    proc = _bootstrap(root, {**env, "POTTERY_GATE_VENV_DIR": value})
    assert proc.returncode == 2 and "$POTTERY_GATE_VENV_DIR" in proc.stderr and problem in proc.stderr, proc.stderr
    assert not (root / "repo" / ".venv").exists()


def test_version_report_exits_0_with_bazels_version():
    """Debian's Bazel has no build label (`bazel version` exits 2); the report still names its version."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "version.sh")], capture_output=True, text=True,
                          timeout=60, check=False, env={**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:"
                                                                         f"{os.environ.get('PATH', '/usr/bin:/bin')}"})
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert {"pottery-gate", "bazel", "python", "torch", "ultralytics", "rembg", "onnxruntime"} <= set(lines), lines
    if shutil.which("bazel"):
        assert re.match(r"\d+\.\d+\.\d+", lines["bazel"]), lines["bazel"]
    assert re.match(r"\d+\.\d+", lines["ultralytics"]), lines


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
