#!/usr/bin/env bash
# The GPU check, one command (issues 13 and 28): at most 15.5 minutes on one GPU (the sum of the steps' limits;
# GPU_CHECK_STEPS=loader,recipe_step,recipe runs only the steps named, here those of issue 28: 8 minutes).
#
#   bash benchmarks/gpu_check.sh [OUT]          # on a CUDA machine; logs and JSON under OUT (default runs/gpu-check)
#   bash benchmarks/gpu_check.sh --smoke [OUT]  # the same steps at smoke sizes on the CPU (~5 min on 2 cores)
#
# 1. the CUDA-marked tests (pytest -m cuda)
# 2. one teacher training step under bf16 autocast at the small and base presets (images/s, memory),
#    8-coil MRI and 60-view CT (benchmarks/train_step.py)
# 3. the sampling ratio: teacher sampler against the one-step generator (benchmarks/sampling.py)
# 4. a small-preset MRI run at 128x128 with 8 simulated coils, teacher, distillation and the report
#    (rsd-sci train ... --preset small), its headline in OUT/quality/report.md
# 5. the training loader on the node: the recipe's 4-coil 384x384 set (3.6 GB, written into OUT), the training
#    process against 2, 4 and 8 loader workers, cold and warm page cache, batches on the GPU (benchmarks/loader.py)
# 6. one teacher step of the published fastMRI recipe's network (preset fastmri, 384x384, 8 coils and plain, batch 8,
#    bf16): the images/s and memory that benchmarks/recipe_cost.py projects (benchmarks/train_step.py)
# 7. the published recipe at a short length: 3 fastMRI-schema brain volumes (16 coils, 768x384 k-space, 384x384
#    images) through `data make --config recipes/fastmri-brain-r4-data.yaml`, then `train --config
#    recipes/fastmri-brain-r4.yaml` for 200 teacher steps and 50 distillation iterations
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
    [[ -z "${GPU_CHECK_STEPS:-}" || ",$GPU_CHECK_STEPS," == *",$name,"* ]] || return 0
    echo "== $name (limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [[ $rc == 0 ]] || FAILED+=("$name")
}

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/device.log"
grep -m1 "model name" /proc/cpuinfo | tee -a "$OUT/device.log"; nproc | tee -a "$OUT/device.log"

recipe() {   # recipe COILS H W RECON_H RECON_W DEVICE TRAIN_FLAGS...: 3 fastMRI-schema AXT2 volumes of 4 slices
             # into OUT/brain, then the published recipe's two commands on them
    local device=$6
    "$PY" -c "import sys; sys.path.insert(0, '.'); from pathlib import Path
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file
out, (coils, h, w, rh, rw) = Path(sys.argv[1]), map(int, sys.argv[2:7])
out.mkdir(parents=True, exist_ok=True)
for v in range(3):
    write_fastmri_file(out / f'file_brain_AXT2_{v:03d}.h5', make_fastmri_kspace(4, coils, h, w, seed=v), recon_size=(rh, rw))
" "$OUT/brain" "$@" || return 1
    shift 6
    "$PY" -m cli data make --config recipes/fastmri-brain-r4-data.yaml --input "$OUT/brain" --out "$OUT/brain-set" \
        --device "$device" --force || return 1
    "$PY" -m cli train --config recipes/fastmri-brain-r4.yaml --data "$OUT/brain-set" --out "$OUT/recipe" \
        --device "$device" "$@" || return 1
    tail -n 2 "$OUT/recipe/log.jsonl"
}
export -f recipe
export PY OUT

if [[ $SMOKE == 1 ]]; then
    step cuda_tests 300 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/physics/test_operator_checks.py
    step train_step 300 "$PY" benchmarks/train_step.py --quick --cases plain,mri-8coil,ct-60/180
    step sampling 300 "$PY" benchmarks/sampling.py --quick
    step quality 600 "$PY" -m cli train --modality mri --coils 8 --size 32 --n-train 16 --n-test 2 \
        --center-fraction 0.2 --steps 4 --distill-steps 2 --eval-slices 1 --device cpu --out "$OUT/quality"
    step loader 120 "$PY" benchmarks/loader.py --quick --workers 0,2
    step recipe_step 300 "$PY" benchmarks/train_step.py --presets tiny --size 32 --batch 2 --cases plain,mri-8coil --rounds 1
    step recipe 600 bash -c 'recipe "$@"' recipe 6 64 96 32 96 cpu --preset tiny --steps 2 --distill-steps 2 --batch 2 \
        --no-eval
else
    step cuda_tests 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
    step train_step 80 "$PY" benchmarks/train_step.py --device cuda --presets small,base --cases plain,mri-8coil,ct-60/180 \
        --rounds 6
    step sampling 50 "$PY" benchmarks/sampling.py --device cuda
    step quality 200 "$PY" -m cli train --modality mri --coils 8 --size 128 --preset small --steps 1000 \
        --distill-steps 200 --eval-slices 8 --device cuda --out "$OUT/quality"
    step loader 150 "$PY" benchmarks/loader.py --device cuda --root "$OUT/loader-set" --sets brain-4vc \
        --workers 0,2,4,8 --rounds 1
    step recipe_step 90 "$PY" benchmarks/train_step.py --device cuda --presets fastmri --size 384 --batch 8 \
        --cases plain,mri-8coil --rounds 6
    step recipe 240 bash -c 'recipe "$@"' recipe 16 768 384 384 384 cuda --steps 200 --distill-steps 50 --no-eval
fi
[[ -f "$OUT/quality/report.md" ]] && sed -n 1,40p "$OUT/quality/report.md"
if (( ${#FAILED[@]} )); then echo "FAILED: ${FAILED[*]}"; exit 1; fi
echo "all steps passed"
