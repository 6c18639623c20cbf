"""Whether a published report clears a checkpoint for deployment: the check #419's deploy step runs.

A go is promotable only when all of these hold, each checked here and named when it does not:

- the report is intact: every file matches manifest.json, metrics.json is valid for its schema and its
  recommendation follows from its criteria (eval.report.artifacts.load_report, the one loader);
- it says go;
- the checkpoint about to be deployed has the sha256 the report gated (its bytes, not its name);
- the criteria it was decided on are the locked criteria the deploy names (same sha256), not example values;
- it was written by a harness version this verifier knows;
- with a public key: manifest.json carries a valid signature by that key (promotion.signing).

`problems` returns the reasons a readable report is not promotable (exit 1); an unreadable or damaged one
raises GateInputError (exit 2). Both block the deploy.
"""

import eval as harness
from eval.digests import file_digest
from eval.errors import GateInputError
from eval.inputs.criteria import load_criteria
from eval.inputs.safe_paths import read_bytes
from eval.report import artifacts, outputs
from promotion import signing

# Harness versions whose reports this verifier reads and whose go means what the README says. A new harness
# version adds itself here once its report format is checked by these rules.
KNOWN_HARNESS_VERSIONS = ("1.1.0", harness.__version__)


def problems(report_folder, checkpoint, criteria, public_key=None):
    """Why the report at `report_folder` does not clear the checkpoint file at `checkpoint` under the locked
    `criteria` file (and, with a `public_key`, a signature by it): an empty list means promotable."""
    if not report_folder.is_dir():
        raise GateInputError(report_folder, "is not a report folder (the manifest beside metrics.json is part of "
                                            "the record)")
    report = artifacts.load_report(report_folder)
    metrics, provenance = report.metrics, report.metrics["provenance"]
    found = []
    if metrics["recommendation"] != "go":
        deciding = metrics["deciding_criterion"]
        found.append(f"the report's recommendation is {metrics['recommendation']} (deciding criterion "
                     f"{deciding['id']}: {deciding['summary']})")
    gated, actual = provenance["checkpoint"]["sha256"], file_digest(checkpoint)
    if actual != gated:
        found.append(f"the checkpoint's sha256 is {actual}, but the report gated {gated}: not the model it cleared")
    locked = load_criteria(criteria).sha256
    if provenance["criteria"]["sha256"] != locked:
        found.append(f"the report was decided on criteria sha256 {provenance['criteria']['sha256']}, not on the "
                     f"locked {criteria} ({locked})")
    if provenance["criteria"]["example_values"] or metrics.get("example_criteria_values", True):
        found.append("the report's criteria are example values (example_values: true), not locked #413 thresholds")
    if provenance["harness_version"] not in KNOWN_HARNESS_VERSIONS:
        found.append(f"harness version {provenance['harness_version']} is not one this verifier knows "
                     f"({', '.join(sorted(set(KNOWN_HARNESS_VERSIONS)))})")
    if public_key is not None:
        found.extend(_signature_problems(report_folder, public_key))
    return found


def _signature_problems(folder, public_key):
    signature = folder / signing.SIGNATURE_FILE
    try:
        signature_bytes = read_bytes(signature)
    except FileNotFoundError:
        return [f"the report is not signed (no {signing.SIGNATURE_FILE}); the deploy requires a signature"]
    problem = signing.signature_problem(read_bytes(folder / outputs.MANIFEST), signature_bytes, public_key)
    return [problem] if problem else []
