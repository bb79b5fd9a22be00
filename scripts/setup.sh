# Sourced by run-app.sh and run-tests.sh: a .venv with the given requirements files, installed once per change.
# Usage: . scripts/setup.sh requirements.txt [more requirement files...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

# llama-cpp-python ships only as source: build it portable (no -march=native), two jobs at a time.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"

for req in "$@"; do
  stamp="$VENV/.installed-$(basename "$req")"
  # Hash the file and what it includes (-r lines), so that any change reinstalls.
  want="$(cd "$REPO" && cat "$req" $(sed -n 's/^-r[[:space:]]*//p' "$req") | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing $req (the first time takes a few minutes)" >&2
    (cd "$REPO" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req")
    echo "$want" > "$stamp"
  fi
done
export PATH="$VENV/bin:$PATH"
