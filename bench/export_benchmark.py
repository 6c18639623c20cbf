"""How long the CropRun export takes: the demo database, and a generated one of --rows rows on SQLite and
on a live PostgreSQL (a scratch server from Debian's binaries, as the tests start it).

    bazel run //bench:export_benchmark -- --rows=10000

The generated database looks like production's mix: most rows human, most with ground truth (a mask
PNG path, a COCO RLE or polygons in the column; hand labels for some), some automatic, a few malformed
`source` values. Every row has its own small photo. Prints one line per export: rows, wall and CPU time
(the export writes a file per photo and mask: on a busy disk the wall time is mostly waiting), rows/s.
"""

import datetime
import json
import pathlib
import shutil
import tempfile
import time

import numpy as np
import sqlalchemy as sa
from absl import app, flags
from PIL import Image, ImageDraw

from croprun_export.django_tables import create_tables
from croprun_export.export import ExportOptions, export_snapshot
from croprun_export.schema_mapping import load_mapping
from demo.build_croprun_db import DEMO_AS_OF
from tests.postgres import scratch_server

_ROWS = flags.DEFINE_integer("rows", 10000, "CropRun rows in the generated database.", lower_bound=1)
_POSTGRES = flags.DEFINE_bool("postgres", True, "Also time the export from a scratch PostgreSQL server.")

_ROOT = pathlib.Path(__file__).parent.parent
_SCHEMA = _ROOT / "configs" / "croprun_schema.yaml"
_DEMO = (_ROOT / "demo" / "assets" / "snapshot" / "snapshot.yaml").resolve().parent
_DEMO_DB = (_ROOT / "demo" / "assets" / "croprun.sqlite").resolve()
_SIZE = (64, 48)


def _photo_and_mask(rng):
    photo = Image.new("RGB", _SIZE, tuple(int(v) for v in rng.integers(120, 230, 3)))
    mask = Image.new("L", _SIZE, 0)
    x0, y0 = int(rng.integers(4, 20)), int(rng.integers(4, 14))
    box = (x0, y0, x0 + int(rng.integers(20, 40)), y0 + int(rng.integers(16, 30)))
    ImageDraw.Draw(photo).ellipse(box, fill=tuple(int(v) for v in rng.integers(20, 120, 3)))
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return photo, mask, box


def _generate(media, count, seed=7):
    """{table: rows} of `count` CropRun rows and their images and annotations; writes the media files."""
    from pycocotools import mask as coco

    rng = np.random.default_rng(seed)
    for sub in ("photos", "masks"):
        (media / sub).mkdir(parents=True)
    tables = {"image": [], "croprun": [], "cropannotation": [], "handlabel": []}
    start = DEMO_AS_OF - datetime.timedelta(days=60)
    for number in range(1, count + 1):
        photo, mask, box = _photo_and_mask(rng)
        photo.save(media / "photos" / f"{number}.png")
        created = start + datetime.timedelta(seconds=int(number * 500))
        tables["image"].append({"id": number, "file": f"photos/{number}.png"})
        kind = "human" if rng.random() < 0.85 else "automatic"
        source = {"type": kind, "backend": "rembg", "deployment": "piece_image_crop_service", "version": "2.0.50"}
        if rng.random() < 0.01:
            source = "not an object"
        tables["croprun"].append({"id": number, "image_id": number, "source": source,
                                  "notes": f"generated row {number}", "created_at": created})
        draw = rng.random()
        if draw < 0.6:
            style = rng.random()
            if style < 0.5:
                mask.save(media / "masks" / f"{number}.png")
                value = f"masks/{number}.png"
            elif style < 0.8:
                encoded = coco.encode(np.asfortranarray((np.asarray(mask) >= 128).astype(np.uint8)))
                value = json.dumps({"size": encoded["size"], "counts": encoded["counts"].decode()})
            else:
                x0, y0, x1, y1 = box
                value = json.dumps([[x0, y0, x1, y0, x1, y1, x0, y1]])
            tables["cropannotation"].append({"image_id": number, "mask": value,
                                             "created_at": created + datetime.timedelta(hours=1)})
        elif draw < 0.8:
            mask.save(media / "masks" / f"{number}.png")
            tables["handlabel"].append({"image_id": number, "mask": f"masks/{number}.png",
                                        "created_at": created + datetime.timedelta(hours=2)})
    for name in ("cropannotation", "handlabel"):
        for index, row in enumerate(tables[name], start=1):
            row["id"] = index
    return tables


def _fill(url, tables):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    created = create_tables(engine, load_mapping(_SCHEMA))
    with engine.begin() as connection:
        for name in ("image", "croprun", "cropannotation", "handlabel"):
            connection.execute(created[name].insert(), tables[name])
    engine.dispose()


def _time_export(label, url, media, split, output):
    started, cpu = time.monotonic(), time.process_time()
    result = export_snapshot(ExportOptions(database_url=url, media_root=str(media), test_split=str(split),
                                           as_of=DEMO_AS_OF, version=label, output=str(output),
                                           schema=str(_SCHEMA), quiet=True))
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    print(f"{label}: {result.rows} rows, flagged corpus {result.flagged}, excluded {sum(result.excluded.values())} "
          f"in {seconds:.2f} s wall, {cpu:.2f} s CPU of this process ({result.rows / seconds:.0f} rows/s), "
          f"sha256 {result.sha256[:16]}…", flush=True)
    return result


def main(argv):
    del argv  # unused
    work = pathlib.Path(tempfile.mkdtemp(prefix="export-bench-"))
    try:
        _time_export("demo-sqlite", f"sqlite:///{_DEMO_DB}", _DEMO, _DEMO / "test", work / "out")
        started = time.monotonic()
        tables = _generate(work / "media", _ROWS.value)
        _fill(f"sqlite:///{work / 'generated.sqlite'}", tables)
        print(f"generated {_ROWS.value} rows and their media in {time.monotonic() - started:.1f} s", flush=True)
        sqlite = _time_export(f"generated-{_ROWS.value}-sqlite", f"sqlite:///{work / 'generated.sqlite'}",
                              work / "media", _DEMO / "test", work / "out")
        if _POSTGRES.value:
            with scratch_server() as server:
                server.psql("postgres", "CREATE DATABASE bench")
                _fill(server.url("bench"), tables)
                postgres = _time_export(f"generated-{_ROWS.value}-postgresql", server.url("bench"), work / "media",
                                        _DEMO / "test", work / "out")
            same = {p.relative_to(postgres.path): p.read_bytes() for p in (postgres.path / "flagged").rglob("*")
                    if p.is_file()} == {p.relative_to(sqlite.path): p.read_bytes()
                                        for p in (sqlite.path / "flagged").rglob("*") if p.is_file()}
            print(f"flagged/ identical on SQLite and PostgreSQL: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
