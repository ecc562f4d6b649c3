#!/usr/bin/env bash
# test_mosquitto_acl.sh - the shipped broker files of deploy/mosquitto/ on a real mosquitto 2.0:
# production.conf (ports, paths and logging substituted; TLS with a CA made here; the websockets
# listener left out, as 2.0.11 binds it to every interface) with acl.conf UNCHANGED and a
# password file made with mosquitto_passwd at run time. Shows with mosquitto_pub/sub what each
# account may and may not do; bridges that site broker to a central one with bridge.conf; then
# runs a real edgelmd with node credentials over TLS and shows the ACL lets it work (status,
# Will, health, metrics, discovery, errors, replies, fleet), from the site and from central.
# Also starts dev.conf once. Loopback only; temp dir removed at exit. Exit 77 = skipped.
# Usage: bash test_mosquitto_acl.sh   (env: EDGELMD, EDGELM_GEN, EDGELM_MODELS[_DEFAULT])
set -u
NAME=test_mosquitto_acl
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=SCRIPTDIR/../support/checks.sh
. "$here/../support/checks.sh"
# shellcheck source=SCRIPTDIR/../support/services.sh
. "$here/../support/services.sh"
conf_dir=${EDGELM_MOSQUITTO_DIR:-$src/deploy/mosquitto} # another dir: to try a changed ACL

for tool in mosquitto_pub mosquitto_sub mosquitto_passwd; do
    command -v "$tool" >/dev/null || { echo "$NAME: SKIPPED: $tool not installed" >&2; exit 77; }
done
find_mosquitto

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fails() { ! "$@"; }                      # COMMAND...: true when it fails
has_line() { grep -qxF -- "$2" "$1"; }  # FILE LINE: FILE holds exactly this line
# start_broker CONF LOG PORT...: mosquitto in the background; true once every port listens
start_broker() {
    local conf=$1 log=$2 p i
    shift 2
    "$mosquitto_bin" -c "$conf" >"$log" 2>&1 &
    broker_pid=$!
    pids+=("$broker_pid")
    for ((i = 0; i < 100; i++)); do
        kill -0 "$broker_pid" 2>/dev/null || return 1
        local all=1
        for p in "$@"; do listening "$p" || all=""; done
        [ -n "$all" ] && return 0
        sleep 0.1
    done
    return 1
}
stop_pid() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
rand_pw() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

# ---- dev.conf: loads, anonymous works, persistence writes its file ----------------------------
check "dev.conf has the loopback listener 1883" grep -qx 'listener 1883 127.0.0.1' "$conf_dir/dev.conf"
check "dev.conf has persistence_location /tmp/" grep -qx 'persistence_location /tmp/' "$conf_dir/dev.conf"
mkdir -p "$tmp/dev-db"
dev_started=""
for _ in 1 2 3; do # another test may take the port between free_port and mosquitto's bind
    dev_port=$(free_port)
    sed -e "s#^listener 1883 127.0.0.1\$#listener $dev_port 127.0.0.1#" \
        -e "s#^persistence_location /tmp/\$#persistence_location $tmp/dev-db/#" \
        "$conf_dir/dev.conf" >"$tmp/dev.conf"
    echo "user $(id -un)" >>"$tmp/dev.conf"
    start_broker "$tmp/dev.conf" "$tmp/dev.log" "$dev_port" && { dev_started=1; break; }
    stop_pid "$broker_pid"
    grep -q 'Address already in use' "$tmp/dev.log" || break
done
if [ -n "$dev_started" ]; then
    pass
    mosquitto_sub -h 127.0.0.1 -p "$dev_port" -t 'edgelm/dev/#' -C 1 -W 10 >"$tmp/dev.out" 2>&1 &
    dev_sub=$!
    for _ in $(seq 50); do # until the subscription is live
        mosquitto_pub -h 127.0.0.1 -p "$dev_port" -q 1 -t edgelm/dev/probe -m hello 2>/dev/null
        kill -0 "$dev_sub" 2>/dev/null || break
        sleep 0.1
    done
    wait "$dev_sub" 2>/dev/null
    check "dev.conf: anonymous publish and subscribe" has_line "$tmp/dev.out" hello
    stop_pid "$broker_pid"
    check "dev.conf: persistence file written" test -s "$tmp/dev-db/mosquitto-edgelm-dev.db"
else
    fail "dev.conf: mosquitto did not start" "$tmp/dev.conf" "$tmp/dev.log"
fi

# ---- production.conf with the shipped acl.conf -------------------------------------------------
# Every line substituted must be there as shipped: if production.conf changes shape, this fails
# instead of silently testing something else.
for line in 'listener 1883 127.0.0.1' 'listener 8883' 'listener 9001' 'protocol websockets' \
    'include_dir /etc/mosquitto/conf.d' \
    'allow_anonymous false' 'per_listener_settings false' 'password_file /etc/mosquitto/passwd' \
    'acl_file /etc/mosquitto/acl.conf' 'persistence true' 'persistence_location /var/lib/mosquitto/' \
    'cafile /etc/mosquitto/certs/ca.crt' 'certfile /etc/mosquitto/certs/server.crt' \
    'keyfile /etc/mosquitto/certs/server.key' 'tls_version tlsv1.2' 'set_tcp_nodelay true' \
    'max_packet_size 262144' 'pid_file /run/mosquitto/mosquitto.pid' 'user mosquitto' \
    'log_dest file /var/log/mosquitto/mosquitto.log'; do
    check "production.conf has '$line'" grep -qxF -- "$line" "$conf_dir/production.conf"
done

# TLS: a CA and a server certificate for 127.0.0.1 (EC keys: fast)
tls=""
mkdir -p "$tmp/certs" "$tmp/db"
if command -v openssl >/dev/null &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=edgelm test CA" -keyout "$tmp/certs/ca.key" -out "$tmp/certs/ca.crt" \
        >"$tmp/openssl.log" 2>&1 &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$tmp/certs/server.key" -out "$tmp/certs/server.csr" >>"$tmp/openssl.log" 2>&1 &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tmp/certs/ext" &&
    openssl x509 -req -in "$tmp/certs/server.csr" -CA "$tmp/certs/ca.crt" \
        -CAkey "$tmp/certs/ca.key" -CAcreateserial -days 2 -extfile "$tmp/certs/ext" \
        -out "$tmp/certs/server.crt" >>"$tmp/openssl.log" 2>&1; then
    tls=1
else
    say "*** SKIPPED PART: TLS (openssl missing or failed: $(tail -n 1 "$tmp/openssl.log" 2>/dev/null))"
fi

# Accounts: nodes (user name = node id; node-c is a node of the site that the central broker's
# ACL does not list), the client accounts of acl.conf, the dashboard, and the site's bridge
# account on the central broker. Passwords are made here, each run; the hashes never leave the
# temp dir. Both brokers use this one file.
declare -A pw sub_pid
for user in node-a node-b node-c app homeassistant dashboard bridge-site1; do
    pw[$user]=$(rand_pw)
    create=()
    [ -e "$tmp/passwd" ] || create=(-c)
    mosquitto_passwd "${create[@]}" -b "$tmp/passwd" "$user" "${pw[$user]}" >>"$tmp/passwd.log" 2>&1
done
check "password file has 7 accounts" test "$(grep -c : "$tmp/passwd")" -eq 7

used_ports=" "
new_port() { # a free loopback port not handed out before in this run
    local p
    for _ in $(seq 20); do
        p=$(free_port)
        case $used_ports in *" $p "*) continue ;; esac
        used_ports+="$p "
        echo "$p"
        return
    done
}
# prod_conf OUT PORT TLS_PORT ACL NAME: production.conf for this test
# - ports and paths to the test's; acl_file to the given file (the shipped one for the site)
# - websockets listener (listener 9001 up to the next blank line) left out: 2.0.11 would bind it
#   to every interface of this machine
# - logging to stderr, everything (the subscribe lines tell when a subscriber is ready; denied
#   publishes are logged at debug level); run as ourselves; include_dir $tmp/NAME.d
prod_conf() {
    local out=$1 plain=$2 secure=$3 acl=$4 name=$5
    mkdir -p "$tmp/$name.d" "$tmp/$name-db"
    sed -e "s#^listener 1883 127.0.0.1\$#listener $plain 127.0.0.1#" \
        -e "s#^listener 8883\$#listener $secure 127.0.0.1#" \
        -e '/^listener 9001$/,/^$/d' \
        -e "s#/etc/mosquitto/certs/#$tmp/certs/#" \
        -e "s#^password_file .*#password_file $tmp/passwd#" \
        -e "s#^acl_file .*#acl_file $acl#" \
        -e "s#^persistence_location .*#persistence_location $tmp/$name-db/#" \
        -e "s#^pid_file .*#pid_file $tmp/$name.pid#" \
        -e "s#^user mosquitto\$#user $(id -un)#" \
        -e 's#^log_dest .*#log_dest stderr#' \
        -e 's#^log_type .*#log_type all#' \
        -e "s#^include_dir /etc/mosquitto/conf.d\$#include_dir $tmp/$name.d#" \
        "$conf_dir/production.conf" >"$out"
    if [ -z "$tls" ]; then # no certificates: the TLS listener goes too
        sed -i -e "/^listener $secure 127.0.0.1\$/,/^\$/d" "$out"
    fi
}
site_port="" site_tls_port="" central_port="" central_tls_port=""
# start_prod NAME ACL: production.conf as $tmp/NAME.conf on two new ports, started (log
# $tmp/NAME.log); sets NAME_port and NAME_tls_port
start_prod() {
    local name=$1 acl=$2 plain secure ports
    for _ in 1 2 3; do # another test may take a port between new_port and mosquitto's bind
        plain=$(new_port)
        secure=$(new_port)
        prod_conf "$tmp/$name.conf" "$plain" "$secure" "$acl" "$name"
        ports=("$plain")
        [ -n "$tls" ] && ports+=("$secure")
        if start_broker "$tmp/$name.conf" "$tmp/$name.log" "${ports[@]}"; then
            printf -v "${name}_port" %s "$plain"
            printf -v "${name}_tls_port" %s "$secure"
            return 0
        fi
        stop_pid "$broker_pid"
        grep -q 'Address already in use' "$tmp/$name.log" || return 1
    done
    return 1
}

# The central broker of bridge.conf (only with TLS: the bridge goes over it). production.conf
# again; its ACL is the shipped acl.conf plus the bridge account documented at the end of
# bridge.conf. The site gets bridge.conf with the central's address, CA and password, and its
# example nodes kitchen and garage renamed node-a and node-b.
bridge=""
if [ -n "$tls" ]; then
    {
        cat "$conf_dir/acl.conf"
        echo
        sed -n 's/^#   //p' "$conf_dir/bridge.conf" | sed -e 's/kitchen/node-a/g' -e 's/garage/node-b/g'
    } >"$tmp/central-acl.conf"
    check "bridge.conf documents the central broker's account" \
        grep -qx 'user bridge-site1' "$tmp/central-acl.conf"
    for line in 'address central.example.net:8883' 'remote_password CHANGE-ME' \
        'bridge_cafile /etc/mosquitto/certs/central-ca.crt' 'topic edgelm/kitchen/request in 1' \
        'topic edgelm/fleet/request in 1 "" $share/edgelm-sites/'; do
        check "bridge.conf has '$line'" grep -qxF -- "$line" "$conf_dir/bridge.conf"
    done
    if start_prod central "$tmp/central-acl.conf"; then
        pass
        bridge=1
        mkdir -p "$tmp/site.d"
        sed -e "s#^address .*#address 127.0.0.1:$central_tls_port#" \
            -e "s#^remote_password .*#remote_password ${pw[bridge-site1]}#" \
            -e "s#^bridge_cafile .*#bridge_cafile $tmp/certs/ca.crt#" \
            -e 's/kitchen/node-a/g' -e 's/garage/node-b/g' \
            "$conf_dir/bridge.conf" >"$tmp/site.d/edgelm-bridge.conf"
    else
        fail "central broker (production.conf) did not start" "$tmp/central.log"
    fi
fi

# the site broker: production.conf with the shipped acl.conf (and the bridge in its include_dir)
if ! start_prod site "$conf_dir/acl.conf"; then
    fail "production.conf: mosquitto did not start" "$tmp/site.conf" "$tmp/site.log"
    finish
    exit 1
fi
pass
port=$site_port
tls_port=$site_tls_port
check "test config: websockets listener left out" exit_code 1 \
    grep -Eq '^(listener 9001|protocol websockets)' "$tmp/site.conf"
check "test config: the shipped acl.conf" grep -qxF "acl_file $conf_dir/acl.conf" "$tmp/site.conf"
blog=$tmp/site.log
clog=$tmp/central.log
if [ -n "$bridge" ]; then
    if wait_for "$clog" "edgelm-bridge-site1 1 homeassistant/status" 30; then pass; else
        fail "the site's bridge subscribed on the central broker" "$blog" "$clog"
        bridge=""
    fi
fi
# on site|central: where sub and the publishing helpers below connect
on() {
    if [ "$1" = central ]; then at_port=$central_port at_log=$clog; else at_port=$port at_log=$blog; fi
}
on site

# sub NAME USER PASSWORD TOPIC...: an MQTT 5 QoS 1 subscriber in the background printing
# "topic payload" lines to $tmp/NAME.out; returns once the broker has logged every subscription
sub() {
    local name=$1 user=$2 password=$3 t args=()
    shift 3
    for t in "$@"; do args+=(-t "$t"); done
    mosquitto_sub -h 127.0.0.1 -p "$at_port" -V 5 -q 1 -v -i "t-$name" -u "$user" -P "$password" \
        "${args[@]}" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids+=($!)
    sub_pid[$name]=$!
    wait_for "$at_log" "t-$name 1 ${!#}" 20 || fail "subscriber $name not subscribed" "$tmp/$name.err"
}
# puback USER PASSWORD TOPIC PAYLOAD [mosquitto_pub options]: publish with MQTT 5 at QoS 1 and
# print the PUBACK reason code (0 = accepted, 135 = not authorized), or "none"
puback() {
    local user=$1 password=$2 topic=$3 payload=$4 out
    shift 4
    out=$(mosquitto_pub -h 127.0.0.1 -p "$at_port" -V 5 -q 1 -d -u "$user" -P "$password" \
        -t "$topic" -m "$payload" "$@" 2>&1)
    out=$(printf '%s\n' "$out" | sed -n 's/.*received PUBACK (Mid: [0-9]*, RC:\([0-9]*\)).*/\1/p')
    echo "${out:-none}"
}
allowed() { # USER PASSWORD TOPIC PAYLOAD
    local rc
    rc=$(puback "$@")
    if [ "$rc" = 0 ]; then pass; else fail "$1 may publish on $3 (PUBACK reason $rc, want 0)"; fi
}
denied() { # USER PASSWORD TOPIC PAYLOAD
    local rc
    rc=$(puback "$@")
    if [ "$rc" = 135 ]; then pass; else fail "$1 may NOT publish on $3 (PUBACK reason $rc, want 135)"; fi
}

# ---- who may connect ---------------------------------------------------------------------------
check "anonymous connect refused (MQTT 5: CONNACK 135 not authorized)" \
    sh -c "mosquitto_pub -h 127.0.0.1 -p $port -V 5 -t edgelm/x/request -m x 2>&1 | grep -q 'Not authorized'"
check "anonymous connect refused (MQTT 3.1.1: CONNACK 5)" exit_code 5 \
    mosquitto_pub -h 127.0.0.1 -p "$port" -V 311 -t edgelm/x/request -m x
check "wrong password refused" exit_code 5 \
    mosquitto_pub -h 127.0.0.1 -p "$port" -V 311 -u app -P wrong -t edgelm/x/request -m x
check "right password accepted" mosquitto_pub -h 127.0.0.1 -p "$port" -V 311 -u app -P "${pw[app]}" \
    -t edgelm/x/request -m x
if [ -n "$tls" ]; then
    check "TLS listener: the client verifies the broker and connects" \
        mosquitto_pub -h 127.0.0.1 -p "$tls_port" --cafile "$tmp/certs/ca.crt" -V 5 -q 1 \
        -u app -P "${pw[app]}" -t edgelm/x/request -m tls
    check "TLS listener: no plain MQTT" fails mosquitto_pub -h 127.0.0.1 -p "$tls_port" -V 5 \
        -u app -P "${pw[app]}" -t edgelm/x/request -m x
    check "TLS listener: anonymous refused" exit_code 5 \
        mosquitto_pub -h 127.0.0.1 -p "$tls_port" --cafile "$tmp/certs/ca.crt" -V 311 \
        -t edgelm/x/request -m x
fi

# ---- what each account may read and write --------------------------------------------------------
# witness: the dashboard account reads everything, $SYS included
sub watch dashboard "${pw[dashboard]}" '#' '$SYS/broker/version'
# node A subscribes to its own topics, the fleet's (as edgelmd does: shared subscription), node B's
# and the replies; the ACL decides what reaches it
sub node_a node-a "${pw[node-a]}" edgelm/node-a/request edgelm/node-a/cancel \
    '$share/edgelm/edgelm/fleet/request' edgelm/fleet/cancel homeassistant/status \
    edgelm/node-b/request edgelm/node-b/cancel 'edgelm/+/response/#' edgelm/node-b/status
sub node_b node-b "${pw[node-b]}" edgelm/node-b/request edgelm/node-a/request
# a client account tries to read requests (other clients' prompts) besides what it may read
sub app app "${pw[app]}" 'edgelm/+/request' 'edgelm/+/response/#' 'edgelm/+/answer' 'edgelm/+/status' \
    'edgelm/+/health' 'edgelm/+/metrics' 'edgelm/+/errors' 'homeassistant/#'

# clients ask
allowed app "${pw[app]}" edgelm/node-a/request req-a
allowed app "${pw[app]}" edgelm/node-b/request req-b
allowed app "${pw[app]}" edgelm/fleet/request req-fleet
allowed app "${pw[app]}" edgelm/node-a/cancel cancel-a
allowed app "${pw[app]}" edgelm/fleet/cancel cancel-fleet
allowed homeassistant "${pw[homeassistant]}" homeassistant/status online
allowed homeassistant "${pw[homeassistant]}" edgelm/node-a/request req-ha
# clients cannot pose as a node (MQTT 5: PUBACK 135; MQTT 3.1.1: dropped without a word)
denied app "${pw[app]}" edgelm/node-a/status fake-status
denied app "${pw[app]}" edgelm/node-a/health fake-health
denied app "${pw[app]}" edgelm/node-a/metrics fake-metrics
denied app "${pw[app]}" edgelm/node-a/errors fake-errors
denied app "${pw[app]}" edgelm/node-a/response/k1 fake-answer
denied app "${pw[app]}" edgelm/node-a/answer fake-ha-answer
denied app "${pw[app]}" homeassistant/device/node-a/config fake-discovery
denied app "${pw[app]}" homeassistant/status fake-ha-status
denied homeassistant "${pw[homeassistant]}" edgelm/node-a/status fake-status-ha
denied dashboard "${pw[dashboard]}" edgelm/node-a/request dashboard-request
check "MQTT 3.1.1: the publish 'succeeds' (the broker tells 3.1.1 clients nothing)" \
    mosquitto_pub -h 127.0.0.1 -p "$port" -V 311 -q 1 -u app -P "${pw[app]}" \
    -t edgelm/node-a/status -m fake-status-311
# nodes publish their own topics and answer
allowed node-a "${pw[node-a]}" edgelm/node-a/status online-a
allowed node-a "${pw[node-a]}" edgelm/node-a/health health-a
allowed node-a "${pw[node-a]}" edgelm/node-a/metrics metrics-a
allowed node-a "${pw[node-a]}" edgelm/node-a/errors errors-a
allowed node-a "${pw[node-a]}" edgelm/node-a/response/k1 answer-a
allowed node-a "${pw[node-a]}" edgelm/node-a/response/k1/stream chunk-a
allowed node-a "${pw[node-a]}" edgelm/node-a/answer ha-answer-a
allowed node-a "${pw[node-a]}" homeassistant/device/node-a/config discovery-a
# ... and nothing of another node's, no requests, no reply topics outside their own
denied node-a "${pw[node-a]}" edgelm/node-b/status impersonate-b
denied node-a "${pw[node-a]}" edgelm/node-b/response/k1 forged-b
denied node-a "${pw[node-a]}" edgelm/node-b/answer forged-ha-answer-b
denied node-a "${pw[node-a]}" homeassistant/device/node-b/config discovery-b
denied node-a "${pw[node-a]}" edgelm/node-b/request node-to-node
denied node-a "${pw[node-a]}" edgelm/fleet/request node-to-fleet
denied node-a "${pw[node-a]}" app/answers/k1 elsewhere
denied node-a "${pw[node-a]}" homeassistant/status fake-ha-by-node
# Last Wills are checked when published: a client's Will on a node's status topic is dropped
mosquitto_sub -h 127.0.0.1 -p "$port" -V 5 -i t-will-app -u app -P "${pw[app]}" -t edgelm/none \
    --will-topic edgelm/node-a/status --will-payload fake-will >/dev/null 2>&1 &
will_app=$!
mosquitto_sub -h 127.0.0.1 -p "$port" -V 5 -i t-will-node -u node-a -P "${pw[node-a]}" -t edgelm/none \
    --will-topic edgelm/node-a/status --will-payload will-a >/dev/null 2>&1 &
will_node=$!
pids+=("$will_app" "$will_node")
wait_for "$blog" "t-will-app 0 edgelm/none" 20
wait_for "$blog" "t-will-node 0 edgelm/none" 20
{ kill -KILL "$will_app" "$will_node"; wait "$will_app" "$will_node"; } 2>/dev/null
wait_for "$tmp/watch.out" "edgelm/node-a/status will-a" 20 || fail "node A's Will not published"
sleep 0.5 # the other connection's end is handled in the same pass of the broker's loop
# end markers: everything before them has been delivered (one broker, QoS 1, in order)
allowed app "${pw[app]}" edgelm/node-a/request end
allowed app "${pw[app]}" edgelm/node-b/request end
allowed node-a "${pw[node-a]}" edgelm/node-a/status end
for who in node_a:edgelm/node-a/request node_b:edgelm/node-b/request app:edgelm/node-a/status \
    watch:edgelm/node-a/status; do
    wait_for "$tmp/${who%%:*}.out" "${who#*:} end" 20 || fail "${who%%:*}: end marker not received"
done

expect() { # NAME yes|no "topic payload": NAME received (or not) this message
    if has_line "$tmp/$1.out" "$3"; then
        if [ "$2" = yes ]; then pass; else fail "$1 must NOT receive '$3'" "$tmp/$1.out"; fi
    else
        if [ "$2" = no ]; then pass; else fail "$1 must receive '$3'" "$tmp/$1.out"; fi
    fi
}
expect node_a yes "edgelm/node-a/request req-a"
expect node_a yes "edgelm/node-a/request req-ha"
expect node_a yes "edgelm/fleet/request req-fleet"
expect node_a yes "edgelm/node-a/cancel cancel-a"
expect node_a yes "edgelm/fleet/cancel cancel-fleet"
expect node_a yes "homeassistant/status online"
expect node_a no "edgelm/node-b/request req-b"
expect node_a no "edgelm/node-a/response/k1 answer-a"
expect node_b yes "edgelm/node-b/request req-b"
expect node_b no "edgelm/node-a/request req-a"
expect app yes "edgelm/node-a/response/k1 answer-a"
expect app yes "edgelm/node-a/response/k1/stream chunk-a"
expect app yes "edgelm/node-a/answer ha-answer-a"
expect app yes "edgelm/node-a/status online-a"
expect app yes "edgelm/node-a/health health-a"
expect app yes "edgelm/node-a/metrics metrics-a"
expect app yes "edgelm/node-a/errors errors-a"
expect app no "edgelm/node-a/request req-a"
# acl.conf's documented limit (no groups in acl_file: pattern lines apply to every account): a
# client can read the fleet queue and Home Assistant's status. If this fails, the ACL changed:
# update the "Limits" section of acl.conf.
expect app yes "edgelm/fleet/request req-fleet"
expect app yes "homeassistant/status online"
expect app no "homeassistant/device/node-a/config discovery-a"
for line in "edgelm/node-a/request req-a" "edgelm/node-b/request req-b" \
    "edgelm/fleet/request req-fleet" "homeassistant/status online" \
    "edgelm/node-a/response/k1 answer-a" "homeassistant/device/node-a/config discovery-a" \
    "edgelm/node-a/status will-a"; do
    expect watch yes "$line"
done
check "watch: the dashboard reads \$SYS" grep -q '^\$SYS/broker/version mosquitto version' "$tmp/watch.out"
for payload in fake-status fake-health fake-metrics fake-errors fake-answer fake-discovery \
    fake-ha-status fake-status-ha dashboard-request fake-status-311 impersonate-b forged-b \
    discovery-b node-to-node node-to-fleet elsewhere fake-ha-by-node fake-will; do
    check "no account received the refused '$payload'" exit_code 1 \
        grep -rqw -- "$payload" "$tmp/watch.out" "$tmp/node_a.out" "$tmp/node_b.out" "$tmp/app.out"
done
check "the broker logged the refusals" grep -q "Denied PUBLISH from .*'edgelm/node-a/status'" "$blog"
for name in watch node_a node_b app; do
    stop_pid "${sub_pid[$name]}"
done

# ---- bridge.conf: central clients reach the site's nodes, within both ACLs ----------------------
if [ -n "$bridge" ]; then
    on central
    sub cwatch dashboard "${pw[dashboard]}" '#'
    sub capp app "${pw[app]}" 'edgelm/+/response/#' 'edgelm/+/status'
    on site
    sub bwatch dashboard "${pw[dashboard]}" '#'
    sub bnode_a node-a "${pw[node-a]}" edgelm/node-a/request '$share/edgelm/edgelm/fleet/request' \
        edgelm/fleet/cancel
    sub bnode_b node-b "${pw[node-b]}" edgelm/node-b/request
    check "central: the bridge is up (notification 1, retained)" \
        wait_for "$tmp/cwatch.out" "bridges/site1/state 1" 20
    on central
    allowed app "${pw[app]}" edgelm/node-z/request c-other
    allowed app "${pw[app]}" edgelm/node-a/request c-req-a
    allowed app "${pw[app]}" edgelm/node-b/request c-req-b
    allowed app "${pw[app]}" edgelm/fleet/request c-fleet
    allowed app "${pw[app]}" edgelm/fleet/cancel c-cancel
    check "central -> site: node A's request" wait_for "$tmp/bnode_a.out" "edgelm/node-a/request c-req-a" 20
    check "central -> site: node B's request" wait_for "$tmp/bnode_b.out" "edgelm/node-b/request c-req-b" 20
    check "central -> site: a fleet request (the bridge's share group)" \
        wait_for "$tmp/bnode_a.out" "edgelm/fleet/request c-fleet" 20
    check "central -> site: a fleet cancel" wait_for "$tmp/bnode_a.out" "edgelm/fleet/cancel c-cancel" 20
    on site
    # node-c is allowed its status on the site, but the central ACL gives the bridge only the
    # nodes bridge.conf lists: published first, refused on central before node A's answer arrives
    allowed node-c "${pw[node-c]}" edgelm/node-c/status node-c-online
    allowed node-a "${pw[node-a]}" edgelm/node-a/response/k2 c-answer
    check "site -> central: the answer reaches the central client" \
        wait_for "$tmp/capp.out" "edgelm/node-a/response/k2 c-answer" 20
    check "central: a node bridge.conf does not list cannot publish there" exit_code 1 \
        grep -q node-c-online "$tmp/cwatch.out"
    check "central: ... the broker refused it" \
        grep -q "Denied PUBLISH from edgelm-bridge-site1 .*'edgelm/node-c/status'" "$clog"
    check "site: a request for a node the bridge does not list stays on central" exit_code 1 \
        grep -q c-other "$tmp/bwatch.out"
    for name in cwatch capp bwatch bnode_a bnode_b; do
        stop_pid "${sub_pid[$name]}"
    done
fi

# ---- a real edgelmd with node credentials (over TLS when openssl made certificates) ------------
EDGELMD=${EDGELMD:-$src/build/edgelmd}
EDGELM_GEN=${EDGELM_GEN:-$(dirname "$EDGELMD")/edgelm-gen}
model=""
for candidate in "$src/models/stories260K.gguf" "${EDGELM_MODELS:-/nonexistent}/stories260K.gguf" \
    "${EDGELM_MODELS_DEFAULT:-/nonexistent}/stories260K.gguf" "$src/../shared/models/stories260K.gguf"; do
    [ -z "$model" ] && [ -f "$candidate" ] && model=$candidate
done
if [ -z "$model" ] && [ -x "$EDGELM_GEN" ]; then
    model=$tmp/tiny.gguf
    "$EDGELM_GEN" "$model" --preset tiny --quiet || model=""
fi
if [ ! -x "$EDGELMD" ] || [ -z "$model" ]; then
    say "*** SKIPPED PART: edgelmd end to end (edgelmd '$EDGELMD' or a model not available)"
    finish
    exit $?
fi
if [ -n "$tls" ]; then
    broker_uri="ssl://127.0.0.1:$tls_port"
else
    broker_uri="tcp://127.0.0.1:$port"
fi
# the node's reply_prefixes match the ACL (only its own response/ tree), so a request naming
# another reply topic is refused with an error on its errors topic, not answered into the void
cat >"$tmp/edgelm.conf" <<EOF
mqtt = {
  broker = "$broker_uri";
  username = "node-a";
  password = "${pw[node-a]}";
  keepalive_s = 5;
  reply_prefixes = ["edgelm/node-a/response/"];
  tls = { ca_file = "$tmp/certs/ca.crt"; verify = true; };
};
node = { id = "node-a"; };
fleet = { enabled = true; };
model = { path = "$model"; threads = 1; };
metrics = { interval_s = 1; };
log = { level = "info"; };
EOF
[ -z "$tls" ] && sed -i '/tls = /d' "$tmp/edgelm.conf"

sub watch2 dashboard "${pw[dashboard]}" '#'
sub client app "${pw[app]}" 'edgelm/node-a/response/#' 'edgelm/+/errors' 'edgelm/+/status'
if [ -n "$bridge" ]; then # the same account on the central broker, behind bridge.conf
    on central
    sub cclient app "${pw[app]}" 'edgelm/node-a/response/#' 'edgelm/+/status'
    on site
fi
"$EDGELMD" --config "$tmp/edgelm.conf" >"$tmp/edgelmd.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
w=$tmp/watch2.out
c=$tmp/client.out
if wait_for "$w" "edgelm/node-a/status online" 60; then pass; else
    fail "edgelmd came online (status 'online' seen by the dashboard)" "$tmp/edgelmd.log" "$blog"
fi
check "edgelmd: health published" wait_for "$w" "edgelm/node-a/health {" 30
check "edgelmd: metrics published" wait_for "$w" "edgelm/node-a/metrics {" 30
check "edgelmd: Home Assistant discovery published" wait_for "$w" "homeassistant/device/node-a/config {" 30
check "the client sees the node online" wait_for "$c" "edgelm/node-a/status online" 30
# a request from the client account, streamed
req='{"v":1,"id":"e2e-1","prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true}'
allowed app "${pw[app]}" edgelm/node-a/request "$req"
check "the client gets the result" wait_for "$c" 'edgelm/node-a/response/e2e-1 {"v":1,"type":"result"' 120
check "... and the stream" wait_for "$c" 'edgelm/node-a/response/e2e-1/stream {"v":1,"type":"token"' 5
# a fleet request: the node's shared subscription works under the ACL
req='{"v":1,"id":"e2e-fleet","prompt":"Once upon a time","max_tokens":4,"temperature":0}'
allowed app "${pw[app]}" edgelm/fleet/request "$req"
check "the fleet request is answered" \
    wait_for "$c" 'edgelm/node-a/response/e2e-fleet {"v":1,"type":"result"' 120
# MQTT 3.1.1 client too
mosquitto_pub -h 127.0.0.1 -p "$port" -V 311 -q 1 -u app -P "${pw[app]}" -t edgelm/node-a/request \
    -m '{"v":1,"id":"e2e-311","prompt":"Once","max_tokens":2,"temperature":0}'
check "a 3.1.1 client's request is answered" \
    wait_for "$c" 'edgelm/node-a/response/e2e-311 {"v":1,"type":"result"' 120
# a reply topic outside the ACL is refused by the node itself, the error on its errors topic
req='{"v":1,"id":"e2e-elsewhere","prompt":"Once","max_tokens":2,"reply_to":"app/answers/e2e"}'
allowed app "${pw[app]}" edgelm/node-a/request "$req"
check "a reply_to outside the ACL: invalid_request on edgelm/node-a/errors" \
    wait_for "$c" 'edgelm/node-a/errors {"v":1,"type":"error","id":"e2e-elsewhere","error":{"code":"invalid_request"' 60
if [ -n "$bridge" ]; then
    on central
    check "central: the node is online (through the bridge)" \
        wait_for "$tmp/cclient.out" "edgelm/node-a/status online" 30
    req='{"v":1,"id":"e2e-central","prompt":"Once upon a time","max_tokens":4,"temperature":0}'
    allowed app "${pw[app]}" edgelm/node-a/request "$req"
    check "central: a request through the bridge is answered" \
        wait_for "$tmp/cclient.out" 'edgelm/node-a/response/e2e-central {"v":1,"type":"result"' 120
    req='{"v":1,"id":"e2e-cfleet","prompt":"Once upon a time","max_tokens":4,"temperature":0}'
    allowed app "${pw[app]}" edgelm/fleet/request "$req"
    check "central: a fleet request through the bridge is answered" \
        wait_for "$tmp/cclient.out" 'edgelm/node-a/response/e2e-cfleet {"v":1,"type":"result"' 120
    on site
fi
# Home Assistant's birth message: the node hears it and sends its discovery again
n_discovery=$(grep -c '^homeassistant/device/node-a/config ' "$w")
allowed homeassistant "${pw[homeassistant]}" homeassistant/status online
for _ in $(seq 100); do
    [ "$(grep -c '^homeassistant/device/node-a/config ' "$w")" -gt "$n_discovery" ] && break
    sleep 0.1
done
check "homeassistant/status online: discovery sent again" \
    test "$(grep -c '^homeassistant/device/node-a/config ' "$w")" -gt "$n_discovery"
# crash: the broker publishes the node's Last Will, which the ACL must let through
kill -KILL "$node_pid"
wait "$node_pid" 2>/dev/null
check "kill -9: the Will 'offline' reaches the client" wait_for "$c" "edgelm/node-a/status offline" 30
if [ -n "$bridge" ]; then
    check "kill -9: ... and the central client" \
        wait_for "$tmp/cclient.out" "edgelm/node-a/status offline" 30
    check "the central broker denied the bridge nothing of node A's" exit_code 1 \
        grep -q "Denied PUBLISH from edgelm-bridge-site1 .*'edgelm/node-a/" "$clog"
fi
check "edgelmd logged no refusal by the broker" exit_code 1 grep -qi 'refused a message\|not authori' "$tmp/edgelmd.log"
check "the broker denied edgelmd nothing" exit_code 1 grep -q "Denied PUBLISH from edgelmd-node-a" "$blog"
if [ "$failures" -gt 0 ]; then
    for f in "$tmp/edgelmd.log" "$w"; do echo "    --- $f" >&2; tail -n 30 "$f" | sed 's/^/    /' >&2; done
fi
say "edgelmd ($(basename "$model"), $broker_uri) answered over the ACL'd broker"
finish
