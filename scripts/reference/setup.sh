#!/usr/bin/env bash
# Creates .venv-ref with the independent reference implementations used to
# make the committed fixtures under tests/fixtures/: llama.cpp (through
# llama-cpp-python, built from source), the `gguf` reader and numpy.
# CI never runs this: the fixtures are committed. It takes ~10 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-ref}
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q numpy gguf scipy
# These VMs report AMX but fault on its instructions (SIGILL): build without it.
NOAMX='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
CMAKE_ARGS="-DCMAKE_C_FLAGS='$NOAMX' -DCMAKE_CXX_FLAGS='$NOAMX'" \
  "$VENV/bin/pip" install -q --no-cache-dir llama-cpp-python==0.3.36
"$VENV/bin/python" -c "import llama_cpp, gguf, numpy; print('reference venv ready:', llama_cpp.__version__)"
