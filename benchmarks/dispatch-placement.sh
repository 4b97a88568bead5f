#!/usr/bin/env bash
# Where the interpreter's dispatch sequence lands in a build of librbpf (x86-64): whether it fits in
# one 64-byte line or crosses into the next, which moves the interpreter's timings by about a fifth
# between builds of the same source (docs/performance.md, "Interpreter, fourth round"). Compare
# timings of two builds only when both answer the same. Needs nm and objdump (binutils).
# Usage: benchmarks/dispatch-placement.sh [DIR]   DIR: a `dotnet publish` output of src/Rbpf.Native
#        holding librbpf.so and librbpf.so.dbg (default: publishes the working tree into out/dispatch)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-}
if [ -z "$dir" ]; then
    dir=out/dispatch
    dotnet publish src/Rbpf.Native -c Release -r linux-x64 -nologo -v quiet -clp:ErrorsOnly -o "$dir" >/dev/null
fi
[ -f "$dir/librbpf.so.dbg" ] || { echo "no $dir/librbpf.so.dbg (the symbols of a publish)" >&2; exit 1; }
sym='Rbpf_Rbpf_Interpreter__RunBlock<Rbpf_Rbpf_NoObserver__Rbpf_Rbpf_UncountedRun>'
start=$(nm "$dir/librbpf.so.dbg" | awk -v s="$sym" '$2 ~ /^[tT]$/ && $3 == s {print $1}')
[ -n "$start" ] || { echo "$sym not found" >&2; exit 1; }
end=$( (nm -n "$dir/librbpf.so.dbg" || true) | awk -v a="$start" 'found && $1 != a {print $1; exit} $1 == a {found=1}')
# The dispatch: from the slot pointer's step (add reg, 0x10, or lea and mov in older builds) and the
# load of the operation through the table's indirect jmp.
objdump -d --no-show-raw-insn -M intel --start-address=0x"$start" --stop-address=0x"$end" "$dir/librbpf.so" |
python3 -c '
import re, sys
lines = [l for l in sys.stdin if re.match(r"\s+[0-9a-f]+:", l)]
at = lambda l: int(l.split(":")[0], 16)
for k, l in enumerate(lines):
    if re.search(r"\sjmp\s+r[a-z0-9]+\s*$", l):
        first = next(j for j in range(k, -1, -1) if re.search(r"\smovzx\s+\w+,BYTE PTR \[\w+\]\s*$", lines[j]))
        if re.search(r"\sadd\s+\w+,0x10\s*$", lines[first - 1]): first -= 1
        elif re.search(r"\slea\s+\w+,\[\w+\+0x10\]\s*$", lines[first - 2]): first -= 2
        begin, stop = at(lines[first]), at(lines[k + 1])
        size, offset = stop - begin, begin % 64
        verdict = "fits in one line" if offset + size <= 64 else "crosses into the next line"
        print(f"RunBlock<NoObserver, UncountedRun> at 0x{int(sys.argv[1], 16):x}: dispatch at 0x{begin:x}, "
              f"{size} bytes from offset {offset} of its 64-byte line: {verdict}")
        break
else:
    sys.exit("no dispatch found")
' "$start"
