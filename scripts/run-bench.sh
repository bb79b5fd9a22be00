#!/usr/bin/env bash
# Runs one benchmark of bench/ (speed, scale, load, plots), installing what it needs on first use. Figures are printed;
# pass --json FILE to keep them. Example: scripts/run-bench.sh speed --json bench/results/speed.json
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh requirements-bench.txt
name="${1:?usage: scripts/run-bench.sh speed|scale|load|plots [options]}"; shift
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python "bench/$name.py" "$@"
