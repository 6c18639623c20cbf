"""Small real CropRun databases (SQLite files or a scratch PostgreSQL) and their media, for the export tests.

`build()` creates the Django-shaped tables through SQLAlchemy in whatever database the URL names and
writes a photo (and a mask PNG) per image into a media folder, so SQLite and PostgreSQL tests run the
same export on the same content.
"""

import datetime

import sqlalchemy as sa

from croprun_export.django_tables import create_tables
from croprun_export.export import ExportOptions, export_snapshot
from croprun_export.schema_mapping import load_mapping
from demo.build_croprun_db import DEMO_AS_OF
from eval.inputs import volumes
from tests.support import DEMO_SNAPSHOT, REPO, pot_photo, write_snapshot

SCHEMA = REPO / "configs" / "croprun_schema.yaml"
DEMO_DB = (REPO / "demo" / "assets" / "croprun.sqlite").resolve()
AS_OF = datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC)
SOURCE = {"type": "human", "backend": "rembg", "deployment": "piece_image_crop_service", "version": "2.0.50"}


def before(hours):
    return AS_OF - datetime.timedelta(hours=hours)


def run(row_id, image, hours=48, source=SOURCE, notes="", **changes):
    """A crops_croprun row created `hours` before AS_OF (source=None: JSON null; sa.null(): SQL NULL)."""
    return {"id": row_id, "image_id": image, "source": source, "notes": notes,
            "created_at": before(hours), **changes}


def mask_row(image, mask=None, hours=24, **changes):
    """A crops_cropannotation / crops_handlabel row; `mask` defaults to the image's mask PNG."""
    return {"image_id": image, "mask": mask if mask is not None else f"masks/img-{image}.png",
            "created_at": before(hours), **changes}


def write_media(root, image_ids):
    """photos/img-<n>.png and masks/img-<n>.png (exact mask) for each image id."""
    for sub in ("photos", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image in image_ids:
        photo, mask = pot_photo(shift=image % 9)
        photo.save(root / "photos" / f"img-{image}.png")
        mask.save(root / "masks" / f"img-{image}.png")
    return root


def build(url, media, runs, annotations=(), hand_labels=(), croprun_id=sa.Integer, schema=SCHEMA):
    """Create the tables at `url` and insert the rows; every image id the runs use gets an image row whose
    file is photos/img-<n>.png, written to `media`."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    mapping = load_mapping(schema)
    tables = create_tables(engine, mapping, croprun_id)
    image_ids = sorted({r["image_id"] for r in runs})
    write_media(media, image_ids)

    def renamed(table, rows):
        return [{mapping.column(table, k): v for k, v in row.items()} for row in rows]

    with engine.begin() as connection:
        connection.execute(tables["image"].insert(),
                           renamed("image", [{"id": i, "file": f"photos/img-{i}.png"} for i in image_ids]))
        connection.execute(tables["croprun"].insert(), renamed("croprun", runs))
        for table, rows in (("cropannotation", annotations), ("handlabel", hand_labels)):
            if rows:
                numbered = [{"id": number, **row} for number, row in enumerate(rows, start=1)]
                connection.execute(tables[table].insert(), renamed(table, numbered))
    engine.dispose()
    return engine


def test_split(root):
    """A two-image test split in the snapshot's test/ layout."""
    return write_snapshot(root, n_test=2) / "test"


def export(url, media, output, split, version="v1", as_of=AS_OF, schema=SCHEMA,
           open_store=volumes.ModalVolumeStore, **options):
    return export_snapshot(ExportOptions(database_url=url, media_root=str(media), test_split=str(split),
                                         as_of=as_of, version=version, output=str(output), schema=str(schema),
                                         quiet=True, **options), open_store)


def export_demo(output):
    """The bundled demo CropRun database exported as the demo was: the committed demo snapshot's twin."""
    return export(f"sqlite:///{DEMO_DB}", DEMO_SNAPSHOT, output, DEMO_SNAPSHOT / "test", version="demo-db-v1",
                  as_of=DEMO_AS_OF)
