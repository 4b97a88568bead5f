#!/usr/bin/env bash
# Instructions executed by one call through the C ABI (a two-instruction program), counted by
# callgrind: exact and repeatable, unlike timings on a shared machine. Needs valgrind and objcopy.
# It publishes librbpf with symbols into out/percall, runs 1,000 and 21,000 calls, and divides the
# difference by 20,000.
set -euo pipefail
cd "$(dirname "$0")/.."
pub=out/percall
rm -rf "$pub" && mkdir -p "$pub/lib"
rid=$(case "$(uname -m)" in aarch64|arm64) echo linux-arm64;; *) echo linux-x64;; esac)
# Its own intermediate folder: the stripped link of ./build.sh must not be taken as up to date.
dotnet publish src/Rbpf.Native -c Release -r "$rid" -p:StripSymbols=false -p:IntermediateOutputPath="$(pwd)/$pub/obj/" -o "$pub/publish" -v quiet -nologo >/dev/null
cp "$pub/publish/librbpf.so" "$pub/lib/"
ln -sf librbpf.so "$pub/lib/librbpf.so.0" # its SONAME, which the program below records
# valgrind cannot read NativeAOT's DWARF: keep the symbol table, drop the debug sections.
objcopy --strip-debug --remove-section .gnu_debuglink "$pub/lib/librbpf.so"
gcc -O2 -Iinclude benchmarks/percall.c -o "$pub/percall" -L"$pub/lib" -lrbpf -Wl,-rpath,"$(pwd)/$pub/lib"
for mode in i j f u; do
    count() { valgrind --tool=callgrind --callgrind-out-file="$pub/cg.$mode.$1" "$pub/percall" "$mode" "$1" 2>&1 | awk '/Collected/ {print $4}'; }
    a=$(count 1000)
    b=$(count 21000)
    name=$(case $mode in i) echo rbpf_vm_execute;; j) echo rbpf_vm_execute_jit;; f) echo "rbpf_jit_fn (rbpf_vm_jit_function)";; u) echo "ubpf_jit_fn (ubpf_compile)";; esac)
    echo "$name: $(( (b - a) / 20000 )) instructions per call (callgrind_annotate $pub/cg.$mode.21000 for the breakdown)"
done
