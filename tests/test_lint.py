"""The lint policy (ruff.toml at the root) holds over the whole checkout: `ruff check` finds nothing.

Bazel's runfiles hold only declared files, so the test lints the checkout its ruff.toml links back to.
"""

import os
import pathlib
import subprocess
import sys

import pytest

from tests.support import REPO

CHECKOUT = pathlib.Path(os.path.realpath(REPO / "ruff.toml")).parent


def test_ruff_finds_nothing():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=CHECKOUT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
