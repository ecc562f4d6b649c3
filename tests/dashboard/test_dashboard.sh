#!/usr/bin/env bash
# test_dashboard.sh - the fleet page (deploy/dashboard/) end to end: a real mosquitto with a TCP
# and a websockets listener on free loopback ports, real edgelmd nodes of this build on the TCP
# one, the page served by python3 -m http.server (and by mosquitto's own http_dir), driven in
# headless Chromium by playwright-core (drive_dashboard.js: nodes online with their model, a
# second node discovered live, fleet and streamed requests, cancel, escaping, stale, offline on
# SIGTERM, 360 px, the missing-bundle message, no console errors). A second mosquitto with
# passwords runs deploy/mosquitto/acl.conf plus the dashboard lines of docs/dashboard.md (read
# from the doc): the read-only account cannot ask, the operator can. mqtt.min.js comes from
# deploy/dashboard/build.sh; mqtt and playwright-core are installed with npm into the build
# tree once and reused. Screenshots go to the build tree, and with EDGELM_UPDATE_SCREENSHOT=1
# also to docs/dashboard.png. Loopback only; temp dir removed at exit. Exit 77 = skipped.
# Env: EDGELMD, EDGELM_GEN, EDGELM_BUILD_DIR (set by ctest), EDGELM_CHROMIUM (/usr/bin/chromium),
# EDGELM_DASHBOARD_OUT (screenshots; default $EDGELM_BUILD_DIR/tests/dashboard).
set -u
NAME=test_dashboard
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=SCRIPTDIR/../support/checks.sh
. "$here/../support/checks.sh"
# shellcheck source=SCRIPTDIR/../support/services.sh
. "$here/../support/services.sh"
started=$SECONDS


# ---- what the machine must have ------------------------------------------------------------------
chromium=${EDGELM_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || skip "$chromium not found (Debian package chromium: apt-get install -y chromium)"
command -v node >/dev/null || skip "node not found (Debian packages nodejs npm)"
command -v npm >/dev/null || skip "npm not found (Debian package npm)"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] 2>/dev/null ||
    skip "Node.js $(node --version 2>/dev/null) is too old: playwright-core needs 20 or later (Debian 12's nodejs is 18)"
command -v python3 >/dev/null || skip "python3 not found"
find_mosquitto
command -v mosquitto_sub >/dev/null || skip "mosquitto_sub not installed (Debian package mosquitto-clients)"
build=${EDGELM_BUILD_DIR:-$src/build}
EDGELMD=${EDGELMD:-$build/edgelmd}
EDGELM_GEN=${EDGELM_GEN:-$(dirname "$EDGELMD")/edgelm-gen}
[ -x "$EDGELMD" ] || skip "edgelmd not built ($EDGELMD)"
find_model "$src" "$EDGELM_GEN"
out=${EDGELM_DASHBOARD_OUT:-$build/tests/dashboard}
mkdir -p "$out"

pids=()
cleanup() {
    local p
    [ -f "$tmp/node-b.pid" ] && pids+=("$(cat "$tmp/node-b.pid")")
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---- npm: mqtt (through build.sh) and playwright-core, in the build tree, reused ------------------
npm_dir=$build/dashboard-npm
t0=$SECONDS
if ! bash "$src/deploy/dashboard/build.sh" --cache "$npm_dir/mqtt" --out "$tmp/site/www" >"$tmp/npm.log" 2>&1; then
    show "$tmp/npm.log"
    skip "npm install of mqtt failed (no npm registry?), see above"
fi
# playwright-core drives the system's Chromium over CDP (it never downloads a browser here);
# pinned, so a new release cannot change the test under us. Another version: a new cache folder.
playwright_version=1.65.2
pw=$npm_dir/playwright-$playwright_version
if [ ! -f "$pw/node_modules/playwright-core/package.json" ]; then
    mkdir -p "$pw"
    printf '{ "name": "edgelm-dashboard-test", "private": true, "dependencies": { "playwright-core": "%s" } }\n' \
        "$playwright_version" >"$pw/package.json"
    if ! (cd "$pw" && npm install --no-audit --no-fund --loglevel=error) >>"$tmp/npm.log" 2>&1; then
        show "$tmp/npm.log"
        skip "npm install of playwright-core failed (no npm registry?), see above"
    fi
fi
say "npm packages ready in $((SECONDS - t0)) s ($npm_dir)"

# the page as shipped (every file of deploy/dashboard/ but build.sh and a local mqtt.min.js),
# beside the bundle build.sh copied; and a copy without the bundle
mkdir -p "$tmp/site/www-nolib"
for f in "$src"/deploy/dashboard/*; do
    case $(basename "$f") in build.sh | mqtt.min.js*) continue ;; esac
    cp "$f" "$tmp/site/www/" && cp "$f" "$tmp/site/www-nolib/"
done
check "build.sh put mqtt.min.js beside the page" test -s "$tmp/site/www/mqtt.min.js"

# ---- mosquitto: TCP + websockets on free loopback ports ------------------------------------------
# start_broker NAME SETTINGS: mosquitto with SETTINGS (lines) and two listeners, $tmp/broker-NAME.conf
# and broker-NAME.log; sets broker_port (TCP) and broker_ws_port; true once both listen.
start_broker() {
    local name=$1 settings=$2 pid up="" i
    for _ in 1 2 3; do # another test may take a port between free_port and mosquitto's bind
        broker_port=$(free_port)
        broker_ws_port=$(free_port)
        [ "$broker_port" = "$broker_ws_port" ] && continue
        # mosquitto 2.0.11 binds a websockets listener to every interface whatever address is
        # given (deploy/mosquitto/production.conf): nothing here sends to it but loopback.
        {
            printf '%s\n' "$settings"
            printf 'per_listener_settings false\npersistence false\nset_tcp_nodelay true\n'
            printf 'log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n'
            printf 'log_type information\n'
            [ "$(id -u)" -eq 0 ] && echo "user $(id -un)" # else it drops to "mosquitto"
            printf 'listener %s 127.0.0.1\nprotocol mqtt\n' "$broker_port"
            printf 'listener %s 127.0.0.1\nprotocol websockets\n' "$broker_ws_port"
        } >"$tmp/broker-$name.conf"
        [ "$name" = open ] && echo "http_dir $tmp/site/www" >>"$tmp/broker-$name.conf"
        "$mosquitto_bin" -c "$tmp/broker-$name.conf" >"$tmp/broker-$name.log" 2>&1 &
        pid=$!
        pids+=("$pid")
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            listening "$broker_port" && listening "$broker_ws_port" && { up=1; break; }
            sleep 0.1
        done
        [ -n "$up" ] && return 0
        kill -KILL "$pid" 2>/dev/null
        grep -q 'Address already in use' "$tmp/broker-$name.log" || break
    done
    show "$tmp/broker-$name.conf" "$tmp/broker-$name.log"
    return 1
}
# the main broker: anonymous, and serving the page itself on its websockets port (http_dir)
if ! start_broker open "allow_anonymous true"; then
    check "mosquitto started with a websockets listener" false
    finish
    exit 1
fi
port=$broker_port
ws_port=$broker_ws_port
check "mosquitto's http_dir serves the page on the websockets port" \
    python3 -c 'import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=10).read()
sys.exit(0 if body == open(sys.argv[2], "rb").read() else 1)' \
    "http://127.0.0.1:$ws_port/" "$tmp/site/www/index.html"

# the second broker: passwords, deploy/mosquitto/acl.conf as shipped plus the lines
# docs/dashboard.md gives an operator account and a node (taken from the doc itself)
doc_block() { # FIRST_LINE: the indented block of docs/dashboard.md that starts with it
    awk -v first="    $1" '$0 == first {f = 1} f && $0 == "" {exit} f {sub(/^    /, ""); print}' \
        "$src/docs/dashboard.md"
}
acl_node=kitchen
doc_block "user operator" >"$tmp/acl-operator.txt"
doc_block "user $acl_node" >"$tmp/acl-node.txt"
check "docs/dashboard.md gives the operator's ACL" grep -q '^topic write edgelm/+/request$' "$tmp/acl-operator.txt"
check "docs/dashboard.md gives the node's ACL line" grep -q '^topic write dashboard/' "$tmp/acl-node.txt"
{ cat "$src/deploy/mosquitto/acl.conf"; echo; cat "$tmp/acl-operator.txt"; echo; cat "$tmp/acl-node.txt"; } \
    >"$tmp/acl.conf"
rand_pw() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
pw_node=$(rand_pw) pw_operator=$(rand_pw) pw_dashboard=$(rand_pw)
: >"$tmp/passwd"
if ! { mosquitto_passwd -b "$tmp/passwd" "$acl_node" "$pw_node" &&
    mosquitto_passwd -b "$tmp/passwd" operator "$pw_operator" &&
    mosquitto_passwd -b "$tmp/passwd" dashboard "$pw_dashboard"; }; then
    skip "mosquitto_passwd failed"
fi
acl_ws_port=""
acl_settings=$(printf 'allow_anonymous false\npassword_file %s\nacl_file %s' "$tmp/passwd" "$tmp/acl.conf")
if start_broker acl "$acl_settings"; then
    acl_port=$broker_port
    acl_ws_port=$broker_ws_port
else
    check "mosquitto started with the ACL" false
fi

# ---- edgelmd nodes: two on the open broker (the second started by the driver, after the page) ----
node_conf() { # NODE_ID BROKER_PORT [USER PASSWORD]: a config
    local auth=""
    [ $# -ge 4 ] && auth="username = \"$3\"; password = \"$4\";"
    cat <<EOF
mqtt = { broker = "tcp://127.0.0.1:$2"; keepalive_s = 5; $auth };
node = { id = "$1"; };
fleet = { enabled = true; };
model = { path = "$model"; threads = 1; };
metrics = { interval_s = 2; };
log = { level = "info"; };
EOF
}
node_a=kitchen
node_b=garage
node_conf "$node_a" "$port" >"$tmp/node-a.conf"
node_conf "$node_b" "$port" >"$tmp/node-b.conf"
"$EDGELMD" --config "$tmp/node-a.conf" >"$tmp/node-a.log" 2>&1 &
node_a_pid=$!
pids+=("$node_a_pid")
if [ -n "$acl_ws_port" ]; then # node id = user name, as acl.conf wants
    node_conf "$acl_node" "$acl_port" "$acl_node" "$pw_node" >"$tmp/node-acl.conf"
    "$EDGELMD" --config "$tmp/node-acl.conf" >"$tmp/node-acl.log" 2>&1 &
    pids+=("$!")
fi
# the model name the nodes report in health, as the page should show it
mosquitto_sub -h 127.0.0.1 -p "$port" -t "edgelm/$node_a/health" -C 1 -W 60 >"$tmp/health.json" 2>&1
model_name=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"])' \
    "$tmp/health.json" 2>/dev/null)
if [ -z "$model_name" ]; then
    show "$tmp/health.json" "$tmp/node-a.log"
    check "edgelmd $node_a published its health" false
    finish
    exit 1
fi

# ---- the page over HTTP ---------------------------------------------------------------------------
http_up=""
for _ in 1 2 3; do
    http_port=$(free_port)
    python3 -m http.server --bind 127.0.0.1 --directory "$tmp/site" "$http_port" >"$tmp/http.log" 2>&1 &
    http_pid=$!
    pids+=("$http_pid")
    for _ in $(seq 100); do
        kill -0 "$http_pid" 2>/dev/null || break
        listening "$http_port" && { http_up=1; break; }
        sleep 0.1
    done
    [ -n "$http_up" ] && break
done
[ -n "$http_up" ] || { show "$tmp/http.log"; check "python3 -m http.server started" false; finish; exit 1; }

# ---- the browser --------------------------------------------------------------------------------
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$EDGELMD" --config "$tmp/node-b.conf" \
    >"$tmp/node-b.argv"
t0=$SECONDS
PLAYWRIGHT_DIR=$pw CHROMIUM=$chromium \
    PAGE_URL="http://127.0.0.1:$http_port/www/index.html" \
    NOLIB_URL="http://127.0.0.1:$http_port/www-nolib/index.html" \
    HTTPDIR_URL="http://127.0.0.1:$ws_port/index.html" \
    WS_URL="ws://127.0.0.1:$ws_port" MQTT_PORT=$port \
    NODE_A=$node_a NODE_A_PID=$node_a_pid NODE_B=$node_b MODEL=$model_name \
    NODE_B_CMD="$(cat "$tmp/node-b.argv")" NODE_B_LOG="$tmp/node-b.log" NODE_B_PIDFILE="$tmp/node-b.pid" \
    OUT_DIR=$out ACL_WS_URL=${acl_ws_port:+ws://127.0.0.1:$acl_ws_port} ACL_NODE=$acl_node \
    ACL_OPERATOR_PW=$pw_operator ACL_DASHBOARD_PW=$pw_dashboard \
    node "$here/drive_dashboard.js" >"$tmp/driver.out" 2>"$tmp/driver.err"
driver_status=$?
sed 's/^/    /' "$tmp/driver.out" >&2
n_ok=$(grep -c '^ok - ' "$tmp/driver.out")
n_bad=$(grep -c '^not ok - ' "$tmp/driver.out")
checks=$((checks + n_ok + n_bad))
failures=$((failures + n_bad))
if [ "$driver_status" -ne 0 ] && [ "$n_bad" -eq 0 ]; then
    checks=$((checks + 1))
    failures=$((failures + 1))
    echo "FAIL: the driver exited with status $driver_status" >&2
fi
if [ "$n_bad" -gt 0 ] || [ "$driver_status" -ne 0 ]; then
    show "$tmp/driver.err" "$tmp/node-a.log" "$tmp/node-b.log" "$tmp/broker-open.log" "$tmp/node-acl.log" \
        "$tmp/broker-acl.log"
fi
say "browser part: $((SECONDS - t0)) s; screenshots in $out"

exited_ok() { # PID SECONDS: true once PID has exited with status 0 (the driver sent SIGTERM)
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$1" 2>/dev/null && { echo "still running"; return 1; }
    wait "$1"
}
check "edgelmd $node_a exited 0 after SIGTERM" exited_ok "$node_a_pid" 15
if [ -n "$acl_ws_port" ]; then
    check "the ACL'd broker denied edgelmd $acl_node nothing" exit_code 1 \
        grep -q "Denied PUBLISH from edgelmd-$acl_node" "$tmp/broker-acl.log"
fi
check "no sanitizer report in the nodes' logs (sanitizer builds)" exit_code 1 \
    grep -l 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' "$tmp"/node-*.log
if [ "${EDGELM_UPDATE_SCREENSHOT:-0}" = 1 ] && [ "$failures" -eq 0 ]; then
    cp "$out/dashboard.png" "$src/docs/dashboard.png" && say "updated docs/dashboard.png"
fi
say "wall time $((SECONDS - started)) s"
finish
