#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need, then pytest, whose fixtures start
# the servers (the stand-in Ollama, a Chroma server, the app). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh requirements-dev.txt requirements-standin.txt

# The browser tests drive Debian's Chromium (browser downloads are not possible everywhere).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing chromium with apt" >&2
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python -m pytest "$@"
