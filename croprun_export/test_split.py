"""The held-out test split (#415), copied into the snapshot's test/ folder from the training export.

Two sources: a folder already in the snapshot's test/ layout (images/, masks/ and/or labels/), or an
ultralytics dataset YAML whose `test` entry names image folders or .txt image lists. For the YAML,
labels are found the way ultralytics finds them (the last `/images/` of the path becomes `/labels/`,
the suffix `.txt`) and copied as YOLO-seg polygon labels; `path` is resolved against the YAML's
folder when relative. An image without a label file is refused: ultralytics would read it as
background, but the gate needs ground truth it was given, not one it guessed.
"""

import pathlib
import shutil

from eval.errors import GateInputError
from eval.inputs.safe_paths import read_text, resolve_inside
from eval.inputs.snapshot import IMAGE_SUFFIXES
from eval.inputs.yaml_config import load_yaml
from eval.runtime import user_path

_LAYOUT = ("images", "masks", "labels")
_DATASET_SCHEMA = {
    "type": "object",
    "required": ["test"],
    "properties": {
        "path": {"type": "string", "minLength": 1},
        "test": {"oneOf": [{"type": "string", "minLength": 1},
                           {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]},
    },
}
_LISTED = 10


def _listing(paths):
    shown = ", ".join(str(p) for p in paths[:_LISTED])
    return shown + (f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else "")


def _copy_layout(source, destination):
    """Copy a folder in the snapshot's test/ layout (its three subfolders, nothing else)."""
    if not (source / "images").is_dir():
        raise GateInputError(source, "not a test split: no images/ folder (expected the snapshot's test/ "
                                     "layout or an ultralytics dataset YAML)")
    for sub in _LAYOUT:
        if not (source / sub).is_dir():
            continue
        (destination / sub).mkdir(parents=True)
        for path in sorted((source / sub).iterdir()):
            if path.name.startswith("."):
                continue
            resolved = resolve_inside(source, f"{sub}/{path.name}", path)
            if not resolved.is_file():
                raise GateInputError(path, "not a file (the test split's folders hold files only)")
            shutil.copyfile(resolved, destination / sub / path.name)
    return "snapshot layout"


def _yaml_images(yaml_path):
    data, _ = load_yaml(yaml_path, _DATASET_SCHEMA)
    root = pathlib.Path(data.get("path") or ".")
    root = root if root.is_absolute() else yaml_path.parent / root
    entries = data["test"] if isinstance(data["test"], list) else [data["test"]]
    images = []
    for entry in entries:
        target = pathlib.Path(entry) if pathlib.Path(entry).is_absolute() else root / entry
        if target.is_dir():
            images += sorted(p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif target.is_file() and target.suffix == ".txt":
            for line in read_text(target).splitlines():
                if line.strip():
                    listed = pathlib.Path(line.strip())
                    images.append(listed if listed.is_absolute() else target.parent / listed)
        else:
            raise GateInputError(yaml_path, f"test entry {entry!r}: {target} is neither a folder nor a .txt list")
    if not images:
        raise GateInputError(yaml_path, "the test split lists no images")
    return images


def _label_of(image):
    parts = image.as_posix().rsplit("/images/", 1)
    if len(parts) != 2:
        return None
    return pathlib.Path(f"{parts[0]}/labels/{parts[1]}").with_suffix(".txt")


def _copy_dataset_yaml(yaml_path, destination):
    """Copy the `test` split of an ultralytics dataset YAML: images to images/, labels to labels/."""
    images = _yaml_images(yaml_path)
    not_images = [p for p in images if p.suffix.lower() not in IMAGE_SUFFIXES]
    if not_images:
        raise GateInputError(yaml_path, f"test split files the gate cannot read as images "
                                        f"(expected {', '.join(IMAGE_SUFFIXES)}): {_listing(not_images)}")
    unlabelled = [p for p in images if _label_of(p) is None or not _label_of(p).is_file()]
    if unlabelled:
        raise GateInputError(yaml_path, f"test images without a YOLO-seg label file (labels/<name>.txt next to "
                                        f"images/): {_listing(unlabelled)}")
    stems = {}
    for image in images:
        if image.stem in stems:
            raise GateInputError(yaml_path, f"two test images named {image.stem!r}: {stems[image.stem]} and {image} "
                                            f"(the snapshot keys images by file name)")
        stems[image.stem] = image
    for sub in ("images", "labels"):
        (destination / sub).mkdir(parents=True)
    for image in images:
        shutil.copyfile(image, destination / "images" / image.name)
        shutil.copyfile(_label_of(image), destination / "labels" / f"{image.stem}.txt")
    return "ultralytics dataset yaml"


def copy_test_split(spec, destination):
    """Copy the test split at `spec` to `destination` (the snapshot's test/, which must not exist); returns
    which kind of source it was, for the snapshot's provenance."""
    source = pathlib.Path(user_path(spec))
    try:
        if source.is_dir():
            return _copy_layout(source, destination)
        if source.is_file() and source.suffix in (".yaml", ".yml"):
            return _copy_dataset_yaml(source, destination)
    except OSError as err:
        raise GateInputError(getattr(err, "filename", None) or spec, f"cannot copy ({err.strerror or err})") from None
    raise GateInputError(spec, "test split not found: expected a folder in the snapshot's test/ layout or an "
                               "ultralytics dataset YAML (.yaml) with a `test` entry")
