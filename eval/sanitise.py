"""The ONE sanitiser for user-derived strings the gate prints (stdout, stderr) or renders (Markdown, CSV).

Ids, notes, file names, dataset versions and error messages that quote them are user data. Printed or
rendered raw, a line break in them forges a line (`recommendation: go`) for whoever splits the output
into lines, a bidi override or zero-width character makes a name read as another, a terminal escape
rewrites the console, and a cell starting with `=` runs as a spreadsheet formula. Every such string
goes through one of these three functions on its way out:

- `text(value)`: one printable line for the console, logs and CSV. Every line break any splitter
  honours (\\n \\r \\v \\f \\x1c \\x1d \\x1e \\x85 U+2028 U+2029, i.e. everything str.splitlines() splits on)
  and other whitespace controls (tab, \\x1f) become a space; every other control or format character
  (C0, DEL, C1, bidi embeddings/overrides/isolates, zero-width, BOM, soft hyphen, tags, lone surrogates)
  becomes its visible escape (`\\x1b`, `\\u202e`), so nothing invisible survives and nothing is silently lost.
- `markdown(value)`: `text(value)` escaped for inline Markdown (a table cell, a list item, a heading):
  HTML entities and the characters that start Markdown syntax are escaped.
- `csv_cell(value)`: a CSV cell. Strings are `text()`-ed and, when they begin (after any leading spaces)
  with `=`, `+`, `-` or `@`, prefixed with `'` so spreadsheets read them as text (OWASP's rule; tab and CR
  are already spaces). Numbers, booleans and None pass through unchanged: a negative number stays a number.

Machine-readable records that escape everything themselves (metrics.json, written with ensure_ascii) do
not need it. The result of each function is stable: applying it again changes nothing for `text`.
"""

import html
import re
import unicodedata

# Control (Cc), format (Cf), line/paragraph separators (Zl, Zp) and lone surrogates (Cs).
_NEUTRALISED = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs"))
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")  # only these can be neutralised; ASCII text is a fast path
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]|~])")  # emphasis, code, links, tables, strikethrough
_FORMULA_START = ("=", "+", "-", "@")


def _neutralise(match):
    char = match.group()
    if unicodedata.category(char) not in _NEUTRALISED:
        return char
    if char.isspace():
        return " "
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")


def text(value):
    """`value` as one printable line: no line break, control or format character survives (see module doc)."""
    return _NOT_PLAIN_ASCII.sub(_neutralise, str(value))


def markdown(value):
    """`value` as inline Markdown text: `text()`, then HTML entities and Markdown syntax escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text(value), quote=False))


def csv_cell(value):
    """A CSV cell: strings `text()`-ed and guarded against formula injection; other values unchanged."""
    if not isinstance(value, str):
        return value
    cell = text(value)
    return f"'{cell}" if cell.lstrip(" ").startswith(_FORMULA_START) else cell
