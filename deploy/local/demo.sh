#!/usr/bin/env bash
# The demo: installs tagstream into .venv, starts Kafka + Redis + Prometheus locally, runs a
# worker and the synthetic retail generator, and shows tags appearing for sample customers.
#   bash deploy/local/demo.sh [--count N] [--rate R] [--customers C]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
bash deploy/local/bootstrap.sh
exec .venv/bin/tagstream demo "$@"
