"""report.html: the run as ONE self-contained page a release manager opens from a ticket.

Everything is inline (CSS, a few lines of script, every image as a data: URI) and the page's Content Security
Policy forbids fetching anything, so it renders the same offline, attached to a ticket or mailed. It leads
with the decision and the deciding criterion, then the criteria table with intervals, the forest plot, and
every evaluated image as a row (IoU per backend, Δ IoU, a thumbnail strip) that the reader sorts by Δ IoU and
filters by corpus and failure class; the gallery's full panels close it.

Every value printed passes eval.sanitise.text (jinja's `finalize`) and then HTML escaping (autoescape), so no
id, note or file name can inject markup or forge a line. The bytes depend only on the result: rows in
(corpus, id) order, thumbnails encoded deterministically.
"""

import base64

from eval import roles, sanitise
from eval.decision.decide import recommendation_line
from eval.report import gallery as gallery_lib
from eval.roles import BASELINE, CANDIDATE


def _base64(data):
    return base64.b64encode(data).decode("ascii")


def _images(result):
    """One entry per evaluated image: its IoU per backend, Δ (candidate − rembg) and thumbnail strip."""
    strips = dict(result.strips)
    by_image = {}
    for score in result.scores:
        by_image.setdefault((score.corpus, score.image_id), {})[score.source_backend] = score
    images = []
    for (corpus, image_id), scores in sorted(by_image.items()):
        delta = scores[CANDIDATE].mask_iou - scores[BASELINE].mask_iou
        strip = strips.get((corpus, image_id))
        images.append({"corpus": corpus, "image_id": image_id, "classes": scores[CANDIDATE].failure_classes,
                       "iou": {b: s.mask_iou for b, s in scores.items()}, "delta": delta, "delta_sort": repr(delta),
                       "strip": strip and _base64(strip)})
    return images


def report_html(result, title, environment, rule_text, forests, gallery):
    """report.html's bytes. eval.report.render supplies its template `environment` (autoescaping), the decision
    rule's paragraph, the forest plots as [(reference, PNG)] and the gallery as [(heading, [(GalleryCase, PNG)])]."""
    environment.finalize = lambda value: sanitise.text(value) if isinstance(value, str) else value
    images = _images(result)
    decision = result.decision
    text = environment.get_template("report.html.j2").render(
        title=title, result=result, decision=decision, prov=result.provenance, rule_text=rule_text,
        forests=[(reference, _base64(png)) for reference, png in forests], baseline=BASELINE, images=images,
        backends=roles.ordered({s.source_backend for s in result.scores}),
        corpora=sorted({i["corpus"] for i in images}), classes=sorted({c for i in images for c in i["classes"]}),
        n_not_evaluated=len(result.not_evaluated), strip_height=gallery_lib.STRIP_HEIGHT,
        gallery=[(heading, [{"corpus": case.corpus, "image_id": case.image_id, "delta": case.delta,
                             "png": _base64(png)} for case, png in cases]) for heading, cases in gallery],
        recommendation_line=recommendation_line(decision.recommendation, decision.deciding.id,
                                                decision.deciding.summary))
    return text.encode()
