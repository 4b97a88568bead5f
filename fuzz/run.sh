#!/usr/bin/env bash
# Coverage-guided fuzzing of one input a user controls, with AFL++ and SharpFuzz (run on demand,
# not in CI): fuzz/run.sh TARGET [MINUTES]   targets: asm disasm elf exec cbpf capture kernel machine capi
# (or ./build.sh fuzz TARGET --time 10m).
# Installs afl++ (apt) and the SharpFuzz.CommandLine tool (into fuzz/.tools) when missing, builds
# fuzz/Rbpf.Fuzz, instruments Rbpf.dll, writes the target's seeds and runs afl-fuzz for MINUTES
# (default 20). The run starts from the target's seeds and its kept corpus (fuzz/corpus/TARGET.tar.gz;
# fuzz/keep-corpus.sh TARGET folds a campaign's findings into it, minimised).
# `capi` is the C harness bindings/c/tests/fuzz_capi.c, built with afl-cc against out/lib
# (./build.sh first); the library itself is NativeAOT code the fuzzer cannot instrument, so its
# guidance comes from the harness's own branches (which calls, which outcomes).
# Findings land in out/fuzz/TARGET/findings (a previous run's move to findings.prev); replay one with
#   out/fuzz/capi/fuzz_capi FILE   (capi), or
#   dotnet build fuzz/Rbpf.Fuzz -c Release -o out/fuzz/replay && \
#   dotnet out/fuzz/replay/Rbpf.Fuzz.dll TARGET out/fuzz/TARGET/findings/default/crashes/id:...
# (an uninstrumented build: the instrumented one only runs under afl-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz/run.sh TARGET [MINUTES] (asm disasm elf exec cbpf capture kernel machine capi)}"
minutes="${2:-20}"
root="$(pwd)"
if ! command -v afl-fuzz >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq afl++ >/dev/null
fi
tools="$root/fuzz/.tools"
if [ ! -x "$tools/sharpfuzz" ]; then
    dotnet tool install --tool-path "$tools" SharpFuzz.CommandLine --version 2.3.0 >/dev/null
fi
work="$root/out/fuzz/$target"
if [ -d "$work/findings" ]; then rm -rf "$work/findings.prev"; mv "$work/findings" "$work/findings.prev"; fi
if [ "$target" = capi ]; then
    [ -f "$root/out/lib/librbpf.so" ] || { echo "build the library first: ./build.sh" >&2; exit 1; }
    mkdir -p "$work/seeds"
    rm -f "$work/seeds"/*
    AFL_QUIET=1 afl-cc -O1 -g -I"$root/include" -DRBPF_TEST_ELF_DIR="\"$root/tests/elf\"" bindings/c/tests/fuzz_capi.c -o "$work/fuzz_capi" \
        -L"$root/out/lib" -lrbpf -Wl,-rpath,"$root/out/lib"
    if [ -f fuzz/corpus/capi.tar.gz ]; then tar -xzf fuzz/corpus/capi.tar.gz -C "$work/seeds"; fi
    for i in 1 2 3 4 5 6 7 8; do head -c $((64 * i)) /dev/urandom > "$work/seeds/random$i"; done
    echo "fuzzing 'capi' for $minutes minutes; findings in $work/findings"
    AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
        afl-fuzz -i "$work/seeds" -o "$work/findings" -t 5000 -m none -V $((minutes * 60)) -- "$work/fuzz_capi" --abort @@ \
        > "$work/afl.log" 2>&1 || true
else
build="$root/out/fuzz/build"
dotnet build fuzz/Rbpf.Fuzz -c Release -o "$build" -v quiet -nologo >/dev/null
rm -rf "$work/seeds"
# The seeds first: an instrumented Rbpf.dll only runs under the fuzzer (it writes AFL's shared memory).
dotnet "$build/Rbpf.Fuzz.dll" --seeds "$target" "$work/seeds" "$root"
if [ -f "fuzz/corpus/$target.tar.gz" ]; then tar -xzf "fuzz/corpus/$target.tar.gz" -C "$work/seeds"; fi
"$tools/sharpfuzz" "$build/Rbpf.dll" >/dev/null
echo "fuzzing '$target' for $minutes minutes; findings in $work/findings"
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    afl-fuzz -i "$work/seeds" -o "$work/findings" -t 5000 -m none -V $((minutes * 60)) -- dotnet "$build/Rbpf.Fuzz.dll" "$target" \
    > "$work/afl.log" 2>&1 || true
fi
crashes=$(find "$work/findings" -path '*crashes/id*' 2>/dev/null | wc -l)
hangs=$(find "$work/findings" -path '*hangs/id*' 2>/dev/null | wc -l)
paths=$(find "$work/findings" -path '*queue/id*' 2>/dev/null | wc -l)
echo "$target: $paths inputs in the corpus, $crashes crashes, $hangs hangs (log: $work/afl.log)"
