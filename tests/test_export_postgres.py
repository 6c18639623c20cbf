"""The CropRun export against a live PostgreSQL 15 server (Debian's binaries, started by the test).

Tagged no-sandbox in tests/BUILD.bazel: the server runs as the `postgres` user and Bazel's
linux-sandbox cannot switch users.
"""

import datetime
import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from croprun_export import database, export
from demo.build_croprun_db import DEMO_AS_OF, fill
from eval.errors import GateInputError
from eval.inputs.snapshot import load_snapshot
from tests import croprun_db
from tests.croprun_db import AS_OF, SOURCE, build, mask_row, run
from tests.postgres import PASSWORD, scratch_server
from tests.support import DEMO_SNAPSHOT, REPO, files_of, scratch_dir


@pytest.fixture(scope="module")
def server():
    with scratch_server() as running:
        yield running


@pytest.fixture
def fresh(server, request):
    """(url of a new empty database, a scratch folder, the database's name)."""
    name = "t_" + request.node.name.lower().translate({ord(c): "_" for c in "[]-./: "})[:50]
    server.psql("postgres", f"CREATE DATABASE {name}")
    return server.url(name), scratch_dir(), name


def test_the_demo_database_on_postgresql_exports_the_committed_snapshot(fresh):
    url, scratch, name = fresh
    fill(sa.create_engine(url, poolclass=sa.pool.NullPool), DEMO_SNAPSHOT, croprun_db.SCHEMA)
    result = croprun_db.export(url, DEMO_SNAPSHOT, scratch / "out", DEMO_SNAPSHOT / "test", version="demo-pg",
                               as_of=DEMO_AS_OF)
    for part in ("flagged", "test"):
        assert files_of(result.path / part) == files_of(DEMO_SNAPSHOT / part), part
    loaded = load_snapshot(result.path)
    assert loaded.exclusions == load_snapshot(DEMO_SNAPSHOT).exclusions
    assert loaded.export["database"] == {"kind": "postgresql", "name": name}
    assert PASSWORD.encode() not in b"".join(files_of(result.path).values())


def test_jsonb_source_is_checked_in_sql_and_row_by_row(fresh):
    url, scratch, name = fresh
    sources = [SOURCE, "oops", [1, 2], {"type": 5}, {"type": "robot"}, {"type": "human", "extra": {"a": 1}},
               {"type": "human", "backend": None}, None, sa.null()]
    build(url, scratch / "media", runs=[run(i + 1, i + 1, source=s) for i, s in enumerate(sources)],
          annotations=[mask_row(i + 1) for i in range(len(sources))])
    result = croprun_db.export(url, scratch / "media", scratch / "out", croprun_db.test_split(scratch / "split"))
    rows = [json.loads(line) for line in (result.path / "flagged" / "croprun.jsonl").read_text().splitlines()]
    assert [r.get("excluded") for r in rows] == [
        None, export.MALFORMED_SOURCE, export.MALFORMED_SOURCE, export.MALFORMED_SOURCE, export.UNKNOWN_TYPE,
        None, None, export.MALFORMED_SOURCE, export.MALFORMED_SOURCE]
    assert rows[5]["source"] == {"type": "human", "backend": None, "deployment": None, "version": None}


def test_timestamptz_boundary_and_newest_annotation(fresh):
    url, scratch, name = fresh
    tick = datetime.timedelta(microseconds=1)
    build(url, scratch / "media",
          runs=[run(1, 1, hours=0), run(2, 2, created_at=AS_OF + tick),
                run(3, 3, created_at=(AS_OF - tick).astimezone(datetime.timezone(datetime.timedelta(hours=-7))))],
          annotations=[mask_row(1, "[]", hours=1), mask_row(1, hours=0), mask_row(3, created_at=AS_OF + tick)],
          hand_labels=[mask_row(3, "[[1, 1, 9, 1, 9, 9]]")])
    result = croprun_db.export(url, scratch / "media", scratch / "out", croprun_db.test_split(scratch / "split"))
    rows = [json.loads(line) for line in (result.path / "flagged" / "croprun.jsonl").read_text().splitlines()]
    assert [(r["id"], r["annotation"]["kind"]) for r in rows] == [("1", "crop_annotation"), ("3", "hand_label")]
    assert (result.path / "flagged" / "masks" / "1.png").read_bytes() == (
        scratch / "media" / "masks" / "img-1.png").read_bytes()


def test_missing_column_names_the_mapping_key(fresh, server):
    url, scratch, name = fresh
    build(url, scratch / "media", runs=[run(1, 1)])
    server.psql(name, "ALTER TABLE crops_cropannotation DROP COLUMN mask")
    with pytest.raises(GateInputError, match="table 'crops_cropannotation' has no column 'mask' "
                                             "\\(set tables.cropannotation.columns.mask in"):
        croprun_db.export(url, scratch / "media", scratch / "out", croprun_db.test_split(scratch / "split"))


def test_a_text_source_column_is_refused_with_the_mapping_key(fresh, server):
    url, scratch, name = fresh
    build(url, scratch / "media", runs=[run(1, 1)])
    server.psql(name, "ALTER TABLE crops_croprun ALTER COLUMN source TYPE text")
    with pytest.raises(GateInputError, match="not json/jsonb.*tables.croprun.columns.source"):
        croprun_db.export(url, scratch / "media", scratch / "out", croprun_db.test_split(scratch / "split"))


def test_the_transaction_is_read_only(fresh):
    url, scratch, name = fresh
    build(url, scratch / "media", runs=[run(1, 1)])
    dialect, _ = database._dialect(url)
    with dialect.read_only(dialect.engine().connect()) as connection, connection.begin():
        with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
            connection.exec_driver_sql("DELETE FROM crops_croprun")


def _cli(flags, env=None):
    return subprocess.run([sys.executable, str(REPO / "tools" / "export_snapshot.py"), *flags], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, check=False)


def test_credentials_are_used_but_never_shown(fresh, server):
    url, scratch, name = fresh
    build(url, scratch / "media", runs=[run(1, 1)], annotations=[mask_row(1)])
    flags = [f"--media_root={scratch / 'media'}", f"--test_split={croprun_db.test_split(scratch / 'split')}",
             "--as_of=2026-11-20T00:00:00Z", f"--output={scratch / 'out'}"]
    wrong = _cli([f"--database_url={url.replace(PASSWORD, 'not-' + PASSWORD)}", "--version=v1", *flags])
    assert wrong.returncode == 2
    assert "password authentication failed" in wrong.stderr and ":***@/" in wrong.stderr
    assert PASSWORD not in wrong.stderr + wrong.stdout
    assert not (scratch / "out" / "v1").exists() and os.listdir(scratch / "out") == []
    gone = _cli([f"--database_url={server.url('t_nonexistent')}", "--version=v1", *flags])
    assert gone.returncode == 2 and 'database "t_nonexistent" does not exist' in gone.stderr
    assert PASSWORD not in gone.stderr
    # libpq's PGPASSWORD: the URL carries no password at all.
    ok = _cli([f"--database_url={server.url(name, password=None)}", "--version=v2", *flags],
              env={"PGPASSWORD": PASSWORD})
    assert ok.returncode == 0, ok.stderr
    assert PASSWORD not in ok.stdout + ok.stderr
    assert PASSWORD.encode() not in b"".join(files_of(scratch / "out" / "v2").values())


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
