#!/usr/bin/env bash
# Regenerates the committed test objects from the C sources beside this script.
# Needs clang (Debian's clang 14 emits -mcpu=v1..v3 objects).
set -euo pipefail
cd "$(dirname "$0")"
for src in *.c; do
    obj="${src%.c}.o"
    clang -O2 -target bpf -mcpu=v3 -ffreestanding -fno-stack-protector -c "$src" -o "$obj"
    echo "built $obj"
done
