"""The candidate: an ultralytics YOLO-seg checkpoint; its mask is the union of all predicted instances."""

import importlib.metadata

import numpy as np

from eval import runtime
from eval.backends.base import Backend
from eval.errors import GateInputError


class YoloSegBackend(Backend):
    name = "candidate"

    def __init__(self, checkpoint, conf=0.25, imgsz=0, device="cpu", torch_threads=1):
        """`imgsz` 0 means the checkpoint's training image size."""
        runtime.prepare(torch_threads)
        import torch
        from ultralytics import YOLO

        try:
            self._model = YOLO(str(checkpoint.path))
        except Exception as err:  # torch/pickle/ultralytics raise many types for a bad file
            detail = " ".join(str(err).split())  # one line: the CLI prints a single error line
            raise GateInputError(checkpoint.spec, f"cannot load as an ultralytics checkpoint "
                                                  f"({type(err).__name__}: {detail})") from None
        if self._model.task != "segment":
            raise GateInputError(checkpoint.spec, f"is a {self._model.task!r} model; the gate needs a "
                                                  "segmentation ('segment') checkpoint")
        train_args = (getattr(self._model, "ckpt", None) or {}).get("train_args", {})
        self._imgsz = int(imgsz or train_args.get("imgsz") or 640)
        self._conf = conf
        self._device = device
        self._checkpoint = checkpoint
        self._versions = {"ultralytics": importlib.metadata.version("ultralytics"), "torch": torch.__version__,
                          "torch_threads": torch.get_num_threads()}

    def provenance(self):
        return {
            "backend": "ultralytics-yolo-seg",
            "checkpoint_sha256": self._checkpoint.sha256,
            "imgsz": self._imgsz,
            "conf": self._conf,
            "device": self._device,
            "retina_masks": True,
            "mask": "union of all instance masks",
            **self._versions,
        }

    def predict(self, images):
        bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]  # ultralytics expects BGR arrays
        results = self._model.predict(bgr, imgsz=self._imgsz, conf=self._conf, device=self._device,
                                      retina_masks=True, verbose=False, batch=max(len(bgr), 1))
        masks = []
        for image, result in zip(images, results):
            if result.masks is None:
                masks.append(np.zeros(image.shape[:2], dtype=bool))
            else:
                masks.append((result.masks.data.cpu().numpy() > 0.5).any(axis=0))
        return masks
