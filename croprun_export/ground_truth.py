"""A ground-truth mask column value -> the PNG the snapshot stores.

The value is one of: a path in the media storage (a mask image: PNG bytes are kept as they are, any
other format is re-encoded as PNG), a COCO RLE object (`{"size": [h, w], "counts": "..." | [..]}`,
decoded by pycocotools) or COCO polygons (`[[x1, y1, x2, y2, ...], ...]` in pixels, rasterised by
pycocotools). JSON may come as text (SQLite, text columns) or already decoded (PostgreSQL jsonb). A JSON
mask must have the size of the photo as the gate sees it (EXIF orientation applied).

pycocotools' C decoder writes as many pixels as the counts say, without checking them against the
size: counts are therefore parsed and summed here first, and a value that does not add up is refused.
"""

import io
import json
import math

import numpy as np
from PIL import Image


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class TruthUnusable(Exception):
    """The value cannot be turned into a mask; the message says why."""


def _compressed_counts(text):
    """Run lengths of a COCO compressed RLE string (the inverse of pycocotools' rleToString)."""
    counts, position = [], 0
    try:
        while position < len(text):
            value, shift, more = 0, 0, True
            while more:
                char = ord(text[position]) - 48
                if not 0 <= char < 64:
                    raise TruthUnusable("RLE counts string has a character outside COCO's alphabet")
                value |= (char & 0x1F) << (5 * shift)
                more = char & 0x20
                position, shift = position + 1, shift + 1
                if not more and char & 0x10:
                    value |= -1 << (5 * shift)
            if len(counts) > 2:
                value += counts[-2]
            counts.append(value)
    except IndexError:
        raise TruthUnusable("RLE counts string ends in the middle of a number") from None
    return counts


def _rle(value, shape):
    from pycocotools import mask as coco

    size, counts = value.get("size"), value.get("counts")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise TruthUnusable("RLE size must be [height, width] of positive integers")
    if tuple(size) != shape:
        raise TruthUnusable(f"RLE size {size[0]}x{size[1]} (h x w) differs from the photo's {shape[0]}x{shape[1]}")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
            raise TruthUnusable("RLE counts must be integers")
        runs = counts
    elif isinstance(counts, str):
        runs = _compressed_counts(counts)
    else:
        raise TruthUnusable("RLE counts must be a string or a list of integers")
    if any(c < 0 for c in runs) or sum(runs) != size[0] * size[1]:
        raise TruthUnusable(f"RLE counts add up to {sum(runs)} pixels, not {size[0]}x{size[1]}")
    rle = coco.frPyObjects(value, *size) if isinstance(counts, list) else {"size": size, "counts": counts.encode()}
    return coco.decode(rle)


def _polygons(value, shape):
    from pycocotools import mask as coco

    height, width = shape
    for polygon in value:
        if (not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in polygon)):
            raise TruthUnusable("polygons must be lists of at least 3 (x, y) pixel coordinates")
        # Far-away points make pycocotools walk every pixel step between them: refuse what no mask needs.
        if any(not -width <= x <= 2 * width for x in polygon[::2]) or any(not -height <= y <= 2 * height
                                                                           for y in polygon[1::2]):
            raise TruthUnusable(f"polygon coordinates far outside the {width}x{height} photo")
    if not value:
        return np.zeros(shape, dtype=np.uint8)
    return coco.decode(coco.merge(coco.frPyObjects([[float(v) for v in p] for p in value], height, width)))


def _png(mask):
    buffer = io.BytesIO()
    Image.fromarray(np.where(mask.astype(bool), 255, 0).astype(np.uint8), mode="L").save(buffer, "PNG")
    return buffer.getvalue()


def mask_png(value, photo_shape, media):
    """PNG bytes of the mask `value` describes. `photo_shape()` gives the photo's (height, width) and is
    only called for JSON masks. Raises TruthUnusable or MediaMissing (a storage path that is not there)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise TruthUnusable("mask column holds malformed JSON") from None
    if isinstance(value, dict):
        return _png(_rle(value, photo_shape()))
    if isinstance(value, list):
        return _png(_polygons(value, photo_shape()))
    if not isinstance(value, str):
        raise TruthUnusable(f"mask column holds a {type(value).__name__}, not a path, RLE or polygons")
    data = media.read(value)
    if data.startswith(PNG_SIGNATURE):
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            return buffer.getvalue()
    except (OSError, ValueError, SyntaxError) as err:
        raise TruthUnusable(f"mask file {value!r} is not an image ({err})") from None
