#!/usr/bin/env bash
# The bundled CT model hsam-abdomen-ct adapted to abdominal T2 MR (CHAOS T2-SPIR) from 5 labelled scans of
# ../shared/data/chaos_t2, validated on the 5 others as whole volumes; liver, kidneys and spleen keep the CT model's
# class names. Run from the repository root:
#     bash benchmarks/chaos_mr/train.sh OUT [--quick]
# BASE=litemedsam: the same recipe from the LiteMedSAM backbone alone (a new 4-class model), to show what starting
# from the CT model is worth. OUT becomes a model directory; OUT/validation holds the 3D Dice per scan and organ.
# --quick: the tests' 2-scan smoke run (tiny random backbone, one epoch).
set -euo pipefail
OUT=${1:?usage: benchmarks/chaos_mr/train.sh OUT [--quick]}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${BASE:-hsam-abdomen-ct}
LABEL_MAP="$HERE/label_map.json"
[ "$BASE" = litemedsam ] && LABEL_MAP="$HERE/label_map_new_model.json"
exec "${PYTHON:-python}" "$HERE/../few_shot.py" --manifest "$HERE/manifest.json" --label-map "$LABEL_MAP" \
    --out "$OUT" --hsam "${HSAM:-hsam}" "$@" -- \
    --base "$BASE" --modality mr --id "hsam-abdomen-mr-from-${BASE}" --preset few-shot --early-stop 3 \
    ${STORE:+--embedding-store "$STORE"}
