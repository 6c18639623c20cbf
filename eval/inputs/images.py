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
  anti-aliased edges split at half coverage). A mask with an alpha channel is read from the alpha.
  A mask that is not empty but has no pixel >= 128 (a 0/1 label image, say) is refused: read by the
  rule it would be an empty ground truth, which an empty prediction matches perfectly.
- Images over `MAX_PIXELS` are refused rather than decoded (decompression bombs).
"""

import warnings

import numpy as np
from PIL import ExifTags, Image, ImageDraw, ImageOps

from eval.errors import GateInputError

MAX_PIXELS = 40_000_000
MASK_FOREGROUND_MIN = 128
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
_WIDE_PHOTO_MODES = (*_SIXTEEN_BIT_MODES, "I;16N", "F")  # more than 8 bits per channel
# Pillow's own opener, taken before a backend is imported: ultralytics replaces PIL.Image.open with a
# wrapper that answers a file Pillow cannot identify by importing (or pip-installing) a HEIF plugin.
_PILLOW_OPEN = Image.open


def _open(path):
    """Open and fully decode `path`, turning every Pillow failure into a GateInputError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with _PILLOW_OPEN(path) as img:
                img.load()
                return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise GateInputError(path, "file not found") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise GateInputError(path, f"image has more than {MAX_PIXELS} pixels (decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise GateInputError(path, f"cannot decode image ({err})") from None
    except Exception as err:  # noqa: BLE001 - a decoder plugin failing on user data is still a bad image
        raise GateInputError(path, f"cannot decode image ({type(err).__name__}: {err})") from None


def _to_8bit(img):
    if img.mode in _SIXTEEN_BIT_MODES:
        array = np.asarray(img, dtype=np.uint32)
        scale = 256 if array.max(initial=0) > 255 else 1
        return Image.fromarray((array // scale).clip(0, 255).astype(np.uint8), mode="L")
    return img


def load_rgb(path):
    """Return the photo at `path` as an (H, W, 3) uint8 RGB array, decoded as production's rembg does."""
    img = _open(path)
    if img.mode in _WIDE_PHOTO_MODES:
        raise GateInputError(path, f"photo has more than 8 bits per channel (Pillow mode {img.mode}); production's "
                                   "rembg would clip it at 255 (Pillow convert('RGB')), so the gate refuses it: "
                                   "export photos as 8-bit")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def oriented_size(path):
    """(width, height) of the photo at `path` once EXIF-oriented, read from its header; None if unreadable."""
    try:
        with warnings.catch_warnings(), _PILLOW_OPEN(path) as img:
            warnings.simplefilter("ignore")  # a too-large photo is reported when it is decoded
            width, height = img.size
            orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - decoding proper reports the problem; this is only a hint
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def load_mask(path, size):
    """Return the mask PNG at `path` as an (H, W) bool array; `size` is the photo's (width, height)."""
    img = _open(path)
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA").getchannel("A")
    img = _to_8bit(img).convert("L")
    if img.size != tuple(size):
        raise GateInputError(path, f"mask is {img.size[0]}x{img.size[1]} but its image is {size[0]}x{size[1]}")
    values = np.asarray(img)
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
        text = open(path, encoding="utf-8").read()
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


def image_size(array):
    """(width, height) of an (H, W, ...) array, Pillow's order."""
    return array.shape[1], array.shape[0]
