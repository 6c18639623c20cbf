#!/usr/bin/env bash
# Regenerate the committed example reports (goldens checked by //tests:test_end_to_end):
#   reports/pottery-seg-demo-demo-v1        the demo: candidate vs rembg and the demo incumbent
#   reports/pottery-seg-incumbent-demo-v1   the demo incumbent gated as a candidate on the same snapshot
#   reports/trend-demo                      the trend from the incumbent's run to the demo run
# The trend is built from the metrics.json files, so no machine-dependent timings enter the example.
set -euo pipefail
repo="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$repo"
./dev demo --overwrite --quiet || [[ $? == 1 ]]  # exit 1 is a no-go: a decided run
./dev demo --overwrite --quiet --checkpoint=demo/assets/pottery-seg-incumbent.pt --dataset=demo/assets/snapshot \
  || [[ $? == 1 ]]
./dev bazel run //tools:compare_runs -- --output_dir=reports/trend-demo \
  reports/pottery-seg-incumbent-demo-v1/metrics.json reports/pottery-seg-demo-demo-v1/metrics.json
