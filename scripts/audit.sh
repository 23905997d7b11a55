#!/usr/bin/env bash
# Known-vulnerability audit of every locked dependency (pip-audit over uv.lock, PyPI's advisory data).
# Accepted findings: one "ID reason" line each in scripts/audit-ignore.txt (docs/reliability.md explains).
# Offline (PyPI's release JSON unreachable) the audit is skipped with a warning, unless VOICESTACK_AUDIT=required.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"
PIP_AUDIT_VERSION=2.10.1

if [[ "${VOICESTACK_AUDIT:-auto}" == "off" ]]; then
    echo "pip-audit: off (VOICESTACK_AUDIT=off)"
    exit 0
fi
# pip-audit reads PyPI's per-release JSON (vulnerabilities included); some mirrors serve only the index.
# Where that is missing but OSV's API answers, OSV's data is used instead (the same advisories).
service=(--vulnerability-service pypi)
if curl -fsS --max-time 10 -o /dev/null https://pypi.org/pypi/pip/24.0/json; then
    :
elif curl -fsS --max-time 10 -o /dev/null -d '{"package":{"name":"pip","ecosystem":"PyPI"},"version":"24.0"}' \
    https://api.osv.dev/v1/query; then
    service=(--vulnerability-service osv)
else
    if [[ "${VOICESTACK_AUDIT:-auto}" == "required" ]]; then
        echo "pip-audit: PyPI is unreachable and VOICESTACK_AUDIT=required" >&2
        exit 1
    fi
    echo "pip-audit: WARNING: neither PyPI's release data nor OSV's API is reachable; the audit did not run" \
        "(VOICESTACK_AUDIT=required makes this fail)"
    exit 0
fi
requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
uv export --locked --format requirements-txt --no-hashes --all-packages --all-groups --no-emit-workspace -q \
    -o "$requirements"
ignores=()
if [[ -f scripts/audit-ignore.txt ]]; then
    while read -r id _reason; do
        [[ -z "$id" || "$id" == \#* ]] || ignores+=(--ignore-vuln "$id")
    done < scripts/audit-ignore.txt
fi
uvx --from "pip-audit==$PIP_AUDIT_VERSION" pip-audit -r "$requirements" --no-deps --disable-pip \
    --progress-spinner off --strict "${service[@]}" "${ignores[@]}"
