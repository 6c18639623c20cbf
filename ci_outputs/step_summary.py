"""The short Markdown a CI job shows on its summary page (GitHub Actions' $GITHUB_STEP_SUMMARY).

Decision and deciding criterion first, then the criteria table: what a reviewer needs before opening the
report. GitHub refuses a step summary over 1 MiB; this one is capped at MAX_BYTES, far below, by leaving out
table rows (and saying how many) rather than cutting a row in half. Every user-derived string is sanitised for
Markdown.
"""

from eval import sanitise

MAX_BYTES = 64 * 1024
_STATUS = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "❔ inconclusive",
           "insufficient_data": "⚠️ insufficient data"}


def _number(value):
    return "" if value is None else f"{value:.4f}"


def _interval(result):
    interval = result.get("interval")
    return "" if not interval else f"[{interval['lower']:.4f}, {interval['upper']:.4f}]"


def _row(result):
    if result.get("yes_no"):
        observed, threshold = ("yes" if result["status"] == "pass" else "no"), "yes"
    else:
        observed, threshold = _number(result["observed"]), _number(result["threshold"])
    cells = [sanitise.markdown(result["id"]), _STATUS.get(result["status"], sanitise.markdown(result["status"])),
             observed, _interval(result), threshold, str(result["n_images"])]
    return "| " + " | ".join(cells) + " |"


def step_summary(metrics, report_location):
    """The Markdown text (at most MAX_BYTES when encoded) for one run; `report_location` names the report."""
    provenance = metrics["provenance"]
    deciding = metrics["deciding_criterion"]
    head = [
        f"## Promotion gate: **{metrics['recommendation']}**",
        "",
        f"Checkpoint {sanitise.markdown(provenance['checkpoint']['name'])} "
        f"(sha256 `{provenance['checkpoint']['sha256'][:16]}…`) on dataset "
        f"{sanitise.markdown(provenance['dataset']['version'])}.",
        f"Deciding criterion {sanitise.markdown(deciding['id'])}: {sanitise.markdown(deciding['summary'])}",
    ]
    if provenance["criteria"]["example_values"]:
        head.append("> **Warning:** the criteria file is marked `example_values: true`: not valid for a promotion.")
    head += ["", "| criterion | status | observed | interval | threshold | n |", "|---|---|---|---|---|---|"]
    tail = ["", f"Full report: {sanitise.markdown(report_location)}", ""]
    rows = [_row(r) for r in metrics["criteria_results"]]
    budget = MAX_BYTES - len("\n".join(head + tail).encode()) - 200  # room for the "rows left out" line
    kept = []
    for row in rows:
        budget -= len(row.encode()) + 1
        if budget < 0:
            break
        kept.append(row)
    if len(kept) < len(rows):
        kept.append(f"| … {len(rows) - len(kept)} more criteria in the report | | | | | |")
    return "\n".join(head + kept + tail)
