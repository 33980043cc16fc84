#!/usr/bin/env bash
# The GPU check in one command, on a fresh CUDA machine with ../shared/data beside the checkout:
#     bash benchmarks/gpu/run.sh OUT [--quick] [check.py options]
# Creates .venv in the checkout and installs torch 2.14.1 (PyPI's CUDA build) and hsam into it, unless .venv
# already has this checkout's hsam and that torch; then runs benchmarks/gpu/check.py, which prints the table and
# writes OUT/gpu_check.md. PYTHON=/path/to/python uses that interpreter as it is (no venv, no installs).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bash benchmarks/gpu/run.sh OUT [--quick] [check.py options]" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SECONDS=0
if [ -z "${PYTHON:-}" ]; then
    PYTHON="$REPO/.venv/bin/python"
    [ -x "$PYTHON" ] || python3 -m venv "$REPO/.venv"
    if ! "$PYTHON" - "$REPO" <<'PY' 2>/dev/null
import pathlib, sys
import hsam, torch
here = pathlib.Path(hsam.__file__).resolve().parent == pathlib.Path(sys.argv[1], "hsam").resolve()
sys.exit(not here or torch.__version__.split("+")[0] != "2.14.1")
PY
    then
        "$PYTHON" -m pip install torch==2.14.1 torchvision==0.29.1
        "$PYTHON" -m pip install -e "$REPO"
    fi
fi
export GPU_CHECK_SETUP_SECONDS=$SECONDS
exec "$PYTHON" "$REPO/benchmarks/gpu/check.py" "$@"
