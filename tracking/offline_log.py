"""Reading a W&B run back from its local files (run-<id>.wandb), to check what a tracked run logged.

wandb 0.31 writes the run as a LevelDB-format log of `wandb.proto.wandb_internal_pb2.Record` messages
and no longer ships a Python reader for it (the old wandb.sdk.internal.datastore), so this is one:
a 7-byte file header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each with a
header of CRC-32 (of type byte + data), length and type (FULL, or FIRST/MIDDLE/LAST of a split record).
"""

import json
import pathlib
import struct
import zlib

from eval.inputs.safe_paths import read_bytes

_FILE_HEADER = struct.Struct("<4sHB")
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data, path):
    ident, magic, version = _FILE_HEADER.unpack_from(data)
    if (ident, magic, version) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path}: not a W&B run log (header {data[:7]!r})")
    position, pending = _FILE_HEADER.size, None
    while position + _CHUNK_HEADER.size <= len(data):
        left = _BLOCK - position % _BLOCK
        if left < _CHUNK_HEADER.size:  # a block's zero trailer
            position += left
            continue
        crc, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        if kind == 0 and length == 0:  # zero padding to the end of the block
            position += left
            continue
        chunk = data[position + _CHUNK_HEADER.size:position + _CHUNK_HEADER.size + length]
        if len(chunk) != length or zlib.crc32(bytes([kind]) + chunk) != crc:
            raise ValueError(f"{path}: corrupt record at byte {position}")
        position += _CHUNK_HEADER.size + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind in (_MIDDLE, _LAST) and pending is not None:
            pending += chunk
            if kind == _LAST:
                yield pending
                pending = None


def records(path):
    """Every Record of the run log at `path`, in order."""
    from wandb.proto import wandb_internal_pb2

    data = read_bytes(path)
    for payload in _payloads(data, path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def _items(items):
    """{key: decoded JSON value} of ConfigItem/SummaryItem/HistoryItem messages, nested keys as nested dicts."""
    found = {}
    for item in items:
        *parents, last = list(item.nested_key) or [item.key]
        target = found
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = json.loads(item.value_json)
    return found


def read_run(run_dir):
    """What a run directory's log holds: config, final summary, history keys, artifacts and the run's names."""
    logs = sorted(pathlib.Path(run_dir).glob("run-*.wandb"))
    if len(logs) != 1:
        raise ValueError(f"{run_dir}: expected one run-*.wandb file, found {len(logs)}")
    found = {"config": {}, "summary": {}, "history": {}, "artifacts": [], "run": None}
    for record in records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["run"] = {"project": record.run.project, "entity": record.run.entity,
                            "display_name": record.run.display_name, "tags": list(record.run.tags)}
            found["config"].update(_items(record.run.config.update))
        elif kind == "config":
            found["config"].update(_items(record.config.update))
        elif kind == "summary":
            found["summary"].update(_items(record.summary.update))
        elif kind == "history":
            found["history"].update({k: v for k, v in _items(record.history.item).items() if not k.startswith("_")})
        elif kind == "artifact":
            a = record.artifact
            found["artifacts"].append({"name": a.name, "type": a.type, "metadata": json.loads(a.metadata or "{}"),
                                       "files": sorted(entry.path for entry in a.manifest.contents)})
    return found
