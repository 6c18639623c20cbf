"""Loading a checkpoint (#8 items 5, 6, 14): the bytes hashed are the bytes loaded, no code from a checkpoint
ever runs (pinned or not, candidate or incumbent), real ultralytics checkpoints still load, and the
checkpoint's training image size is used or refused, never a traceback.

Every checkpoint here is a real torch.save archive; the malicious ones hold a real object whose __reduce__
would create a marker file if unpickled without restriction.
"""

import builtins
import functools
import hashlib
import os
import pathlib
import shutil
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from eval.backends import yolo_backend
from eval.backends.incumbent_backend import IncumbentBackend
from eval.backends.yolo_backend import YoloSegBackend
from eval.errors import GateInputError
from eval.inputs import checkpoint as checkpoint_lib
from tests.support import DEMO_CHECKPOINT, DEMO_INCUMBENT, DEMO_SNAPSHOT, pot_photo, run_cli, untrained_checkpoint


class Payload:
    """Pickles as a call of `function(*args)`: what a malicious checkpoint hides among its keys."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _state(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)  # the tests' own, trusted files


def _save(state, path):
    import torch

    torch.save(state, path)
    return path


def _payloads(marker):
    import subprocess

    from ultralytics.nn.modules import Conv
    from ultralytics.utils import checks

    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "subprocess.call": Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.open": Payload(builtins.open, str(marker), "w"),
        # An ultralytics function (not a model class) that would pip-install packages.
        "ultralytics-function": Payload(checks.check_requirements, "definitely-not-a-package"),
        # getattr is allowed for a layer's forward method only; anything else is refused while loading.
        "getattr-not-forward": Payload(getattr, Conv, "__init__"),
    }


@pytest.fixture(scope="module")
def seg_checkpoint():
    return untrained_checkpoint()


def _malicious(tmp_path, seg_checkpoint, kind):
    marker = tmp_path / "marker"
    path = _save({**_state(seg_checkpoint), "extra": _payloads(marker)[kind]}, tmp_path / f"{kind}.pt")
    return path, marker


def _refused(call, path, *fragments):
    with pytest.raises(GateInputError) as caught:
        call()
    assert caught.value.where == str(path), str(caught.value)
    for fragment in ("refused to load", *fragments):
        assert fragment in str(caught.value), str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("kind", ["os.system", "subprocess.call", "builtins.exec", "builtins.open",
                                  "ultralytics-function", "getattr-not-forward"])
def test_a_checkpoint_that_would_run_code_is_refused_pinned_or_not(tmp_path, seg_checkpoint, kind):
    path, marker = _malicious(tmp_path, seg_checkpoint, kind)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ways = {"unpinned": checkpoint_lib.resolve_checkpoint(str(path)),
            "pinned": checkpoint_lib.resolve_checkpoint(str(path), digest),
            "allowlisted": checkpoint_lib.resolve_checkpoint(str(path), None, {digest})}
    for way, checkpoint in ways.items():
        for backend in (YoloSegBackend, IncumbentBackend):
            message = _refused(functools.partial(backend, checkpoint), path, "nothing from it was run")
            assert not marker.exists(), (way, backend, message)
    if kind == "os.system":
        assert "posix.system" in message or "nt.system" in message


def test_the_cli_refuses_a_malicious_candidate_or_incumbent_with_exit_2(tmp_path, seg_checkpoint):
    path, marker = _malicious(tmp_path, seg_checkpoint, "os.system")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    common = ["--dataset", str(DEMO_SNAPSHOT), "--quiet", "--output_dir", str(tmp_path / "out")]
    env = {"GATE_CACHE_DIR": str(tmp_path / "cache")}
    runs = [run_cli("--checkpoint", str(path), "--checkpoint_sha256", digest, *common, env=env),
            run_cli("--checkpoint", str(DEMO_CHECKPOINT), "--incumbent_checkpoint", str(path), *common, env=env)]
    for proc in runs:
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "recommendation:" not in proc.stdout
        assert f"{path}: refused to load: it references posix.system" in proc.stderr, proc.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_plain_data_an_ultralytics_checkpoint_may_hold_loads_and_numpy_arrays_do_not(tmp_path, seg_checkpoint):
    from ultralytics.utils import IterableSimpleNamespace

    from eval import runtime

    runtime.prepare(1)
    data = {"train_results": {"loss": np.float64(0.5), "epoch": np.int64(3), "dtype": np.dtype("f4")},
            "args": IterableSimpleNamespace(imgsz=64), "save_dir": pathlib.PosixPath("runs/train")}
    path = _save({**_state(seg_checkpoint), **data}, tmp_path / "data.pt")
    state = checkpoint_lib.load_state(checkpoint_lib.resolve_checkpoint(str(path)))
    assert {key: state[key] for key in data} == data
    path = _save({**_state(seg_checkpoint), "array": np.zeros(3)}, tmp_path / "array.pt")
    _refused(lambda: checkpoint_lib.load_state(checkpoint_lib.resolve_checkpoint(str(path))), path, "numpy.ndarray")


def test_files_that_are_not_torch_checkpoints_are_refused(tmp_path):
    import torch

    not_torch = tmp_path / "archive.pt"
    with zipfile.ZipFile(not_torch, "w") as archive:  # the zip magic, but no torch pickle inside
        archive.writestr("notes.txt", "hello")
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), scripted)
    weights = _save({"weights": torch.zeros(2)}, tmp_path / "weights.pt")
    for path in (not_torch, scripted, weights):
        with pytest.raises(GateInputError) as caught:
            YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(path)))
        assert caught.value.where == str(path) and "cannot load as an ultralytics checkpoint" in str(caught.value)


def _masks(backend):
    photos = [np.asarray(pot_photo(shift=s)[0]) for s in (0, 9)]
    return backend.predict(photos)


def test_the_bytes_hashed_are_the_bytes_loaded(tmp_path):
    """Item 5: swapping (or deleting) the file after it was hashed changes nothing the gate scores."""
    path = tmp_path / "best.pt"
    shutil.copyfile(DEMO_CHECKPOINT, path)
    checkpoint = checkpoint_lib.resolve_checkpoint(str(path))
    shutil.copyfile(DEMO_INCUMBENT, path)  # the swap: a different, valid checkpoint under the same name
    swapped = YoloSegBackend(checkpoint, torch_threads=1)
    path.unlink()
    deleted = YoloSegBackend(checkpoint, torch_threads=1)
    original = YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(DEMO_CHECKPOINT)), torch_threads=1)
    other = YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(DEMO_INCUMBENT)), torch_threads=1)
    assert swapped.provenance()["checkpoint_sha256"] == checkpoint.sha256 == original.provenance()["checkpoint_sha256"]
    expected = _masks(original)
    assert any(not np.array_equal(a, b) for a, b in zip(expected, _masks(other)))  # the swap would show
    for backend in (swapped, deleted):
        assert all(np.array_equal(a, b) for a, b in zip(expected, _masks(backend)))


def test_the_path_is_opened_once(tmp_path, monkeypatch):
    """The checkpoint's path is opened once, to hash it, and never again while the model is built."""
    path = tmp_path / "best.pt"
    shutil.copyfile(DEMO_CHECKPOINT, path)
    opens = []

    def counting(real_open):  # builtins.open, and os.open (eval.inputs.safe_paths opens every input with it)
        def counted(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == os.path.realpath(path):
                opens.append(file)
            return real_open(file, *args, **kwargs)
        return counted

    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    monkeypatch.setattr(os, "open", counting(os.open))
    checkpoint = checkpoint_lib.resolve_checkpoint(str(path))
    assert len(opens) == 1
    assert YoloSegBackend(checkpoint).provenance()["checkpoint_sha256"] == checkpoint.sha256
    assert len(opens) == 1


@pytest.mark.parametrize("path", [DEMO_CHECKPOINT, DEMO_INCUMBENT], ids=["demo", "incumbent"])
def test_the_demo_checkpoints_load(path):
    backend = YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(path)))
    assert backend.provenance()["imgsz"] == 256 and len(_masks(backend)) == 2


def test_a_checkpoint_saved_by_ultralytics_training_loads(tmp_path):
    """A real (1-epoch, 64-pixel) ultralytics training run: its best.pt and last.pt load and predict."""
    from PIL import Image, ImageDraw

    from demo import train_checkpoint

    ultralytics = train_checkpoint.offline_ultralytics(tmp_path / "config")
    data = tmp_path / "data"
    for split in ("train", "val"):
        (data / "images" / split).mkdir(parents=True)
        (data / "labels" / split).mkdir(parents=True)
        for i in range(2):
            photo = Image.new("RGB", (64, 64), (200, 190, 170))
            ImageDraw.Draw(photo).ellipse((10 + i, 10, 50, 54), fill=(150, 60, 30))
            photo.save(data / "images" / split / f"{i}.png")
            (data / "labels" / split / f"{i}.txt").write_text("0 0.2 0.2 0.8 0.2 0.8 0.8 0.2 0.8\n")
    (data / "data.yaml").write_text(f"path: {data}\ntrain: images/train\nval: images/val\nnames: {{0: pot}}\n")
    model = ultralytics.YOLO(str(train_checkpoint.MODEL_YAML), task="segment")
    model.train(data=str(data / "data.yaml"), epochs=1, imgsz=64, batch=2, nbs=2, workers=0, device="cpu",
                plots=False, amp=False, val=False, seed=0, project=str(tmp_path / "runs"), name="train",
                verbose=False)
    for name in ("best.pt", "last.pt"):
        backend = YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(tmp_path / "runs/train/weights" / name)))
        assert backend.provenance()["imgsz"] == 64 and len(_masks(backend)) == 2


def _with_imgsz(tmp_path, seg_checkpoint, imgsz):
    state = _state(seg_checkpoint)
    return _save({**state, "train_args": {"imgsz": imgsz}}, tmp_path / "imgsz.pt")


@pytest.mark.parametrize("imgsz, expected", [(64, 64), ([64], 64), ([64, 64], 64), ((64, 64), 64),
                                             ([64, 96], [64, 96])])
def test_train_imgsz_as_a_list_is_used(tmp_path, seg_checkpoint, imgsz, expected):
    backend = YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(_with_imgsz(tmp_path, seg_checkpoint, imgsz))))
    provenance = backend.provenance()
    assert provenance["imgsz"] == expected
    assert provenance["imgsz_effective"] == ([expected] * 2 if isinstance(expected, int) else expected)
    assert [m.shape for m in _masks(backend)] == [(72, 96)] * 2


@pytest.mark.parametrize("imgsz", ["640", -640, 0, 1.5, True, [[640, 640]], [640, 640, 640], [], [640, "640"],
                                   10**6, {"h": 640}], ids=repr)
def test_nonsense_train_imgsz_is_refused_naming_the_checkpoint(tmp_path, seg_checkpoint, imgsz):
    path = _with_imgsz(tmp_path, seg_checkpoint, imgsz)
    with pytest.raises(GateInputError) as caught:
        YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(path)))
    assert caught.value.where == str(path) and "train_args.imgsz" in str(caught.value), str(caught.value)


def test_the_imgsz_flag_overrides_the_checkpoint(tmp_path, seg_checkpoint):
    path = _with_imgsz(tmp_path, seg_checkpoint, [64, 96])
    assert YoloSegBackend(checkpoint_lib.resolve_checkpoint(str(path)), imgsz=32).provenance()["imgsz"] == 32


def test_the_imgsz_flag_has_the_same_bounds():
    proc = run_cli(f"--candidate_imgsz={yolo_backend.MAX_IMGSZ + 1}", "--quiet", timeout=300)
    assert proc.returncode == 2 and "candidate_imgsz" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


_SIZE = st.integers(1, yolo_backend.MAX_IMGSZ)


@settings(max_examples=200)
@given(st.one_of(_SIZE, st.lists(_SIZE, min_size=1, max_size=2), st.integers(), st.text(max_size=5),
                 st.floats(), st.lists(st.integers(), max_size=3), st.none()))
def test_training_imgsz_is_an_int_or_a_non_square_pair(value):
    def in_range(v):
        return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= yolo_backend.MAX_IMGSZ

    valid = value is None or in_range(value) or (isinstance(value, list) and 1 <= len(value) <= 2
                                                 and all(in_range(v) for v in value))
    if not valid:
        with pytest.raises(GateInputError, match="train_args.imgsz"):
            yolo_backend._training_imgsz({"train_args": {"imgsz": value}}, "best.pt")
        return
    size = yolo_backend._training_imgsz({"train_args": {"imgsz": value}}, "best.pt")
    sizes = value if isinstance(value, list) else [640 if value is None else value]
    assert size == (sizes[0] if len(set(sizes)) == 1 else sizes)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
