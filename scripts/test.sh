#!/usr/bin/env bash
# The test command (README, .ci/run): install what is missing, lint, type-check, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"

echo "== ruff" && uv run ruff check . && uv run ruff format --check .
echo "== mypy" && uv run mypy
echo "== pip-audit" && bash scripts/audit.sh
# Two workers (VOICESTACK_TEST_WORKERS), each test module on one of them, the longest modules first
# (tests/conftest.py): the real engines of one module never race another's for a port or a file.
workers="${VOICESTACK_TEST_WORKERS:-2}"
echo "== pytest ($workers workers)" && uv run pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
