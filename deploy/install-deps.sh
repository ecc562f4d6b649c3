#!/usr/bin/env bash
# Install the Debian 12 packages edgelm builds, tests and runs with, when any is missing.
# Used by .ci/run and deploy/run-demo.sh; runs apt-get directly as root, through sudo otherwise.
set -euo pipefail
# (curl, wget: tools/get-model and its test; systemd: `systemd-analyze verify` of the unit;
#  python3-jinja2, python3-yaml: test_home_assistant renders the discovery templates and examples)
packages=(build-essential cmake pkg-config python3 libcjson-dev libpaho-mqtt-dev libconfig-dev
          mosquitto mosquitto-clients openssl curl wget systemd python3-jinja2 python3-yaml)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node + npm for tests/integrations/test_node_red.sh and tests/dashboard (Node-RED 4.1 needs
# Node.js >= 18.5; Debian 12's nodejs is 18.20). Checked by command, not package: a NodeSource
# nodejs provides npm itself and conflicts with Debian's npm package.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
fi
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
    sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -q || true
"${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}"
