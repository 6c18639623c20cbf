"""The candidate: an ultralytics YOLO-seg checkpoint; its mask is the union of all predicted instances.

Production will send one photo per request through ultralytics' `predict`, whose preprocessing
(`BasePredictor.pre_transform`) letterboxes a batch of same-shaped photos to the minimal stride-padded
rectangle (`LetterBox(auto=True)`) but a mixed-shape batch to the full square: a photo's mask would
depend on its batch-mates. So every photo here is letterboxed exactly as a one-photo request would be,
and a batch is split into groups whose letterboxed shapes are equal, each group one forward pass:
batched masks are the one-request masks (tested byte for byte), and batching keeps its speed.

The scored mask is the union of the instance masks ultralytics' `retina_masks` path computes
(`ops.process_mask_native`: prototype logits upsampled to the photo, thresholded, cropped to the box).
Left to ultralytics, every instance's logits are upsampled to the whole photo (48 MB of floats per instance
at 12 Mpixel, most of it then zeroed by the box) and all instances' masks are held at once; here each
instance's logits are computed over its box only, with the same float operations, and OR-ed into one
photo-sized mask (instance_or): memory per photo is one mask plus the floats of one box's columns, whatever
the number of detections, time follows the boxes' area, and every pixel is the same as ultralytics'.
"""

import functools
import importlib.metadata
import math
import numbers
import reprlib

import cv2
import numpy as np

from eval import runtime
from eval.backends.base import Backend
from eval.errors import GateInputError
from eval.inputs.checkpoint import load_state
from eval.options import MAX_IMGSZ

# What a production request uses, fixed here rather than left to ultralytics' defaults so a new default
# cannot silently change the masks (ultralytics' own values as of 8.4).
NMS_IOU = 0.7
MAX_DET = 300
MASK_THRESHOLD = 0.5  # a pixel is in an instance mask when its (retina) mask value is > this


def request_settings(conf, imgsz, device, torch_threads):
    """Everything besides the checkpoint and library versions that can change a candidate mask.

    Shared by the run key (known before any model loads) and the backend's provenance. `imgsz` 0 means
    the checkpoint's training image size. Batch size is deliberately absent: it cannot change a mask.
    """
    return {
        "imgsz": imgsz,
        "conf": conf,
        "iou": NMS_IOU,
        "max_det": MAX_DET,
        "agnostic_nms": False,
        "classes": None,
        "retina_masks": True,
        "augment": False,
        "rect": True,  # ultralytics' predict default; with it a one-photo request gets LetterBox(auto=True)
        "letterbox": "each photo as its own request (BasePredictor.pre_transform([photo])); batches grouped "
                     "by letterboxed shape",
        "mask": f"union of all instance masks > {MASK_THRESHOLD}",
        "device": device,
        "torch_threads": torch_threads,
    }


def library_versions():
    """Versions of the libraries the candidate's masks depend on, read without importing them."""
    return {name: importlib.metadata.version(name) for name in ("ultralytics", "torch", "torchvision")}


@functools.cache
def _one_request_predictor():
    """ultralytics' segmentation predictor, letterboxing each photo of a batch as a one-photo request.

    Built on first use: ultralytics may only be imported after runtime.prepare(). Its results carry one
    mask, the union of the instances (see the module docstring), or none when nothing was found.
    """
    import torch
    from ultralytics.engine.results import Results
    from ultralytics.models.yolo.segment import SegmentationPredictor
    from ultralytics.utils import ops

    class OneRequestLetterbox(SegmentationPredictor):
        def pre_transform(self, im):
            return [SegmentationPredictor.pre_transform(self, [image])[0] for image in im]

        def construct_result(self, pred, img, orig_img, img_path, proto):
            union = None
            if pred.shape[0]:  # request_settings fixes retina_masks=True
                pred[:, :4] = ops.scale_boxes(img.shape[2:], pred[:, :4], orig_img.shape)
                union = proto.new_zeros(orig_img.shape[:2], dtype=torch.uint8)  # 0/1, as ultralytics' masks
                for coefficients, box in zip(pred[:, 6:], pred[:, :4]):
                    instance_or(proto, coefficients, box, union)
            return Results(orig_img, path=img_path, names=self.model.names, boxes=pred[:, :6],
                           masks=None if union is None else union[None])

    return OneRequestLetterbox


def instance_or(proto, coefficients, box, union):
    """OR one instance's mask into `union` (a photo-sized uint8 tensor, changed in place), computing only its box.

    The mask is ultralytics' `ops.process_mask_native(proto, coefficients[None], box[None], union.shape)[0]`
    pixel for pixel: prototype logits (first upsampled 2 or 4 times when the letterbox padding needs it), cut
    to the letterboxed content, resized to the photo (bilinear, align_corners=False), > 0, cut to the box.
    That function resizes to the whole photo (a 48 MB float tensor per instance at 12 Mpixel) and then zeroes
    all but the box; here only the box's columns are resized (resized_columns) and only its pixels thresholded.
    Where torch's resize does not split into those passes bit for bit (checked once per device), the instance
    goes through process_mask_native itself: slower, never a different pixel.
    """
    if not separable_resize_is_exact(str(proto.device)):
        from ultralytics.utils import ops

        return union.bitwise_or_(ops.process_mask_native(proto, coefficients[None], box[None], union.shape)[0])
    height, width = union.shape
    # crop_mask keeps column r when x1 <= r < x2 (rows likewise): from ceil(x1) up to, not including, ceil(x2)
    left, top, right, bottom = (min(max(math.ceil(edge), 0), size)
                                for edge, size in zip(box.tolist(), (width, height, width, height)))
    if left < right and top < bottom:
        logits = box_logits(proto, coefficients, (height, width), (left, right))
        union[top:bottom, left:right] |= logits[top:bottom] > 0
    return union


@functools.cache
def separable_resize_is_exact(device):
    """Whether resized_columns is torch's bilinear resize bit for bit on `device` (a torch device string), tried
    once at a phone photo's size: another build, CPU or GPU kernel may round a 2-D resize differently."""
    import torch
    import torch.nn.functional as F

    image = torch.rand(160, 120, generator=torch.Generator().manual_seed(0)).to(device)
    shape = (4032, 3024)
    whole = F.interpolate(image[None, None], shape, mode="bilinear")[0, 0]
    return torch.equal(resized_columns(image, shape, (0, shape[1])), whole)


def box_logits(proto, coefficients, shape, columns):
    """One instance's logits at photo resolution in the photo's columns [start, stop), every row: exactly the
    values `ops.process_mask_native` thresholds there (see instance_or)."""
    import torch.nn.functional as F

    channels, proto_h, proto_w = proto.shape
    height, width = shape
    logits = (coefficients[None] @ proto.float().view(channels, -1)).view(1, 1, proto_h, proto_w)
    # process_mask_native's smallest upsample (1, 2 or 4) that cuts the letterbox padding on whole pixels
    gain = min(4 * proto_h / height, 4 * proto_w / width)
    pad = (4 * proto_h - max(round(height * gain), 1)) | (4 * proto_w - max(round(width * gain), 1))
    factor = 4 // math.gcd(4, pad | pad // 2)
    if factor > 1:
        logits = F.interpolate(logits, scale_factor=factor, mode="bilinear")
    logits = logits[0, 0]
    if logits.shape == shape:  # scale_masks returns masks of the photo's size as they are
        return logits[:, columns[0]:columns[1]]
    # scale_masks without ratio_pad: the padding is what the shapes leave, centred; cut it off, then resize
    gain = min(logits.shape[0] / height, logits.shape[1] / width)
    content_h, content_w = max(round(height * gain), 1), max(round(width * gain), 1)
    top = round((logits.shape[0] - content_h) / 2 - 0.1)
    left = round((logits.shape[1] - content_w) / 2 - 0.1)
    return resized_columns(logits[top:top + content_h, left:left + content_w], shape, columns)


def resized_columns(image, shape, columns):
    """Columns [start, stop) of `F.interpolate(image[None, None], shape, mode="bilinear")[0, 0]`, bit for bit,
    at the cost of those columns only (plus a resize of the rows to the new width).

    torch computes a bilinear resize as a linear pass along the width and then one along the height; two
    1-D `linear` resizes run the same float operations in the same order (tests/test_batch_invariance.py
    checks it on the machine that runs them). The height pass is a resize along the last dimension, so it
    runs on the chosen columns transposed; the result is their transposed view.
    """
    import torch.nn.functional as F

    rows = F.interpolate(image[None], shape[1], mode="linear")[0, :, columns[0]:columns[1]]
    return F.interpolate(rows.T[None], shape[0], mode="linear")[0].T

def load_yolo(checkpoint):
    """The ultralytics YOLO object for a resolved Checkpoint, built from its bytes without opening any file.

    What `YOLO(path)` does (ultralytics.nn.tasks.load_checkpoint, then Model._load) minus reading the path
    and running the pickle: the bytes were read and hashed, and are unpickled safely, by eval.inputs.checkpoint.
    Call after runtime.prepare(). Raises GateInputError.
    """
    import torch
    from ultralytics import YOLO
    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.nn.tasks import guess_model_task

    state, name = load_state(checkpoint), checkpoint.spec
    model = (state.get("ema") or state.get("model")) if isinstance(state, dict) else None
    if not isinstance(model, torch.nn.Module):
        raise GateInputError(name, "cannot load as an ultralytics checkpoint (it holds no 'model' or 'ema' network)")
    if state.get("modelopt"):
        raise GateInputError(name, "is a quantization-aware (modelopt) checkpoint; the gate scores plain "
                                   "PyTorch checkpoints")
    train_args = state.get("train_args") or {}
    if not isinstance(train_args, dict):
        raise GateInputError(name, f"train_args is a {type(train_args).__name__}, not a mapping")
    model = model.float().eval()
    model.args = {**DEFAULT_CFG_DICT, **train_args}
    model.pt_path = name  # a label only: nothing reopens it
    model.task = getattr(model, "task", None) or guess_model_task(model)
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = True
        elif isinstance(module, torch.nn.Upsample) and not hasattr(module, "recompute_scale_factor"):
            module.recompute_scale_factor = None

    class Preloaded(YOLO):
        def _load(self, weights, task=None):
            self.model, self.ckpt, self.task, self.ckpt_path = model, state, model.task, None
            self.overrides = model.args = self._reset_ckpt_args(model.args)
            self.overrides.update(model=weights, task=self.task)
            self.model_name = weights

    return Preloaded("checkpoint.pt")  # not the user's name: YOLO() routes on it (.yaml, -world, URLs)


def _training_imgsz(state, where):
    """The checkpoint's training image size as predict takes it: n, or [height, width] when not square.

    ultralytics saves an int or a list ([n] and [n, n] mean n); absent means its default, 640. Anything
    else (a string, a nested list, a size below 1 or above MAX_IMGSZ) is refused: GateInputError.
    """
    value = (state.get("train_args") or {}).get("imgsz")
    if value is None:
        return 640
    sizes = list(value) if isinstance(value, (list, tuple)) else [value]
    if not (1 <= len(sizes) <= 2 and all(isinstance(size, numbers.Integral) and not isinstance(size, bool)
                                         and 1 <= size <= MAX_IMGSZ for size in sizes)):
        raise GateInputError(where, f"train_args.imgsz {reprlib.repr(value)} is not an image size (a whole number "
                                    f"of pixels from 1 to {MAX_IMGSZ}, or [height, width] of them)")
    sizes = [int(size) for size in sizes]
    return sizes[0] if len(set(sizes)) == 1 else sizes


class YoloSegBackend(Backend):
    name = "candidate"
    checkpoint_input = "checkpoint"  # the eval.roles.ModelInputs field naming this role's checkpoint

    @classmethod
    def for_run(cls, options, inputs):
        checkpoint = getattr(inputs, cls.checkpoint_input)
        if checkpoint is None:
            return None
        return cls(checkpoint, options.conf, options.imgsz, options.device, options.torch_threads)

    def __init__(self, checkpoint, conf=0.25, imgsz=0, device="cpu", torch_threads=1):
        """`imgsz` 0 means the checkpoint's training image size."""
        runtime.prepare(torch_threads)
        import torch

        self._model = load_yolo(checkpoint)
        if self._model.task != "segment":
            raise GateInputError(checkpoint.spec, f"is a {self._model.task!r} model; the gate needs a "
                                                  "segmentation ('segment') checkpoint")
        self._settings = request_settings(conf, imgsz or _training_imgsz(self._model.ckpt, checkpoint.spec), device,
                                          torch_threads)
        self._checkpoint = checkpoint
        # One tiny request sets the predictor up (device, precision, memory format, stride-checked image
        # size), so provenance records what ultralytics resolved, not what was asked for; its threads are
        # reset during set-up, so it runs no scored image.
        self._request([np.zeros((32, 32, 3), dtype=np.uint8)])
        predictor = self._model.predictor
        self._predictor = predictor
        torch_model = getattr(getattr(predictor.model, "backend", None), "model", None)  # AutoBackend's .pt model
        weight = next(torch_model.parameters(), None) if torch_model is not None else None
        self._resolved = {
            "imgsz_effective": list(np.atleast_1d(predictor.imgsz).tolist()),
            "stride": int(max(np.atleast_1d(predictor.model.stride))),
            "model_format": predictor.model.format,
            "half": bool(predictor.model.fp16),
            "channels_last": bool(weight is not None and weight.dim() == 4
                                  and weight.is_contiguous(memory_format=torch.channels_last)),
            "device_resolved": str(predictor.device),
        }

    def _request(self, bgr):
        """ultralytics' predict on BGR arrays (one forward pass), each letterboxed as its own request."""
        import torch

        # Setting up a predictor on a CPU (ours, on the warm-up request, or any other model's), ultralytics'
        # select_device resets torch's threads to min(8, cores - 1), a machine-dependent count.
        torch.set_num_threads(self._settings["torch_threads"])
        settings = {k: self._settings[k] for k in ("imgsz", "conf", "iou", "max_det", "agnostic_nms", "classes",
                                                   "retina_masks", "augment", "rect", "device")}
        return self._model.predict(bgr, predictor=_one_request_predictor(), batch=max(len(bgr), 1), verbose=False,
                                   **settings)

    def provenance(self):
        return {
            "backend": "ultralytics-yolo-seg",
            "checkpoint_sha256": self._checkpoint.sha256,
            **self._settings,
            **self._resolved,
            **library_versions(),
        }

    def predict(self, images):
        bgr = [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in images]  # ultralytics expects BGR arrays
        letterboxed = {}  # photo shape -> letterboxed shape: it depends on the shape alone, so one letterbox each
        groups = {}  # letterboxed shape -> indices, in first-seen order
        for index, photo in enumerate(bgr):
            if photo.shape not in letterboxed:
                letterboxed[photo.shape] = self._predictor.pre_transform([photo])[0].shape
            groups.setdefault(letterboxed[photo.shape], []).append(index)
        masks = [None] * len(images)
        for indices in groups.values():
            for index, result in zip(indices, self._request([bgr[i] for i in indices])):
                if result.masks is None:
                    masks[index] = np.zeros(images[index].shape[:2], dtype=bool)
                else:
                    masks[index] = result.masks.data[0].cpu().numpy().view(bool)  # 0/1 bytes
        return masks
