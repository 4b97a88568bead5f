#!/usr/bin/env bash
# Coverage-guided fuzzing of one input a user controls, with AFL++ and SharpFuzz (run on demand,
# not in CI): fuzz/run.sh TARGET [MINUTES]   targets: asm disasm elf exec cbpf capture kernel
# Installs afl++ (apt) and the SharpFuzz.CommandLine tool (into fuzz/.tools) when missing, builds
# fuzz/Rbpf.Fuzz, instruments Rbpf.dll, writes the target's seeds and runs afl-fuzz for MINUTES
# (default 20). Findings land in out/fuzz/TARGET/findings; replay one with
#   dotnet build fuzz/Rbpf.Fuzz -c Release -o out/fuzz/replay && \
#   dotnet out/fuzz/replay/Rbpf.Fuzz.dll TARGET out/fuzz/TARGET/findings/default/crashes/id:...
# (an uninstrumented build: the instrumented one only runs under afl-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz/run.sh TARGET [MINUTES] (asm disasm elf exec cbpf capture kernel)}"
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
build="$root/out/fuzz/build"
dotnet build fuzz/Rbpf.Fuzz -c Release -o "$build" -v quiet -nologo >/dev/null
work="$root/out/fuzz/$target"
rm -rf "$work/seeds"
# The seeds first: an instrumented Rbpf.dll only runs under the fuzzer (it writes AFL's shared memory).
dotnet "$build/Rbpf.Fuzz.dll" --seeds "$target" "$work/seeds" "$root"
"$tools/sharpfuzz" "$build/Rbpf.dll" >/dev/null
echo "fuzzing '$target' for $minutes minutes; findings in $work/findings"
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    afl-fuzz -i "$work/seeds" -o "$work/findings" -t 5000 -m none -V $((minutes * 60)) -- dotnet "$build/Rbpf.Fuzz.dll" "$target" \
    > "$work/afl.log" 2>&1 || true
crashes=$(find "$work/findings" -path '*crashes/id*' 2>/dev/null | wc -l)
hangs=$(find "$work/findings" -path '*hangs/id*' 2>/dev/null | wc -l)
paths=$(find "$work/findings" -path '*queue/id*' 2>/dev/null | wc -l)
echo "$target: $paths inputs in the corpus, $crashes crashes, $hangs hangs (log: $work/afl.log)"
