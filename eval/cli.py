"""What every absl entry point (tools/, bench/) does alike with its flags.

- A bad flag or a stray argument exits 2, not 1: absl exits 1 on a flag error, which CI would read as a
  decision (no-go); the tools exit 2 for anything that is not one, with a one-line, sanitised message.
- Path flags are declared with DEFINE_path: an empty value (an unset CI variable: `--dataset=$DATASET`)
  is an error, never "use the default"; a relative path is relative to where the user typed the command
  (eval.runtime.user_path), resolved once, when the flag is parsed.
- Every float flag, whoever defines it, must be finite: NaN passes absl's bound checks (every comparison
  with NaN is false) and would end as invalid JSON.
"""

import math
import sys

from absl import flags

from eval import sanitise
from eval.runtime import EMPTY_PATH, user_path

EXIT_ERROR = 2


class _PathParser(flags.ArgumentParser):
    syntactic_help = "a path, relative to where you run the command, or modal://<volume>/<path>"

    def parse(self, argument):
        if not str(argument).strip():
            raise ValueError(EMPTY_PATH)
        return user_path(argument)

    def flag_type(self):
        return "path"


def DEFINE_path(name, default, help, **kwargs):  # noqa: N802 - absl's naming
    """A path flag: refuses an empty value; a relative path is taken from the user's directory."""
    return flags.DEFINE(_PathParser(), name, default, help, serializer=flags.ArgumentSerializer(), **kwargs)


def _non_finite_floats(flag_values):
    for name in sorted(flag_values):
        flag = flag_values[name]
        if isinstance(flag.parser, flags.FloatParser) and flag.value is not None:
            values = flag.value if isinstance(flag.value, list) else [flag.value]
            if not all(math.isfinite(v) for v in values):
                yield name, flag.value


def parse_flags(argv, positional=False, flag_values=flags.FLAGS):
    """absl's flags_parser for app.run: parse `argv`, exit 2 on a bad flag, a non-finite float or, unless
    `positional` (a tool whose inputs are arguments: functools.partial it), on arguments that are not flags."""
    try:
        remaining = flag_values(argv)
        for name, value in _non_finite_floats(flag_values):
            raise flags.IllegalFlagValueError(f"flag --{name}={value}: must be a finite number")
    except flags.Error as err:
        print(f"error: {sanitise.text(err)}\nRun with --help for the flags.", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    if len(remaining) > 1 and not positional:
        print(f"error: unexpected arguments {sanitise.text(remaining[1:])}; all inputs are flags (see --help)",
              file=sys.stderr)
        sys.exit(EXIT_ERROR)
    return remaining
