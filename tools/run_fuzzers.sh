#!/bin/sh
# tools/run_fuzzers.sh: runs each libFuzzer target (fuzz/CMakeLists.txt) in turn, one at a time,
# for SECONDS each (default 300), with its seed corpus and dictionary, under ASan + UBSan.
# New inputs go to build-fuzz/corpus-<name>/, crash inputs to build-fuzz/findings-<name>/, logs
# to build-fuzz/logs/<name>.log (the last "stat::number_of_executed_units" line is the count).
#   CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DPMF_FUZZ=ON && cmake --build build-fuzz -j2
#   tools/run_fuzzers.sh [SECONDS] [TARGET...]
# fuzz_shard runs in fork mode and keeps going past crashes: libhdf5 (not instrumented, not ours)
# crashes on some corrupt files; each such input is kept in findings-shard/ to be sorted by stack.
set -u
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-300}
[ $# -gt 0 ] && shift
TARGETS=${*:-"config npz npy idx png checkpoint shard jpeg safetensors"}
B=build-fuzz
mkdir -p $B/logs
for t in $TARGETS; do
    mkdir -p $B/corpus-$t $B/findings-$t
    dict=""
    [ -f fuzz/$t.dict ] && dict="-dict=fuzz/$t.dict"
    extra=""
    [ "$t" = shard ] && extra="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1"
    echo "== fuzz_$t for ${SECONDS_EACH}s"
    $B/fuzz/fuzz_$t $B/corpus-$t tests/corpus/$t $dict $extra -max_total_time=$SECONDS_EACH -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$B/findings-$t/ >$B/logs/$t.log 2>&1
    echo "   exit $?: $(grep -a 'stat::number_of_executed_units' $B/logs/$t.log | tail -1)"
    echo "   findings: $(ls $B/findings-$t | wc -l)"
done
