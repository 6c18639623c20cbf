"""The forest plot: candidate - rembg mean IoU per corpus and failure class, with intervals (PNG bytes).

A reviewer sees the decision at a glance: each row's interval, the regression criterion's threshold (the
largest allowed drop, drawn at -threshold) and the row coloured by the worst outcome of the criteria on
its corpus and class (any criterion: a failed pass rate colours the row too). A class a criterion names
but no image is in gets a row that says so, in the colour of its (insufficient-data) outcome, since it
blocks the go as much as any miss. Rows no criterion reads are drawn dotted in a light grey. Bytes are
deterministic (eval.report.plotting): Agg backend, fixed bundled font, size and dpi, no PNG metadata.
"""

import dataclasses

from eval.report import plotting

COLOURS = {"pass": "#1a9850", "fail": "#d73027", "inconclusive": "#f39c12", "insufficient_data": "#6a3d9a",
           None: "#c8c8c8"}
WORST_FIRST = ("fail", "inconclusive", "insufficient_data", "pass")  # the status a row of several criteria shows
_STYLE = {"font.family": "DejaVu Sans", "font.size": 9, "path.simplify": False}


@dataclasses.dataclass(frozen=True)
class ForestRow:
    label: str  # "corpus / failure class"
    estimate: float | None  # candidate - rembg mean IoU; None: no image in this class
    lower: float | None
    upper: float | None
    threshold: float | None  # the allowed drop of the regression criterion on this row, if one applies
    status: str | None  # the worst status of the criteria on this row (WORST_FIRST); None: no criterion


def render_forest(rows, level):
    """PNG bytes of the forest plot for `rows` (top to bottom in the given order)."""
    with plotting.figure(_STYLE, figsize=(8.0, 0.45 * len(rows) + 1.4), dpi=plotting.DPI) as (figure, axes):
        from matplotlib import lines  # after plotting.figure has set matplotlib up

        for y, row in enumerate(reversed(rows)):
            colour = COLOURS.get(row.status, COLOURS[None])
            if row.estimate is None:
                axes.text(0.0, y, " no images ", color=colour, ha="center", va="center", fontsize=8,
                          bbox={"edgecolor": colour, "facecolor": "white", "boxstyle": "round,pad=0.2"})
            else:
                style = ":" if row.status is None else "-"
                axes.plot([row.lower, row.upper], [y, y], color=colour, linewidth=2.5, solid_capstyle="butt",
                          linestyle=style)
                axes.plot([row.estimate], [y], marker="o", color=colour, markersize=6)
            if row.threshold is not None:
                axes.plot([-row.threshold] * 2, [y - 0.35, y + 0.35], color="black", linewidth=1.2,
                          linestyle="--")
        axes.axvline(0.0, color="#999999", linewidth=0.8)
        axes.set_yticks(range(len(rows)), [r.label for r in reversed(rows)])
        axes.set_ylim(-0.7, len(rows) - 0.3)
        axes.set_xlabel(f"candidate - rembg mean IoU, one-sided {level:.0%} bounds (dashed: allowed drop)")
        handles = [lines.Line2D([], [], color=COLOURS[s], linewidth=2.5, label=s.replace("_", " "))
                   for s in ("pass", "inconclusive", "fail", "insufficient_data")]
        handles.append(lines.Line2D([], [], color=COLOURS[None], linewidth=2.5, linestyle=":", label="no criterion"))
        axes.legend(handles=handles, loc="lower right", fontsize=7, frameon=False, ncol=5,
                    bbox_to_anchor=(1.0, 1.0))
        figure.tight_layout()
        return plotting.png(figure)
