#!/usr/bin/env bash
# The paper profile's smoke run on a GPU: every notebook's paper branch, on CUDA, on stand-ins of the
# real checkpoints and data sets (vlmid/harness/standins.py: the real classes at real width and image size,
# two layers, random weights; the real tokenizer and file formats). Then the tests marked gpu.
# Prints one PASS/FAIL line per notebook and exits non-zero if any failed. Needs the CUDA build of
# torch (bash run_all.sh --cuda --setup-only). Nothing it writes goes into results/.
#
#   bash scripts/gpu_check.sh            # a few minutes on one GPU
#   KEEP=1 bash scripts/gpu_check.sh     # keep the stand-ins and results (path printed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "no .venv: run 'bash run_all.sh --cuda --setup-only' first"; exit 2; }
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
  echo "torch sees no CUDA device (torch $("$PY" -c 'import torch; print(torch.__version__)')):"
  echo "on a GPU machine reinstall with 'bash run_all.sh --cuda --setup-only'"; exit 2; }
work=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
"$PY" -m vlmid.harness.standins "$work" > "$work/env.sh"
# shellcheck disable=SC1091
. "$work/env.sh"
export VLMID_MODELS VLMID_PAPER_DATA VLMID_DATA="$work/vlmid-data" HF_HUB_OFFLINE=1
t0=$(date +%s)
set +e
"$PY" -m vlmid.harness.pipeline --profile paper --smoke --device cuda --results "$work/results"
"$PY" - "$work/results/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["notebooks"]
bad = 0
for name, v in sorted(m.items()):
    ok = v["exit_status"] == "ok"
    bad += not ok
    print(f"{'PASS' if ok else 'FAIL'}  {name}  {v.get('wall_seconds', 0):.0f} s" + ("" if ok else f"  {v.get('error')}"))
sys.exit(1 if bad or len(m) < 6 else 0)
PY
status=$?
"$PY" -m pytest -q -m gpu tests || status=1
set -e
echo "gpu_check: $([ $status = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - t0 )) s${KEEP:+ (files in $work)}"
exit $status
