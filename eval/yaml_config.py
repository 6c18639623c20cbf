"""Loading a YAML config strictly: safe_load only, duplicate keys refused, a JSON schema enforced.

Config files gate promotions, so a typo must stop the gate instead of silently falling back to a
default: schemas set `additionalProperties: false`, and errors name the file, the key path and, for
unknown keys, the closest known key.
"""

import difflib
import hashlib

import jsonschema
import yaml

from eval.errors import GateInputError


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (plain YAML keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _describe(error):
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = error.message
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, allowed, 1)) else repr(k)
                 for k in unknown]
        message = f"unknown key {', '.join(hints)}; allowed keys: {', '.join(allowed)}"
    return f"{where or '<top level>'}: {message}"


def load_yaml(path, schema):
    """Parse `path` and validate it against `schema`; return (data, sha256 of the file bytes)."""
    try:
        raw = open(path, "rb").read()
    except FileNotFoundError:
        raise GateInputError(path, "file not found") from None
    except OSError as err:
        raise GateInputError(path, f"cannot read ({err.strerror})") from None
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_StrictLoader)
    except UnicodeDecodeError:
        raise GateInputError(path, "not UTF-8 text") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise GateInputError(path, f"YAML error at {at}{problem}") from None
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise GateInputError(path, "; ".join(_describe(e) for e in errors[:5]))
    return data, hashlib.sha256(raw).hexdigest()
