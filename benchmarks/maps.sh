#!/usr/bin/env bash
# Builds benchmarks/maps.c against out/ (run ./build.sh first) and prints map throughput as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
gcc -O2 -std=c11 -Wall benchmarks/maps.c -Iout/include -Lout/lib -lrbpf -lpthread -Wl,-rpath,"$(pwd)/out/lib" -o out/bench/maps
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), gcc $(gcc -dumpfullversion)"
echo
out/bench/maps
