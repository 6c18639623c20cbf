"""Deploy-time check of a promotion: does this report clear this checkpoint? (#419's deploy step runs it.)

Exits 0 only when the report folder is intact (every file as its manifest.json records), says go, gated
exactly these checkpoint bytes, was decided on the locked criteria file named here (not example values), was
written by a known harness version and, with --public_key, is signed by that key. Exit 1: readable but not
promotable (each reason printed); exit 2: unreadable or damaged input, or a bad flag. Nothing is written.
"""

import pathlib
import sys

from absl import app

from eval import cli, sanitise
from eval.errors import GateInputError
from promotion import signing, verify

EXIT_PROMOTABLE, EXIT_NOT_PROMOTABLE, EXIT_ERROR = 0, 1, 2

_CHECKPOINT = cli.DEFINE_path("checkpoint", None, "The checkpoint file about to be deployed (its bytes are hashed).",
                              required=True)
_REPORT = cli.DEFINE_path("report", None, "The gate's report folder for that checkpoint (the one attached to the "
                                          "release ticket).", required=True)
_CRITERIA = cli.DEFINE_path("criteria", None, "The locked success criteria file (#413) the deploy requires; the "
                                              "report must have been decided on exactly this file.", required=True)
_PUBLIC_KEY = cli.DEFINE_path("public_key", None, "Ed25519 public key (PEM): require the report's manifest to be "
                                                  "signed by its private key (the gate's --signing_key).")


def main(argv):
    del argv
    try:
        public_key = signing.load_public_key(_PUBLIC_KEY.value) if _PUBLIC_KEY.value else None
        found = verify.problems(pathlib.Path(_REPORT.value), _CHECKPOINT.value, _CRITERIA.value, public_key)
    except GateInputError as err:
        print(f"error: {sanitise.text(err)}", file=sys.stderr)
        print("not promotable: the report or an input could not be read (exit 2)", file=sys.stderr)
        return EXIT_ERROR
    except OSError as err:
        print(f"error: {sanitise.text(f'{err.filename}: {err.strerror}')}", file=sys.stderr)
        return EXIT_ERROR
    if found:
        for problem in found:
            print(f"not promotable: {sanitise.text(problem)}")
        return EXIT_NOT_PROMOTABLE
    print(sanitise.text(f"promotable: {_REPORT.value} clears {_CHECKPOINT.value}"))
    return EXIT_PROMOTABLE


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
