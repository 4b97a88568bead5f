#!/usr/bin/env bash
# Compares the time per call of up to three builds of librbpf (a two-instruction program through
# rbpf_vm_execute, rbpf_vm_execute_jit and rbpf_vm_is_valid, in ns) and of a warm JIT compile of
# a 40-instruction program (compile40, in us). Each process loads every library
# (benchmarks/percall-compare.c) and times them in turns; the processes rotate the libraries'
# order. Prints each library's best-per-process times, sorted, and their median.
# Usage: benchmarks/percall-compare.sh [-n PROCESSES] LIB... (paths to librbpf.so builds; at most 3)
# On this project's machines, times of separate processes moved by up to 1.5x, which hid
# differences of a tenth; taking turns inside one process kept the spread to a few percent.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=12
if [ "${1:-}" = "-n" ]; then runs=$2; shift 2; fi
[ $# -ge 1 ] && [ $# -le 3 ] || { echo "usage: $0 [-n PROCESSES] LIB... (1 to 3 librbpf.so paths)" >&2; exit 2; }
libs=()
for l in "$@"; do libs+=("$(readlink -f "$l")"); done
k=${#libs[@]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 benchmarks/percall-compare.c -o "$work/compare" -ldl
for i in $(seq "$runs"); do
    args=()
    for j in $(seq 0 $((k - 1))); do args+=("${libs[$(( (i + j) % k ))]}"); done
    "$work/compare" "${args[@]}" >> "$work/out"
done
for l in "${libs[@]}"; do
    echo "$l"
    for field in execute execute_jit is_valid compile40; do
        grep -F "$l " "$work/out" | awk -v f="$field" '{for (i = 2; i < NF; i++) if ($i == f) print $(i + 1)}' | sort -n |
            awk -v f="$field" '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                s = ""; for (i = 1; i <= NR; i++) s = s " " v[i]; printf "  %-12s median %.2f  (%s )\n", f, m, s}'
    done
done
