#!/usr/bin/env bash
# JIT compilation time against program size (warm: best time per compile on one VM), of the clang
# kernels, and the first compile of a process (15 fresh processes, 40 instructions: best and median), as Markdown.
# Builds benchmarks/compile.c against out/ (run ./build.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
gcc -O2 -std=c11 -Wall benchmarks/compile.c -Iout/include -Lout/lib -lrbpf -Wl,-rpath,"$(pwd)/out/lib" -o out/bench/compile
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
out/bench/compile warm
echo
echo "loops in a row (four-instruction loops bounded by the input: the loop analyses' cost):"
out/bench/compile warm loops
echo
echo "the clang kernels of benchmarks/clang (raw VMs loaded by function name; the input analysis at work):"
out/bench/compile kernels benchmarks/clang/kernels.o
echo
for n in 40 1000; do
    times=$(for i in $(seq 15); do out/bench/compile first $n; done | sort -g)
    best=$(echo "$times" | head -1)
    median=$(echo "$times" | sed -n 8p)
    echo "first compile in a process, $n instructions: best $best us, median $median us"
done
