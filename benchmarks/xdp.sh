#!/usr/bin/env bash
# Builds benchmarks/xdp.c against out/ (run ./build.sh first) and prints XDP packets per second.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
gcc -O2 -std=c11 -Wall benchmarks/xdp.c -Iout/include -Lout/lib -lrbpf -Wl,-rpath,"$(pwd)/out/lib" -o out/bench/xdp
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
out/bench/xdp tests/elf/xdp_progs.o
