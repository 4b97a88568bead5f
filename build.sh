#!/usr/bin/env bash
# rbpf for native code: set up, build and test.
#   ./build.sh          install what the build needs (apt, NuGet) and build everything
#   ./build.sh test     run every test suite; ends with "tests: N passed, N failed"
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
CONFIG=${CONFIG:-Release}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

need_apt=()
ensure_tool() { command -v "$1" >/dev/null 2>&1 || need_apt+=("$2"); }

setup() {
    # clang links NativeAOT output; python3 runs the Python binding's tests.
    ensure_tool clang clang
    ensure_tool python3 python3
    ensure_tool cmake cmake
    if [ ${#need_apt[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "==> installing with apt: ${need_apt[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
    if ! command -v dotnet >/dev/null 2>&1; then
        echo "error: the .NET SDK 10 (dotnet) is required: https://dotnet.microsoft.com/download" >&2
        exit 1
    fi
}

build() {
    setup
    echo "==> restoring and building ($CONFIG)"
    dotnet build "$ROOT/Rbpf.slnx" -c "$CONFIG" -nologo -v quiet
}

run_tests() {
    local passed=0 failed=0 skipped=0 log
    log=$(mktemp)
    echo "==> xunit (tests/Rbpf.Tests)"
    if [ -z "${RBPF_CONFORMANCE_DIR:-}" ] && [ ! -d "$ROOT/../shared/conformance/tests" ]; then
        echo "notice: ../shared/conformance is absent: the conformance tests are reported as skipped"
    fi
    if dotnet test "$ROOT/tests/Rbpf.Tests" -c "$CONFIG" -nologo 2>&1 | tee "$log" | grep -E "^\s*(Failed|Skipped) |Passed!|Failed!|error" ; then :; fi
    local summary
    summary=$(grep -E "(Passed|Failed)! +- +Failed: +[0-9]+, Passed: +[0-9]+" "$log" | tail -n 1 || true)
    if [ -n "$summary" ]; then
        failed=$((failed + $(sed -E 's/.*Failed: +([0-9]+),.*/\1/' <<<"$summary")))
        passed=$((passed + $(sed -E 's/.*Passed: +([0-9]+),.*/\1/' <<<"$summary")))
        skipped=$((skipped + $(sed -E 's/.*Skipped: +([0-9]+),.*/\1/' <<<"$summary")))
    else
        echo "xunit: no test summary (build failure?)" >&2
        tail -n 30 "$log" >&2
        failed=$((failed + 1))
    fi
    rm -f "$log"
    echo "tests: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
}

case "${1:-build}" in
    build) build ;;
    test) run_tests ;;
    setup) setup ;;
    *) echo "usage: $0 [build|test|setup]" >&2; exit 2 ;;
esac
