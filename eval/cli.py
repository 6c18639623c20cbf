"""What every absl entry point (tools/, bench/) does alike with its flags.

- A bad flag or a stray argument exits 2, not 1: absl exits 1 on a flag error, which CI would read as a
  decision (no-go); the tools exit 2 for anything that is not one, with a one-line, sanitised message.
- Path flags are declared with DEFINE_path: an empty value (an unset CI variable: `--dataset=$DATASET`)
  is an error, never "use the default"; a relative path is relative to where the user typed the command
  (eval.runtime.user_path), resolved once, when the flag is parsed.
- The environment variables the tools read (eval.runtime.check_environment) are checked before the flags:
  a folder variable naming a file, an unwritable or relative path, or an empty value exits 2 naming it.
- Every float flag, whoever defines it, must be finite: NaN passes absl's bound checks (every comparison
  with NaN is false) and would end as invalid JSON.
- The gate's run options are flags through `define_option_flags`: defaults, bounds and help come from
  eval.options, and each value is checked by the same `Option.problem` the Modal app uses.

This module disclaims its flag definitions (absl's `disclaim_key_flags`): a flag defined through it belongs
to the tool that asked for it, so that tool's `--help` lists it.
"""

import functools
import math
import sys

from absl import flags

from eval import options as options_lib
from eval import sanitise
from eval.errors import GateInputError
from eval.runtime import EMPTY_PATH, check_environment, user_path

EXIT_ERROR = 2
flags.disclaim_key_flags()


class _PathParser(flags.ArgumentParser):
    def __init__(self, volume):
        self.syntactic_help = "a path, relative to where you run the command" + (
            ", or modal://<volume>/<path>" if volume else "")

    def parse(self, argument):
        if not str(argument).strip():
            raise ValueError(EMPTY_PATH)
        return user_path(argument)

    def flag_type(self):
        return "path"


def DEFINE_path(name, default, help, volume=False, **kwargs):  # absl's naming
    """A path flag: refuses an empty value; a relative path is taken from the user's directory. `volume`: the
    tool also reads modal://<volume>/<path> (its --help says so)."""
    return flags.DEFINE(_PathParser(volume), name, default, help, serializer=flags.ArgumentSerializer(), **kwargs)


def _define(option):
    """The absl DEFINE function for an option's kind; numbers carry their bounds (absl words them in --help)."""
    if option.kind in (options_lib.INT, options_lib.FLOAT):
        define = flags.DEFINE_integer if option.kind == options_lib.INT else flags.DEFINE_float
        return functools.partial(define, lower_bound=option.lower, upper_bound=option.upper)
    if option.kind == options_lib.PATH:
        return functools.partial(DEFINE_path, volume=option.volume)
    return flags.DEFINE_bool if option.kind == options_lib.BOOL else flags.DEFINE_string


def define_option_flags(flag_values=flags.FLAGS):
    """A flag for every eval.options option that has one; returns {field name: FlagHolder}.

    Each flag is validated by its option's own check, so a value the Modal app refuses is refused here.
    """
    holders = {}
    for field, option in options_lib.options().items():
        if option.flag is None:
            continue
        default = options_lib.defaults()[field]
        holders[field] = _define(option)(option.flag, default, option.help, flag_values=flag_values)
        flags.register_validator(option.flag, functools.partial(_check, option), flag_values=flag_values)
    return holders


def _check(option, value):
    problem = option.problem(value)
    if problem is not None:
        raise flags.ValidationError(problem)
    return True


def _non_finite_floats(flag_values):
    for name in sorted(flag_values):
        flag = flag_values[name]
        if isinstance(flag.parser, flags.FloatParser) and flag.value is not None:
            values = flag.value if isinstance(flag.value, list) else [flag.value]
            if not all(math.isfinite(v) for v in values):
                yield name, flag.value


def parse_flags(argv, positional=False, flag_values=flags.FLAGS):
    """absl's flags_parser for app.run: parse `argv`, exit 2 on a bad flag, a non-finite float or, unless
    `positional` (a tool whose inputs are arguments: functools.partial it), on arguments that are not flags.
    The environment variables the tools read are checked first (eval.runtime.check_environment)."""
    try:
        check_environment()
    except GateInputError as err:
        print(f"error: {sanitise.text(err)}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
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
