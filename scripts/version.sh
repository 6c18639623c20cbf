#!/usr/bin/env bash
# The versions this checkout runs with, one "name: version" line each; exit 0 whatever is missing.
# Debian's Bazel is built without a build label (`bazel version` says "Version information not available"
# and exits 2), so Bazel's version comes from the Debian package when the binary has none.
set -uo pipefail

repo="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"

bazel_version() {
  command -v bazel >/dev/null || { echo "not installed"; return; }
  local label
  label="$(bazel --version 2>/dev/null | sed -n 's/^bazel //p')"
  if [[ -n "$label" && "$label" != no_version ]]; then
    echo "$label"
    return
  fi
  local package
  package="$(dpkg-query -W -f='${Version}' bazel-bootstrap 2>/dev/null)"
  if [[ -n "$package" ]]; then
    echo "${package%%+*} (Debian bazel-bootstrap $package)"
  else
    echo "unknown (the binary carries no build label)"
  fi
}

echo "pottery-gate: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "bazel: $(bazel_version)"
python="$repo/.venv/bin/python3"
if [[ -x "$python" ]]; then
  echo "venv: $(readlink -f "$repo/.venv")"
else
  echo "venv: not set up (./dev test or ./dev demo builds it)"
  python="$(command -v python3 || true)"
fi
[[ -n "$python" ]] || { echo "python: not found"; exit 0; }
"$python" - <<'PY'
import importlib.metadata
import platform

print(f"python: {platform.python_version()}")
for name in ("torch", "torchvision", "ultralytics", "onnxruntime", "rembg", "numpy", "pillow", "opencv-python"):
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    print(f"{name}: {version}")
PY
exit 0
