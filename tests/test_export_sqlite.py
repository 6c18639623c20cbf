"""The CropRun export on real SQLite files: the query, JSON handling, masks, bad input, immutability."""

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from croprun_export import database, export
from croprun_export.schema_mapping import load_mapping
from eval.errors import GateInputError
from eval.inputs import images, snapshot, volumes
from tests import croprun_db
from tests.croprun_db import SOURCE, before, build, mask_row, run
from tests.support import REPO, files_of


@pytest.fixture
def world(tmp_path):
    """(url, media, output, test split) of an empty SQLite database file's future location."""
    return (f"sqlite:///{tmp_path / 'croprun.sqlite'}", tmp_path / "media", tmp_path / "out",
            croprun_db.test_split(tmp_path / "split"))


def _rows(result):
    lines = (result.path / "flagged" / "croprun.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _manifest(result):
    import yaml

    return yaml.safe_load((result.path / "snapshot.yaml").read_text())


def test_every_row_up_to_as_of_with_its_newest_ground_truth(world):
    url, media, output, split = world
    build(url, media,
          runs=[run(10, 1), run(2, 2), run(3, 3), run(4, 4, hours=-1),  # 4: created after as_of
                run(5, 5, source={**SOURCE, "type": "automatic"}), run(6, 6)],
          annotations=[mask_row(1, "[]", hours=30), mask_row(1, hours=20),  # newest wins
                       mask_row(3, hours=-2),  # created after as_of: not seen
                       mask_row(5)],
          hand_labels=[mask_row(1, "[]", hours=10),  # a CropAnnotation outranks even a newer hand label
                       mask_row(2, "[]"), mask_row(2),  # equal created_at: the larger id wins
                       mask_row(3, "[]", hours=40)])
    result = croprun_db.export(url, media, output, split)
    rows = _rows(result)
    assert [r["id"] for r in rows] == ["2", "3", "5", "6", "10"]  # numeric id order; 4 is after as_of
    by_id = {r["id"]: r for r in rows}
    assert by_id["10"]["annotation"] == {"kind": "crop_annotation", "mask": "masks/10.png"}
    assert by_id["2"]["annotation"] == {"kind": "hand_label", "mask": "masks/2.png"}
    assert by_id["3"]["annotation"]["kind"] == "hand_label"
    assert by_id["6"]["annotation"] is None
    assert (result.path / "flagged" / "masks" / "10.png").read_bytes() == (media / "masks" / "img-1.png").read_bytes()
    assert not np.asarray(Image.open(result.path / "flagged" / "masks" / "3.png")).any()  # the empty polygon list
    assert by_id["10"]["source"] == SOURCE and by_id["10"]["image"] == "images/10.png"
    loaded = snapshot.load_snapshot(result.path)
    assert [i.image_id for i in loaded.items if i.corpus == "flagged"] == ["10", "2", "3"]
    assert result.excluded == {snapshot.NO_ANNOTATION: 1, snapshot.NOT_HUMAN: 1}
    assert (result.rows, result.flagged, result.sha256) == (5, 3, loaded.sha256)
    exported = _manifest(result)["export"]
    assert exported["database"] == {"kind": "sqlite", "name": "croprun.sqlite"}
    assert exported["as_of"] == "2026-11-20T00:00:00Z" and exported["croprun_rows"] == 5
    assert exported["excluded_rows"] == result.excluded
    assert exported["schema_mapping_sha256"] == load_mapping(croprun_db.SCHEMA).sha256


def test_as_of_boundary_and_timestamp_spellings(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1, hours=0), run(2, 2), run(3, 3)])
    with sqlite3.connect(tmp_path / "croprun.sqlite") as connection:  # other writers' spellings of UTC
        connection.execute("UPDATE crops_croprun SET created_at = '2026-11-19T23:00:00+00:00' WHERE id = 2")
        connection.execute("UPDATE crops_croprun SET created_at = '2026-11-20 00:30:00+01:00' WHERE id = 3")
    assert [r["id"] for r in _rows(croprun_db.export(url, media, output, split))] == ["1", "2", "3"]
    earlier = croprun_db.export(url, media, output, split, version="v2", as_of=before(0.5))
    assert [r["id"] for r in _rows(earlier)] == ["2", "3"]


def test_same_database_and_as_of_give_the_same_bytes(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(i, i, notes=f"note {i} ✓") for i in range(1, 6)],
          annotations=[mask_row(i) for i in range(1, 4)], hand_labels=[mask_row(4)])
    first = croprun_db.export(url, media, output, split)
    second = croprun_db.export(url, media, tmp_path / "elsewhere", split)
    assert first.sha256 == second.sha256
    assert files_of(first.path) == files_of(second.path)
    again = croprun_db.export(url, media, output, split)  # the same version again: nothing to do
    assert (again.created, again.sha256) == (False, first.sha256)


def test_an_existing_version_with_other_content_is_refused(world):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1), run(2, 2, hours=1)], annotations=[mask_row(1), mask_row(2, hours=0.5)])
    first = croprun_db.export(url, media, output, split, as_of=before(0))
    before_bytes = files_of(first.path)
    with pytest.raises(GateInputError, match="already exists with different content.*immutable"):
        croprun_db.export(url, media, output, split, as_of=before(3))
    assert files_of(first.path) == before_bytes
    assert sorted(os.listdir(output)) == ["v1"]  # no staging folder left behind


def test_malformed_source_and_unknown_type_are_excluded_with_their_reason(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(i, i) for i in range(1, 8)], annotations=[mask_row(i) for i in range(1, 8)])
    broken = {2: "{not json", 3: "[1, 2]", 4: '{"type": 5, "backend": "rembg"}', 5: '{"type": "robot"}',
              6: '{"type": "human", "backend": "rembg"}', 7: None}
    with sqlite3.connect(tmp_path / "croprun.sqlite") as connection:
        for row_id, text in broken.items():
            connection.execute("UPDATE crops_croprun SET source = ? WHERE id = ?", (text, row_id))
    result = croprun_db.export(url, media, output, split)
    rows = {r["id"]: r for r in _rows(result)}
    assert [rows[str(i)].get("excluded") for i in range(1, 8)] == [
        None, export.MALFORMED_SOURCE, export.MALFORMED_SOURCE, export.MALFORMED_SOURCE, export.UNKNOWN_TYPE,
        None, export.MALFORMED_SOURCE]
    assert rows["5"]["source"]["type"] == "robot"  # kept for the record
    assert rows["6"]["source"] == {"type": "human", "backend": "rembg", "deployment": None, "version": None}
    assert rows["2"]["source"] == dict.fromkeys(("type", "backend", "deployment", "version"))
    assert result.excluded == {export.MALFORMED_SOURCE: 4, export.UNKNOWN_TYPE: 1}
    loaded = snapshot.load_snapshot(result.path)  # the gate counts them exactly so
    assert sorted((e.row_id, e.reason) for e in loaded.exclusions)[:2] == [
        ("2", export.MALFORMED_SOURCE), ("3", export.MALFORMED_SOURCE)]
    assert [i.image_id for i in loaded.items if i.corpus == "flagged"] == ["1", "6"]


def test_source_text_that_is_not_utf8_is_malformed_not_a_crash(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1), run(2, 2)], annotations=[mask_row(1), mask_row(2)])
    with sqlite3.connect(tmp_path / "croprun.sqlite") as connection:
        connection.execute("UPDATE crops_croprun SET source = CAST(? AS TEXT) WHERE id = 2",
                           (b'{"type": "human", "backend": "r\xffembg"}',))
    result = croprun_db.export(url, media, output, split)
    assert result.excluded == {export.MALFORMED_SOURCE: 1}


def _rle(mask):
    from pycocotools import mask as coco

    encoded = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


def test_rle_and_polygon_ground_truth_become_mask_pngs(world):
    url, media, output, split = world
    photo_h, photo_w = 72, 96  # pot_photo's size
    rectangle = np.zeros((photo_h, photo_w), dtype=bool)
    rectangle[10:30, 20:50] = True
    uncompressed = {"size": [photo_h, photo_w],
                    "counts": [photo_h * photo_w - 1, 1]}  # column-major: only the last pixel is set
    polygon = [[20, 10, 50, 10, 50, 30, 20, 30]]
    build(url, media, runs=[run(1, 1), run(2, 2), run(3, 3)],
          annotations=[mask_row(1, json.dumps(_rle(rectangle))), mask_row(2, json.dumps(uncompressed))],
          hand_labels=[mask_row(3, json.dumps(polygon))])
    result = croprun_db.export(url, media, output, split)
    read = lambda i: images.load_mask(result.path / "flagged" / "masks" / f"{i}.png", (photo_w, photo_h))  # noqa: E731
    assert np.array_equal(read(1), rectangle)
    assert read(2).sum() == 1 and read(2)[-1, -1]
    polygon_mask = read(3)
    assert polygon_mask[11:29, 21:49].all() and not polygon_mask[:8].any() and not polygon_mask[:, :18].any()
    assert abs(int(polygon_mask.sum()) - 30 * 20) <= 2 * (30 + 20) + 4  # pycocotools' edge convention


@pytest.mark.parametrize("value, problem", [
    ({"size": [10, 10], "counts": [100]}, "differs from the photo"),
    ({"size": [72, 96], "counts": [5, 5]}, "add up to 10 pixels"),
    ({"size": [72, 96], "counts": "0~"}, "outside COCO's alphabet"),
    ({"size": [72, 96], "counts": "P"}, "ends in the middle"),
    ([[0, 0, 1e12, 0, 5, 5]], "far outside"),
    ([[0, 0, 1]], "at least 3"),
    ("{broken", "malformed JSON"),
    ("masks/nowhere.png", "file not found"),
    ("../outside.png", "escapes"),
])
def test_unusable_ground_truth_is_refused_with_the_list(world, value, problem):
    url, media, output, split = world
    text = value if isinstance(value, str) else json.dumps(value)
    build(url, media, runs=[run(1, 1), run(2, 2)], annotations=[mask_row(1), mask_row(2, text)])
    with pytest.raises(GateInputError, match="1 row\\(s\\) of the flagged corpus") as caught:
        croprun_db.export(url, media, output, split)
    assert problem in str(caught.value) and "row 2: crop annotation" in str(caught.value)
    assert "--exclude_missing_truth" in str(caught.value)
    assert not output.exists() or os.listdir(output) == []  # no partial snapshot


def test_exclude_missing_truth_counts_them_instead(world):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1), run(2, 2), run(3, 3)],
          annotations=[mask_row(1), mask_row(2, "masks/gone.png")], hand_labels=[mask_row(3)])
    (media / "photos" / "img-3.png").unlink()
    result = croprun_db.export(url, media, output, split, exclude_missing_truth=True)
    assert result.excluded == {export.TRUTH_UNUSABLE: 1, export.PHOTO_UNUSABLE: 1}
    assert result.flagged == 1
    assert _manifest(result)["export"]["exclude_missing_truth"] is True


def test_missing_table_or_column_names_the_mapping_key(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1)])
    with sqlite3.connect(tmp_path / "croprun.sqlite") as connection:
        connection.execute("ALTER TABLE crops_croprun RENAME COLUMN notes TO comment")
    with pytest.raises(GateInputError, match="no column 'notes' \\(set tables.croprun.columns.notes in"):
        croprun_db.export(url, media, output, split)
    with sqlite3.connect(tmp_path / "croprun.sqlite") as connection:
        connection.execute("DROP TABLE crops_handlabel")
    remap = tmp_path / "schema.yaml"
    remap.write_text("tables:\n  croprun:\n    columns: {notes: comment}\n")
    with pytest.raises(GateInputError, match="table 'crops_handlabel' not found.*tables.handlabel.name"):
        croprun_db.export(url, media, output, split, schema=remap)


def test_a_remapped_schema_exports_the_same_corpus(tmp_path):
    split = croprun_db.test_split(tmp_path / "split")
    remap = tmp_path / "schema.yaml"
    remap.write_text("tables:\n  croprun:\n    name: runs\n    columns: {source: origin, created_at: made}\n"
                     "  handlabel: {name: labels, columns: {mask: polygon}}\n")
    results = []
    for name, schema in (("django", croprun_db.SCHEMA), ("remapped", remap)):
        url = f"sqlite:///{tmp_path / name}.sqlite"
        build(url, tmp_path / "media", runs=[run(1, 1), run(2, 2, notes="x")], annotations=[mask_row(1)],
              hand_labels=[mask_row(2)], schema=schema)
        results.append(croprun_db.export(url, tmp_path / "media", tmp_path / name, split, schema=schema))
    assert files_of(results[0].path / "flagged") == files_of(results[1].path / "flagged")
    assert _manifest(results[0])["export"]["schema_mapping_sha256"] != _manifest(results[1])["export"][
        "schema_mapping_sha256"]


def test_misspelt_mapping_key_is_refused_with_a_suggestion(tmp_path):
    remap = tmp_path / "schema.yaml"
    remap.write_text("tables:\n  croprun:\n    columns: {creatd_at: made}\n")
    with pytest.raises(GateInputError, match="did you mean 'created_at'"):
        load_mapping(remap)


@pytest.mark.parametrize("url, problem", [
    ("sqlite:///{tmp}/absent.sqlite", "database file not found"),
    ("sqlite:///{tmp}/garbage.sqlite", "file is not a database"),
    ("mysql://root:hunter2@localhost/crops", "unsupported database"),
    ("not a url at all", "not a database URL"),
])
def test_unreachable_database_is_an_input_error(world, tmp_path, url, problem):
    _, media, output, split = world
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not sqlite" * 100)
    media.mkdir()
    with pytest.raises(GateInputError, match=problem) as caught:
        croprun_db.export(url.format(tmp=tmp_path), media, output, split)
    assert "hunter2" not in str(caught.value)
    assert not (tmp_path / "absent.sqlite").exists()  # read-only: never creates the file
    assert not output.exists() or os.listdir(output) == []


def test_the_sqlite_connection_is_read_only(world, tmp_path):
    url, media, _, _ = world
    build(url, media, runs=[run(1, 1)])
    dialect, _ = database._dialect(url)
    with dialect.read_only(dialect.engine().connect()) as connection:
        with pytest.raises(sa.exc.OperationalError, match="readonly|read-only|query_only"):
            connection.exec_driver_sql("DELETE FROM crops_croprun")


def test_unparseable_created_at_is_refused_not_dropped(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1), run(2, 2)])
    with sqlite3.connect(tmp_path / "croprun.sqlite") as connection:
        connection.execute("UPDATE crops_croprun SET created_at = 'last tuesday' WHERE id = 2")
    bad = "crops_croprun.created_at: NULL or not a timestamp in row\\(s\\) with id 2"
    with pytest.raises(GateInputError, match=bad):
        croprun_db.export(url, media, output, split)


def test_media_and_ground_truth_from_a_volume(world, tmp_path):
    url, _, output, split = world
    volume = tmp_path / "volumes" / "media-vol"
    build(url, volume / "crops", runs=[run(1, 1)], annotations=[mask_row(1)])
    opened = []

    def open_store(name):  # the gate's VolumeStore interface, over a local folder
        opened.append(name)
        return volumes.LocalDirStore(tmp_path / "volumes" / name)

    result = croprun_db.export(url, "modal://media-vol/crops", output, split, open_store=open_store)
    assert opened == ["media-vol"] and result.flagged == 1
    assert (result.path / "flagged" / "images" / "1.png").read_bytes() == (
        volume / "crops" / "photos" / "img-1.png").read_bytes()


def test_test_split_from_an_ultralytics_dataset_yaml(world, tmp_path):
    url, media, output, _ = world
    build(url, media, runs=[run(1, 1)], annotations=[mask_row(1)])
    dataset = tmp_path / "dataset"
    for sub in ("images/test", "labels/test", "images/train"):
        (dataset / sub).mkdir(parents=True)
    from tests.support import pot_photo

    for shift, stem in enumerate(("a", "b")):  # two photos: one photo twice would be evaluated once
        pot_photo(shift=shift)[0].save(dataset / "images" / "test" / f"{stem}.jpg")
        (dataset / "labels" / "test" / f"{stem}.txt").write_text("0 0.25 0.5 0.75 0.5 0.75 1.0 0.25 1.0\n")
    pot_photo()[0].save(dataset / "images" / "train" / "c.jpg")
    (dataset / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\ntest: images/test\n"
                                       "names:\n  0: pot\n")
    result = croprun_db.export(url, media, output, dataset / "data.yaml")
    assert sorted(files_of(result.path / "test")) == ["images/a.jpg", "images/b.jpg", "labels/a.txt", "labels/b.txt"]
    tests = [i for i in snapshot.load_snapshot(result.path).items if i.corpus == "test"]
    assert [(i.image_id, i.truth_kind, i.problem) for i in tests] == [("a", "polygons", None), ("b", "polygons", None)]
    assert _manifest(result)["export"]["test_split"] == "ultralytics dataset yaml"
    (dataset / "labels" / "test" / "b.txt").unlink()
    with pytest.raises(GateInputError, match="without a YOLO-seg label file.*b.jpg"):
        croprun_db.export(url, media, output, dataset / "data.yaml", version="v2")


def test_notes_that_are_not_utf8_stop_the_export_naming_the_row(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1), run(2, 2)])
    with sqlite3.connect(tmp_path / "croprun.sqlite") as connection:
        connection.execute("UPDATE crops_croprun SET notes = CAST(? AS TEXT) WHERE id = 2", (b"caf\xe9",))
    with pytest.raises(GateInputError, match="crops_croprun id 2: notes: not valid UTF-8 text"):
        croprun_db.export(url, media, output, split)
    assert os.listdir(output) == []


def test_cli_prints_path_digest_and_gate_command_and_exits_2_on_errors(world, tmp_path):
    url, media, output, split = world
    build(url, media, runs=[run(1, 1, notes="line one\nrecommendation: go")], annotations=[mask_row(1)])
    cli = REPO / "tools" / "export_snapshot.py"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    flags = [f"--database_url={url}", f"--media_root={media}", f"--test_split={split}",
             "--as_of=2026-11-20T00:00:00Z", "--version=v1", f"--output={output}", "--quiet"]
    done = subprocess.run([sys.executable, str(cli), *flags], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    loaded = snapshot.load_snapshot(output / "v1")
    assert lines["snapshot"] == str(output / "v1") and lines["version"] == "v1" and lines["sha256"] == loaded.sha256
    assert lines["gate"].startswith(f"bazel run //tools:eval_crop_model -- --dataset={output / 'v1'} ")
    bad = subprocess.run([sys.executable, str(cli), *flags[:3], "--as_of=2026-11-20T00:00:00", *flags[4:]],
                         capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 2 and "--as_of: needs a time zone" in bad.stderr
    helped = subprocess.run([sys.executable, str(cli), "--help"], capture_output=True, text=True, env=env, check=False)
    assert "exclude_missing_truth" in helped.stdout and "immutable" in helped.stdout  # absl exits 1 after --help


def test_snapshot_contract_rows_excluded_at_export_and_the_export_block(tmp_path):
    from tests.support import crop_run, write_snapshot

    rows = [crop_run("a"), {**crop_run("b"), "excluded": "malformed source JSON"}]
    root = write_snapshot(tmp_path / "s", rows=rows)
    loaded = snapshot.load_snapshot(root)
    assert [(e.row_id, e.reason) for e in loaded.exclusions] == [("b", "malformed source JSON")]
    assert loaded.export is None  # snapshots without an export block stay valid
    manifest = (root / "snapshot.yaml").read_text()
    (root / "snapshot.yaml").write_text(manifest + "export: {database: {kind: sqlite, name: x}, as_of: now, "
                                        "schema_mapping_sha256: nothex, croprun_rows: 2, excluded_rows: {}}\n")
    with pytest.raises(GateInputError, match="export.schema_mapping_sha256"):
        snapshot.load_snapshot(root)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_rows_of_one_image_are_exported_as_rows_and_evaluated_as_one_photo(world):
    """Issue 8.4: one photo flagged twice stays two rows in the snapshot; the gate's loader merges them."""
    url, media, output, split = world
    build(url, media, runs=[run(1, 1, notes="glossy"), run(2, 1, notes="cast shadow"), run(3, 2)],
          annotations=[mask_row(1), mask_row(2)])
    result = croprun_db.export(url, media, output, split)
    assert [r["id"] for r in _rows(result)] == ["1", "2", "3"]
    loaded = snapshot.load_snapshot(result.path)
    assert [(e.row_id, e.reason) for e in loaded.duplicates] == [("2", "duplicate of flagged image 1")]
    assert [[row[0] for row in i.rows] for i in loaded.items if i.corpus == "flagged"] == [["1", "2"], ["3"]]
    assert result.flagged == 2 and result.excluded == {}
