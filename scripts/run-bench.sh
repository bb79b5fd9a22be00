#!/usr/bin/env bash
# Runs one benchmark of bench/ (speed, scale, precision, load, gate_signals, standin_prefix, attribution, ...),
# installing what it needs on first use. Figures are printed; pass --json FILE to keep them. Example: scripts/run-bench.sh speed --json bench/results/speed.json
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh requirements-bench.txt
name="${1:?usage: scripts/run-bench.sh NAME [options], NAME a file of bench/ without .py (speed, scale, precision, load, ...)}"; shift
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec python "bench/$name.py" "$@"
