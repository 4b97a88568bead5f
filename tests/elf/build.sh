#!/usr/bin/env bash
# Regenerates the committed test objects from the C sources beside this script:
#   NAME.o     with clang (Debian's clang 14: -mcpu=v3)
#   NAME.v4.o  with clang-19 -mcpu=v4 (sign-extending loads and moves, sdiv/smod, bswap, gotol)
# Sources named *_v4.c use signed division, which only -mcpu=v4 has: they get the v4 object only.
# The tests use the committed objects, so they run without clang.
set -euo pipefail
cd "$(dirname "$0")"
flags=(-O2 -target bpf -ffreestanding -fno-stack-protector -c)
for src in *.c; do
    if [[ "$src" != *_v4.c ]]; then
        clang "${flags[@]}" -mcpu=v3 "$src" -o "${src%.c}.o"
        echo "built ${src%.c}.o"
    fi
    if command -v clang-19 >/dev/null 2>&1; then
        [[ "$src" != *_v4.c ]] || true
        clang-19 "${flags[@]}" -mcpu=v4 "$src" -o "${src%.c}.v4.o"
        echo "built ${src%.c}.v4.o"
    fi
done
