"""Loading a YAML config strictly: safe_load only, duplicate keys refused, a JSON schema enforced.

Config files gate promotions, so a typo must stop the gate instead of silently falling back to a
default: schemas set `additionalProperties: false`, and errors name the file, the key path and, for
unknown keys, the closest known key.
"""

import difflib
import hashlib
import math

import jsonschema
import yaml

from eval.errors import GateInputError
from eval.inputs.safe_paths import read_bytes


_MAX_MESSAGE = 300  # characters of one schema error; jsonschema quotes the whole offending value


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses what a config file never needs and a typo can produce.

    Refused: a mapping with the same key twice (plain YAML keeps the last one), unhashable keys,
    NaN and infinities (NaN passes every `minimum`/`maximum` check), and aliases (`*name`, which can
    expand a small file into an exponentially large document).
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in this file",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a list, set or mapping cannot be a key", key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a finite number", node.start_mark)
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _describe(error):
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = error.message
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted((k for k in error.instance if k not in allowed), key=repr)  # keys may be ints, dates...
        hints = [f"{k!r} (did you mean {m[0]!r}?)"
                 if isinstance(k, str) and (m := difflib.get_close_matches(k, allowed, 1)) else repr(k)
                 for k in unknown]
        message = f"unknown key {', '.join(hints)}; allowed keys: {', '.join(allowed)}"
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return f"{where or '<top level>'}: {message}"


def _yaml_problem(err, text):
    """'line L, column C: problem' of a PyYAML error; reader errors carry a character offset only."""
    mark = getattr(err, "problem_mark", None)
    if isinstance(err, yaml.reader.ReaderError):  # the file was decoded first: position indexes `text`
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        return f"line {line}, column {column}: unacceptable character #x{code:04x} ({err.reason})"
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{at}{getattr(err, 'problem', None) or err}"


def load_yaml(path, schema):
    """Parse `path` and validate it against `schema`; return (data, sha256 of the file bytes)."""
    try:
        raw = read_bytes(path)
    except FileNotFoundError:
        raise GateInputError(path, "file not found") from None
    except OSError as err:
        raise GateInputError(path, f"cannot read ({err.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GateInputError(path, "not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                        key=lambda e: [str(p) for p in e.absolute_path])
        problems = [_describe(e) for e in errors[:5]]
    except yaml.YAMLError as err:
        raise GateInputError(path, f"YAML error at {_yaml_problem(err, text)}") from None
    except RecursionError:
        raise GateInputError(path, "nested too deeply to be a config file") from None
    except ValueError as err:  # PyYAML's scanner lets some errors out raw, e.g. a "\U" escape past U+10FFFF
        raise GateInputError(path, f"YAML error: {err}") from None
    if problems:
        raise GateInputError(path, "; ".join(problems))
    return data, hashlib.sha256(raw).hexdigest()
