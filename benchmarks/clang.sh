#!/usr/bin/env bash
# The clang-compiled kernels (benchmarks/clang/kernels.c): eBPF from the committed kernels.o in our
# engines against the same C built here by gcc -O2, as Markdown. Run ./build.sh first.
# Usage: benchmarks/clang.sh [OBJECT [ROUNDS]]   (default benchmarks/clang/kernels.o, 25 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
# Functions and loops 64-byte aligned, as benchmarks/run.sh does for the native baseline.
gcc -O2 -std=c11 -Wall -falign-functions=64 -falign-loops=64 -Iout/include benchmarks/clang.c benchmarks/clang/kernels.c \
    -o out/bench/clang -Lout/lib -lrbpf -lm -Wl,-rpath,"$(pwd)/out/lib"
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), gcc $(gcc -dumpfullversion)"
echo
out/bench/clang "${1:-benchmarks/clang/kernels.o}" "${2:-25}"
