#!/usr/bin/env bash
# The local stack (README's first command): install what is missing, then run it until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$HOME/.local/bin:$PATH"
exec uv run voicestack up "$@"
