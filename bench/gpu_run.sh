#!/usr/bin/env bash
# One-command GPU run (quality + speed on Beauty, ours vs the stock approach), for one NVIDIA H100/H200 machine whose
# python3 has torch, transformers 5, pyarrow and sentencepiece but no Ray, DeepSpeed or WebDataset, and no network.
#
# Here, once per session:  make gpu-prep      (pure-Python wheels into .whl/, Beauty into .gpu_data/; both ignored)
# Then with the device tool: command "bash bench/gpu_run.sh", carry [".whl", ".gpu_data"], timeout ~590 s.
# Results: $OUT/gpu_run.json (rewritten after every phase), $OUT/table.txt, $OUT/log.txt; the table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_run}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1  # tokenizers keep their thread pool: tokenizing keeps up with the GPU
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
timeout 470 python3 bench/gpu_run.py --data "${DATA:-.gpu_data/Beauty}" --out "$OUT" "$@" > "$OUT/log.txt" 2>&1
rc=$?
grep -v 'it/s\]\|step/s\]\|batch/s\]' "$OUT/log.txt" | tail -n 60
[ -f "$OUT/table.txt" ] || python3 - "$OUT" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from gpu_run import table
print(table(json.load(open(sys.argv[1] + "/gpu_run.json"))))
PY
exit $rc
