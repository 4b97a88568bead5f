#!/usr/bin/env bash
# rbpf for native code: set up, build, install and test.
#   ./build.sh                      install what is missing (apt, NuGet) and build everything into out/
#   ./build.sh test                 build, then run every test suite (xunit, C, uBPF's own, Python);
#                                   ends with "tests: N passed, N failed"
#   ./build.sh install --prefix DIR install header, library, CMake and pkg-config files into DIR
#   ./build.sh uninstall --prefix DIR removes what install put there
#   ./build.sh sanitize             the C parts and the C tests under AddressSanitizer and UBSan (part of test)
#   ./build.sh fuzz TARGET [--time 10m]  a coverage-guided fuzzing campaign (docs/reliability.md)
#   ./build.sh valgrind             the C test programs under valgrind memcheck (on demand)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
CONFIG=${CONFIG:-Release}
OUT="$ROOT/out"
VERSION=0.1.0
UBPF_DIR=${UBPF_DIR:-$ROOT/../shared/ubpf}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

case "$(uname -s)" in
    Darwin) LIBNAME=librbpf.dylib; RID_OS=osx ;;
    *) LIBNAME=librbpf.so; RID_OS=linux ;;
esac
case "$(uname -m)" in
    aarch64|arm64) RID="$RID_OS-arm64" ;;
    *) RID="$RID_OS-x64" ;;
esac

setup() {
    # clang and zlib link NativeAOT output; cmake and a C compiler build the C tests; python3 runs
    # the Python binding's tests.
    local need=()
    command -v clang >/dev/null 2>&1 || need+=(clang)
    command -v cmake >/dev/null 2>&1 || need+=(cmake)
    command -v cc >/dev/null 2>&1 || need+=(gcc)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v nm >/dev/null 2>&1 || need+=(binutils)
    [ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
    # libbpf's headers (bpf/bpf_helpers.h) for kernel-style programs with maps (tests/elf/*.c).
    [ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
    # libpcap: the reference for classic BPF (bindings/c/tests/test_cbpf_pcap.c).
    [ -e /usr/include/pcap/pcap.h ] || need+=(libpcap-dev)
    # uBPF's own test suite (tests/ubpf-suite), run when uBPF's tree sits beside the repository:
    # its conformance runner needs Boost and libelf.
    if [ -d "$UBPF_DIR" ]; then
        [ -e /usr/include/boost/program_options.hpp ] || need+=(libboost-dev libboost-program-options-dev)
        [ -e /usr/include/boost/filesystem.hpp ] || need+=(libboost-filesystem-dev)
        [ -e /usr/include/libelf.h ] || need+=(libelf-dev)
        command -v c++ >/dev/null 2>&1 || need+=(g++)
    fi
    # On x86-64: the AArch64 cross toolchain and QEMU, so the AArch64 JIT is built and tested here
    # (docs/arm64.md); llvm-objcopy strips arm64 objects, which GNU objcopy cannot.
    if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]; then
        command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
        command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
        [ -e /usr/aarch64-linux-gnu/include/stdio.h ] || need+=(libc6-dev-arm64-cross)
        command -v aarch64-linux-gnu-as >/dev/null 2>&1 || need+=(binutils-aarch64-linux-gnu)
        command -v llvm-objcopy >/dev/null 2>&1 || need+=(llvm)
    fi
    if [ ${#need[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "==> installing with apt: ${need[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    if ! command -v dotnet >/dev/null 2>&1; then
        echo "error: the .NET SDK 10 (dotnet) is required" >&2
        exit 1
    fi
}

build() {
    setup
    echo "==> building the solution ($CONFIG)"
    # Each step is checked: build() also runs as a condition (run_tests), where set -e does not
    # apply, and a failed build must never leave the tests running against older binaries.
    dotnet build "$ROOT/Rbpf.slnx" -c "$CONFIG" -nologo -v quiet -clp:ErrorsOnly || return 1
    echo "==> publishing $LIBNAME with NativeAOT ($RID)"
    rm -f "$OUT/native/$LIBNAME" "$OUT/cli/Rbpf.Cli"
    dotnet publish "$ROOT/src/Rbpf.Native" -c "$CONFIG" -r "$RID" -nologo -v quiet -clp:ErrorsOnly -o "$OUT/native" || return 1
    place_dispatch || return 1
    echo "==> publishing the rbpf command with NativeAOT"
    dotnet publish "$ROOT/src/Rbpf.Cli" -c "$CONFIG" -r "$RID" -nologo -v quiet -clp:ErrorsOnly -o "$OUT/cli" || return 1
    mkdir -p "$OUT/lib" "$OUT/include" "$OUT/bin"
    cp "$OUT/native/$LIBNAME" "$OUT/lib/" || return 1
    # Linux: the library's SONAME is librbpf.so.0; programs linked against out/lib find it through this link.
    [ "$LIBNAME" = librbpf.so ] && ln -sf librbpf.so "$OUT/lib/librbpf.so.0"
    cp "$OUT/cli/Rbpf.Cli" "$OUT/bin/rbpf" || return 1
    cp "$ROOT/src/Rbpf.Cli/rbpf-plugin" "$OUT/bin/"
    cp "$ROOT/include/rbpf.h" "$ROOT/include/ubpf.h" "$ROOT/include/ubpf_config.h" "$OUT/include/"
    # The ELF test programs, compiled fresh (the tests also use the committed copies in tests/elf).
    rm -rf "$OUT/elf"
    if "$ROOT/tests/elf/build.sh" "$OUT/elf" >/dev/null 2>&1; then
        echo "==> compiled the ELF test programs with clang into $OUT/elf"
    else
        echo "warning: clang could not compile tests/elf/*.c; the tests use the committed objects" >&2
        rm -rf "$OUT/elf"
    fi
    build_arm64 || return 1
    echo "==> built: $OUT/lib/$LIBNAME, $OUT/include/rbpf.h, $OUT/bin/rbpf, $OUT/bin/rbpf-plugin"
}

# The interpreter runs about a fifth slower when its dispatch sequence crosses a 64-byte line, which
# depends on where the linker places it (docs/performance.md, "Interpreter, fourth round"). On
# x86-64 Linux, with binutils, check the published library and, if it crosses, publish again with
# the pads of Interpreter.RunBlock (-p:RbpfDispatchPad=1..7) until one fits; the library stays as
# built when the check cannot tell or no pad fits.
place_dispatch() {
    [ "$RID" = linux-x64 ] && command -v nm >/dev/null 2>&1 && command -v objdump >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 || return 0
    local check="$ROOT/benchmarks/dispatch-placement.sh" verdict pad
    if ! verdict=$("$check" "$OUT/native" 2>/dev/null); then
        echo "warning: could not find the interpreter's dispatch in $LIBNAME; left as built" >&2
        return 0
    fi
    case "$verdict" in *"fits in one line"*) echo "==> interpreter: $verdict"; return 0 ;; esac
    for pad in 1 2 3 4 5 6 7; do
        rm -rf "$OUT/native-pad"
        dotnet publish "$ROOT/src/Rbpf.Native" -c "$CONFIG" -r "$RID" -nologo -v quiet -clp:ErrorsOnly -p:RbpfDispatchPad=$pad -o "$OUT/native-pad" || return 1
        verdict=$("$check" "$OUT/native-pad" 2>/dev/null) || continue
        case "$verdict" in
            *"fits in one line"*)
                rm -rf "$OUT/native" && mv "$OUT/native-pad" "$OUT/native"
                echo "==> interpreter, with dispatch pad $pad: $verdict"
                return 0 ;;
        esac
    done
    rm -rf "$OUT/native-pad"
    echo "warning: no dispatch pad fits the interpreter's dispatch in one line; left as built" >&2
}

# Whether this x86-64 Linux host can build for AArch64 and run the result under QEMU.
can_cross_arm64() {
    [ "$RID" = linux-x64 ] && command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1
}

# The library, the test driver and the C tests for linux-arm64, into out/arm64 (run under QEMU by the tests).
build_arm64() {
    rm -rf "$OUT/arm64"
    can_cross_arm64 || return 0
    echo "==> cross-publishing for linux-arm64 (library, test driver, C tests) into $OUT/arm64"
    dotnet publish "$ROOT/src/Rbpf.Native" -c "$CONFIG" -r linux-arm64 -nologo -v quiet -clp:ErrorsOnly -o "$OUT/arm64/lib" || return 1
    ln -sf librbpf.so "$OUT/arm64/lib/librbpf.so.0"
    dotnet publish "$ROOT/tests/Rbpf.Arm64Driver" -c "$CONFIG" -r linux-arm64 -nologo -v quiet -clp:ErrorsOnly -o "$OUT/arm64/driver" || return 1
    mkdir -p "$OUT/arm64/c"
    local cc=(aarch64-linux-gnu-gcc -std=gnu99 -O2 -Wall -Wextra -Werror -I"$ROOT/include" -DRBPF_TEST_ELF_DIR="\"$ROOT/tests/elf\"")
    local link=(-L"$OUT/arm64/lib" -lrbpf -Wl,-rpath,"$OUT/arm64/lib")
    "${cc[@]}" "$ROOT/bindings/c/tests/test_rbpf.c" "$ROOT/bindings/c/tests/elf_native.c" -o "$OUT/arm64/c/test_rbpf" "${link[@]}" -lpthread || return 1
    "${cc[@]}" "$ROOT/bindings/c/tests/test_ubpf.c" -o "$OUT/arm64/c/test_ubpf" "${link[@]}" || return 1
    local ex
    for ex in add ldxh_jit mbuff_jit fixed_mbuff_filter; do
        "${cc[@]}" "$ROOT/bindings/c/examples/$ex.c" -o "$OUT/arm64/c/$ex" "${link[@]}" || return 1
    done
}

install_to() {
    local prefix="$1"
    [ -f "$OUT/lib/$LIBNAME" ] || build
    mkdir -p "$prefix/lib/cmake/rbpf" "$prefix/lib/cmake/ubpf" "$prefix/lib/pkgconfig" "$prefix/include" "$prefix/bin" \
             "$prefix/share/man/man1"
    cp "$ROOT/docs/man/rbpf.1" "$prefix/share/man/man1/"
    if [ "$LIBNAME" = librbpf.so ]; then
        # The versioned file, its SONAME link (librbpf.so.0) and the link -lrbpf finds.
        cp "$OUT/lib/$LIBNAME" "$prefix/lib/librbpf.so.$VERSION"
        ln -sf "librbpf.so.$VERSION" "$prefix/lib/librbpf.so.0"
        ln -sf librbpf.so.0 "$prefix/lib/librbpf.so"
        # uBPF users link with -lubpf: the same library under uBPF's name.
        ln -sf librbpf.so "$prefix/lib/libubpf.so"
    else
        cp "$OUT/lib/$LIBNAME" "$prefix/lib/"
    fi
    cp "$OUT/bin/rbpf" "$OUT/bin/rbpf-plugin" "$prefix/bin/"
    cp "$ROOT/include/rbpf.h" "$ROOT/include/ubpf.h" "$ROOT/include/ubpf_config.h" "$prefix/include/"
    cp "$ROOT/bindings/c/cmake/rbpf-config.cmake" "$ROOT/bindings/c/cmake/rbpf-config-version.cmake" "$prefix/lib/cmake/rbpf/"
    cp "$ROOT/bindings/c/cmake/ubpfConfig.cmake" "$prefix/lib/cmake/ubpf/"
    sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$VERSION|" "$ROOT/bindings/c/rbpf.pc.in" > "$prefix/lib/pkgconfig/rbpf.pc"
    echo "==> installed into $prefix"
}

# Removes exactly what install_to puts into a prefix (and the folders it made, when empty).
uninstall_from() {
    local prefix="$1" f
    for f in lib/librbpf.so lib/librbpf.so.0 "lib/librbpf.so.$VERSION" lib/librbpf.dylib lib/libubpf.so bin/rbpf bin/rbpf-plugin include/rbpf.h include/ubpf.h \
             include/ubpf_config.h lib/cmake/rbpf/rbpf-config.cmake lib/cmake/rbpf/rbpf-config-version.cmake \
             lib/cmake/ubpf/ubpfConfig.cmake lib/pkgconfig/rbpf.pc share/man/man1/rbpf.1; do
        rm -f "$prefix/$f"
    done
    rmdir "$prefix/lib/cmake/rbpf" "$prefix/lib/cmake/ubpf" 2>/dev/null || true
    rmdir "$prefix/lib/cmake" "$prefix/lib/pkgconfig" "$prefix/include" "$prefix/bin" "$prefix/lib" 2>/dev/null || true
    rmdir "$prefix/share/man/man1" "$prefix/share/man" "$prefix/share" 2>/dev/null || true
    echo "==> uninstalled from $prefix"
}

# Totals over every suite.
PASSED=0
FAILED=0
SKIPPED=0
KNOWN=0   # uBPF's tests librbpf does not pass yet, listed in tests/ubpf-suite/known-failures.txt

run_xunit() {
    local log summary
    log=$(mktemp)
    echo "==> xunit (tests/Rbpf.Tests)"
    if [ -z "${RBPF_CONFORMANCE_DIR:-}" ] && [ ! -d "$ROOT/../shared/conformance/tests" ]; then
        echo "notice: ../shared/conformance is absent: the conformance tests are reported as skipped"
    fi
    # --blame: if the test host dies (a crash in generated code takes the process with it), the run
    # names the test that was running; the tests that never ran are not in the summary, so such a
    # run counts as a failure whatever the summary says.
    RBPF_CLI="$OUT/bin/rbpf" dotnet test "$ROOT/tests/Rbpf.Tests" -c "$CONFIG" -nologo --blame 2>&1 | tee "$log" | grep -E "^\s*Failed |Passed!|Failed!|error" || true
    summary=$(grep -E "(Passed|Failed)! +- +Failed: +[0-9]+, Passed: +[0-9]+" "$log" | tail -n 1 || true)
    if grep -qE "Test host process crashed|test run was aborted" "$log"; then
        echo "xunit: the test host crashed; the tests it had not run yet are missing from the count" >&2
        grep -E -A12 "aborted|crashed|were not completed|running when" "$log" | head -n 40 >&2
        FAILED=$((FAILED + 1))
    fi
    if [ -n "$summary" ]; then
        FAILED=$((FAILED + $(sed -E 's/.*Failed: +([0-9]+),.*/\1/' <<<"$summary")))
        PASSED=$((PASSED + $(sed -E 's/.*Passed: +([0-9]+),.*/\1/' <<<"$summary")))
        SKIPPED=$((SKIPPED + $(sed -E 's/.*Skipped: +([0-9]+),.*/\1/' <<<"$summary")))
    else
        echo "xunit: no test summary (build failure?)" >&2
        tail -n 30 "$log" >&2
        FAILED=$((FAILED + 1))
    fi
    rm -f "$log"
}

# count_suite NAME COMMAND...: runs a test program that prints its failures as "FAIL ..." lines and
# ends with "NAME: N passed, N failed", and adds its counts (a crash or no summary is one failure).
count_suite() {
    local name="$1" out
    shift
    out=$("$@" 2>&1) || true
    echo "$out" | grep -E "^FAIL|^$name: " || true
    if grep -qE "^$name: [0-9]+ passed, [0-9]+ failed" <<<"$out"; then
        PASSED=$((PASSED + $(grep -E "^$name: " <<<"$out" | sed -E "s/$name: ([0-9]+) passed.*/\1/")))
        FAILED=$((FAILED + $(grep -E "^$name: " <<<"$out" | sed -E 's/.*, ([0-9]+) failed.*/\1/')))
    else
        echo "$name: '$*' crashed or printed no summary" >&2
        echo "$out" | tail -n 20 >&2
        FAILED=$((FAILED + 1))
    fi
}

run_c() {
    echo "==> C (bindings/c against an installed librbpf)"
    local prefix="$OUT/test-prefix" bdir="$OUT/c-build" log
    rm -rf "$prefix" "$bdir"
    install_to "$prefix" >/dev/null
    log=$(mktemp)
    if ! { cmake -S "$ROOT/bindings/c" -B "$bdir" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1 &&
           cmake --build "$bdir" -j 2 >>"$log" 2>&1; }; then
        echo "C: build failed" >&2
        tail -n 40 "$log" >&2
        FAILED=$((FAILED + 1))
        rm -f "$log"
        return
    fi
    rm -f "$log"
    # The C test programs count their own checks: test_rbpf (the rbpf API), test_ubpf (the uBPF API).
    count_suite c "$bdir/test_rbpf"
    count_suite ubpf "$bdir/test_ubpf"
    # Eight threads changing, running, compiling and destroying shared VMs at once.
    count_suite stress "$bdir/test_stress"
    # Random sequences of C ABI calls checked against a model of each VM, and the kept corpus.
    count_suite capi "$bdir/fuzz_capi" --random 3000
    if [ -f "$ROOT/fuzz/corpus/capi.tar.gz" ]; then
        rm -rf "$bdir/capi-corpus" && mkdir -p "$bdir/capi-corpus" && tar -xzf "$ROOT/fuzz/corpus/capi.tar.gz" -C "$bdir/capi-corpus"
        count_suite capi "$bdir/fuzz_capi" "$bdir"/capi-corpus/*
    else
        echo "C: fuzz/corpus/capi.tar.gz is missing" >&2
        FAILED=$((FAILED + 1))
    fi
    # Classic BPF filters compiled by libpcap, against libpcap's own bpf_filter.
    if [ -x "$bdir/test_cbpf_pcap" ]; then
        count_suite cbpf "$bdir/test_cbpf_pcap"
    else
        echo "C: libpcap is not installed: the classic BPF tests against it were skipped" >&2
        SKIPPED=$((SKIPPED + 1))
    fi
    # Each example checks its own result and exits 0 on success.
    for ex in add ldxh_jit mbuff_jit fixed_mbuff_filter; do
        if "$bdir/$ex" >/dev/null 2>&1; then PASSED=$((PASSED + 1)); else echo "C example $ex failed" >&2; FAILED=$((FAILED + 1)); fi
    done
    # A uBPF program switches by changing one linker flag: built with -lubpf, it runs unchanged.
    if cc -std=c99 -I"$prefix/include" -DRBPF_TEST_ELF_DIR="\"$ROOT/tests/elf\"" "$ROOT/bindings/c/tests/test_ubpf.c" \
            -o "$bdir/test_ubpf_lubpf" -L"$prefix/lib" -lubpf -Wl,-rpath,"$prefix/lib" 2>/dev/null \
            && "$bdir/test_ubpf_lubpf" | grep -qE "^ubpf: [0-9]+ passed, 0 failed"; then
        PASSED=$((PASSED + 1))
    else
        echo "C: the uBPF test program linked with -lubpf failed" >&2
        FAILED=$((FAILED + 1))
    fi
    # The library's SONAME is versioned, and a program built against the install records it.
    if [ "$LIBNAME" != librbpf.so ] || { objdump -p "$prefix/lib/librbpf.so" 2>/dev/null | grep -qE "SONAME +librbpf.so.0$" \
            && objdump -p "$bdir/test_rbpf" 2>/dev/null | grep -qE "NEEDED +librbpf.so.0$"; }; then
        PASSED=$((PASSED + 1))
    else
        echo "C: librbpf's SONAME is not librbpf.so.0, or test_rbpf does not record it" >&2
        FAILED=$((FAILED + 1))
    fi
    # The man page renders and documents every command.
    local man_ok=1 page c
    if command -v man >/dev/null 2>&1; then
        page=$(MANWIDTH=100 man -l "$prefix/share/man/man1/rbpf.1" 2>/dev/null) || man_ok=0
        for c in asm disasm run jit plugin version; do grep -q "rbpf $c" <<<"$page" || man_ok=0; done
    fi
    if [ "$man_ok" = 1 ]; then
        PASSED=$((PASSED + 1))
    else
        echo "C: the rbpf man page does not render or misses a command" >&2
        FAILED=$((FAILED + 1))
    fi
    # install --prefix without a folder is a usage error; uninstall removes all install wrote.
    local tmp
    tmp=$(mktemp -d)
    if ! "$ROOT/build.sh" install --prefix >/dev/null 2>&1 && "$ROOT/build.sh" install --prefix "$tmp/p" >/dev/null 2>&1 \
            && [ -f "$tmp/p/lib/$LIBNAME" ] && "$ROOT/build.sh" uninstall --prefix "$tmp/p" >/dev/null 2>&1 && [ -z "$(ls -A "$tmp/p")" ]; then
        PASSED=$((PASSED + 1))
    else
        echo "C: install --prefix checks or uninstall failed" >&2
        FAILED=$((FAILED + 1))
    fi
    rm -rf "$tmp"
    # pkg-config file: a program built with its flags alone runs.
    if PKG_CONFIG_PATH="$prefix/lib/pkgconfig" cc "$ROOT/bindings/c/examples/add.c" -o "$bdir/add_pkgconfig" \
            $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs rbpf 2>/dev/null || echo "-I$prefix/include -L$prefix/lib -lrbpf") \
            -Wl,-rpath,"$prefix/lib" 2>/dev/null && "$bdir/add_pkgconfig" >/dev/null; then
        PASSED=$((PASSED + 1))
    else
        echo "C: building with the pkg-config flags failed" >&2
        FAILED=$((FAILED + 1))
    fi
}

# uBPF's own tests (its ctest) against the installed librbpf: tests/ubpf-suite/run.sh.
run_ubpf_suite() {
    echo "==> uBPF's own test suite (tests/ubpf-suite) against librbpf"
    if [ ! -d "$UBPF_DIR" ]; then
        echo "notice: $UBPF_DIR is absent: uBPF's suite is not run"
        return
    fi
    local out line cfg
    # Our header against uBPF's, declaration by declaration (names, types, values, layouts).
    count_suite header-compare python3 "$ROOT/tests/ubpf-suite/compare_headers.py" "$ROOT/include" "$UBPF_DIR/vm/inc"
    # A program compiled against uBPF's own header runs on librbpf (libubpf.so) unchanged.
    cfg=$(mktemp -d)
    printf '#pragma once\n#define UBPF_HAS_ELF_H\n' > "$cfg/ubpf_config.h"
    if cc -std=c99 -Wall -Werror -I"$cfg" -I"$UBPF_DIR/vm/inc" -DRBPF_TEST_ELF_DIR="\"$ROOT/tests/elf\"" \
            "$ROOT/bindings/c/tests/test_ubpf.c" -o "$cfg/test_ubpf" -L"$OUT/test-prefix/lib" -lubpf \
            -Wl,-rpath,"$OUT/test-prefix/lib" 2>&1 && "$cfg/test_ubpf" | grep -qE "^ubpf: [0-9]+ passed, 0 failed"; then
        echo "test_ubpf.c compiled against uBPF's header: passed"
        PASSED=$((PASSED + 1))
    else
        echo "C: test_ubpf.c compiled against uBPF's own header failed on librbpf" >&2
        FAILED=$((FAILED + 1))
    fi
    rm -rf "$cfg"
    out=$(UBPF_DIR="$UBPF_DIR" "$ROOT/tests/ubpf-suite/run.sh" "$OUT/test-prefix" 2>&1) || true
    line=$(grep -E "^ubpf-suite: [0-9]+ passed, [0-9]+ failed" <<<"$out" | tail -n 1 || true)
    echo "$out" | grep -vE "^ubpf-suite: [0-9]+ passed" | head -n 60 || true
    if [ -z "$line" ]; then
        echo "ubpf-suite: no summary" >&2
        FAILED=$((FAILED + 1))
        return
    fi
    echo "$line"
    PASSED=$((PASSED + $(sed -E 's/^ubpf-suite: ([0-9]+) passed.*/\1/' <<<"$line")))
    FAILED=$((FAILED + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
    KNOWN=$((KNOWN + $(sed -E 's/.* ([0-9]+) known failures.*/\1/' <<<"$line")))
}

# The AArch64 build under QEMU: the driver (conformance in the interpreter and the JIT, generated
# programs against the interpreter, the ELF objects, errors and limits), the C tests and examples.
run_arm64() {
    echo "==> AArch64 under qemu-aarch64 (tests/Rbpf.Arm64Driver, bindings/c)"
    if [ ! -x "$OUT/arm64/driver/rbpf-arm64-driver" ]; then
        if [ "$RID" = linux-x64 ]; then
            echo "notice: the AArch64 cross toolchain or qemu-aarch64 is missing: the AArch64 tests are skipped"
            SKIPPED=$((SKIPPED + 1))
        fi
        return
    fi
    local qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu) args=(--elf "$ROOT/tests/elf" --generated 3000) ex
    [ -d "$ROOT/../shared/conformance/tests" ] && args+=(--conformance "$ROOT/../shared/conformance")
    # A smaller GC reservation: each emulated .NET process starts faster with it.
    count_suite arm64 env DOTNET_GCHeapHardLimit=0x10000000 "${qemu[@]}" "$OUT/arm64/driver/rbpf-arm64-driver" "${args[@]}"
    count_suite c "${qemu[@]}" "$OUT/arm64/c/test_rbpf"
    count_suite ubpf "${qemu[@]}" "$OUT/arm64/c/test_ubpf"
    for ex in add ldxh_jit mbuff_jit fixed_mbuff_filter; do
        if "${qemu[@]}" "$OUT/arm64/c/$ex" >/dev/null 2>&1; then PASSED=$((PASSED + 1)); else echo "AArch64 C example $ex failed" >&2; FAILED=$((FAILED + 1)); fi
    done
}

# Whether gcc can build with AddressSanitizer and UBSan here (x86-64 Linux; gcc brings libasan).
can_sanitize() {
    [ "$RID" = linux-x64 ] || return 1
    local asan
    asan=$(gcc -print-file-name=libasan.so 2>/dev/null) || return 1
    [ "${asan#/}" != "$asan" ] && [ -e "$asan" ]
}

# The library with its C parts (fastcall.c, interrupt.c, maps.c) built by gcc with
# AddressSanitizer and UndefinedBehaviorSanitizer, and the C tests built likewise against it, run:
# any invalid memory access or undefined behaviour there aborts the test program.
# (LeakSanitizer is off: the .NET runtime keeps what it allocates for the life of the process, and
# its heap, which LeakSanitizer does not scan, holds pointers to native memory.)
run_sanitize() {
    echo "==> AddressSanitizer and UndefinedBehaviorSanitizer (the library's C parts and the C tests)"
    if ! can_sanitize; then
        echo "notice: gcc cannot build with AddressSanitizer here (x86-64 Linux with libasan only): skipped"
        SKIPPED=$((SKIPPED + 1))
        return
    fi
    local dir="$OUT/sanitize" log
    rm -rf "$dir"
    mkdir -p "$dir/lib" "$dir/c"
    log=$(mktemp)
    if ! dotnet publish "$ROOT/src/Rbpf.Native" -c "$CONFIG" -r "$RID" -nologo -v quiet -clp:ErrorsOnly -p:RbpfSanitize=true \
            -p:IntermediateOutputPath="$dir/obj/" -o "$dir/publish" >"$log" 2>&1; then
        echo "sanitize: the library did not build" >&2
        tail -n 30 "$log" >&2
        rm -f "$log"
        FAILED=$((FAILED + 1))
        return
    fi
    rm -f "$log"
    cp "$dir/publish/$LIBNAME" "$dir/lib/" && ln -sf librbpf.so "$dir/lib/librbpf.so.0"
    # The library's C parts really are instrumented (they call into the sanitizers' runtimes).
    local symbols
    symbols=$(nm -D "$dir/lib/$LIBNAME" 2>/dev/null || true) # whole, first: grep -q would end nm early, and pipefail fail it
    if grep -q " U __asan_report_" <<<"$symbols" && grep -q " U __ubsan_handle_" <<<"$symbols"; then
        PASSED=$((PASSED + 1))
    else
        echo "sanitize: $dir/lib/$LIBNAME has no AddressSanitizer or UBSan instrumentation" >&2
        FAILED=$((FAILED + 1))
    fi
    local san=(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1 -Wall -Wextra -Werror
               -I"$ROOT/include" -DRBPF_TEST_ELF_DIR="\"$ROOT/tests/elf\"")
    local link=(-L"$dir/lib" -lrbpf -Wl,-rpath,"$dir/lib")
    local t=bindings/c/tests
    if ! { gcc -std=gnu99 "${san[@]}" "$ROOT/$t/test_rbpf.c" "$ROOT/$t/elf_native.c" -o "$dir/c/test_rbpf" "${link[@]}" -lpthread &&
           gcc -std=gnu99 "${san[@]}" "$ROOT/$t/test_ubpf.c" -o "$dir/c/test_ubpf" "${link[@]}" &&
           gcc -std=gnu11 "${san[@]}" "$ROOT/$t/test_stress.c" -o "$dir/c/test_stress" "${link[@]}" -lpthread &&
           gcc -std=gnu99 "${san[@]}" "$ROOT/$t/fuzz_capi.c" -o "$dir/c/fuzz_capi" "${link[@]}"; }; then
        echo "sanitize: the C tests did not build" >&2
        FAILED=$((FAILED + 1))
        return
    fi
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
    count_suite c "$dir/c/test_rbpf"
    count_suite ubpf "$dir/c/test_ubpf"
    count_suite stress "$dir/c/test_stress"
    count_suite capi "$dir/c/fuzz_capi" --random 1000 2
    unset ASAN_OPTIONS UBSAN_OPTIONS
}

# The C test programs under valgrind's memcheck (on demand, about three minutes): any invalid read or
# write, or a branch on uninitialised memory, in the library, its generated code or the tests fails
# the run. Compiled code lives in pages of its own there (RBPF_JIT_SEPARATE_PAGES: valgrind does not
# see code written through the code arena's second mapping), and valgrind re-reads code it has
# translated (--smc-check=all), as the JIT rewrites memory that held other code.
run_valgrind() {
    if ! command -v valgrind >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get install -y -qq valgrind >/dev/null
    fi
    [ -f "$OUT/lib/$LIBNAME" ] || build
    local dir="$OUT/valgrind" t="$ROOT/bindings/c/tests"
    mkdir -p "$dir"
    local cc=(cc -std=gnu99 -O1 -g -I"$ROOT/include" -DRBPF_TEST_ELF_DIR="\"$ROOT/tests/elf\"")
    local link=(-L"$OUT/lib" -lrbpf -Wl,-rpath,"$OUT/lib")
    "${cc[@]}" "$t/test_rbpf.c" "$t/elf_native.c" -o "$dir/test_rbpf" "${link[@]}" -lpthread
    "${cc[@]}" "$t/test_ubpf.c" -o "$dir/test_ubpf" "${link[@]}"
    "${cc[@]}" "$t/fuzz_capi.c" -o "$dir/fuzz_capi" "${link[@]}"
    # The first error ends the program, so its summary is missing and the suite counts as failed.
    local vg=(valgrind --smc-check=all --exit-on-first-error=yes --error-exitcode=99 -q)
    export RBPF_JIT_SEPARATE_PAGES=1
    count_suite c "${vg[@]}" "$dir/test_rbpf"
    count_suite ubpf "${vg[@]}" "$dir/test_ubpf"
    count_suite capi "${vg[@]}" "$dir/fuzz_capi" --random 200
    unset RBPF_JIT_SEPARATE_PAGES
    echo "valgrind: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

run_python() {
    echo "==> Python (bindings/python)"
    local out summary ran failures errors skipped
    out=$(cd "$ROOT/bindings/python" && RBPF_LIBRARY="$OUT/lib/$LIBNAME" RBPF_HEADER="$ROOT/include/rbpf.h" \
          python3 -m unittest discover -s tests -t . 2>&1) || true
    ran=$(grep -oE "^Ran [0-9]+ test" <<<"$out" | grep -oE "[0-9]+" || echo "")
    if [ -z "$ran" ]; then
        echo "Python: no test summary" >&2
        echo "$out" | tail -n 30 >&2
        FAILED=$((FAILED + 1))
        return
    fi
    failures=$(grep -oE "failures=[0-9]+" <<<"$out" | grep -oE "[0-9]+" || echo 0)
    errors=$(grep -oE "errors=[0-9]+" <<<"$out" | grep -oE "[0-9]+" || echo 0)
    skipped=$(grep -oE "skipped=[0-9]+" <<<"$out" | grep -oE "[0-9]+" || echo 0)
    if [ $((failures + errors)) -gt 0 ]; then echo "$out" | grep -E "^(FAIL|ERROR):|Error|assert" | head -n 30 >&2; fi
    echo "python: $((ran - failures - errors - skipped)) passed, $((failures + errors)) failed, $skipped skipped"
    PASSED=$((PASSED + ran - failures - errors - skipped))
    FAILED=$((FAILED + failures + errors))
    SKIPPED=$((SKIPPED + skipped))
}

run_tests() {
    if ! build; then
        echo "build failed"
        echo "tests: 0 passed, 1 failed"
        return 1
    fi
    run_xunit
    run_c
    run_sanitize
    run_ubpf_suite
    run_arm64
    run_python
    echo "tests: $PASSED passed, $FAILED failed, $SKIPPED skipped, $KNOWN known failures of uBPF's suite"
    [ "$FAILED" -eq 0 ]
}

case "${1:-build}" in
    build) build ;;
    test) run_tests ;;
    setup) setup ;;
    sanitize) build && run_sanitize && echo "sanitize: $PASSED passed, $FAILED failed" && [ "$FAILED" -eq 0 ] ;;
    valgrind) run_valgrind ;;
    fuzz)
        shift
        target="${1:-}"
        case "$target" in
            asm|disasm|elf|exec|cbpf|capture|kernel|machine|capi) ;;
            *) echo "usage: $0 fuzz TARGET [--time 10m]   targets: asm disasm elf exec cbpf capture kernel machine capi" >&2; exit 2 ;;
        esac
        shift
        minutes=20
        while [ $# -gt 0 ]; do
            case "$1" in
                --time) [ $# -ge 2 ] || { echo "--time needs a duration (30s, 10m, 2h)" >&2; exit 2; }; t="$2"; shift 2 ;;
                --time=*) t="${1#--time=}"; shift ;;
                *) echo "unknown option $1" >&2; exit 2 ;;
            esac
            case "$t" in
                *h) minutes=$(( ${t%h} * 60 )) ;;
                *m) minutes=${t%m} ;;
                *s) minutes=$(( (${t%s} + 59) / 60 )) ;;
                *) minutes=$t ;;
            esac
            [[ "$minutes" =~ ^[0-9]+$ ]] && [ "$minutes" -gt 0 ] || { echo "bad duration '$t' (30s, 10m, 2h)" >&2; exit 2; }
        done
        if [ "$target" = capi ] && [ ! -f "$OUT/lib/$LIBNAME" ]; then build; fi
        exec "$ROOT/fuzz/run.sh" "$target" "$minutes"
        ;;
    install|uninstall)
        action="$1"
        shift
        prefix=""
        while [ $# -gt 0 ]; do
            case "$1" in
                --prefix)
                    [ $# -ge 2 ] && [ -n "$2" ] || { echo "usage: $0 $action --prefix DIR (--prefix needs a folder)" >&2; exit 2; }
                    prefix="$2"; shift 2 ;;
                --prefix=*) prefix="${1#--prefix=}"; shift ;;
                *) echo "unknown option $1" >&2; exit 2 ;;
            esac
        done
        [ -n "$prefix" ] || { echo "usage: $0 $action --prefix DIR" >&2; exit 2; }
        if [ "$action" = install ]; then
            mkdir -p "$prefix"
            install_to "$(cd "$prefix" && pwd)"
        else
            [ -d "$prefix" ] || { echo "error: $prefix does not exist" >&2; exit 1; }
            uninstall_from "$(cd "$prefix" && pwd)"
        fi
        ;;
    *) echo "usage: $0 [build|test|setup|sanitize|valgrind|fuzz TARGET [--time 10m]|install --prefix DIR|uninstall --prefix DIR]" >&2; exit 2 ;;
esac
