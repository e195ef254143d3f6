#!/usr/bin/env bash
# tools/soak.sh: crash safety of training. Trains once without interruption, then trains the same
# run again but kills it with SIGKILL at N random moments, resuming from its checkpoint each time,
# and compares the two final checkpoints tensor by tensor (bit for bit, and the step). After every
# kill the checkpoint on disk must be readable (written atomically: temp file, fsync, rename).
#   tools/soak.sh [N_KILLS (default 20)] [pmf_train arguments ...]
# Without arguments after N it trains a small S/4 (width 32, depth 1+1) on Fashion-MNIST for 40
# steps of batch 8, checkpointing every 2 steps. Any arguments replace that run (they must set
# --steps and --checkpoint-every; --out and --resume are the script's). Environment: BUILD (build
# folder, default build), SOAK_SEED (seed of the kill moments, default 1). Exit status 0 if the
# final checkpoints are identical, 1 if not or if a checkpoint was ever unreadable.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
[ $# -gt 0 ] && shift
BUILD=${BUILD:-build}
RANDOM=${SOAK_SEED:-1}
ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then
    ARGS=(--model S/4 --res 32 --perceptual none --steps 40 --batch 8 --checkpoint-every 2 --sample-every 0
          --log-every 1000 --seed 5 model.dim=32 model.heads=2 model.depth_shared=1 model.depth_head=1
          model.mlp_hidden=64 model.bottleneck=8)
fi
TRAIN=$BUILD/pmf_train
[ -x "$TRAIN" ] || { echo "soak: $TRAIN is missing (build first)"; exit 2; }
ROOT=$(mktemp -d /tmp/pmf_soak_XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

# Tensor-by-tensor comparison (and a readability check with one file) of safetensors files.
compare() {
    /usr/bin/python3 - "$@" <<'EOF'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    return {k: b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]] for k, v in h.items()}, meta
a, ma = load(sys.argv[1])
if len(sys.argv) == 2:
    print(f"step {ma.get('step')}: {len(a)} tensors readable")
    sys.exit(0)
b, mb = load(sys.argv[2])
diff = [k for k in a if k not in b or a[k] != b[k]] + [k for k in b if k not in a]
print(f"{len(a)} tensors compared, {len(diff)} differ; steps {ma.get('step')} and {mb.get('step')}")
for k in diff[:10]:
    print("  differs:", k)
sys.exit(1 if diff or ma.get("step") != mb.get("step") else 0)
EOF
}

t0=$(date +%s.%N)
"$TRAIN" "${ARGS[@]}" --out "$ROOT/straight" >"$ROOT/straight.log" 2>&1
t_run=$(echo "$(date +%s.%N) - $t0" | bc)
echo "soak: unbroken run took ${t_run}s"

CK="$ROOT/killed/checkpoint.safetensors"
unreadable=0
for ((k = 1; k <= N; k++)); do
    resume=()
    [ -f "$CK" ] && resume=(--resume "$CK")
    "$TRAIN" "${ARGS[@]}" --out "$ROOT/killed" "${resume[@]}" >>"$ROOT/killed.log" 2>&1 &
    pid=$!
    # A moment in the first 60% of one unbroken run (later ones mostly hit a finished run).
    delay=$(echo "scale=3; $t_run * 0.6 * $RANDOM / 32767" | bc)
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then what="killed"; else what="finished before"; fi
    wait "$pid" 2>/dev/null || true
    if [ -f "$CK" ]; then
        if ! state=$(compare "$CK" 2>&1); then
            echo "soak: after kill $k the checkpoint is unreadable: $state"
            unreadable=$((unreadable + 1))
        fi
    else
        state="no checkpoint yet"
    fi
    echo "soak: kill $k at ${delay}s: $what; $state"
done
resume=()
[ -f "$CK" ] && resume=(--resume "$CK")
"$TRAIN" "${ARGS[@]}" --out "$ROOT/killed" "${resume[@]}" >>"$ROOT/killed.log" 2>&1
if compare "$ROOT/straight/checkpoint.safetensors" "$CK" && [ $unreadable -eq 0 ]; then
    echo "soak: PASS: $N kills, the resumed run ends bit for bit where the unbroken one does"
else
    echo "soak: FAIL ($unreadable unreadable checkpoints); logs kept in ${ROOT}.logs"
    mkdir -p "${ROOT}.logs" && cp "$ROOT"/*.log "${ROOT}.logs/"
    exit 1
fi
