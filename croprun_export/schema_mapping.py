"""Which tables and columns hold the CropRun data: Django's names by default, remappable in a YAML file.

The service owns the real schema, so nothing in the export names a table or column directly: it asks
the mapping, and every error about a missing table or column names the mapping key to change.
"""

import copy
import dataclasses
import hashlib
import json

from eval.inputs.yaml_config import load_yaml

# Logical table -> its logical columns. `id` orders rows and breaks ties between equal created_at.
COLUMNS = {
    "image": ("id", "file"),
    "croprun": ("id", "image_id", "source", "notes", "created_at"),
    "cropannotation": ("id", "image_id", "mask", "created_at"),
    "handlabel": ("id", "image_id", "mask", "created_at"),
}
DEFAULTS = {
    "tables": {table: {"name": f"crops_{table}", "columns": {c: c for c in columns}}
               for table, columns in COLUMNS.items()},
    "source_types": ["human", "automatic"],
}

_IDENTIFIER = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_$]{0,62}\\Z"}
_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "tables": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                table: {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": _IDENTIFIER,
                        "columns": {"type": "object", "additionalProperties": False,
                                    "properties": {c: _IDENTIFIER for c in columns}},
                    },
                } for table, columns in COLUMNS.items()
            },
        },
        "source_types": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string", "minLength": 1}},
    },
}


@dataclasses.dataclass(frozen=True)
class SchemaMapping:
    """The resolved mapping; `sha256` digests it (not the file), so comments and key order don't count."""

    path: str
    document: dict  # DEFAULTS with the file's keys applied
    sha256: str

    def table(self, table):
        return self.document["tables"][table]["name"]

    def column(self, table, column):
        return self.document["tables"][table]["columns"][column]

    @property
    def source_types(self):
        return tuple(self.document["source_types"])

    def key(self, table, column=None):
        """The mapping key a user edits to rename this table or column, e.g. tables.croprun.columns.source."""
        return f"tables.{table}.name" if column is None else f"tables.{table}.columns.{column}"


def load_mapping(path):
    """Read the mapping file at `path` (strict schema: misspelt keys are refused with a suggestion)."""
    data, _ = load_yaml(path, _SCHEMA)
    document = copy.deepcopy(DEFAULTS)
    for table, override in data.get("tables", {}).items():
        document["tables"][table]["name"] = override.get("name", document["tables"][table]["name"])
        document["tables"][table]["columns"].update(override.get("columns", {}))
    if "source_types" in data:
        document["source_types"] = list(data["source_types"])
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
    return SchemaMapping(str(path), document, digest)
