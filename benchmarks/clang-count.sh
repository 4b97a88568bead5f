#!/usr/bin/env bash
# Host instructions the interpreter executes for a run of each clang-compiled kernel
# (benchmarks/clang/kernels.o), counted by callgrind inside rbpf_vm_execute: exact and repeatable,
# where the timings of benchmarks/clang.sh move with where the linker places the interpreter's
# dispatch (docs/performance.md). Needs valgrind. Run ./build.sh first.
# Usage: benchmarks/clang-count.sh [LIBDIR]   (default out/lib)
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${1:-out/lib}
[ -f "$lib/librbpf.so" ] || { echo "no $lib/librbpf.so: run ./build.sh first" >&2; exit 1; }
# A copy without its debug link: valgrind cannot read NativeAOT's DWARF (as benchmarks/percall.sh).
copy=out/bench/count-lib
rm -rf "$copy" && mkdir -p "$copy"
cp "$lib/librbpf.so" "$copy/"
ln -sf librbpf.so "$copy/librbpf.so.0"
objcopy --strip-debug --remove-section .gnu_debuglink "$copy/librbpf.so"
gcc -O2 -std=c11 -Wall -Iout/include benchmarks/clang.c benchmarks/clang/kernels.c -o out/bench/clang-count \
    -L"$copy" -lrbpf -lm -Wl,-rpath,"$(pwd)/$copy"
# Three runs less one, halved: a run after the first (which also does the work kept for later runs).
count() {
    log=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect=rbpf_vm_execute \
        out/bench/clang-count benchmarks/clang/kernels.o once "$1" "$2" 2>&1)
    name=$(echo "$log" | grep -v '^==' | head -1)
    n=$(echo "$log" | awk '/Collected/ {print $4}')
    [ -n "$n" ] && [ -n "$name" ] || { echo "$log" >&2; exit 1; }
}
echo "| kernel | host instructions per interpreted run |"
echo "|---|---|"
for k in ${KERNELS:-0 1 2 3 4}; do
    count $k 1; one=$n
    count $k 3; three=$n
    echo "| $name | $(( (three - one) / 2 )) |"
done
