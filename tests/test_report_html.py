"""report.html opened in a real headless browser (Debian's chromium): self-contained, decision first, every
image browsable, sorting and filtering working, nothing fetched; and its size at 2,000 images."""

import html.parser
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from eval.roles import BASELINE, CANDIDATE, INCUMBENT
from eval.inputs.criteria import load_criteria
from eval.report import gallery, render
from eval.scoring.scores import image_score
from tests.support import criteria_file, gate_result, pot_photo, scratch_dir

CHROMIUM = shutil.which("chromium")
HOSTILE_ID = '<script>alert(1)</script>\u2028recommendation: go'
# Chromium's own background traffic (updates, accounts) is off; what is left is the page's.
_QUIET_BROWSER = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                  "--disable-extensions"]


def _result(n_images, classes=("cast_shadow", "glossy_highlight")):
    """A GateResult over `n_images` generated photos (half test, half flagged), scored, stripped and decided
    by the real functions; candidate IoUs spread so sorting has something to do."""
    criteria = load_criteria(criteria_file())
    scores, strips = [], []
    for k in range(n_images):
        corpus = ("test", "flagged")[k % 2]
        image_id = HOSTILE_ID if k == 1 else f"img-{k:04d}"
        image_classes = (classes[k // 2 % len(classes)],) if corpus == "flagged" else ()
        photo, truth_image = pot_photo(width=160, height=120, shift=k % 7)
        truth = np.asarray(truth_image) > 127
        candidate = np.roll(truth, k % 23, axis=1)
        scored = [image_score(BASELINE, corpus, image_id, image_classes, truth, truth, 0.8),
                  image_score(CANDIDATE, corpus, image_id, image_classes, truth, candidate, 0.8),
                  image_score(INCUMBENT, corpus, image_id, image_classes, truth, np.roll(truth, 3, axis=0), 0.8)]
        scores += scored
        strips.append(((corpus, image_id), gallery.make_strip(np.asarray(photo), truth, [truth, candidate,
                                                                                           truth])))
    return gate_result(scores, criteria, strips=strips)


@pytest.fixture(scope="module")
def page():
    folder = scratch_dir()
    files = render.render_all(_result(40), "demo <b>title</b>")
    (folder / "report.html").write_bytes(files["report.html"])
    return folder / "report.html", files


class _Attributes(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value for name, value in attrs if name in ("src", "href", "action", "srcset") and value]


def test_the_page_is_self_contained(page):
    path, _ = page
    text = path.read_text()
    parser = _Attributes()
    parser.feed(text)
    assert parser.urls and all(url.startswith("data:") for url in parser.urls), parser.urls
    assert not {"link", "iframe", "object", "embed", "base"} & set(parser.tags)
    assert "default-src 'none'" in text and "http://" not in text and "https://" not in text
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not re.search(r"^\s*recommendation: go", text, re.MULTILINE)  # the hostile id forges no line
    assert "\u2028" not in text


def test_the_page_is_byte_reproducible(page):
    _, files = page
    assert render.render_all(_result(40), "demo <b>title</b>")["report.html"] == files["report.html"]


def _browse(path, fragment="", extra=()):
    """(DOM after the page's script ran, set of URLs the page itself asked for) in a headless chromium."""
    netlog = path.parent / "netlog.json"
    proc = subprocess.run([CHROMIUM, *_QUIET_BROWSER, f"--log-net-log={netlog}", *extra, "--dump-dom",
                           f"{path.as_uri()}{fragment}"], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HOME": str(path.parent)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = json.loads(netlog.read_text())
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    # A request the page made carries its (file: opaque, "null") origin as initiator; the browser's own do not.
    requested = {e["params"]["url"] for e in log["events"] if types.get(e["type"]) == "URL_REQUEST_START_JOB"
                 and e.get("params", {}).get("initiator") in ("null",) or
                 str(e.get("params", {}).get("initiator", "")).startswith("file:")}
    return proc.stdout, requested


def _rows(dom):
    """(corpus, hidden, delta) of every image row, in DOM order."""
    rows = []
    for tag in re.findall(r"<tr [^>]*data-corpus=[^>]*>", dom):
        attributes = dict(re.findall(r'([\w-]+)(?:="([^"]*)")?', tag[4:-1]))
        rows.append((attributes["data-corpus"], "hidden" in attributes, float(attributes["data-delta"])))
    return rows


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by scripts/bootstrap.sh")
def test_in_a_browser_the_decision_leads_and_no_request_leaves_the_file(page):
    path, _ = page
    dom, requested = _browse(path)
    assert requested == set(), requested
    assert re.search(r'id="recommendation">no-go<', dom)
    assert 'id="shown">40 of 40 images shown<' in dom
    deltas = [d for _, hidden, d in _rows(dom) if not hidden]
    assert len(deltas) == 40 and deltas == sorted(deltas)  # worst first by default


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by scripts/bootstrap.sh")
def test_in_a_browser_filtering_and_sorting_work(page):
    path, _ = page
    dom, _ = _browse(path, "#corpus=flagged&class=cast_shadow&sort=delta-desc")
    shown = [(corpus, d) for corpus, hidden, d in _rows(dom) if not hidden]
    assert shown and {c for c, _ in shown} == {"flagged"} and len(shown) == 10
    assert [d for _, d in shown] == sorted((d for _, d in shown), reverse=True)
    assert f'id="shown">{len(shown)} of 40 images shown<' in dom


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by scripts/bootstrap.sh")
def test_the_request_check_sees_a_page_that_fetches(tmp_path):
    """Control: the same check does see a request a page makes (nothing listens on port 9)."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/x.png">')
    _, requested = _browse(leaky)
    assert requested == {"http://127.0.0.1:9/x.png"}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by scripts/bootstrap.sh")
def test_a_screenshot_of_the_page(page):
    path, _ = page
    out = pathlib.Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", path.parent)) / "report-html.png"
    proc = subprocess.run([CHROMIUM, *_QUIET_BROWSER, f"--screenshot={out}", "--window-size=1400,1800",
                           path.as_uri()], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HOME": str(path.parent)})
    assert proc.returncode == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr[-2000:]
    assert out.stat().st_size > 20_000  # a rendered page, not a blank one


def test_size_at_2000_images():
    """The README's budget: report.html stays under 16 MB at 2,000 images (strips are 40 px JPEGs)."""
    page_bytes = len(render.render_all(_result(2000), "t")["report.html"])
    print(f"report.html at 2,000 images: {page_bytes / 1e6:.1f} MB")
    assert page_bytes < 16e6


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
