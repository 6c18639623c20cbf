"""Decoding photos and ground-truth masks into arrays, the same way for every backend.

Rules (also in the README's snapshot contract):
- EXIF orientation is applied to photos and to mask PNGs before anything else, so image, mask and
  predictions share one coordinate frame.
- Photos become 8-bit RGB exactly as production's rembg decodes them (Pillow's `convert("RGB")`: CMYK and
  palette images converted, alpha dropped), so every backend sees the pixels production would. Photos
  with more than 8 bits per channel (16-bit or 32-bit greyscale) are refused: `convert("RGB")` clips
  their values at 255 (a 16-bit photo turns nearly white), an input nobody means to evaluate.
  (Pillow itself reads 48-bit RGB PNGs as 8-bit RGB, in production as here.)
- Masks on a 16-bit scale are scaled down by 256 (when they use more than 8 bits).
- Masks become boolean: a pixel is foreground when its value is >= 128 on a 0-255 scale (so
  anti-aliased edges split at half coverage). A mask with an alpha channel (RGBA, LA, PA, or a palette
  or grey PNG with a transparent colour) is read from the alpha, unless the alpha is constant (all
  transparent or all opaque): it then draws nothing, and the colour channels must read the same
  (a drawing in the colour under a constant alpha is refused: which one is the mask?).
  A mask that is not empty but has no pixel >= 128 (a 0/1 label image, say) is refused: read by the
  rule it would be an empty ground truth, which an empty prediction matches perfectly.
  Masks are one frame of grey, palette, RGB(A), 1-bit or 16-bit pixels; other modes (CMYK, LAB, YCbCr,
  float) and multi-frame files are refused, naming the file.
- Images over `MAX_PIXELS` are refused from their header, before any pixel is decoded (decompression
  bombs); the check is per call, with no process-wide warning filter, so parallel decodes are safe.
"""

import contextlib
import functools
import hashlib
import os
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageDraw, ImageOps

from eval.errors import GateInputError
from eval.inputs.safe_paths import open_regular, read_text

MAX_PIXELS = 40_000_000
MASK_FOREGROUND_MIN = 128
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
_WIDE_PHOTO_MODES = (*_SIXTEEN_BIT_MODES, "I;16N", "F")  # more than 8 bits per channel
# Pillow's own opener, taken before a backend is imported: ultralytics replaces PIL.Image.open with a
# wrapper that answers a file Pillow cannot identify by importing (or pip-installing) a HEIF plugin.
_PILLOW_OPEN = Image.open


def _check_size(path, size):
    width, height = size
    if width * height > MAX_PIXELS:
        raise GateInputError(path, f"image is {width}x{height}, more than {MAX_PIXELS} pixels (decompression "
                                   "bomb?)")


def _open(path, single_frame=False):
    """Open and fully decode `path`, turning every Pillow failure into a GateInputError.

    The size comes from the header and is checked before decoding (and again after, for formats whose
    decoder settles the size); no global warning filter is involved, so threads cannot race on it.
    """
    try:
        source = open_regular(path) if isinstance(path, (str, os.PathLike)) else contextlib.nullcontext(path)
        with source as handle, _PILLOW_OPEN(handle) as img:
            _check_size(path, img.size)
            if single_frame and getattr(img, "n_frames", 1) > 1:
                raise GateInputError(path, f"has {img.n_frames} frames; a mask is a single image")
            img.load()
            _check_size(path, img.size)
            return ImageOps.exif_transpose(img)
    except GateInputError:
        raise
    except FileNotFoundError:
        raise GateInputError(path, "file not found") from None
    except Image.DecompressionBombError:  # Pillow's own, far larger, limit: raised while reading the header
        raise GateInputError(path, f"image has more than {MAX_PIXELS} pixels (decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise GateInputError(path, f"cannot decode image ({err})") from None
    except Exception as err:  # a decoder plugin failing on user data is still a bad image
        raise GateInputError(path, f"cannot decode image ({type(err).__name__}: {err})") from None


def _to_8bit(img):
    if img.mode in _SIXTEEN_BIT_MODES:
        array = np.asarray(img, dtype=np.uint32)
        scale = 256 if array.max(initial=0) > 255 else 1
        return Image.fromarray((array // scale).clip(0, 255).astype(np.uint8), mode="L")
    return img


class Photo(np.ndarray):
    """A decoded photo that digests its pixels once, however many consumers key on them.

    The digest names the pixels for duplicate detection and for every backend's mask cache; at 12 Mpixel
    one sha256 costs tens of milliseconds, so it is computed on first use and kept with the array (which
    the gate never changes once decoded; a view or slice is a new Photo with a digest of its own).
    """

    @functools.cached_property
    def digest(self):
        return pixel_digest(np.asarray(self))


def pixel_digest(photo):
    """sha256 (hex) of an array's shape and pixels: equal digests mean equal decoded photos."""
    hasher = hashlib.sha256(repr(photo.shape).encode())
    hasher.update(np.ascontiguousarray(photo).data)
    return hasher.hexdigest()


def digest_of(photo):
    """The pixel digest of `photo`, computed once per decoded Photo."""
    return photo.digest if isinstance(photo, Photo) else pixel_digest(photo)


def load_rgb(path):
    """Return the photo at `path` as an (H, W, 3) uint8 RGB Photo, decoded as production's rembg does."""
    img = _open(path)
    if img.mode in _WIDE_PHOTO_MODES:
        raise GateInputError(path, f"photo has more than 8 bits per channel (Pillow mode {img.mode}); production's "
                                   "rembg would clip it at 255 (Pillow convert('RGB')), so the gate refuses it: "
                                   "export photos as 8-bit")
    try:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).view(Photo)
    except (ValueError, OSError) as err:  # a pixel mode Pillow cannot convert
        raise GateInputError(path, f"cannot convert a {img.mode} image to RGB ({err})") from None


_MASK_MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "PA", *_SIXTEEN_BIT_MODES)
_ALPHA_MODES = ("RGBA", "LA", "PA")


def _mask_values(path, img):
    """0-255 values a mask is read from (see the module docstring for the alpha rule)."""
    if img.mode not in _MASK_MODES:
        raise GateInputError(path, f"mask pixel mode {img.mode!r} is not supported: save masks as 8-bit grey "
                                   "(0 background, 255 pot), 1-bit, palette, RGB(A) or 16-bit grey")
    colour = np.asarray(_to_8bit(img).convert("L")) if img.mode not in _ALPHA_MODES else None
    if img.mode not in _ALPHA_MODES and "transparency" not in img.info:
        return colour
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if alpha.size and alpha.min() == alpha.max():
        drawn = np.asarray(rgba.convert("L")) >= MASK_FOREGROUND_MIN
        if (drawn != (alpha >= MASK_FOREGROUND_MIN)).any():
            state = "opaque" if alpha.flat[0] >= MASK_FOREGROUND_MIN else "transparent"
            raise GateInputError(path, f"mask's alpha is constant (all {state}) but its colour channels hold a "
                                       f"drawing ({int(drawn.sum())} of {drawn.size} pixels >= "
                                       f"{MASK_FOREGROUND_MIN}): which one is the mask? Save it as 8-bit grey")
    return alpha


def oriented_size(path):
    """(width, height) of the photo at `path` once EXIF-oriented, read from its header; None if unreadable."""
    try:
        with warnings.catch_warnings(), _PILLOW_OPEN(path) as img:
            warnings.simplefilter("ignore")  # a too-large photo is reported when it is decoded
            width, height = img.size
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # decoding proper reports the problem; this is only a hint
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_mask(path, size):
    """Return the mask PNG at `path` as an (H, W) bool array; `size` is the photo's (width, height)."""
    img = _open(path, single_frame=True)
    if img.size != tuple(size):
        raise GateInputError(path, f"mask is {img.size[0]}x{img.size[1]} but its image is {size[0]}x{size[1]}")
    try:
        values = _mask_values(path, img)
    except (ValueError, OSError) as err:  # a pixel mode or transparency Pillow cannot convert
        raise GateInputError(path, f"cannot read a {img.mode} mask ({err})") from None
    if 0 < values.max(initial=0) < MASK_FOREGROUND_MIN:
        raise GateInputError(path, f"mask values go up to {values.max()} only, none >= {MASK_FOREGROUND_MIN}: "
                                   "a 0/1 label image? Masks are 0 for background, 255 for the pot")
    return values >= MASK_FOREGROUND_MIN


def rasterise_polygons(path, size):
    """Return the union of the YOLO-seg polygons in label file `path` as an (H, W) bool mask.

    Each line is `<class> x1 y1 x2 y2 ...` with coordinates normalised to [0, 1] (ultralytics' export
    format); every polygon counts as foreground whatever its class. An empty file is an empty mask.
    """
    width, height = size
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise GateInputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GateInputError(path, f"cannot read label file ({err})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            coords = [float(v) for v in fields[1:]]
            int(fields[0])
        except ValueError:
            raise GateInputError(f"{path}:{number}", "expected '<class> x1 y1 x2 y2 ...' numbers") from None
        if len(coords) < 6 or len(coords) % 2:
            raise GateInputError(f"{path}:{number}", "a polygon needs at least 3 (x, y) pairs")
        if not all(0.0 <= v <= 1.0 for v in coords):
            raise GateInputError(f"{path}:{number}", "coordinates must be normalised to [0, 1]")
        points = [(x * width, y * height) for x, y in zip(coords[0::2], coords[1::2])]
        draw.polygon(points, fill=255)
    return np.asarray(canvas) >= MASK_FOREGROUND_MIN


def load_truth(path, truth_format, size):
    """The ground truth at `path`, a mask PNG ("png") or YOLO-seg labels ("yolo"), as an (H, W) bool mask."""
    return (load_mask if truth_format == "png" else rasterise_polygons)(path, size)


def image_size(array):
    """(width, height) of an (H, W, ...) array, Pillow's order."""
    return array.shape[1], array.shape[0]
