#!/usr/bin/env bash
# Creates <repo>/.venv and installs tagstream with its dev extras (idempotent, quiet when done).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${TAGSTREAM_VENV:-$repo/.venv}
py=${PYTHON:-python3}
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "[bootstrap] error: Python >= 3.11 required ($py is $("$py" -V 2>&1))" >&2; exit 1; }
stamp=$venv/.tagstream-installed
if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv" >&2
  "$py" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  echo "[bootstrap] installing tagstream and its dependencies into $venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$repo[dev${TAGSTREAM_EXTRAS:+,$TAGSTREAM_EXTRAS}]"
  touch "$stamp"
fi
# The engine's hot modules compiled with mypyc (streams/engine/native.py, about 30 s once) and the Rust
# core (native/, with cargo: about 40 s once): each skipped when a build for its current sources exists.
# Without a C compiler the engine runs as pure Python; without cargo ingest takes its Python path.
if ! "$venv/bin/python" -m streams.tools.build_native --quiet >"$venv/.build-native.log" 2>&1; then
  echo "[bootstrap] warning: the compiled engine or the Rust core could not be built (log: $venv/.build-native.log); that part runs as Python" >&2
fi
