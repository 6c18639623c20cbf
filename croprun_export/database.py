"""Reading CropRun rows, with their newest ground truth, from the service's database (SQLite or PostgreSQL).

One query, in one read-only transaction (REPEATABLE READ on PostgreSQL; a read-only file handle on
SQLite), so the rows, annotations and hand labels are one consistent state of the database. `source` is
JSON: the database tells whether it is a valid object and extracts its four fields with their JSON
types (SQLite json_valid/json_type/json_extract, PostgreSQL jsonb_typeof/->>), and the caller validates
each row from that. Credentials (in the URL or libpq's PG* variables) never appear in what this module
returns or raises: URLs are shown without their password.
"""

import dataclasses
import datetime
import functools
import os
import pathlib
import re
import sqlite3
import urllib.parse

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from eval.errors import GateInputError
from eval.inputs.safe_paths import open_regular
from eval.runtime import user_path

SOURCE_FIELDS = ("type", "backend", "deployment", "version")
_SHOWN_QUERY_KEYS = ("host", "port", "sslmode", "application_name")  # never password, sslpassword, ...
_HELP = "expected sqlite:///path/to/croprun.sqlite or postgresql://user@host:port/dbname"


@dataclasses.dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" or "postgresql"
    name: str  # SQLite: the file's name; PostgreSQL: current_database()
    shown_url: str  # the URL without credentials, for messages


@dataclasses.dataclass(frozen=True)
class CropRunRow:
    """One CropRun row as the query returns it; `source` holds the database's view of the JSON."""

    id: object  # int or str, as stored
    image_file: str | None  # storage path of the photo (None: no crops_image row or no file)
    source_is_object: bool  # the column holds valid JSON and it is an object
    source: dict  # field -> (JSON type: "string", "null", "number", ..., or None when absent, text value)
    notes: object
    annotation_mask: object  # newest CropAnnotation.mask up to as_of (str, or dict/list from jsonb), or None
    hand_label_mask: object  # newest HandLabel.mask up to as_of, or None


def shown_url(url):
    """`url` (a sqlalchemy URL) as text without password or credential-bearing query parameters."""
    hidden = [key for key in url.query if key not in _SHOWN_QUERY_KEYS]
    return url.difference_update_query(hidden).render_as_string(hide_password=True)


class _SQLite:
    kind = "sqlite"

    def __init__(self, url):
        if not url.database or url.database == ":memory:":
            raise GateInputError(shown_url(url), f"no database file in the URL; {_HELP}")
        self.path = pathlib.Path(user_path(url.database)).absolute()
        try:
            open_regular(self.path, where=shown_url(url)).close()  # a FIFO would block sqlite's open
        except OSError as err:
            raise GateInputError(shown_url(url), f"database file not found or unreadable ({err.strerror})") from None
        self.name = self.path.name

    def engine(self):
        def connect():
            # mode=ro: never creates or writes the file. Text that is not UTF-8 decodes with surrogate
            # escapes, so one bad row is reported as that row's problem instead of failing the query.
            connection = sqlite3.connect(f"file:{urllib.parse.quote(str(self.path))}?mode=ro", uri=True)
            connection.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
            connection.execute("PRAGMA query_only = ON")
            return connection

        return sa.create_engine("sqlite+pysqlite://", creator=connect, poolclass=sa.pool.NullPool)

    @staticmethod
    def read_only(connection):
        return connection

    @staticmethod
    def created(column):
        """created_at normalised to UTC text ('YYYY-MM-DD HH:MM:SS.SSS'; NULL when unparseable): SQLite
        compares text, and Django writes '2026-11-20 10:00:00[.ffffff]' while others add 'T' or '+00:00'."""
        return sa.func.strftime("%Y-%m-%d %H:%M:%f", column)

    @staticmethod
    def as_of(moment):
        return sa.literal(moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])

    @staticmethod
    def source(column, column_type):
        del column_type  # SQLite stores JSON as text: validity is checked per row with json_valid
        is_object = sa.and_(sa.func.json_valid(column) == 1, sa.func.json_type(column) == "object")
        guarded = lambda expression: sa.case((is_object, expression), else_=None)  # noqa: E731
        fields = []
        for field in SOURCE_FIELDS:
            fields += [guarded(sa.func.json_type(column, f"$.{field}")),
                       guarded(sa.func.json_extract(column, f"$.{field}"))]
        return sa.case((is_object, 1), else_=0), fields

    @staticmethod
    def json_type(name):
        return {"text": "string", "integer": "number", "real": "number"}.get(name, name)


class _PostgreSQL:
    kind = "postgresql"

    def __init__(self, url):
        self.url = url.set(drivername="postgresql+psycopg")
        self.name = None  # current_database(), once connected

    def engine(self):
        # TimeZone=UTC: a `timestamp without time zone` column then compares with --as_of in UTC.
        return sa.create_engine(self.url, poolclass=sa.pool.NullPool, connect_args={
            "connect_timeout": 10, "options": "-c TimeZone=UTC", "application_name": "pottery-gate-export"})

    @staticmethod
    def read_only(connection):
        return connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)

    @staticmethod
    def created(column):
        return column

    @staticmethod
    def as_of(moment):
        return sa.bindparam("as_of", moment, type_=sa.DateTime(timezone=True))

    @staticmethod
    def source(column, column_type):
        if not isinstance(column_type, (postgresql.JSON, postgresql.JSONB)):
            return None
        typeof = sa.func.jsonb_typeof if isinstance(column_type, postgresql.JSONB) else sa.func.json_typeof
        fields = []
        for field in SOURCE_FIELDS:
            key = sa.literal_column(f"'{field}'")  # a constant of this module, never user input
            fields += [typeof(column.op("->")(key)), column.op("->>")(key)]
        return sa.case((typeof(column) == "object", 1), else_=0), fields

    @staticmethod
    def json_type(name):
        return name


_ENCODE = ("percent-encode '@', ':', '/', '?', '#' and '%' in the user name and password (e.g. '@' as %40, "
           "':' as %3A)")


def parse_url(url_text):
    """The sqlalchemy URL `url_text` names, or a GateInputError saying why not; never repeats any of the URL.

    SQLAlchemy splits user:password@host at the first '@', so an unencoded '@' in a password leaves the rest
    of the password in the host name (or makes the port unparseable): a URL with more than one '@', or whose
    parsed password is not what it wrote, is refused, not misread.
    """
    try:
        url = sa.engine.make_url(url_text)
    except (sa.exc.ArgumentError, ValueError, TypeError):  # their messages repeat the URL, password and all
        raise GateInputError("--database_url", f"not a database URL ({_ENCODE}); {_HELP}") from None
    if str(url_text).partition("://")[2].count("@") > 1:
        raise GateInputError("--database_url", f"has more than one '@': {_ENCODE}")
    if url.password is not None and urllib.parse.unquote(_written_password(url_text)) != url.password:
        raise GateInputError("--database_url", f"its password cannot be told from the host: {_ENCODE}")
    return url


def _written_password(url_text):
    """What stands between the first ':' after the scheme and the last '@' (the password, if well formed)."""
    return str(url_text).partition("://")[2].rpartition("@")[0].partition(":")[2]


def _dialect(url_text):
    url = parse_url(url_text)
    backend = url.get_backend_name()
    if backend == "sqlite" and url.get_driver_name() in ("pysqlite", ""):
        return _SQLite(url), shown_url(url)
    if backend in ("postgresql", "postgres") and url.get_driver_name() in ("psycopg", ""):
        return _PostgreSQL(url), shown_url(url)
    raise GateInputError(shown_url(url), f"unsupported database; {_HELP} (PostgreSQL through psycopg 3)")


def _secrets(url_text):
    """Every form of the URL's password worth hiding, longest first: as written (everything between the first
    ':' after the scheme and the last '@'; more than the password when a path holds an '@', which only hides
    more), as parsed, and each piece of it between '@', ':', '/', '?' and '#' (what a misreading parser may
    echo)."""
    written = _written_password(url_text)
    try:
        parsed = sa.engine.make_url(url_text).password
    except (sa.exc.ArgumentError, ValueError, TypeError):
        parsed = None
    pieces = {written, parsed or "", os.environ.get("PGPASSWORD") or ""}
    pieces.update(p for p in re.split(r"[@:/?#]", written) if len(p) >= 3)
    return sorted(filter(None, pieces), key=len, reverse=True)


def redact(text, url_text):
    """`text` with the URL's password (any part of it) and $PGPASSWORD replaced by ***."""
    for secret in _secrets(url_text):
        text = text.replace(secret, "***")
    return text


def _scrubbed(err, url_text):
    """The first line of a driver error, redacted."""
    lines = str(getattr(err, "orig", None) or err).strip().splitlines()
    return redact(lines[0] if lines else type(err).__name__, url_text)


def _tables(connection, mapping, shown):
    """sqlalchemy Table clauses of the mapped tables, after checking every table and column exists."""
    inspector = sa.inspect(connection)
    present = set(inspector.get_table_names()) | set(inspector.get_view_names())
    tables, types = {}, {}
    for table, columns in mapping.document["tables"].items():
        name = columns["name"]
        if name not in present:
            raise GateInputError(shown, f"table {name!r} not found (the CropRun {table} table: set "
                                        f"{mapping.key(table)} in {mapping.path})")
        found = {c["name"]: c["type"] for c in inspector.get_columns(name)}
        for column, real in columns["columns"].items():
            if real not in found:
                raise GateInputError(shown, f"table {name!r} has no column {real!r} (set "
                                            f"{mapping.key(table, column)} in {mapping.path})")
            types[table, column] = found[real]
        tables[table] = sa.table(name, *(sa.column(real) for real in columns["columns"].values()))
    return tables, types


def _column(tables, mapping, table, column):
    return tables[table].c[mapping.column(table, column)]


def _newest_masks(dialect, tables, mapping, table, as_of):
    """(image_id, mask) of each image's newest non-null mask in `table` created up to as_of (ties: larger id)."""
    col = functools.partial(_column, tables, mapping, table)
    created = dialect.created(col("created_at"))
    rank = sa.func.row_number().over(partition_by=col("image_id"), order_by=(created.desc(), col("id").desc()))
    ranked = (sa.select(col("image_id").label("image_id"), col("mask").label("mask"), rank.label("rank"))
              .where(created <= as_of, col("mask").is_not(None)).subquery())
    return sa.select(ranked.c.image_id, ranked.c.mask).where(ranked.c.rank == 1).subquery()


def _unparseable_created_at(connection, dialect, tables, mapping):
    """Refuse rows whose created_at is NULL or not a timestamp: they could be neither kept nor dropped."""
    for table in ("croprun", "cropannotation", "handlabel"):
        col = functools.partial(_column, tables, mapping, table)
        bad = connection.execute(sa.select(col("id")).where(dialect.created(col("created_at")).is_(None))
                                 .order_by(col("id")).limit(5)).scalars().all()
        if bad:
            raise GateInputError(
                f"{mapping.table(table)}.{mapping.column(table, 'created_at')}",
                f"NULL or not a timestamp in row(s) with id {', '.join(map(repr, bad))}: cannot tell whether "
                f"they were created before --as_of")


def _query(dialect, tables, types, mapping, as_of):
    col = functools.partial(_column, tables, mapping)
    source = col("croprun", "source")
    extracted = dialect.source(source, types["croprun", "source"])
    if extracted is None:
        raise GateInputError(f"{mapping.table('croprun')}.{mapping.column('croprun', 'source')}",
                             f"is {types['croprun', 'source']}, not json/jsonb: the export reads source as JSON "
                             f"(map {mapping.key('croprun', 'source')} to a json or jsonb column)")
    is_object, fields = extracted
    annotation = _newest_masks(dialect, tables, mapping, "cropannotation", as_of)
    hand_label = _newest_masks(dialect, tables, mapping, "handlabel", as_of)
    run_image = col("croprun", "image_id")
    joined = (tables["croprun"]
              .outerjoin(tables["image"], col("image", "id") == run_image)
              .outerjoin(annotation, annotation.c.image_id == run_image)
              .outerjoin(hand_label, hand_label.c.image_id == run_image))
    return (sa.select(col("croprun", "id"), col("image", "file"), is_object, *fields, col("croprun", "notes"),
                      annotation.c.mask, hand_label.c.mask)
            .select_from(joined)
            .where(dialect.created(col("croprun", "created_at")) <= as_of)
            .order_by(col("croprun", "id")))


def read_rows(url_text, mapping, as_of):
    """(Database, [CropRunRow] ordered by id) of every CropRun row created up to `as_of` (aware datetime)."""
    dialect, shown = _dialect(url_text)
    try:
        engine = dialect.engine()
        with dialect.read_only(engine.connect()) as connection, connection.begin():
            if dialect.kind == "postgresql":
                name = connection.execute(sa.text("SELECT current_database()")).scalar_one()
            else:
                name = dialect.name
            tables, types = _tables(connection, mapping, shown)
            _unparseable_created_at(connection, dialect, tables, mapping)
            result = connection.execute(_query(dialect, tables, types, mapping, dialect.as_of(as_of))).all()
    except GateInputError:
        raise
    except sa.exc.OperationalError as err:
        raise GateInputError(shown, f"cannot read the database ({_scrubbed(err, url_text)})") from None
    except (sa.exc.DBAPIError, sa.exc.SQLAlchemyError) as err:
        raise GateInputError(shown, f"query failed ({_scrubbed(err, url_text)})") from None
    rows = []
    for values in result:
        row_id, image_file, is_object, *rest = values
        fields, (notes, annotation_mask, hand_label_mask) = rest[:2 * len(SOURCE_FIELDS)], rest[2 * len(SOURCE_FIELDS):]
        source = {f: (dialect.json_type(fields[2 * i]), fields[2 * i + 1]) for i, f in enumerate(SOURCE_FIELDS)}
        rows.append(CropRunRow(row_id, image_file, bool(is_object), source, notes, annotation_mask, hand_label_mask))
    return Database(dialect.kind, name, shown), rows
