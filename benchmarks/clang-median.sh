#!/usr/bin/env bash
# The interpreter on the clang-compiled kernels, as benchmarks/clang.sh measures it, but over many
# processes: on a shared machine one process's timings move by a fifth or more from one run to the
# next (where the input and the stack land, what else runs), so this runs the benchmark N times
# for each library given, taking turns, and prints each kernel's median ratio to native code (with
# the lowest and highest) and the geometric mean of the medians. Give two library folders (each
# holding a librbpf.so, e.g. two publishes) to compare them under the same conditions.
# Usage: benchmarks/clang-median.sh [-n N] [-r ROUNDS] [LIBDIR...]   (default: 12 processes of
# 11 rounds, out/lib). Run ./build.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
n=12 rounds=11
while getopts n:r: opt; do
    case $opt in n) n=$OPTARG ;; r) rounds=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- out/lib
mkdir -p out/bench/median
runners=()
for k in $(seq $#); do
    dir=$(cd "${!k}" && pwd)
    [ -f "$dir/librbpf.so" ] || { echo "no librbpf.so in $dir" >&2; exit 1; }
    # The library's SONAME is librbpf.so.0: a folder from a plain publish may not have the link.
    [ -e "$dir/librbpf.so.0" ] || ln -s librbpf.so "$dir/librbpf.so.0"
    gcc -O2 -std=c11 -Wall -falign-functions=64 -falign-loops=64 -Iinclude benchmarks/clang.c benchmarks/clang/kernels.c \
        -o "out/bench/median/clang-$k" -L"$dir" -lrbpf -lm -Wl,-rpath,"$dir"
    runners+=("out/bench/median/clang-$k")
done
log=out/bench/median/runs.txt
: > "$log"
for i in $(seq "$n"); do
    for k in $(seq $#); do
        "${runners[$((k - 1))]}" benchmarks/clang/kernels.o "$rounds" |
            awk -F'|' -v lib="${!k}" '/^\| / && !/^\| (kernel|\*\*|worst)/ { gsub(/[ x]/, "", $4); print lib "|" $2 "|" $4 }' >> "$log"
    done
done
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $n processes of $rounds rounds each"
echo
python3 - "$log" <<'PY'
import collections, math, statistics, sys
runs = collections.defaultdict(list)
libs, kernels = [], []
for line in open(sys.argv[1]):
    lib, kernel, ratio = line.rstrip('\n').split('|')
    kernel = kernel.strip()
    runs[(lib, kernel)].append(float(ratio))
    if lib not in libs: libs.append(lib)
    if kernel not in kernels: kernels.append(kernel)
print('| library | ' + ' | '.join(kernels) + ' | geometric mean of the medians |')
print('|---' * (len(kernels) + 2) + '|')
for lib in libs:
    medians = [statistics.median(runs[(lib, k)]) for k in kernels]
    cells = [f'{m:.1f}x ({min(runs[(lib, k)]):.1f}-{max(runs[(lib, k)]):.1f})' for k, m in zip(kernels, medians)]
    mean = math.exp(sum(math.log(m) for m in medians) / len(medians))
    print(f'| {lib} | ' + ' | '.join(cells) + f' | **{mean:.1f}x** |')
PY
