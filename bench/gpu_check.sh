#!/usr/bin/env bash
# The prepared GPU check (issue 16): on a machine with one NVIDIA GPU and only this repository and a
# Python 3.11, make a venv, install callsense[gpu] (+ torch CPU, to forge the full-size models), forge
# them, and print RTF, throughput (audio hours per hour), GPU memory and the targets. About 8 minutes.
#
#   bench/gpu_check.sh            # the real check (exit 4 when no GPU is usable)
#   bench/gpu_check.sh --smoke    # here, no venv: tiny models, the CUDA path on the CPU provider
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--smoke" ]]; then
  exec "${PYTHON:-python3}" bench/gpu_check.py --smoke
fi
PY="${PYTHON:-python3}"
VENV=bench/work/gpu-venv
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch only forges the models (CPU wheel, small); the models themselves run on onnxruntime-gpu.
  "$VENV/bin/pip" install -q --extra-index-url https://download.pytorch.org/whl/cpu '.[gpu,torch]'
  # onnxruntime (CPU, a core dependency) and onnxruntime-gpu ship the same module: keep the GPU one.
  "$VENV/bin/pip" uninstall -q -y onnxruntime
  "$VENV/bin/pip" install -q --force-reinstall --no-deps 'onnxruntime-gpu>=1.31,<1.32'
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec "$VENV/bin/python" bench/gpu_check.py "$@"
