#!/usr/bin/env bash
# Regenerates kernels.o (committed, so the benchmark runs without clang) from kernels.c with
# Debian's clang 14 at -mcpu=v3, and kernels.v4.o with clang-19 -mcpu=v4 when it is installed.
set -euo pipefail
cd "$(dirname "$0")"
flags=(-O2 -target bpf -ffreestanding -fno-stack-protector -c)
clang "${flags[@]}" -mcpu=v3 kernels.c -o kernels.o
echo "built kernels.o ($(clang --version | head -1))"
if command -v clang-19 >/dev/null 2>&1; then
    clang-19 "${flags[@]}" -mcpu=v4 kernels.c -o kernels.v4.o
    echo "built kernels.v4.o ($(clang-19 --version | head -1))"
fi
