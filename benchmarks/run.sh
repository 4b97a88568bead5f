#!/usr/bin/env bash
# Builds benchmarks/bench.c against out/ (run ./build.sh first) and prints the results as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
# Functions and loops 64-byte aligned: the native baseline otherwise moves by up to a third with
# the placement of unrelated code in bench.c; aligned, it is also its fastest.
gcc -O2 -std=c99 -Wall -falign-functions=64 -falign-loops=64 -Iout/include benchmarks/bench.c -o out/bench/bench -Lout/lib -lrbpf -lm -Wl,-rpath,"$(pwd)/out/lib"
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), gcc $(gcc -dumpfullversion)"
echo
out/bench/bench
