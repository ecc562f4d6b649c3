#!/usr/bin/env bash
# build.sh - puts MQTT.js 5's browser bundle (mqtt.min.js, from the npm package "mqtt") next to
# the fleet page, which loads it from its own folder (no CDN). Installs the package with npm into
# a cache folder outside the repository once, then copies node_modules/mqtt/dist/mqtt.min.js.
# Not a bundler: the page's own files are used as they are. The copy is not in git (.gitignore).
#   bash deploy/dashboard/build.sh [--out DIR] [--cache DIR] [--update]
#     --out DIR    where mqtt.min.js goes (default: this folder, beside index.html)
#     --cache DIR  npm install folder (default: $EDGELM_DASHBOARD_CACHE, else
#                  ${XDG_CACHE_HOME:-~/.cache}/edgelm-dashboard); reused while it holds the file
#     --update     install again (the newest 5.x) even if the cache has a copy
# Needs Node.js and npm (Debian: apt-get install -y nodejs npm) and the npm registry, once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here
cache=${EDGELM_DASHBOARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgelm-dashboard}
update=""
# The major version the page is written against (MQTT.js 5's connect options and events).
mqtt_spec=${EDGELM_MQTTJS_VERSION:-5}

usage() { sed -n '6,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
        --cache) [ $# -ge 2 ] || usage; cache=$2; shift 2 ;;
        --update) update=1; shift ;;
        -h | --help) usage ;;
        *) echo "build.sh: unknown argument '$1'" >&2; usage ;;
    esac
done

bundle=$cache/node_modules/mqtt/dist/mqtt.min.js
if [ -n "$update" ] || [ ! -s "$bundle" ]; then
    command -v npm >/dev/null || {
        echo "build.sh: npm not found (Debian: apt-get install -y nodejs npm)" >&2
        exit 1
    }
    mkdir -p "$cache"
    # A package.json of its own, so that npm keeps a lock file there and never walks up into
    # another project's node_modules.
    printf '{ "name": "edgelm-dashboard-deps", "private": true, "dependencies": { "mqtt": "%s" } }\n' \
        "$mqtt_spec" >"$cache/package.json"
    echo "build.sh: npm install mqtt@$mqtt_spec into $cache" >&2
    (cd "$cache" && npm install --no-audit --no-fund --loglevel=error) >&2
fi
[ -s "$bundle" ] || { echo "build.sh: $bundle missing after npm install" >&2; exit 1; }
version=$(node -p 'require(process.argv[1]).version' "$cache/node_modules/mqtt/package.json" \
    2>/dev/null || echo "?")
mkdir -p "$out"
cp "$bundle" "$out/mqtt.min.js.tmp"
mv "$out/mqtt.min.js.tmp" "$out/mqtt.min.js"
echo "build.sh: $out/mqtt.min.js (MQTT.js $version)" >&2
