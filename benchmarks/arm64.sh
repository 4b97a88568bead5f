#!/usr/bin/env bash
# The kernels of benchmarks/bench.c on AArch64 under QEMU user emulation (run ./build.sh first on an
# x86-64 host with the cross toolchain: it leaves out/arm64/lib/librbpf.so). The native baseline is
# the same C cross-compiled with aarch64-linux-gnu-gcc -O2 and emulated too, so the ratios compare
# emulated code with emulated code: they say how the engines' AArch64 code compares with gcc's,
# not how fast any of it runs on real hardware.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f out/arm64/lib/librbpf.so ] || { echo "out/arm64/lib/librbpf.so is missing: run ./build.sh on x86-64 Linux with the AArch64 cross toolchain" >&2; exit 1; }
mkdir -p out/bench
aarch64-linux-gnu-gcc -O2 -std=c99 -Wall -falign-functions=64 -falign-loops=64 -Iout/include benchmarks/bench.c \
    -o out/bench/bench-arm64 -Lout/arm64/lib -lrbpf -lm -Wl,-rpath,"$(pwd)/out/arm64/lib"
echo "machine: AArch64 emulated by $(qemu-aarch64 --version | head -n 1) on $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), aarch64-linux-gnu-gcc $(aarch64-linux-gnu-gcc -dumpfullversion)"
echo
qemu-aarch64 -L /usr/aarch64-linux-gnu out/bench/bench-arm64
