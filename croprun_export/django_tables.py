"""The CropRun service's tables as Django creates them, for building databases the export can read:
the demo's (demo/build_croprun_db.py), the tests' and the benchmark's, on SQLite and PostgreSQL alike.

Column types follow Django's: `source` is a JSONField (jsonb on PostgreSQL, JSON text on SQLite),
`created_at` a DateTimeField (timestamptz; UTC text on SQLite), `file` a FileField (a storage path) and
`mask` a text column holding a storage path or COCO RLE / polygon JSON.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def define_tables(metadata, mapping, croprun_id=sa.Integer):
    """{logical table: sa.Table} named by `mapping`; `croprun_id` is the CropRun primary key's type."""
    def name(table, column):
        return mapping.column(table, column)

    def created(table):
        return sa.Column(name(table, "created_at"), sa.DateTime(timezone=True), nullable=False)

    tables = {
        "image": sa.Table(mapping.table("image"), metadata,
                          sa.Column(name("image", "id"), sa.Integer, primary_key=True, autoincrement=False),
                          sa.Column(name("image", "file"), sa.String(255))),
        "croprun": sa.Table(mapping.table("croprun"), metadata,
                            sa.Column(name("croprun", "id"), croprun_id, primary_key=True, autoincrement=False),
                            sa.Column(name("croprun", "image_id"), sa.Integer, index=True),
                            sa.Column(name("croprun", "source"), sa.JSON().with_variant(postgresql.JSONB(),
                                                                                          "postgresql")),
                            sa.Column(name("croprun", "notes"), sa.Text),
                            created("croprun")),
    }
    for table in ("cropannotation", "handlabel"):
        tables[table] = sa.Table(mapping.table(table), metadata,
                                 sa.Column(name(table, "id"), sa.Integer, primary_key=True, autoincrement=False),
                                 sa.Column(name(table, "image_id"), sa.Integer, index=True),
                                 sa.Column(name(table, "mask"), sa.Text),
                                 created(table))
    return tables


def create_tables(engine, mapping, croprun_id=sa.Integer):
    """Create the four tables in `engine`'s database; returns define_tables()'s dict."""
    metadata = sa.MetaData()
    tables = define_tables(metadata, mapping, croprun_id)
    metadata.create_all(engine)
    return tables
