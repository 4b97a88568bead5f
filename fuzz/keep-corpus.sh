#!/usr/bin/env bash
# Keeps a campaign's corpus in the repository, minimised: fuzz/keep-corpus.sh TARGET
# After fuzz/run.sh TARGET, takes the queue AFL++ built (out/fuzz/TARGET/findings/default/queue)
# and the corpus kept so far (fuzz/corpus/TARGET.tar.gz), keeps the smallest set of inputs that
# reaches every edge any of them reaches (afl-cmin, with the instrumented build run.sh left), and
# writes it back as fuzz/corpus/TARGET.tar.gz (files named by their content's hash). The tests
# replay every kept input (FuzzTargetTests, and build.sh for capi).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz/keep-corpus.sh TARGET}"
root="$(pwd)"
work="$root/out/fuzz/$target"
queue="$work/findings/default/queue"
[ -d "$queue" ] || { echo "no queue in $queue: run fuzz/run.sh $target first" >&2; exit 1; }
all="$work/cmin-in" min="$work/cmin-out"
rm -rf "$all" "$min"
mkdir -p "$all"
find "$queue" -maxdepth 1 -type f -name 'id*' -exec cp {} "$all/" \;
if [ -f "fuzz/corpus/$target.tar.gz" ]; then
    mkdir -p "$work/kept" && tar -xzf "fuzz/corpus/$target.tar.gz" -C "$work/kept" && cp "$work/kept"/* "$all/" 2>/dev/null || true
    rm -rf "$work/kept"
fi
if [ "$target" = capi ]; then
    cmd=("$work/fuzz_capi" --abort @@)
else
    cmd=("$(readlink -f "$(command -v dotnet)")" "$root/out/fuzz/build/Rbpf.Fuzz.dll" "$target")
fi
AFL_SKIP_BIN_CHECK=1 afl-cmin -i "$all" -o "$min" -t 5000 -m none -- "${cmd[@]}" >"$work/cmin.log" 2>&1 ||
    { tail -n 20 "$work/cmin.log" >&2; exit 1; }
named="$work/corpus"
rm -rf "$named"
mkdir -p "$named"
for f in "$min"/*; do cp "$f" "$named/$(sha1sum "$f" | cut -c1-16)"; done
mkdir -p fuzz/corpus
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "fuzz/corpus/$target.tar.gz" -C "$named" .
echo "$target: $(ls "$named" | wc -l) inputs kept ($(cat "$named"/* | wc -c) bytes) in fuzz/corpus/$target.tar.gz"
