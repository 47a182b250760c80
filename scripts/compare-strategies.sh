#!/usr/bin/env bash
# The README's model-parallel figures: every strategy on 2 workers with the same global batch (16
# sequences of shakespeare-cpu), then the pipeline bubble against the number of micro-batches under
# both schedules. Each run's JSON goes to runs/model-parallel/ (OUT to change). Takes ~10 minutes on a
# 2-core machine; run it on a quiet machine (the JSONs' per-worker times are what the README quotes).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/model-parallel}
STEPS=${STEPS:-30}
mkdir -p "$OUT"
run() { # name, then flags
  local name=$1; shift
  echo "== $name" >&2
  npm run -s cli -- train --preset shakespeare-cpu --steps "$STEPS" --eval-iters 5 --json "$OUT/$name.json" "$@" | head -1
}
run single --strategy single --batch 16
run ddp --strategy ddp --workers 2 --batch 8
run fsdp-full --strategy fsdp --workers 2 --batch 8
run tp --strategy tp --workers 2 --batch 16
for schedule in gpipe 1f1b; do
  for m in 1 2 4 8; do run "pp-$schedule-m$m" --strategy pp --workers 2 --batch 16 --microbatches "$m" --schedule "$schedule"; done
done
python3 - "$OUT" <<'PY'
import json, sys, glob, os
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], '*.json'))):
    d = json.load(open(f))
    w = d['per_worker']
    mem = max(x['memory']['params'] + x['memory']['grads'] + x['memory']['optimizer'] for x in w) if w else 0
    act = max(x['memory']['activations_peak'] for x in w) if w else 0
    print(f"{os.path.basename(f)[:-5]:16} {d['ms_per_step']:7.1f} ms/step {d['tokens_per_s']:7.0f} tok/s "
          f"sent/rank {max((x['bytes_sent'] or 0) for x in w) / 2**20 if w else 0:6.2f} MB  at rest {mem / 2**20:5.2f} MB  act {act / 2**20:5.2f} MB  "
          f"bubble {d.get('bubble_measured') or 0:.2f} (pred {d.get('bubble_predicted') or 0:.2f})  final loss {d['final_train_loss']:.4f}")
PY
