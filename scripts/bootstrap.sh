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

# Kokoro's 54 voices (af_heart among them) are in the kokoro 0.9.4 *source* distribution
# (Apache-2.0; the wheel has none, and installing the package would pull torch): fetched once
# from the package index into the cache, where the TTS broker looks for it, and checked against
# its pinned sha256 (tts_broker.models.KOKORO_SDIST_SHA256).
kokoro_sdist=kokoro-0.9.4.tar.gz
kokoro_sdist_sha256=fbf633262797f8cf46fdac3315cf9cade67dc8b762c0feccf334892772fb9ac4
packages="${XDG_CACHE_HOME:-$HOME/.cache}/voicestack/packages"
if [ ! -f "$packages/$kokoro_sdist" ]; then
  echo "bootstrap: fetching Kokoro's voices (the kokoro 0.9.4 sdist, 26 MB)" >&2
  mkdir -p "$packages"
  fetched="$(mktemp -d "$packages/.fetch.XXXXXX")"
  trap 'rm -rf "$fetched"' EXIT  # a failed download leaves nothing behind
  # Debian's python3-pip when it is there (as on a fresh machine after the steps above), else
  # pip run by uv; a download only, so Debian's externally-managed marker does not apply.
  if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip); else pip=(uvx pip); fi
  "${pip[@]}" download --quiet --no-deps --no-binary :all: "kokoro==0.9.4" -d "$fetched"
  if ! echo "$kokoro_sdist_sha256  $fetched/$kokoro_sdist" | sha256sum --check --status; then
    echo "bootstrap: $kokoro_sdist does not match its pinned sha256; not kept" >&2
    exit 1
  fi
  mv "$fetched/$kokoro_sdist" "$packages/$kokoro_sdist"
  rm -rf "$fetched"
fi
