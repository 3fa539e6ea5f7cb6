#!/usr/bin/env bash
# One GPU session, prepared to run unattended on a rented or lent GPU (about 9 minutes):
#   1. the shipped model's sweep (bench/train_shipped.py), packed as soon as it ends;
#   2. the CUDA checks (bench/gpu_check.py);
#   3. train.py itself on CUDA with fp16 + GradScaler and --compile, then --resume.
# Usage: DATA=path/to/books OUT=results/ bash bench/gpu_session.sh   (e.g. the grimfuture corpus)
set -uo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to the corpus folder}" "${OUT:?set OUT to a folder for the results}"
BUDGET_S=${BUDGET_S:-290}
WORK=${WORK:-/tmp/gpt40k-gpu}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__)'

python3 bench/train_shipped.py --data "$DATA" --out "$WORK/shipped" --device cuda --budget-s "$BUDGET_S" \
  2>&1 | tee "$OUT/sweep.log"

# Pack: every run's logs and metrics; the winner's best/ and a few snapshots (<= 16 MB per file).
python3 - "$WORK/shipped" "$OUT" <<'EOF'
import json, sys, tarfile
from pathlib import Path
src, out = Path(sys.argv[1]), Path(sys.argv[2])
with tarfile.open(out / "runs_logs.tar.gz", "w:gz") as t:
    for run in (d for d in src.iterdir() if d.is_dir()):
        for name in ("metrics.jsonl", "run_summary.json", "train_args.json", "corpus.json"):
            if (run / name).exists():
                t.add(run / name, f"{run.name}/{name}")
    for log in src.glob("*.log"):  # train_shipped.py writes each run's log beside its folder
        t.add(log, log.name)
    t.add(src / "sweep.json", "sweep.json")
winner = json.loads((src / "sweep.json").read_text())["winner"]
run = src / winner
with tarfile.open(out / "winner.tar", "w") as t:
    t.add(run / "best", "best")
    for name in ("metrics.jsonl", "run_summary.json", "train_args.json", "corpus.json", "loss_curve.png"):
        if (run / name).exists():
            t.add(run / name, name)
snaps = sorted((run / "snapshots").iterdir())
picks = [i for i in (0, 1, 2, 5, 12, 25) if i < len(snaps)]
for part, chunk in enumerate((picks[:4], picks[4:])):
    with tarfile.open(out / f"snapshots{part}.tar", "w") as t:
        for i in chunk:
            t.add(snaps[i], f"snapshots/{snaps[i].name}")
print("packed", winner, [snaps[i].name for i in picks])
EOF

timeout 110 python3 bench/gpu_check.py --steps 200 --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"

# The trainer's own CUDA fp16 path (the T4's), compiled, then resumed for 100 more steps.
timeout 70 python3 train.py --data "$DATA" --preset seed --min-char-count 50 --max-iters 300 \
  --eval-interval 100 --eval-iters 10 --sample-chars 100 --dtype float16 --compile --out "$WORK/fp16" \
  2>&1 | tail -n 25 | tee "$OUT/fp16_compile.log"
timeout 40 python3 train.py --resume "$WORK/fp16" --max-iters 400 2>&1 | tail -n 8 | tee -a "$OUT/fp16_compile.log"
echo "session done"
