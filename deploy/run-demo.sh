#!/usr/bin/env bash
# The main job in one command: build if needed, start a private MQTT broker and edgelmd, ask a
# prompt over MQTT and print the streamed answer and the final result with its speed.
#   bash deploy/run-demo.sh ["your prompt"]
# Needs (Debian 12): build-essential cmake libpaho-mqtt-dev libcjson-dev libconfig-dev mosquitto
# mosquitto-clients. The broker listens on a free loopback port in a temp dir (no auth, gone at
# exit); nothing else on the machine is touched.
# Model: $EDGELM_MODEL, else models/stories260K.gguf (in the repository: models/README.md), else
# ../shared/models/stories260K.gguf, else a generated random-weight model (its text is gibberish:
# it only shows the pipeline works; only when the repository's model was deleted).
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-"Once upon a time"}
max_tokens=${EDGELM_DEMO_TOKENS:-64}

say() { printf 'run-demo: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---- tools ------------------------------------------------------------------------------------
bash deploy/install-deps.sh
mosquitto_bin=$(command -v mosquitto || true)
for candidate in /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
    [ -z "$mosquitto_bin" ] && [ -x "$candidate" ] && mosquitto_bin=$candidate
done
if [ -z "$mosquitto_bin" ] || ! command -v mosquitto_pub >/dev/null ||
    ! command -v mosquitto_sub >/dev/null; then
    die "needs mosquitto and its clients: sudo apt-get install -y mosquitto mosquitto-clients"
fi

if [ ! -x build/edgelmd ] || [ ! -x build/edgelm-gen ]; then
    say "building (first run)..."
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target edgelmd edgelm-gen >/dev/null
    [ -x build/edgelmd ] ||
        die "edgelmd was not built: sudo apt-get install -y libpaho-mqtt-dev libcjson-dev libconfig-dev"
fi

# ---- model ------------------------------------------------------------------------------------
model=${EDGELM_MODEL:-}
for candidate in models/stories260K.gguf ../shared/models/stories260K.gguf; do
    if [ -z "$model" ] && [ -f "$candidate" ]; then
        model=$candidate
    fi
done
if [ -z "$model" ]; then
    mkdir -p models
    model=models/generated-tiny.gguf
    [ -f "$model" ] || build/edgelm-gen "$model" --preset tiny --quiet
    say "WARNING: ************************************************************************"
    say "WARNING: no real model found; using a generated RANDOM-WEIGHT model ($model)."
    say "WARNING: its text is GIBBERISH. Put a GGUF in models/ or set EDGELM_MODEL."
    say "WARNING: ************************************************************************"
fi

# ---- a private broker on a free loopback port, cleaned up on exit ----------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgelm-demo.XXXXXX")
mosquitto_pid="" edgelmd_pid="" sub_pid=""
cleanup() {
    set +e
    [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
    if [ -n "$edgelmd_pid" ] && kill -0 "$edgelmd_pid" 2>/dev/null; then
        kill -TERM "$edgelmd_pid"                 # finishes, publishes offline, exits
        for _ in $(seq 100); do kill -0 "$edgelmd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$edgelmd_pid" 2>/dev/null
    fi
    [ -n "$mosquitto_pid" ] && kill "$mosquitto_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=""
for _ in $(seq 20); do
    candidate=$((20000 + RANDOM % 40000))
    listening "$candidate" && continue
    # set_tcp_nodelay: without it Nagle holds small MQTT packets back ~40 ms per hop
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n' \
        "$candidate" >"$tmp/mosquitto.conf"
    # as root, mosquitto would switch to the user "mosquitto"; stay who we are
    [ "$(id -u)" = 0 ] && echo "user root" >>"$tmp/mosquitto.conf"
    "$mosquitto_bin" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
    mosquitto_pid=$!
    for _ in $(seq 50); do
        listening "$candidate" && break
        kill -0 "$mosquitto_pid" 2>/dev/null || break
        sleep 0.1
    done
    if listening "$candidate"; then
        port=$candidate
        break
    fi
    kill "$mosquitto_pid" 2>/dev/null || true
    mosquitto_pid=""
done
[ -n "$port" ] || die "could not start mosquitto (log: $(cat "$tmp/mosquitto.log" 2>/dev/null))"

# ---- edgelmd ------------------------------------------------------------------------------------
node="demo-$$"
say "model $model, broker tcp://127.0.0.1:$port, node $node"
build/edgelmd --model "$model" --broker "tcp://127.0.0.1:$port" --node "$node" \
    --log-level warn >"$tmp/edgelmd.log" 2>&1 &
edgelmd_pid=$!
status=$(mosquitto_sub -p "$port" -t "edgelm/$node/status" -C 1 -W 60 2>/dev/null || true)
if [ "$status" != "online" ]; then
    cat "$tmp/edgelmd.log" >&2
    die "edgelmd did not come online"
fi

# ---- ask ----------------------------------------------------------------------------------------
json_escape() { # JSON string body for $1 (quotes, backslashes and control characters escaped)
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    printf '%s' "$s"
}
json_unescape() { # the reverse, for the text of a chunk (cJSON escapes " \ and controls only)
    local s=$1 out="" c
    while [ -n "$s" ]; do
        c=${s%%\\*}
        out+=$c
        s=${s:${#c}}
        [ -z "$s" ] && break
        case ${s:1:1} in
            n) out+=$'\n' ;;
            t) out+=$'\t' ;;
            r | b | f) ;;
            u)
                # shellcheck disable=SC2059 # the format is the \uXXXX escape itself
                out+=$(printf "\\u${s:2:4}")
                s=${s:4}
                ;;
            *) out+=${s:1:1} ;;
        esac
        s=${s:2}
    done
    printf '%s' "$out"
}
field() { # a scalar field of the result JSON (the service writes it compact, one line)
    local v
    v=$(printf '%s' "$2" | sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" | head -n 1)
    v=${v#\"}; printf "%s" "${v%\"}"; [ -n "$v" ] || printf "?"
}
now_ms() { date +%s%3N; }

id="demo-$$-$RANDOM"
base="edgelm/$node/response/$id"
mkfifo "$tmp/sub.fifo"
mosquitto_sub -p "$port" -q 1 -t "$base/#" -v >"$tmp/sub.fifo" &
sub_pid=$!
exec 3<"$tmp/sub.fifo"
ready=""
for _ in $(seq 50); do # the subscription is live once our own probe comes back
    mosquitto_pub -p "$port" -t "$base/probe" -m probe
    if IFS= read -r -t 0.2 line <&3 && [ "${line%% *}" = "$base/probe" ]; then
        ready=1
        break
    fi
done
[ -n "$ready" ] || die "mosquitto_sub did not subscribe"

say "prompt: $prompt"
request="{\"v\":1,\"id\":\"$id\",\"prompt\":\"$(json_escape "$prompt")\",\"max_tokens\":$max_tokens,\"temperature\":0,\"stream\":true}"
t_publish=$(now_ms)
mosquitto_pub -p "$port" -q 1 -t "edgelm/$node/request" -m "$request"
t_first=""
result=""
printf '%s' "$prompt"
while IFS= read -r -t 300 line <&3; do
    topic=${line%% *}
    payload=${line#* }
    if [ "$topic" = "$base/stream" ]; then
        [ -z "$t_first" ] && t_first=$(now_ms)
        text=${payload#*\"text\":\"}
        json_unescape "${text%\"\}}"
    elif [ "$topic" = "$base" ]; then
        result=$payload
        break
    fi
done
t_done=$(now_ms)
printf '\n'
[ -n "$result" ] || die "no result within 300 s (edgelmd log: $tmp/edgelmd.log)"
case $result in
    *'"type":"error"'*) die "edgelmd answered with an error: $result" ;;
esac
say "result: $(field completion_tokens "$result") tokens, finish $(field finish_reason "$result")," \
    "generation $(field predicted_per_second "$result") tok/s," \
    "prompt $(field prompt_per_second "$result") tok/s, engine ttft $(field ttft_ms "$result") ms"
say "end to end over MQTT: first chunk $((${t_first:-$t_done} - t_publish)) ms after publishing," \
    "result after $((t_done - t_publish)) ms"
say "full result JSON: $result"
