"""User-written text cannot inject Markdown or HTML into the report."""

import sys

import pytest

from eval.report.render import markdown_text


@pytest.mark.parametrize("raw, rendered", [
    ("<b>bold</b>", "&lt;b&gt;bold&lt;/b&gt;"),
    ("a | b", "a \\| b"),
    ("**x** _y_ `z`", "\\*\\*x\\*\\* \\_y\\_ \\`z\\`"),
    ("![img](http://x)", "!\\[img\\](http://x)"),
    ("line\nbreak", "line break"),
    ("&amp;", "&amp;amp;"),
])
def test_markdown_text_escapes(raw, rendered):
    assert markdown_text(raw) == rendered


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
