#!/usr/bin/env bash
# Runs the app on http://127.0.0.1:${RAG_APP_PORT:-8501}: installs into .venv if needed, loads the sample documents
# into a new store, and, if no Ollama answers at RAG_OLLAMA_URL, starts the stand-in server with its small model.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh requirements.txt

OLLAMA_URL="${RAG_OLLAMA_URL:-http://127.0.0.1:11434}"
if python - "$OLLAMA_URL" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/api/version", timeout=3)
PY
then
  echo "app: using Ollama at $OLLAMA_URL" >&2
else
  . scripts/setup.sh requirements-standin.txt
  port="$(python -c 'import sys, urllib.parse as u; print(u.urlparse(sys.argv[1]).port or 11434)' "$OLLAMA_URL")"
  mkdir -p store
  echo "app: no Ollama at $OLLAMA_URL; starting the stand-in server with smollm2:135m (log: store/standin.log)" >&2
  python -m ollama_standin --host 127.0.0.1 --port "$port" > store/standin.log 2>&1 &
  STANDIN_PID=$!
  trap 'kill $STANDIN_PID 2>/dev/null || true' EXIT
  export RAG_OLLAMA_URL="$OLLAMA_URL" RAG_OLLAMA_MODEL="${RAG_OLLAMA_MODEL:-smollm2:135m}"
  for _ in $(seq 1 120); do
    python -c "import urllib.request; urllib.request.urlopen('$OLLAMA_URL/', timeout=2)" 2>/dev/null && break
    kill -0 $STANDIN_PID 2>/dev/null || { echo "app: the stand-in server failed, see store/standin.log" >&2; exit 1; }
    sleep 1
  done
fi

# A new embedded store starts with the sample documents; an existing one is left as the user made it.
if [ -z "${RAG_CHROMA_HOST:-}" ] && [ ! -d "${RAG_CHROMA_PATH:-store/chroma}" ]; then
  echo "app: new store, adding the sample documents in data/" >&2
  python -m rag ingest data/ || echo "app: some sample documents were not added (see above)" >&2
fi

# Said once here rather than on the first question: a cross-encoder that cannot load (no model hub, no local copy)
# leaves answers in the bi-encoder's order, with a notice on each.
python -m rag doctor --only reranker | sed -n 's/^problem */app: /p' >&2 || true

python -m streamlit run app.py --server.headless=true --server.address="${RAG_APP_ADDRESS:-127.0.0.1}" \
  --server.port="${RAG_APP_PORT:-8501}" --browser.gatherUsageStats=false "$@"
