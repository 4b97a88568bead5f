#!/usr/bin/env bash
# Runs the bpf_conformance suite (uBPF's pinned copy) with its own runner against librbpf's plugin
# (out/bin/rbpf-plugin) and against uBPF's plugin built on librbpf (by tests/ubpf-suite/run.sh),
# in every mode, and prints one line per run. On demand (docs/ubpf.md has the results):
#   tests/ubpf-suite/conformance-matrix.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
ubpf=${UBPF_DIR:-$root/../shared/ubpf}
build=${UBPF_SUITE_WORK:-$root/out/ubpf-suite}/build
runner="$build/external/bpf_conformance/bin/bpf_conformance_runner"
ubpf_plugin="$build/bin/ubpf_plugin"
[ -x "$runner" ] && [ -x "$ubpf_plugin" ] || { echo "build uBPF's suite first: tests/ubpf-suite/run.sh PREFIX" >&2; exit 2; }
tests="$ubpf/external/bpf_conformance/tests"
run() { # label, cpu, plugin, options, extra runner arguments...
    local label=$1 cpu=$2 plugin=$3 options=$4; shift 4
    printf '%-66s %s  %s\n' "$label" "$cpu" "$("$runner" --test_file_directory "$tests" --plugin_path "$plugin" \
        --plugin_options "$options" --cpu_version "$cpu" "$@" 2>&1 | tail -n 1)"
}
for cpu in v3 v4; do
    for options in "--interpret" "--jit" "--jit --blind" "--jit --unchecked"; do
        run "rbpf-plugin $options" "$cpu" "$root/out/bin/rbpf-plugin" "$options"
    done
    for options in "--interpret" "--jit" "--profile safe --interpret"; do
        for blind in 0 1; do
            UBPF_ENABLE_CONSTANT_BLINDING=$blind run "uBPF's plugin on librbpf, $options, blinding $blind" "$cpu" "$ubpf_plugin" "$options"
        done
    done
done
for options in "--interpret" "--jit"; do
    run "rbpf-plugin $options, with the callx and packet groups" v4 "$root/out/bin/rbpf-plugin" "$options" --include_groups callx --include_groups packet
    run "uBPF's plugin on librbpf $options, callx and packet groups" v4 "$ubpf_plugin" "$options" --include_groups callx --include_groups packet
done
