"""pytest's configuration for every test under tests/ (Bazel puts it in each test's runfiles via //tests:support).

One hypothesis profile for every property test: derandomized and without an example database, so a run
explores the same examples on every machine (a red run is reproducible, a green one stays green); no
deadline and no too-slow check, as the machines that run the suite are shared and their timing varies.
Tests set only how many examples they draw.
"""

import os
import tempfile

from hypothesis import HealthCheck, settings

# Hypothesis keeps caches in ./.hypothesis: keep them out of the checkout (and Bazel's read-only runfiles).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(os.environ.get("TEST_TMPDIR") or tempfile.gettempdir(), "pottery-gate-hypothesis"))

settings.register_profile("gate", deadline=None, database=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gate")
