#!/usr/bin/env bash
# The test command (README, .ci/run): install what is missing, lint, type-check, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"

echo "== ruff" && uv run ruff check . && uv run ruff format --check .
echo "== mypy" && uv run mypy
echo "== pip-audit" && bash scripts/audit.sh
echo "== pytest" && uv run pytest "$@"
