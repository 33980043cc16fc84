#!/usr/bin/env bash
# A Left-Atrium LGE-MRI model from the paper's 4 training scans (H-SAM Table 2's few-shot protocol), validated on
# the 12 other scans of ../shared/data/la_mri as whole volumes. Run from the repository root:
#     bash benchmarks/la_mri/train.sh OUT [--quick]
# OUT becomes a model directory (hsam segment --model OUT); OUT/validation holds the 3D Dice per scan and a summary.
# The recipe is the few-shot preset of hsam train (docs/training.md), chosen on the validation scans (README.md).
# --quick: the tests' 2-scan smoke run (tiny random backbone, one epoch).
set -euo pipefail
OUT=${1:?usage: benchmarks/la_mri/train.sh OUT [--quick]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON:-python}" "$HERE/../few_shot.py" --manifest "$HERE/manifest.json" --label-map "$HERE/label_map.json" \
    --out "$OUT" --hsam "${HSAM:-hsam}" "$@" -- \
    --base litemedsam --modality mr --id hsam-left-atrium-mr --preset few-shot ${STORE:+--embedding-store "$STORE"}
