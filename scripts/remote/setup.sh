#!/usr/bin/env bash
# Creates .venv-server with llama-cpp-python's OpenAI-compatible server, the
# real server the remote-backend tests start on a loopback port
# (tests/remote_server.rs). It builds llama.cpp from source: ~12 minutes on
# two cores. Idempotent: an existing venv with the right version is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-server}
VERSION=0.3.36
if "$VENV/bin/python" -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
  echo "server venv ready: $VENV (llama-cpp-python $VERSION)"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# These VMs report AMX but fault on its instructions (SIGILL): build without it.
NOAMX='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'
CMAKE_ARGS="-DCMAKE_C_FLAGS='$NOAMX' -DCMAKE_CXX_FLAGS='$NOAMX'" \
  "$VENV/bin/pip" install -q --no-cache-dir "llama-cpp-python[server]==$VERSION"
"$VENV/bin/python" -c "import llama_cpp, llama_cpp.server; print('server venv ready:', llama_cpp.__version__)"
