#!/usr/bin/env bash
# Set up rsd-sci in ./.venv: a virtual environment, PyTorch (the CPU build where no NVIDIA GPU is found),
# and rsd-sci itself (editable). `scripts/setup.sh --test` adds the test extras.
# Re-running is cheap: what is installed stays.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${pip[@]}" install "torch>=2.4,<3"                       # CUDA build from the package index
  else
    # The CPU build: a wheel from a local wheelhouse if pip is configured with one (offline mirrors),
    # else PyTorch's CPU index. torch's own dependencies come from the usual index either way.
    wheels=$(mktemp -d)
    if "${pip[@]}" download --no-index --no-deps -d "$wheels" "torch>=2.4,<3" >/dev/null 2>&1; then
      "${pip[@]}" install "$wheels"/torch-*.whl
    else
      "${pip[@]}" install "torch>=2.4,<3" --index-url https://download.pytorch.org/whl/cpu
    fi
    rm -rf "$wheels"
  fi
fi
"${pip[@]}" install -e ".${extras}"
# The tests check our masks and FFT against the fastmri package itself; its own dependencies include
# torchvision, which must not be installed beside a CPU torch, so it comes without them.
[ -n "$extras" ] && "${pip[@]}" install --no-deps "fastmri==0.3.0"
echo "rsd-sci is set up in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
