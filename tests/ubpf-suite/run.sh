#!/usr/bin/env bash
# Runs uBPF's own test suite (uBPF's ctest: conformance and .data tests through ubpf_plugin in JIT,
# interpreter and safe-interpreter modes, the custom API tests, the ELF tests through ubpf_test)
# against librbpf instead of uBPF. Every uBPF source stays as it is; only the `ubpf` CMake target
# changes: it becomes librbpf with include/ubpf.h (tests/ubpf-suite/vm/CMakeLists.txt).
#
#   tests/ubpf-suite/run.sh PREFIX [ctest options, e.g. -R Custom]
#
# PREFIX is a `./build.sh install` prefix. UBPF_DIR (default ../shared/ubpf beside the repository)
# is uBPF's tree, UBPF_SUITE_WORK (default out/ubpf-suite) where it builds. Needs cmake, a C++20
# compiler, clang, and Debian's libboost-dev, libboost-program-options-dev, libboost-filesystem-dev
# and libelf-dev (the conformance runner). The tests uBPF passes and librbpf does not yet are listed in
# known-failures.txt: they are counted apart, a test failing that is not listed fails the run, and so
# does a listed test that passes (take it off the list). Ends with
# "ubpf-suite: N passed, N failed, N known failures (...)".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=$(cd "${1:?usage: run.sh PREFIX [ctest options]}" && pwd); shift
ubpf=$(cd "${UBPF_DIR:-$root/../shared/ubpf}" && pwd)
work=${UBPF_SUITE_WORK:-$root/out/ubpf-suite}

# The staged tree: uBPF's files as links, but vm/CMakeLists.txt is ours and vm/inc is left out.
src="$work/src"
rm -rf "$src"; mkdir -p "$src/vm" "$work/build"
for entry in "$ubpf"/* "$ubpf"/.[!.]*; do
    [ -e "$entry" ] || continue
    [ "$(basename "$entry")" = vm ] || ln -s "$entry" "$src/"
done
for entry in "$ubpf"/vm/*; do
    case "$(basename "$entry")" in CMakeLists.txt|inc) ;; *) ln -s "$entry" "$src/vm/" ;; esac
done
cp "$here/vm/CMakeLists.txt" "$src/vm/CMakeLists.txt"

log="$work/build.log"
if ! { cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -Dubpf_DIR="$prefix/lib/cmake/ubpf" \
         -DUBPF_SKIP_EXTERNAL=OFF -DUBPF_INSTALL_GIT_HOOKS=OFF -DUBPF_ENABLE_TESTS=true >"$log" 2>&1 &&
       cmake --build "$work/build" -j "$(nproc)" >>"$log" 2>&1 &&
       cmake --build "$work/build" --target Conformance-build -j "$(nproc)" >>"$log" 2>&1; }; then
    echo "ubpf-suite: the build failed (log: $log)" >&2
    grep -E "error|Error" "$log" | head -n 30 >&2
    echo "ubpf-suite: 0 passed, 1 failed"
    exit 1
fi

results="$work/ctest.log"
(cd "$work/build" && ctest -j "$(nproc)" --timeout 20 --output-on-failure "$@" >"$results" 2>&1) || true
summary=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$results" | tail -n 1 || true)
if [ -z "$summary" ]; then
    echo "ubpf-suite: ctest printed no summary (log: $results)" >&2
    echo "ubpf-suite: 0 passed, 1 failed"
    exit 1
fi
total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$summary")
# Test names relative to uBPF's tree, one per line, compared with the list of known failures.
failing=$( (grep -E "^\s*[0-9]+/[0-9]+ Test +#[0-9]+: .*\*\*\*" "$results" || true) \
          | sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: //; s/ \.+ *\*\*\*.*//' | sed "s|^$src/||" | sort -u)
known=$( (grep -vE '^\s*(#|$)' "$here/known-failures.txt" || true) | sort -u)
unexpected=$(comm -23 <(echo "$failing" | sed '/^$/d') <(echo "$known"))
fixed=$(comm -13 <(echo "$failing" | sed '/^$/d') <(echo "$known"))
nfailing=$(echo "$failing" | sed '/^$/d' | wc -l)
nknown=$(comm -12 <(echo "$failing" | sed '/^$/d') <(echo "$known") | wc -l)
nunexpected=$(echo "$unexpected" | sed '/^$/d' | wc -l)
nfixed=$(echo "$fixed" | sed '/^$/d' | wc -l)
[ "$nunexpected" -eq 0 ] || { echo "ubpf-suite: failing (not in known-failures.txt):"; echo "$unexpected" | sed 's/^/  /'; }
[ "$nfixed" -eq 0 ] || { echo "ubpf-suite: passing now, remove from known-failures.txt:"; echo "$fixed" | sed 's/^/  /'; }
echo "ubpf-suite: $((total - nfailing)) passed, $((nunexpected + nfixed)) failed, $nknown known failures (tests/ubpf-suite/known-failures.txt)"
[ $((nunexpected + nfixed)) -eq 0 ]
