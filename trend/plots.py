"""Trend plots as deterministic PNG bytes (eval.report.plotting: Agg, no timestamp or version in the metadata)."""

from eval.report import plotting

_LABELS = {"mask_iou": "mean mask IoU", "boundary_iou": "mean Boundary IoU"}
_STYLE = {"candidate": "-", "incumbent": "--", "rembg": ":"}


def series_plot(title, metric, n_runs, series):
    """One line per (backend, failure class) across runs 1..n_runs; error bars where intervals exist."""
    with plotting.figure({"font.family": "DejaVu Sans"}, figsize=(7, 4)) as (figure, axes):
        runs = list(range(1, n_runs + 1))
        for s in series:
            xs = [r for r, p in zip(runs, s.points) if p is not None]
            ys = [p.mean for p in s.points if p is not None]
            low = [p.mean - (p.low if p.low is not None else p.mean) for p in s.points if p is not None]
            high = [(p.high if p.high is not None else p.mean) - p.mean for p in s.points if p is not None]
            axes.errorbar(xs, ys, yerr=[low, high], linestyle=_STYLE.get(s.backend, "-"), marker="o",
                          capsize=3, label=f"{s.backend} / {s.failure_class}")
        axes.set_xticks(runs, [f"#{r}" for r in runs])
        axes.set_xlim(0.5, n_runs + 0.5)
        axes.set_xlabel("run (in the order given)")
        axes.set_ylabel(_LABELS.get(metric, metric))
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        figure.tight_layout()
        return plotting.png(figure)
