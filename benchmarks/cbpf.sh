#!/usr/bin/env bash
# Builds benchmarks/cbpf.c against out/ and libpcap (run ./build.sh first) and prints classic BPF
# filter speed, libpcap's bpf_filter against librbpf's translation, as Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/lib/librbpf.so ] || ./build.sh
mkdir -p out/bench
gcc -O2 -std=c11 -Wall benchmarks/cbpf.c -Iout/include -Lout/lib -lrbpf -lpcap -lm -Wl,-rpath,"$(pwd)/out/lib" -o out/bench/cbpf
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), gcc $(gcc -dumpfullversion), libpcap $(dpkg-query -W -f '${Version}' libpcap0.8-dev 2>/dev/null || echo '?')"
echo
out/bench/cbpf
echo
out/bench/cbpf --flows
