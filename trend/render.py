"""The trend report as files: trend.md and plots/*.png, rendered from trend.compare's values (bytes)."""

import re

from eval.errors import GateInputError
from eval.report.outputs import MANIFEST
from eval.sanitise import markdown as md
from trend import compare, plots

REPORT = "trend.md"
TITLE = "# Trend across gate runs"
_METRIC_NAMES = {"mask_iou": "mask IoU", "boundary_iou": "Boundary IoU"}


def _num(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _stat(point, n):
    if point is None:
        return "—"
    interval = f" [{point.low:.3f}, {point.high:.3f}]" if point.low is not None else ""
    return f"{point.mean:.3f}{interval} (n={n})"


def _slug(text):
    """A file-name-safe form of a corpus name (corpus names come from the metrics files)."""
    return re.sub(r"[^a-z0-9_-]+", "-", str(text).lower()).strip("-") or "corpus"


def _status(entry):
    if entry is None:
        return "(absent)"
    status, observed = entry
    return f"{md(status)} ({_num(observed if isinstance(observed, (int, float)) else None, 4)})"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _runs_section(runs):
    rows = [(i, md(r.checkpoint["name"]), f"`{r.checkpoint['sha256'][:12]}`", md(r.dataset["version"]),
             f"`{r.dataset['sha256'][:12]}`", md(r.schema.rsplit("/", 1)[-1]), f"**{md(r.recommendation)}**",
             md(r.deciding_id)) for i, r in enumerate(runs, 1)]
    lines = ["## Runs", ""]
    lines += _table(["#", "checkpoint", "sha256", "dataset", "dataset sha256", "schema", "recommendation",
                     "deciding criterion"], rows)
    lines += [""] + [f"- #{i} deciding: {md(r.deciding_summary)}" for i, r in enumerate(runs, 1)]
    return lines


def _inputs_section(runs, differences):
    lines = ["## Inputs", ""]
    if compare.same_inputs(runs):
        lines.append("Every run scored the same dataset content with the same criteria and baseline config: "
                     "the numbers below are the runs' own aggregates, with their intervals where recorded.")
    else:
        shared = compare.shared_images(runs)
        lines.append(f"**The runs' inputs differ** (below). Every number below is recomputed on the {len(shared)} "
                     "image(s) all runs share (matched by corpus, image id and ground-truth pixel count; for a "
                     "failure class, images in that class in every run); intervals are not shown, since the runs "
                     "computed them on other images.")
    lines.append("")
    if differences:
        shown = lambda value: "(none)" if value is None else md(value)  # noqa: E731
        rows = [(f"#{d.after_run} → #{d.after_run + 1}", md(d.what), shown(d.before), shown(d.after))
                for d in differences]
        lines += ["What differs between consecutive runs:", ""]
        lines += _table(["runs", "what", "before", "after"], rows)
    else:
        lines.append("Nothing differs between consecutive runs' inputs and settings.")
    return lines


def _series_section(runs, all_series):
    lines, files = ["## Mask IoU and Boundary IoU per corpus and failure class", ""], {}
    lines.append("Cells: mean [interval] (n images); — where the run has no such number.")
    for corpus in sorted({s.corpus for s in all_series}):
        lines += ["", f"### {md(corpus)}", ""]
        for metric in compare.METRICS:
            chosen = [s for s in all_series if s.corpus == corpus and s.metric == metric and
                      (s.backend == "candidate" or s.failure_class == compare.ALL)]
            if not chosen:
                continue
            name = f"plots/{metric}-{_slug(corpus)}.png"
            files[name] = plots.series_plot(f"{_METRIC_NAMES[metric]}, {corpus}", metric, len(runs), chosen)
            lines += [f"![{_METRIC_NAMES[metric]}, {md(corpus)}]({name})", ""]
        rows = [(md(s.failure_class), md(s.backend), _METRIC_NAMES[s.metric],
                 *(_stat(p, n) for p, n in zip(s.points, s.n_images)))
                for s in all_series if s.corpus == corpus]
        lines += _table(["failure class", "backend", "metric", *(f"#{i}" for i in range(1, len(runs) + 1))], rows)
    return lines, files


def _changes_section(changes):
    lines = ["## Criteria that changed status", ""]
    if not changes:
        return lines + ["No criterion changed status between consecutive runs."]
    rows = [(f"#{c.after_run} → #{c.after_run + 1}", md(c.criterion), _status(c.before), _status(c.after))
            for c in changes]
    return lines + _table(["runs", "criterion", "before (observed)", "after (observed)"], rows)


def _movers_section(runs, moved, counts, count):
    lines = ["## Images that moved most", "",
             f"Candidate mask IoU, up to {count} images per consecutive pair, on the images both runs scored."]
    for i, (before, after, both) in enumerate(counts, 1):
        lines.append(f"- #{i} → #{i + 1}: {both} shared image(s) ({before} in #{i}, {after} in #{i + 1})")
    lines.append("")
    if not moved:
        return lines + ["No shared image changed its candidate mask IoU."]
    rows = [(f"#{m.after_run} → #{m.after_run + 1}", md(m.corpus), md(m.image_id), _num(m.before), _num(m.after),
             f"{m.delta:+.3f}") for m in moved]
    return lines + _table(["runs", "corpus", "image", "IoU before", "IoU after", "Δ"], rows)


def _latency_measured(entry):
    """How the latency was measured: per image or a batch average (timings v1 only had batch averages)."""
    if not entry.get("latency_ms"):
        return "n/a"
    return md(str(entry.get("latency_measured", "batch_average")).replace("_", " "))


def _count(value):
    return "n/a" if value is None else md(str(value))


def _timings_section(runs):
    lines = ["## Cost of serving", "",
             "From each run's timings.json (measured on the machine that ran it; not part of the decision)."]
    rows, stages = [], []
    for i, run in enumerate(runs, 1):
        timings = run.timings or {}
        device = md(timings.get("device", {}).get("label", "n/a")) if timings else "n/a"
        for backend, entry in sorted((timings.get("backends") or {}).items()):
            latency, memory = entry.get("latency_ms") or {}, entry.get("peak_memory_mb") or {}
            rows.append((f"#{i}", device, md(backend), _count(entry.get("images_timed")),
                         _count(entry.get("images_from_cache")), _latency_measured(entry),
                         _num(latency.get("median"), 1), _num(latency.get("p90"), 1), _num(memory.get("rss"), 0),
                         _num(memory.get("accelerator"), 0)))
        for stage, entry in sorted((timings.get("stages") or {}).items()):
            stages.append((f"#{i}", md(stage), _num(entry.get("wall_s"), 2), _num(entry.get("cpu_s"), 2),
                           _count(entry.get("calls"))))
    if not rows:
        return lines + ["", "No run has a timings.json."]
    lines[-1] += " Masks served from a backend's cache are counted, not timed; CPU time is the whole process's."
    lines += [""] + _table(["run", "device", "backend", "images timed", "from cache", "latency", "median ms/image",
                            "p90 ms/image", "peak RSS MB", "peak accelerator MB"], rows)
    if stages:
        lines += ["", "Stages (timings v2):", ""] + _table(["run", "stage", "wall s", "CPU s", "calls"], stages)
    return lines


def render_trend(runs, movers=5):
    """{relative path: bytes} of the trend report over `runs` (trend.runs.Run, in the order given)."""
    all_series = compare.series(runs)
    series_lines, files = _series_section(runs, all_series)
    sections = [[TITLE, "", f"{len(runs)} run(s), in the order given."], _runs_section(runs),
                _inputs_section(runs, compare.differences(runs)), series_lines,
                _changes_section(compare.status_changes(runs)),
                _movers_section(runs, compare.movers(runs, movers), compare.shared_counts(runs), movers),
                _timings_section(runs)]
    text = "\n\n".join("\n".join(section) for section in sections) + "\n"
    return {REPORT: text.encode(), **files}


def check_destination(output_dir):
    """Refuse a folder holding anything but a previous trend report: publishing replaces the folder whole."""
    if output_dir.exists() and not output_dir.is_dir():
        raise GateInputError(output_dir, "output path exists and is not a directory")
    if not output_dir.exists():
        return
    for path in output_dir.rglob("*"):
        relative = path.relative_to(output_dir).as_posix()
        ours = relative in (REPORT, "plots", MANIFEST) or re.fullmatch(r"plots/[a-z0-9_-]+\.png", relative)
        if not ours or path.is_symlink():
            raise GateInputError(output_dir, f"holds {relative!r}, which is not part of a trend report; "
                                             "choose another --output_dir (it is never replaced)")
