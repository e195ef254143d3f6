#!/usr/bin/env bash
# The default run's figures, as the README gives them (run by tools/run_default.sh after training;
# also on its own: tools/eval_default.sh [RUN_DIR], default runs/fmnist_default).
# 10,000 class-balanced 1-NFE samples of the checkpoint (first EMA, the config's omega) against the
# 10,000 Fashion-MNIST test images, in the feature network's space: FD-featnet, KID, precision and
# recall, and the featnet's accuracy on the class asked for; then FD in the held-out featnet's
# space (a second network no loss trains through); then the floor: 10,000 training images against
# the same test images, computed the same way. Results are appended to RUN_DIR/eval.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/fmnist_default}
B=${PMF_BUILD:-build}
REF=runs/_ref
[ -f "$RUN/checkpoint.safetensors" ] || { echo "eval_default: no $RUN/checkpoint.safetensors (train first)" >&2; exit 2; }
mkdir -p "$REF"
for split in t10k train; do
    if ! ls "$REF/fm_$split"/shard-*.h5 >/dev/null 2>&1; then
        "$B/pmf_prepare" --fashion-mnist --split $split --res 32 --pad-small --out "$REF/fm_$split" --quiet
    fi
done
LOG="$RUN/eval.jsonl"
S="$RUN/samples_10k.h5"   # sampled once, scored in both featnets' spaces
echo "eval_default: 10,000 class-balanced 1-NFE samples of $RUN (first EMA, the config's omega) -> $S"
"$B/pmf_sample" "$RUN/checkpoint.safetensors" --n 10000 --h5 "$S" --batch 500
echo "eval_default: against the 10,000 test images, in the featnet's space"
"$B/pmf_eval" --fid "$S" "$REF/fm_t10k" --features featnet --no-progress --log "$LOG"
echo "eval_default: the same samples' FD in the held-out featnet's space"
"$B/pmf_eval" --fid "$S" "$REF/fm_t10k" --features featnet --fd-only --no-progress --log "$LOG" \
    --featnet-weights perceptual/weights/featnet_fmnist_heldout.safetensors
echo "eval_default: the floor, 10,000 training images against the test images, computed the same way"
"$B/pmf_eval" --fid "$REF/fm_train" "$REF/fm_t10k" --features featnet --max-images 10000 --no-progress --log "$LOG"
"$B/pmf_eval" --fid "$REF/fm_train" "$REF/fm_t10k" --features featnet --max-images 10000 \
    --featnet-weights perceptual/weights/featnet_fmnist_heldout.safetensors --fd-only --no-progress --log "$LOG"
