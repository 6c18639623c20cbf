"""demo/assets/croprun.sqlite: the CropRun database the demo snapshot's flagged corpus came from.

Built from the committed snapshot's flagged/croprun.jsonl, so exporting it (as of DEMO_AS_OF, media root
demo/assets/snapshot) gives back the same flagged corpus and exclusion counts: tests/test_export_round_trip.py
checks that. CropRun ids are text ("cr-0024", a Django CharField primary key) so the exported ids, and
with them the gate's per-image rows, are the snapshot's. Besides the rows the snapshot shows, the
database holds what the export has to see past: an older draft CropAnnotation (an empty polygon list)
under every current one, a hand label under every image that also has a CropAnnotation (which wins),
and annotations created after DEMO_AS_OF for the rows that have none (pointing at files that do not
exist, so a wrong as_of filter fails loudly). Timestamps are fixed: same snapshot, same rows.
"""

import datetime
import json
import os
import pathlib
import tempfile

import sqlalchemy as sa

from croprun_export.django_tables import create_tables
from croprun_export.schema_mapping import load_mapping

DEMO_AS_OF = datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC)
_FIRST_RUN = datetime.datetime(2026, 11, 2, 8, 0, tzinfo=datetime.UTC)


def _rows(snapshot):
    """Table name -> rows to insert, from the snapshot's CropRun export."""
    lines = (snapshot / "flagged" / "croprun.jsonl").read_text(encoding="utf-8").split("\n")
    tables = {"image": [], "croprun": [], "cropannotation": [], "handlabel": []}
    for index, row in enumerate(json.loads(line) for line in lines if line.strip()):
        image_id = index + 1
        created = _FIRST_RUN + datetime.timedelta(hours=3 * index)
        tables["image"].append({"id": image_id, "file": f"flagged/{row['image']}"})
        tables["croprun"].append({"id": row["id"], "image_id": image_id, "source": row["source"],
                                  "notes": row["notes"], "created_at": created})
        annotation = row["annotation"]
        if annotation is None:
            tables["cropannotation"].append({"image_id": image_id, "mask": f"flagged/masks/later-{row['id']}.png",
                                             "created_at": DEMO_AS_OF + datetime.timedelta(days=1)})
            continue
        current = {"image_id": image_id, "mask": f"flagged/{annotation['mask']}",
                   "created_at": created + datetime.timedelta(days=1)}
        if annotation["kind"] == "crop_annotation":
            tables["cropannotation"] += [{"image_id": image_id, "mask": "[]", "created_at": created}, current]
            tables["handlabel"].append({"image_id": image_id, "mask": "[]", "created_at": created})
        else:
            tables["handlabel"].append(current)
    for name in ("cropannotation", "handlabel"):
        for number, row in enumerate(tables[name], start=1):
            row["id"] = number
    return tables


def fill(engine, snapshot, mapping_path):
    """Create the demo tables in `engine`'s (empty) database, SQLite or PostgreSQL, and insert the rows."""
    rows = _rows(pathlib.Path(snapshot))
    tables = create_tables(engine, load_mapping(mapping_path), croprun_id=sa.String(32))
    with engine.begin() as connection:
        for name in ("image", "croprun", "cropannotation", "handlabel"):
            connection.execute(tables[name].insert(), rows[name])


def write_croprun_db(snapshot, destination, mapping_path):
    """Write the demo database for the snapshot at `snapshot` to `destination` (replaced atomically)."""
    destination = pathlib.Path(destination)
    handle, partial = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(handle)
    try:
        os.unlink(partial)  # SQLite creates the file itself
        engine = sa.create_engine(f"sqlite:///{partial}", poolclass=sa.pool.NullPool)
        fill(engine, snapshot, mapping_path)
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM")
        engine.dispose()
        os.chmod(partial, 0o644)
        os.replace(partial, destination)
    finally:
        pathlib.Path(partial).unlink(missing_ok=True)
    return destination
