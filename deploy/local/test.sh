#!/usr/bin/env bash
# Runs the linter, the type checker (mypy) and the whole test suite: unit tests, then integration tests against a real Kafka broker and
# a real Redis server that the tests start themselves (deploy/local/stack.sh on free ports).
# Installs what is missing first: the Python venv (.venv), redis-server and prometheus (promtool)
# from Debian's packages, kustomize where kubectl is missing (Go module proxy), and the Kafka jars
# from Maven Central (cached in .cache/).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
bash deploy/local/bootstrap.sh
for pkg in redis-server:redis-server prometheus:promtool; do
  name=${pkg%%:*} cmd=${pkg##*:}
  if ! command -v "$cmd" >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then echo "[test] error: $cmd missing; apt-get install $name" >&2; exit 1; fi
    echo "[test] installing Debian package $name" >&2
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ] || apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$name" >/dev/null ||
      { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$name" >/dev/null; }
    # Debian starts packaged services on install; the tests run their own on free ports.
    systemctl disable --now "$name" >/dev/null 2>&1 || service "$name" stop >/dev/null 2>&1 || true
  fi
done
# kustomize for the Kubernetes manifest tests: kubectl's built-in one, else a pinned build from the Go
# module proxy into .cache/bin (about 2 minutes once).
if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1 && [ ! -x .cache/bin/kustomize ]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$go" ] || { echo "[test] error: kubectl or kustomize needed (tests/unit/test_k8s_manifests.py); install kubectl, or Go to build kustomize" >&2; exit 1; }
  echo "[test] building kustomize v5.5.0 into .cache/bin" >&2
  GOBIN="$repo/.cache/bin" "$go" install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
fi
bash deploy/local/stack.sh resolve
.venv/bin/ruff check .
.venv/bin/mypy  # typing: settings and paths in pyproject.toml [tool.mypy]
exec .venv/bin/python -m pytest "$@"
