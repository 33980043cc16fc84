#!/usr/bin/env bash
# Reproduces the default model hsam-abdomen-ct and its held-out report (run from the repository root, with
# ../shared/data beside it). CPU: about 25 minutes on 2 cores (a few minutes to encode the 740 slice views, then about
# 40 s per epoch) in bf16, as the shipped model was trained, on a CPU that computes it natively (AVX512-BF16/AMX).
# Elsewhere bf16 is emulated and slower than float32, so the run uses float32 as few_shot.py and crossval.py do
# (a 2-core AVX2-only CPU: about 11 s per step and half an hour of encoding, 2.5 hours in all); PRECISION overrides.
# The embedding store lets a re-run skip the encoding.
set -euo pipefail
OUT=${OUT:-/tmp/default_model/hsam-abdomen-ct}
STORE=${STORE:-/tmp/default_model/embedding-store}
DATA=../shared/data/btcv_synapse/256
CPU_PRECISION=$(python -c 'from hsam.precision import cpu_training_precision; print(cpu_training_precision())')
PRECISION=${PRECISION:-$CPU_PRECISION}
hsam train --cases benchmarks/default_model/manifest.json --base litemedsam --out "$OUT" --id hsam-abdomen-ct \
    --freeze-encoder --embedding-store "$STORE" --slice-fraction 0.15 --cached-views 4 --intensity-jitter \
    --epochs 30 --batch-size 8 --lr 0.002 --val-slices 48 --ema 0.98 --precision "$PRECISION" \
    --stage-weights-over epochs --organ-jitter 0.2
python benchmarks/default_model/bundle.py "$OUT"
hsam evaluate hsam-abdomen-ct --images $DATA/case0026_ct.nii.gz $DATA/case0027_ct.nii.gz \
    --labels $DATA/case0026_label.nii.gz $DATA/case0027_label.nii.gz \
    --label-map docs/examples/btcv_synapse_labels.json --out benchmarks/default_model/heldout
python benchmarks/default_model/bundle.py --metrics benchmarks/default_model/heldout/metrics.csv
