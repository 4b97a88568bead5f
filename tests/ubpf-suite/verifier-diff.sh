#!/usr/bin/env bash
# Compares which programs uBPF's ubpf_load accepts with librbpf's, on programs made by mutating the
# conformance suite's bytecode (1-3 random byte changes each, the same ones for both). Builds real
# uBPF from uBPF's tree (../shared/ubpf or UBPF_DIR) into a scratch folder. On demand:
#   tests/ubpf-suite/verifier-diff.sh PREFIX [MUTANTS_PER_PROGRAM]
# prints the four counts (both accept, both refuse, only one accepts) and the reasons where they differ.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=$(cd "${1:?usage: verifier-diff.sh PREFIX [MUTANTS_PER_PROGRAM]}" && pwd)
per=${2:-300}
ubpf=$(cd "${UBPF_DIR:-$root/../shared/ubpf}" && pwd)
bytecode=${RBPF_CONFORMANCE_DIR:-$root/../shared/conformance}/bytecode
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$ubpf" -B "$work/ubpf" -DUBPF_SKIP_EXTERNAL=ON -DUBPF_INSTALL_GIT_HOOKS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/ubpf" -j "$(nproc)" --target ubpf >/dev/null
printf '#pragma once\n#define UBPF_HAS_ELF_H\n' > "$work/ubpf_config.h"
cc -O2 -I"$work" -I"$ubpf/vm/inc" "$here/verifier-diff.c" "$work/ubpf/lib/libubpf.a" -lm -o "$work/real"
cc -O2 -I"$prefix/include" "$here/verifier-diff.c" -L"$prefix/lib" -lubpf -Wl,-rpath,"$prefix/lib" -o "$work/ours"
"$work/real" "$bytecode" "$per" > "$work/real.txt"
"$work/ours" "$bytecode" "$per" > "$work/ours.txt"
paste -d'|' "$work/real.txt" "$work/ours.txt" | awk -F'|' '
    { u = substr($1, 1, 1); o = substr($2, 1, 1); n[u o]++ }
    u == "0" && o == "1" { sub(/^0 [^ ]+ /, "", $1); gsub(/[0-9]+/, "N", $1); why["librbpf accepts, uBPF refuses: " $1]++ }
    u == "1" && o == "0" { sub(/^0 [^ ]+ /, "", $2); gsub(/[0-9]+/, "N", $2); why["uBPF accepts, librbpf refuses: " $2]++ }
    END {
        printf "%d programs: both accept %d, both refuse %d, only librbpf accepts %d, only uBPF accepts %d\n",
            NR, n["11"], n["00"], n["01"], n["10"]
        for (w in why) printf "%6d  %s\n", why[w], w
    }'
