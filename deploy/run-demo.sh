#!/usr/bin/env bash
# The main job in one command: build if needed, pick a default model, answer a prompt.
#   bash deploy/run-demo.sh ["your prompt"]
# Model: $EDGELM_MODEL, else models/stories260K.gguf, else ../shared/models/stories260K.gguf, else a
# generated random-weight model (its text is gibberish: it only shows the pipeline works).
# The MQTT service (edgelmd) is the next milestone; until it lands this runs the engine's CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
prompt=${1:-"Once upon a time"}

if [ ! -x build/edgelm ] || [ ! -x build/edgelm-gen ]; then
    echo "run-demo: building (first run)..." >&2
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target edgelm-cli edgelm-gen >/dev/null
fi

model=${EDGELM_MODEL:-}
for candidate in models/stories260K.gguf ../shared/models/stories260K.gguf; do
    if [ -z "$model" ] && [ -f "$candidate" ]; then
        model=$candidate
    fi
done
if [ -z "$model" ]; then
    mkdir -p models
    model=models/generated-tiny.gguf
    [ -f "$model" ] || build/edgelm-gen "$model" --preset tiny >/dev/null
    echo "run-demo: WARNING: no real model found; using a generated random-weight model ($model)." >&2
    echo "run-demo: WARNING: its output is gibberish. Put a GGUF in models/ or set EDGELM_MODEL." >&2
fi

echo "run-demo: model $model, prompt: $prompt" >&2
printf '%s' "$prompt" | build/edgelm "$model" -n 64 -t 0
