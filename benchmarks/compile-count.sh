#!/usr/bin/env bash
# Host instructions one JIT compile executes (x86-64 here, the host's backend), counted by
# callgrind: exact and repeatable where the timings of benchmarks/compile.sh move with the machine.
# For each program it runs `compile count` twice, with A and B compiles of it on one VM, and divides
# the difference of the two totals by B - A: a warm compile, the process's start and the program's
# loading left out. Programs: the blocks of compile.sh at 2, 40 and 1,000 instructions, a classic
# filter's shape (40 legacy packet loads), and the kernels of benchmarks/clang/kernels.o (raw VMs,
# each kernel's own instructions). Needs valgrind and objcopy. Run ./build.sh first.
# Usage: benchmarks/compile-count.sh [LIBDIR]   (default out/lib)
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${1:-out/lib}
[ -f "$lib/librbpf.so" ] || { echo "no $lib/librbpf.so: run ./build.sh first" >&2; exit 1; }
# A copy without its debug link: valgrind cannot read NativeAOT's DWARF (as benchmarks/percall.sh).
copy=out/bench/compile-count-lib
rm -rf "$copy" && mkdir -p "$copy"
cp "$lib/librbpf.so" "$copy/"
ln -sf librbpf.so "$copy/librbpf.so.0"
objcopy --strip-debug --remove-section .gnu_debuglink "$copy/librbpf.so"
gcc -O2 -std=c11 -Wall -Iout/include benchmarks/compile.c -o out/bench/compile-count \
    -L"$copy" -lrbpf -Wl,-rpath,"$(pwd)/$copy"
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null out/bench/compile-count count "$@" 2>&1 |
        awk '/Collected/ {print $4}'
}
per_compile() { # A B PROGRAM...
    local a=$1 b=$2
    shift 2
    local ta tb
    ta=$(total "$a" "$@")
    tb=$(total "$b" "$@")
    [ -n "$ta" ] && [ -n "$tb" ] || { echo "callgrind gave no count for $*" >&2; exit 1; }
    echo $(( (tb - ta) / (b - a) ))
}
echo "| program | host instructions per compile |"
echo "|---|---|"
for n in 2 40 1000; do
    reps=$([ "$n" -ge 1000 ] && echo "20 40" || echo "100 200")
    echo "| $n instructions (compile.sh's blocks) | $(per_compile $reps blocks $n) |"
done
echo "| 40 legacy packet loads (a classic filter's shape, 83 instructions) | $(per_compile 100 200 legacy) |"
for k in checksum hash sort parse tokens; do
    echo "| clang's $k | $(per_compile 4 12 kernel benchmarks/clang/kernels.o $k) |"
done
