#!/usr/bin/env bash
# The GPU check, one command (issue 13): at most 7.5 minutes on one GPU (each step has its own limit).
#
#   bash benchmarks/gpu_check.sh [OUT]          # on a CUDA machine; logs and JSON under OUT (default runs/gpu-check)
#   bash benchmarks/gpu_check.sh --smoke [OUT]  # the same steps at smoke sizes on the CPU (~3 min on 2 cores)
#
# 1. the CUDA-marked tests (pytest -m cuda)
# 2. one teacher training step under bf16 autocast at the small and base presets (images/s, memory),
#    8-coil MRI and 60-view CT (benchmarks/train_step.py)
# 3. the sampling ratio: teacher sampler against the one-step generator (benchmarks/sampling.py)
# 4. a small-preset MRI run at 128x128 with 8 simulated coils, teacher, distillation and the report
#    (rsd-sci train ... --preset small), its headline in OUT/quality/report.md
# Python: $PYTHON, else .venv/bin/python, else python3. Packages the machine lacks (a GPU image without
# monai, sigpy or nibabel) can come as wheels in .whl/, installed first into /tmp/site.
# Every step has its own time limit, so one slow step cannot eat the others'; the script goes on after a
# failing step and exits non-zero at the end if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then SMOKE=1; shift; fi
OUT=${1:-runs/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
FAILED=()

step() {   # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.log, remember failures
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [[ $rc == 0 ]] || FAILED+=("$name")
}

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/device.log"

if [[ $SMOKE == 1 ]]; then
    step cuda_tests 300 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_operator_checks.py
    step train_step 300 "$PY" benchmarks/train_step.py --quick --cases plain,mri-8coil,ct-60/180
    step sampling 300 "$PY" benchmarks/sampling.py --quick
    step quality 600 "$PY" -m cli train --modality mri --coils 8 --size 32 --n-train 16 --n-test 2 \
        --center-fraction 0.2 --steps 4 --distill-steps 2 --eval-slices 1 --device cpu --out "$OUT/quality"
else
    step cuda_tests 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
    step train_step 80 "$PY" benchmarks/train_step.py --device cuda --presets small,base --cases plain,mri-8coil,ct-60/180 \
        --rounds 6
    step sampling 50 "$PY" benchmarks/sampling.py --device cuda
    step quality 200 "$PY" -m cli train --modality mri --coils 8 --size 128 --preset small --steps 1000 \
        --distill-steps 200 --eval-slices 8 --device cuda --out "$OUT/quality"
fi
[[ -f "$OUT/quality/report.md" ]] && sed -n 1,40p "$OUT/quality/report.md"
if (( ${#FAILED[@]} )); then echo "FAILED: ${FAILED[*]}"; exit 1; fi
echo "all steps passed"
