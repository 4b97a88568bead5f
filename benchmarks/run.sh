#!/usr/bin/env bash
# Builds benchmarks/bench.c against out/ (run ./build.sh first) and prints the results as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
gcc -O2 -std=c99 -Wall -Iout/include benchmarks/bench.c -o out/bench/bench -Lout/lib -lrbpf -lm -Wl,-rpath,"$(pwd)/out/lib"
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), gcc $(gcc -dumpfullversion)"
echo
out/bench/bench
