"""Trend report across gate runs: how the candidate moved from checkpoint to checkpoint.

    bazel run //tools:compare_runs -- --output_dir=<dir> <report folder or metrics.json> ...

Reads each run's metrics.json (every schema version the gate has written) and, for a report folder,
its timings.json when present, in the order given, and writes <output_dir>/trend.md with plots/*.png: per corpus and
failure class the mean mask IoU and Boundary IoU of each run (intervals where recorded), recommendation and
deciding criterion per run, criteria that changed status, and the images that moved most between
consecutive runs. Runs on different dataset content, criteria or baseline configs are compared on the
images they share only, and the report says what differs.

Exit status: 0 written, 2 a run could not be read (the message names the file) or a bad flag.
"""

import functools
import pathlib
import sys

from absl import app, flags

from eval import cli, sanitise
from eval.errors import GateInputError
from eval.report import outputs
from eval.runtime import user_path
from trend.render import check_destination, render_trend
from trend.runs import load_run

_OUTPUT_DIR = cli.DEFINE_path("output_dir", None, "Folder for trend.md and plots/ (created; a previous "
                                                  "trend report there is replaced, anything else refused).")
_MOVERS = flags.DEFINE_integer("movers", 5, "Images listed per consecutive pair in 'moved most'.", lower_bound=0)
flags.mark_flag_as_required("output_dir")

EXIT_OK, EXIT_ERROR = 0, cli.EXIT_ERROR


def main(argv):
    specs = argv[1:]
    if not specs:
        print("error: name at least one run (a gate report folder or its metrics.json)", file=sys.stderr)
        return EXIT_ERROR
    output_dir = pathlib.Path(_OUTPUT_DIR.value)
    try:
        check_destination(output_dir)  # names a file that is not part of a trend report
        # One run key for every trend report: a previous one is replaced, a gate report never.
        destination = outputs.check_destination(output_dir, "trend-report", overwrite=False)
        runs = [load_run(user_path(spec)) for spec in specs]
        destination.publish(render_trend(runs, _MOVERS.value))
    except GateInputError as err:
        print(f"error: {sanitise.text(err)}", file=sys.stderr)
        return EXIT_ERROR
    print(f"trend report: {sanitise.text(output_dir / 'trend.md')}")
    return EXIT_OK


if __name__ == "__main__":
    app.run(main, flags_parser=functools.partial(cli.parse_flags, positional=True))
