"""CPU cost of the inference options, side by side in one run: `hsam segment` of one held-out BTCV case with the
default model, plain and with each option, each timed end to end as a user runs it (model load included).

    python benchmarks/default_model/option_cost.py [--case case0026] [--repeats 1]

Prints seconds per volume and the ratio to the plain run for: no option, ``--slice-smoothing 0.25``,
``--box-prompts 0.5`` and both. Options are given explicitly (0 for off), so the model card's defaults do not
change what is compared.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BTCV = (REPO.parent / "shared" / "data" / "btcv_synapse" / "256").resolve()
RUNS = {
    "plain": ["--slice-smoothing", "0", "--box-prompts", "0"],
    "--slice-smoothing 0.25": ["--slice-smoothing", "0.25", "--box-prompts", "0"],
    "--box-prompts 0.5": ["--slice-smoothing", "0", "--box-prompts", "0.5"],
    "both": ["--slice-smoothing", "0.25", "--box-prompts", "0.5"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="case0026")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each, interleaved; the fastest counts")
    args = parser.parse_args()
    image = BTCV / f"{args.case}_ct.nii.gz"
    best = {name: float("inf") for name in RUNS}
    with tempfile.TemporaryDirectory() as out:
        for repeat in range(args.repeats):
            for index, (name, options) in enumerate(RUNS.items()):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "hsam", "segment", str(image), "-o",
                                str(Path(out) / f"result-{repeat}-{index}.nii.gz"), "--device", "cpu",
                                "--progress", "jsonl", *options],
                               check=True, stdout=subprocess.DEVNULL)
                best[name] = min(best[name], time.perf_counter() - started)
    print(f"{args.case}, hsam segment end to end on the CPU (fastest of {args.repeats}):")
    for name, seconds in best.items():
        print(f"  {name:24s} {seconds:7.1f} s   x{seconds / best['plain']:.2f}")


if __name__ == "__main__":
    main()
