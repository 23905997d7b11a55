#!/usr/bin/env bash
# Installs what voicestack needs on a fresh Debian machine with Python 3.11:
# Debian packages (espeak-ng for speech fixtures; mosquitto, mosquitto-clients and
# openssl for the MQTT tests; docker-compose to validate the compose files; chromium for
# the voice page's browser tests, driven by Playwright: never `playwright install`; postgresql
# for the conversation store's tests, which start their own throwaway server), uv, and
# the workspace's Python packages in .venv. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pair in "espeak-ng:espeak-ng" "mosquitto:mosquitto" "mosquitto_sub:mosquitto-clients" \
            "openssl:openssl" "docker-compose:docker-compose" "chromium:chromium"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair##*:}")
done
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
python3 -m pip --version >/dev/null 2>&1 || command -v uv >/dev/null 2>&1 || missing+=(python3-pip)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv" >&2
  # Debian marks its Python as externally managed; uv is a single self-contained tool.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --user --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

uv sync --locked --quiet
