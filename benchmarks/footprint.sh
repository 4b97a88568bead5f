#!/usr/bin/env bash
# What the library costs a host in memory and threads: one compiled VM, 1,000, and a loop that
# creates, compiles, runs and destroys 100,000 VMs (benchmarks/footprint.c), as Markdown.
# Run ./build.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
gcc -O2 -std=c11 -Wall benchmarks/footprint.c -Iout/include -Lout/lib -lrbpf -Wl,-rpath,"$(pwd)/out/lib" -o out/bench/footprint
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), L3 $(lscpu 2>/dev/null | awk -F: '/L3/ {gsub(/^ +/, "", $2); print $2}')"
echo
out/bench/footprint
