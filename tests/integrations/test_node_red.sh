#!/usr/bin/env bash
# test_node_red.sh - deploy/node-red/node-red-contrib-edgelm in a real Node-RED 4.1 against a real
# mosquitto and a real edgelmd: the package packed as npm would publish it and installed into a
# fresh userDir, Node-RED run headless on deploy/node-red/examples/http-ask.json (broker URL and
# node id substituted) plus node_red_test_flow.json, then driven with curl: answers on the http
# in node's own msg (msg.res survives), streamed chunks adding up to the result, edgelmd's
# invalid_request in a Catch, concurrent requests, format, timeout + cancel, no subscribers, a
# reply prefix edgelmd refuses, fleet, {target} reply prefixes, mqtts:// with a CA file and a
# password, redeploy with a pending request, a broker restart.
# Node-RED comes from npm into a cache folder reused between runs (EDGELM_NODE_RED_CACHE; the
# build tree's under ctest). Loopback only; temp dir removed at exit. Exit 77 = skipped (no node
# or npm, Node.js < 18.5, no mosquitto/curl, no edgelmd, or the npm registry unreachable).
# Usage: bash test_node_red.sh   (env: EDGELMD, EDGELM_GEN, EDGELM_NODE_RED_CACHE,
#        EDGELM_NODE_RED_VERSION (default 4.1), EDGELM_NODE_RED_LOGS (a dir to keep the logs in),
#        EDGELM_MODELS[_DEFAULT])
set -u
NAME=test_node_red
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=SCRIPTDIR/../support/checks.sh
. "$here/../support/checks.sh"
# shellcheck source=SCRIPTDIR/../support/services.sh
. "$here/../support/services.sh"
started_s=$SECONDS

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${EDGELM_NODE_RED_LOGS:-}" ]; then # keep the logs and answers (for CI artifacts)
        mkdir -p "$EDGELM_NODE_RED_LOGS" && cp "$tmp"/*.log "$tmp"/*.out "$tmp"/*.json \
            "$EDGELM_NODE_RED_LOGS"/ 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# ---- what the machine must have -------------------------------------------------------------
for tool in node npm; do
    command -v "$tool" >/dev/null ||
        skip "$tool not installed; Node-RED needs Node.js >= 18.5 and npm (Debian 12: apt-get install -y nodejs npm)"
done
node_version=$(node -p 'process.versions.node')
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>18||(a===18&&b>=5)?0:1)' ||
    skip "Node.js $node_version is too old for Node-RED 4.1 (needs >= 18.5)"
find_mosquitto
for tool in mosquitto_pub mosquitto_sub curl python3; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
EDGELMD=${EDGELMD:-$src/build/edgelmd}
EDGELM_GEN=${EDGELM_GEN:-$(dirname "$EDGELMD")/edgelm-gen}
[ -x "$EDGELMD" ] || skip "edgelmd not built ($EDGELMD)"
find_model "$src" "$EDGELM_GEN"

# ---- the package's protocol module, unit-tested (node --test, no npm needed) ------------------
check "lib/protocol.js unit tests (node --test node_red_protocol.test.js)" \
    node --test "$here/node_red_protocol.test.js"

# ---- Node-RED from npm, cached; the package packed and installed into a fresh userDir -------
nr_want=${EDGELM_NODE_RED_VERSION:-4.1}
nr_spec="node-red@$nr_want"
cache=${EDGELM_NODE_RED_CACHE:-$(dirname "$EDGELMD")/tests/integrations/node-red-cache}
pkg_src=$src/deploy/node-red/node-red-contrib-edgelm
npm_flags=(--no-audit --no-fund --loglevel=error --omit=optional)
network_trouble='ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|ENETUNREACH|EHOSTUNREACH|network'
t0=$(date +%s%N)
if [ "$(cat "$cache/installed" 2>/dev/null)" = "$nr_spec node $node_version" ] &&
    [ -f "$cache/node_modules/node-red/red.js" ]; then
    nr_how="cached"
else
    rm -rf "$cache"
    mkdir -p "$cache"
    echo '{"name":"edgelm-node-red-cache","private":true}' >"$cache/package.json"
    if ! npm install --prefix "$cache" "${npm_flags[@]}" --prefer-offline "$nr_spec" >"$tmp/npm-node-red.log" 2>&1; then
        tail -n 20 "$tmp/npm-node-red.log" >&2
        rm -rf "$cache"
        skip "npm could not install $nr_spec (is the npm registry reachable?)"
    fi
    echo "$nr_spec node $node_version" >"$cache/installed"
    nr_how="installed from npm"
fi
nr_ms=$(ms_since "$t0")
nr_version=$(node -p "require('$cache/node_modules/node-red/package.json').version")
say "$nr_spec ($nr_version) $nr_how in $nr_ms ms ($cache)"
check "Node-RED is $nr_want.x" test "${nr_version#"$nr_want".}" != "$nr_version"

user_dir=$tmp/node-red
mkdir -p "$user_dir"
echo '{"name":"node-red-project","description":"test_node_red","version":"0.0.1","private":true}' \
    >"$user_dir/package.json"
t0=$(date +%s%N)
if ! (cd "$tmp" && npm pack --loglevel=error "$pkg_src") >"$tmp/npm-pack.log" 2>&1; then
    fail "npm pack $pkg_src" "$tmp/npm-pack.log"
    finish
    exit 1
fi
tgz=$(find "$tmp" -maxdepth 1 -name 'node-red-contrib-edgelm-*.tgz' | head -n 1)
tar tzf "$tgz" >"$tmp/tgz.list" 2>&1
for f in package.json edgelm-broker.js edgelm-broker.html edgelm-request.js edgelm-request.html \
    lib/protocol.js README.md LICENSE; do
    check "the packed package holds $f" grep -qx "package/$f" "$tmp/tgz.list"
done
check "the packed package holds no node_modules" exit_code 1 grep -q node_modules "$tmp/tgz.list"
if ! npm install --prefix "$user_dir" "${npm_flags[@]}" --prefer-offline "$tgz" >"$tmp/npm-pkg.log" 2>&1; then
    if grep -Eq "$network_trouble" "$tmp/npm-pkg.log"; then
        tail -n 20 "$tmp/npm-pkg.log" >&2
        skip "npm could not install the package's dependencies (is the npm registry reachable?)"
    fi
    fail "npm install of the packed node-red-contrib-edgelm" "$tmp/npm-pkg.log"
    finish
    exit 1
fi
pkg_ms=$(ms_since "$t0")
mqtt_version=$(node -p "require('$user_dir/node_modules/mqtt/package.json').version" 2>/dev/null)
say "node-red-contrib-edgelm packed and installed (with mqtt $mqtt_version) in $pkg_ms ms"
check "the package's MQTT.js is version 5" test "${mqtt_version%%.*}" = 5

# ---- mosquitto on a free loopback port (+ a TLS listener with passwords when openssl works) ----
# TLS: a CA and a server certificate for 127.0.0.1 (EC keys: fast); the TLS listener refuses
# anonymous clients, so the broker node's URL mqtts://, CA file and credentials are all used
tls=""
tls_user=nodered
tls_password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$tmp/certs"
if command -v openssl >/dev/null && command -v mosquitto_passwd >/dev/null &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=edgelm test CA" -keyout "$tmp/certs/ca.key" -out "$tmp/certs/ca.crt" \
        >"$tmp/openssl.log" 2>&1 &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tmp/certs/server.key" -out "$tmp/certs/server.csr" >>"$tmp/openssl.log" 2>&1 &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tmp/certs/ext" &&
    openssl x509 -req -in "$tmp/certs/server.csr" -CA "$tmp/certs/ca.crt" \
        -CAkey "$tmp/certs/ca.key" -CAcreateserial -days 2 -extfile "$tmp/certs/ext" \
        -out "$tmp/certs/server.crt" >>"$tmp/openssl.log" 2>&1 &&
    mosquitto_passwd -c -b "$tmp/passwd" "$tls_user" "$tls_password" >>"$tmp/openssl.log" 2>&1; then
    tls=1
else
    say "*** SKIPPED PART: TLS + credentials (openssl or mosquitto_passwd missing or failed)"
fi
blog=$tmp/mosquitto.log
broker_pid=""
# start_broker PORT TLS_PORT: (re)start mosquitto; true once it listens
start_broker() {
    local p=$1 tp=$2 i
    {
        printf 'per_listener_settings true\npersistence false\nset_tcp_nodelay true\n'
        printf 'log_dest stderr\nlog_type all\n'
        [ "$(id -u)" = 0 ] && echo "user root"
        printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$p"
        if [ -n "$tls" ]; then
            printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\n' "$tp" "$tmp/passwd"
            printf 'cafile %s\ncertfile %s\nkeyfile %s\n' "$tmp/certs/ca.crt" \
                "$tmp/certs/server.crt" "$tmp/certs/server.key"
        fi
    } >"$tmp/mosquitto.conf"
    "$mosquitto_bin" -c "$tmp/mosquitto.conf" >>"$blog" 2>&1 &
    broker_pid=$!
    pids+=("$broker_pid")
    for ((i = 0; i < 100; i++)); do
        kill -0 "$broker_pid" 2>/dev/null || return 1
        listening "$p" && { [ -z "$tls" ] || listening "$tp"; } && return 0
        sleep 0.1
    done
    return 1
}
port=""
for _ in 1 2 3; do # another test may take a port between free_port and mosquitto's bind
    candidate=$(free_port)
    tls_port=$(free_port)
    [ "$tls_port" = "$candidate" ] && continue
    if start_broker "$candidate" "$tls_port"; then
        port=$candidate
        break
    fi
    kill -KILL "$broker_pid" 2>/dev/null
done
[ -n "$port" ] || { fail "mosquitto did not start" "$blog"; finish; exit 1; }

# a subscriber that logs "topic payload" lines; returns once the broker has the subscription
sub() { # NAME TOPIC...
    local name=$1 t args=()
    shift
    for t in "$@"; do args+=(-t "$t"); done
    mosquitto_sub -h 127.0.0.1 -p "$port" -V 5 -q 1 -v -i "t-$name" "${args[@]}" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids+=($!)
    wait_for "$blog" "t-$name 1 ${!#}" 20 || fail "subscriber $name not subscribed" "$tmp/$name.err"
}

# ---- edgelmd: reply_prefixes lists "nodered/", as docs/node-red.md recommends -------------------
node_id="nr-test-$$"
cat >"$tmp/edgelm.conf" <<EOF
mqtt = {
  broker = "tcp://127.0.0.1:$port";
  keepalive_s = 5;
  reply_prefixes = ["nodered/"];
};
node = { id = "$node_id"; };
fleet = { enabled = true; };
model = { path = "$model"; threads = 1; };
metrics = { interval_s = 0; };
log = { level = "info"; };
EOF
sub watch "edgelm/$node_id/status" 'edgelm/+/cancel' 'edgelm/sleepy/#'
"$EDGELMD" --config "$tmp/edgelm.conf" >"$tmp/edgelmd.log" 2>&1 &
edgelmd_pid=$!
pids+=("$edgelmd_pid")
if ! wait_for "$tmp/watch.out" "edgelm/$node_id/status online" 60; then
    fail "edgelmd came online" "$tmp/edgelmd.log" "$blog"
    finish
    exit 1
fi
pass

# mqtt_ask ID JSON OUT: a request straight to edgelmd (MQTT 5, default response topic); the
# result's JSON in OUT. The reference the Node-RED answers are compared with.
mqtt_ask() {
    local id=$1 json=$2 out=$3 sp
    mosquitto_sub -h 127.0.0.1 -p "$port" -V 5 -q 1 -i "ref-$id" -t "edgelm/$node_id/response/$id" \
        -C 1 -W 60 >"$out" 2>"$out.err" &
    sp=$!
    pids+=("$sp")
    wait_for "$blog" "ref-$id 1 edgelm/$node_id/response/$id" 20
    mosquitto_pub -h 127.0.0.1 -p "$port" -V 5 -q 1 -t "edgelm/$node_id/request" -m "$json"
    wait "$sp"
}
# jq-like: jv FILE EXPR prints the JS expression EXPR of the JSON in FILE (as "r"); strings raw
jv() {
    node -e '
        const fs = require("fs");
        let r;
        try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch (e) { process.exit(2); }
        const x = new Function("r", "return (" + process.argv[2] + ");")(r);
        process.stdout.write(typeof x === "string" ? x : JSON.stringify(x === undefined ? null : x));
    ' "$1" "$2"
}
# jtrue FILE EXPR: true when the JS expression is truthy for the JSON in FILE
jtrue() {
    node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const ok = new Function("r", "return (" + process.argv[2] + ");")(r);
        if (!ok) { console.error("false: " + process.argv[2] + "\n  on " + JSON.stringify(r)); process.exit(1); }
    ' "$1" "$2"
}

# ---- Node-RED, headless: the example flow + the test's tab -----------------------------------
http_port=$(free_port)
cat >"$user_dir/settings.js" <<EOF
// test_node_red: Node-RED headless on loopback; the admin API (no editor) for the redeploy check
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: $http_port,
    flowFile: "flows.json",
    credentialSecret: false,
    disableEditor: true,
    logging: { console: { level: "info", metrics: false, audit: false } },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    functionExternalModules: false,
    diagnostics: { enabled: false },
    runtimeState: { enabled: false }
};
EOF
# the example exactly as shipped, but for the broker URL and the placeholder node id "my-node"
node -e '
    const fs = require("fs");
    const [example, testFlow, out, url, nodeId, tlsUrl, caFile, user, password, credOut] =
        process.argv.slice(1);
    const ex = JSON.parse(fs.readFileSync(example, "utf8"));
    const brokers = ex.filter((n) => n.type === "edgelm-broker");
    const requests = ex.filter((n) => n.type === "edgelm request");
    if (brokers.length !== 1 || brokers[0].url !== "mqtt://localhost:1883") {
        throw new Error("the example has not one edgelm-broker with url mqtt://localhost:1883");
    }
    if (requests.length < 2 || requests.some((n) => n.target !== "my-node" || n.broker !== brokers[0].id)) {
        throw new Error("the example'"'"'s edgelm request nodes are not all target my-node on its broker");
    }
    if (!ex.some((n) => n.type === "catch") || !ex.some((n) => n.type === "http response")) {
        throw new Error("the example lost its catch or http response node");
    }
    brokers[0].url = url;
    requests.forEach((n) => { n.target = nodeId; });
    let t = JSON.parse(fs.readFileSync(testFlow, "utf8"));
    const creds = {};
    if (!tlsUrl) { // no TLS: the TLS broker node and what uses it are left out
        const tlsIds = t.filter((n) => n.url === "TLSURL").map((n) => n.id);
        t = t.filter((n) => !tlsIds.includes(n.id) && !tlsIds.includes(n.broker));
        t = t.filter((n) => n.url !== "/test-tls");
    }
    t.forEach((n) => {
        if (n.broker === "BROKER") n.broker = brokers[0].id;
        if (n.target === "NODE") n.target = nodeId;
        if (n.url === "URL") n.url = url;
        if (n.url === "TLSURL") {
            n.url = tlsUrl;
            n.caFile = caFile;
            creds[n.id] = { user, password }; // flows_cred.json (credentialSecret: false)
        }
    });
    fs.writeFileSync(out, JSON.stringify(ex.concat(t), null, 1));
    fs.writeFileSync(credOut, JSON.stringify(creds));
' "$src/deploy/node-red/examples/http-ask.json" "$here/node_red_test_flow.json" "$user_dir/flows.json" \
    "mqtt://127.0.0.1:$port" "$node_id" "${tls:+mqtts://127.0.0.1:$tls_port}" "$tmp/certs/ca.crt" \
    "$tls_user" "$tls_password" "$user_dir/flows_cred.json" 2>"$tmp/flows.err" ||
    fail "the example flow has the shape this test substitutes" "$tmp/flows.err"

nlog=$tmp/node-red.log
t0=$(date +%s%N)
node "$cache/node_modules/node-red/red.js" --settings "$user_dir/settings.js" --userDir "$user_dir" \
    >"$nlog" 2>&1 &
nr_pid=$!
pids+=("$nr_pid")
if ! wait_for "$nlog" "Started flows" 90 || ! wait_for "$nlog" "connected to mqtt://127.0.0.1:$port" 30; then
    fail "Node-RED started the flows and connected to the broker" "$nlog"
    finish
    exit 1
fi
say "Node-RED started and connected in $(ms_since "$t0") ms (http://127.0.0.1:$http_port)"
check "Node-RED loaded the package's node types" exit_code 1 grep -q "Waiting for missing types" "$nlog"
check "the broker node speaks MQTT 5" grep -q "as nodered-edgelm-[0-9a-f]* (MQTT 5" "$nlog"

url=http://127.0.0.1:$http_port
# http NAME METHOD PATH [JSON]: the status code to stdout, the body in $tmp/NAME.json
http() {
    local name=$1 method=$2 path=$3 data=${4:-}
    local args=(-sS -o "$tmp/$name.json" -w '%{http_code}' --max-time 90 -X "$method")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    curl "${args[@]}" "$url$path" 2>"$tmp/$name.curl"
}
expect_status() { # NAME WANT GOT
    if [ "$3" = "$2" ]; then pass; else
        fail "$1: HTTP status $3, want $2" "$tmp/$1.json" "$tmp/$1.curl" "$nlog"
    fi
}

# ---- GET /ask: the answer arrives on the http in node's msg, so msg.res is intact --------------
code=$(http ask GET '/ask?prompt=Once%20upon%20a%20time')
expect_status ask 200 "$code"
check "GET /ask: generated text" jtrue "$tmp/ask.json" 'typeof r.text === "string" && r.text.length > 0'
check "GET /ask: finish_reason stop or length" jtrue "$tmp/ask.json" '["stop","length"].includes(r.finish_reason)'
check "GET /ask: a generated id nr-<hex>-<n>" jtrue "$tmp/ask.json" '/^nr-[0-9a-f]{12}-[0-9]+$/.test(r.id)'
check "GET /ask: usage and timings of the result" jtrue "$tmp/ask.json" \
    'r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 64 && r.timings.predicted_ms >= 0'
check "GET /ask: answered by the test's node" jtrue "$tmp/ask.json" "r.node === '$node_id'"
say "GET /ask -> $(jv "$tmp/ask.json" 'JSON.stringify(r.text.slice(0, 60))')... ($(jv "$tmp/ask.json" r.finish_reason))"

# ---- POST /ask: the text equals edgelmd's own answer to the same request over plain MQTT -------
ask_a='{"prompt":"Once upon a time","max_tokens":24,"temperature":0,"cache_prompt":false}'
ask_b='{"prompt":"The little dog","max_tokens":24,"temperature":0,"cache_prompt":false}'
mqtt_ask "ref-a-$$" "{\"v\":1,\"id\":\"ref-a-$$\",${ask_a#\{}" "$tmp/ref-a.json"
mqtt_ask "ref-b-$$" "{\"v\":1,\"id\":\"ref-b-$$\",${ask_b#\{}" "$tmp/ref-b.json"
check "reference A over MQTT" jtrue "$tmp/ref-a.json" 'r.type === "result" && r.text.length > 0'
check "reference B over MQTT" jtrue "$tmp/ref-b.json" 'r.type === "result" && r.text.length > 0'
check "references A and B differ" test "$(jv "$tmp/ref-a.json" r.text)" != "$(jv "$tmp/ref-b.json" r.text)"
code=$(http post-a POST /ask "$ask_a")
expect_status post-a 200 "$code"
check "POST /ask: the text edgelmd answers over plain MQTT" \
    test "$(jv "$tmp/post-a.json" r.text)" = "$(jv "$tmp/ref-a.json" r.text)"

# ---- two concurrent /ask: each gets its own answer ---------------------------------------------
t0=$(date +%s%N)
(http conc-a POST /ask "$ask_a" >"$tmp/conc-a.code") &
ca=$!
(http conc-b POST /ask "$ask_b" >"$tmp/conc-b.code") &
cb=$!
wait "$ca" "$cb"
expect_status conc-a 200 "$(cat "$tmp/conc-a.code")"
expect_status conc-b 200 "$(cat "$tmp/conc-b.code")"
check "concurrent: A got A's answer" test "$(jv "$tmp/conc-a.json" r.text)" = "$(jv "$tmp/ref-a.json" r.text)"
check "concurrent: B got B's answer" test "$(jv "$tmp/conc-b.json" r.text)" = "$(jv "$tmp/ref-b.json" r.text)"
check "concurrent: two ids" test "$(jv "$tmp/conc-a.json" r.id)" != "$(jv "$tmp/conc-b.json" r.id)"
say "two concurrent POST /ask answered in $(ms_since "$t0") ms"

# ---- streaming: output 2's chunks (same _msgid, msg.res) add up to output 1's text ------------
code=$(http stream GET '/test-stream?prompt=Once%20upon%20a%20time')
expect_status stream 200 "$code"
check "stream: chunks arrived on output 2 with the request's _msgid" jtrue "$tmp/stream.json" 'r.n_chunks >= 2'
check "stream: the chunks add up to the final text" jtrue "$tmp/stream.json" \
    'r.text.length > 0 && r.chunks_text === r.text'
check "stream: seq 0, 1, ... without gaps" jtrue "$tmp/stream.json" \
    'r.seqs.every((s, i) => s === i) && r.chunk_info.received === r.n_chunks && r.chunk_info.gaps === 0'
check "stream: the chunk msgs carry msg.req and msg.res" jtrue "$tmp/stream.json" 'r.chunks_had_res === true'
curl -sS -N --max-time 90 -D "$tmp/ask-stream.headers" -o "$tmp/ask-stream.txt" \
    "$url/ask-stream?prompt=Once%20upon%20a%20time" 2>"$tmp/ask-stream.curl"
check "GET /ask-stream (the example's chunked reply): 200, text/plain" \
    grep -qi '^content-type: text/plain' "$tmp/ask-stream.headers"
check "GET /ask-stream: chunked transfer" grep -qi '^transfer-encoding: chunked' "$tmp/ask-stream.headers"
check "GET /ask-stream: text" test "$(wc -c <"$tmp/ask-stream.txt")" -gt 1

# ---- format: msg.payload is the parsed JSON value -------------------------------------------------
code=$(http format POST /test-format '{"prompt":"Once upon a time","format":"json","max_tokens":48,"temperature":0}')
expect_status format 200 "$code"
check "format json: msg.payload is the parsed value of the text" jtrue "$tmp/format.json" \
    'r.payload_type === "object" && JSON.stringify(r.payload) === JSON.stringify(JSON.parse(r.text))'

# ---- errors reach the Catch node with the request's msg ----------------------------------------
code=$(http bad POST /ask '{"prompt":"Once upon a time","max_tokens":-1}')
expect_status bad 400 "$code"
check "max_tokens -1: edgelmd's invalid_request in the Catch" jtrue "$tmp/bad.json" \
    'r.error.code === "invalid_request" && /max_tokens/.test(r.error.message) && /^nr-/.test(r.id)'
code=$(http bad-field POST /ask '{"prompt":"Once","max_tokenz":5}')
expect_status bad-field 400 "$code"
check "an unknown field: invalid_request naming it" jtrue "$tmp/bad-field.json" \
    'r.error.code === "invalid_request" && /max_tokenz/.test(r.error.message)'
code=$(http no-prompt GET /ask)
expect_status no-prompt 400 "$code"
check "GET /ask without a prompt: the node's own invalid_request" jtrue "$tmp/no-prompt.json" \
    'r.error.code === "invalid_request" && /msg.payload/.test(r.error.message)'

t0=$(date +%s%N)
code=$(http timeout POST /test-timeout '{"prompt":"Once"}')
timeout_ms=$(ms_since "$t0")
expect_status timeout 500 "$code"
check "timeout: error timeout in the Catch" jtrue "$tmp/timeout.json" \
    'r.edgelm.error.code === "timeout" && /cancel/.test(r.error_message)'
if [ "${nr_version%%.*}" -ge 4 ]; then # Node-RED 3 does not copy an Error's code to msg.error
    check "timeout: msg.error.code set (Node-RED 4)" jtrue "$tmp/timeout.json" 'r.error_code === "timeout"'
fi
check "timeout: after the node's 500 ms" test "$timeout_ms" -ge 450 -a "$timeout_ms" -lt 5000
tid=$(jv "$tmp/timeout.json" r.edgelm.id)
check "timeout: the request went to edgelm/sleepy/request" wait_for "$tmp/watch.out" "\"id\":\"$tid\"" 5
check "timeout: a cancel {\"v\":1,\"id\":...} went to edgelm/sleepy/cancel" \
    wait_for "$tmp/watch.out" "edgelm/sleepy/cancel {\"v\":1,\"id\":\"$tid\"}" 5

t0=$(date +%s%N)
code=$(http nobody POST /test-nobody '{"prompt":"Once"}')
expect_status nobody 500 "$code"
check "a target nobody subscribes to: no_subscribers at once, not a timeout" jtrue "$tmp/nobody.json" \
    'r.edgelm.error.code === "no_subscribers" && /nobody-here\/request/.test(r.error_message)'
check "no_subscribers within 5 s (the node's timeout is 2 s)" test "$(ms_since "$t0")" -lt 5000

t0=$(date +%s%N)
code=$(http refused POST /test-refused '{"prompt":"Once","max_tokens":4}')
expect_status refused 500 "$code"
check "a reply prefix outside mqtt.reply_prefixes: edgelmd's refusal on its errors topic, matched by id" \
    jtrue "$tmp/refused.json" 'r.edgelm.error.code === "invalid_request" && /reply_prefixes/.test(r.error_message)'
check "... within 5 s, not a timeout" test "$(ms_since "$t0")" -lt 5000

code=$(http fleet POST /test-fleet '{"prompt":"Once upon a time"}')
expect_status fleet 200 "$code"
check "fleet: answered by the fleet's node" jtrue "$tmp/fleet.json" "r.node === '$node_id' && r.text.length > 0"

if [ -n "$tls" ]; then
    code=$(http tls POST /test-tls '{"prompt":"Once upon a time"}')
    expect_status tls 200 "$code"
    check "mqtts:// with a CA file and username/password: answered" \
        jtrue "$tmp/tls.json" "r.node === '$node_id' && r.text.length > 0"
    check "... the TLS listener authenticated the broker node's user" \
        grep -q "u'$tls_user'" "$blog"
fi

sub own "edgelm/$node_id/response/nodered/#"
code=$(http own POST /test-own-response '{"prompt":"Once upon a time"}')
expect_status own 200 "$code"
check "reply prefix edgelm/{target}/response/nodered: answered (edgelmd's own response topic)" \
    jtrue "$tmp/own.json" "r.node === '$node_id' && r.text.length > 0"
check "... on edgelm/<node>/response/nodered/nodered-own-response/edgelm/<node id>, chunks below" \
    wait_for "$tmp/own.out" "edgelm/$node_id/response/nodered/nodered-own-response/edgelm/7e57000000000024/stream {" 5

# ---- redeploy with a request pending: the node cancels it on close, then works again ----------
n_sleepy=$(grep -c '^edgelm/sleepy/request ' "$tmp/watch.out")
curl -sS -o /dev/null --max-time 30 -H 'Content-Type: application/json' \
    --data-binary '{"prompt":"Once"}' "$url/test-pending" 2>/dev/null &
pending_curl=$!
pids+=("$pending_curl")
for _ in $(seq 100); do
    [ "$(grep -c '^edgelm/sleepy/request ' "$tmp/watch.out")" -gt "$n_sleepy" ] && break
    sleep 0.1
done
if [ "$(grep -c '^edgelm/sleepy/request ' "$tmp/watch.out")" -gt "$n_sleepy" ]; then pass; else
    fail "the pending request reached edgelm/sleepy/request" "$tmp/watch.out"
fi
n_started=$(grep -c "Started flows" "$nlog")
pid_line=$(grep 'edgelm/sleepy/request {"v":1,"id":"nr-' "$tmp/watch.out" | tail -n 1)
pid_id=${pid_line#*\"id\":\"}
pid_id=${pid_id%%\"*}
deploy_code=$(curl -sS -o "$tmp/deploy.json" -w '%{http_code}' --max-time 30 -X POST \
    -H 'Content-Type: application/json' -H 'Node-RED-Deployment-Type: full' \
    --data-binary "@$user_dir/flows.json" "$url/flows" 2>"$tmp/deploy.curl")
check "redeploy through the admin API" test "$deploy_code" = 200 -o "$deploy_code" = 204
for _ in $(seq 100); do
    [ "$(grep -c "Started flows" "$nlog")" -gt "$n_started" ] && break
    sleep 0.1
done
check "redeploy: the flows started again" test "$(grep -c "Started flows" "$nlog")" -gt "$n_started"
check "redeploy: the pending request was cancelled on close" \
    wait_for "$tmp/watch.out" "edgelm/sleepy/cancel {\"v\":1,\"id\":\"$pid_id\"}" 10
kill "$pending_curl" 2>/dev/null
code=$(http after-deploy GET '/ask?prompt=Once')
expect_status after-deploy 200 "$code"

# ---- broker restart: the node reconnects, resubscribes and answers again ----------------------
n_connects=$(grep -c "connected to mqtt://127.0.0.1:$port" "$nlog")
kill -TERM "$broker_pid"
wait "$broker_pid" 2>/dev/null
wait_for "$nlog" "disconnected from mqtt://127.0.0.1:$port" 10
t0=$(date +%s%N)
(http outage GET '/ask?prompt=Once%20upon' >"$tmp/outage.code") & # asked while the broker is down
outage_curl=$!
sleep 1
if start_broker "$port" "$tls_port"; then pass; else fail "mosquitto restarted on port $port" "$blog"; fi
sub watch2 "edgelm/$node_id/status"
check "edgelmd back online" wait_for "$tmp/watch2.out" "edgelm/$node_id/status online" 60
wait "$outage_curl"
outage_code=$(cat "$tmp/outage.code")
# the node holds it until reconnected and resubscribed, then publishes it, again each second
# while the broker says "no matching subscribers" (edgelmd not resubscribed yet: this mosquitto
# has no persistence)
expect_status outage 200 "$outage_code"
say "request during the broker outage: HTTP $outage_code after $(ms_since "$t0") ms"
recovered=""
for _ in $(seq 30); do
    code=$(http recovered GET '/ask?prompt=Once%20upon')
    [ "$code" = 200 ] && { recovered=1; break; }
    sleep 1
done
if [ -n "$recovered" ]; then pass; else fail "answers again after the broker restart" "$tmp/recovered.json" "$nlog"; fi
check "the broker nodes reconnected" test "$(grep -c "connected to mqtt://127.0.0.1:$port" "$nlog")" -gt "$n_connects"

# ---- shutdown ------------------------------------------------------------------------------------
kill -INT "$nr_pid"
nr_status=""
for _ in $(seq 150); do
    if ! kill -0 "$nr_pid" 2>/dev/null; then
        wait "$nr_pid"
        nr_status=$?
        break
    fi
    sleep 0.1
done
check "Node-RED stopped on SIGINT with status 0" test "$nr_status" = 0
check "Node-RED: flows stopped" grep -q "Stopped flows" "$nlog"
check "Node-RED: no exception in the log" exit_code 1 \
    grep -Eq 'TypeError|ReferenceError|RangeError|Uncaught|UnhandledPromiseRejection' "$nlog"
check "edgelmd still running" kill -0 "$edgelmd_pid"
check "edgelmd: no sanitizer report" exit_code 1 grep -q 'Sanitizer' "$tmp/edgelmd.log"
grep -E '\[(warn|error)\]' "$nlog" | sed "s/^/$NAME: node-red log: /" >&2
if [ "$failures" -gt 0 ]; then
    for f in "$nlog" "$tmp/edgelmd.log" "$tmp/watch.out"; do
        echo "    --- $f" >&2
        tail -n 30 "$f" | sed 's/^/    /' >&2
    done
fi
say "npm: $nr_spec $nr_how in $nr_ms ms, the package in $pkg_ms ms; whole test $((SECONDS - started_s)) s"
finish
