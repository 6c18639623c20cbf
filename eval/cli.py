"""What every absl entry point in tools/ does alike: a bad flag or a stray argument exits 2, not 1.

absl exits 1 on a flag error, which CI would read as a decision (no-go); the tools exit 2 for anything
that is not one, with a one-line, sanitised message.
"""

import sys

from absl import flags

from eval import sanitise

EXIT_ERROR = 2


def parse_flags(argv, positional=False):
    """absl's flags_parser for app.run: parse `argv`, exit 2 on an error or, unless `positional` (a tool
    whose inputs are arguments: functools.partial it), on arguments that are not flags."""
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as err:
        print(f"error: {sanitise.text(err)}\nRun with --help for the flags.", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    if len(remaining) > 1 and not positional:
        print(f"error: unexpected arguments {sanitise.text(remaining[1:])}; all inputs are flags (see --help)",
              file=sys.stderr)
        sys.exit(EXIT_ERROR)
    return remaining
