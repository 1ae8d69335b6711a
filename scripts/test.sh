#!/usr/bin/env bash
# Installs everything the test suite needs into .venv (idempotent) and runs it.
# Used by the README's test command and by CI (.ci/run). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
# torch==2.13.0 (pinned by the extra) resolves to the CPU build available on this machine's wheel cache.
.venv/bin/python -m pip install -q -e ".[dev,serve,torch,ray,adapt]" 2>&1 | grep -v -i warning || true
# silero-vad carries the VAD weights; its metadata asks for torch, which callsense never imports for VAD.
.venv/bin/python -m pip install -q --no-deps "silero-vad>=5.1" 2>&1 | grep -v -i warning || true
.venv/bin/python -c "import callsense, av, onnxruntime, sherpa_onnx" # fail here, loudly, if the install broke
if ! command -v chromium >/dev/null 2>&1; then  # the web UI test drives Debian's headless Chromium
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will fail" >&2
fi
if ! command -v espeak-ng >/dev/null 2>&1; then  # the bundled examples' byte-for-byte regeneration test
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null) \
    || echo "warning: could not install espeak-ng; the examples' regeneration test is skipped" >&2
fi
exec .venv/bin/python -m pytest "$@"
