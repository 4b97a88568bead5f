#!/usr/bin/env bash
# Regenerates the committed test objects from the C sources beside this script:
#   NAME.o     with clang (Debian's clang 14: -mcpu=v3)
#   NAME.v4.o  with clang-19 -mcpu=v4 (sign-extending loads and moves, sdiv/smod, bswap, gotol)
# Sources named *_v4.c use signed division, which only -mcpu=v4 has: they get the v4 object only.
# The tests use the committed objects, so they run without clang.
# Usage: build.sh [OUTDIR]   (default: this folder, i.e. regenerate the committed objects)
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-.}"
mkdir -p "$out"
# -g: BTF, which describes maps declared in .maps; the multiarch include folder: <asm/types.h> for <linux/bpf.h>.
flags=(-O2 -g -target bpf -ffreestanding -fno-stack-protector -I"/usr/include/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)" -c)
for src in *.c; do
    if [[ "$src" != *_v4.c ]]; then
        clang "${flags[@]}" -mcpu=v3 "$src" -o "$out/${src%.c}.o"
        echo "built $out/${src%.c}.o"
    fi
    if command -v clang-19 >/dev/null 2>&1; then
        clang-19 "${flags[@]}" -mcpu=v4 "$src" -o "$out/${src%.c}.v4.o"
        echo "built $out/${src%.c}.v4.o"
    fi
done
