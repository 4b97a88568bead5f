#!/usr/bin/env python3
"""Checks include/ubpf.h against uBPF's own vm/inc/ubpf.h, mechanically.

Every function, typedef, enum, structure and macro uBPF's header declares must be in ours with the
same type (as clang spells it), the same enum values, the same structure layout (sizeof, offsetof)
and the same macro values. Names only ours has are listed, not counted as failures.

    compare_headers.py OUR_INCLUDE_DIR UBPF_INCLUDE_DIR

Needs clang and a C compiler. Ends with "header-compare: N passed, N failed".
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def clang_ast(include_dir, work, config):
    """The declarations of ubpf.h, and its macros, as clang sees them."""
    cfg = os.path.join(work, "cfg")
    os.makedirs(cfg, exist_ok=True)
    if config:
        # uBPF generates ubpf_config.h at build time: give its header the same configuration.
        with open(os.path.join(cfg, "ubpf_config.h"), "w") as f:
            f.write("#pragma once\n#define UBPF_HAS_ELF_H\n")
    src = os.path.join(work, "probe.c")
    with open(src, "w") as f:
        f.write('#include "ubpf.h"\n')
    flags = ["-I", include_dir, "-I", cfg]
    ast = json.loads(subprocess.run(["clang", "-fsyntax-only", "-Xclang", "-ast-dump=json", *flags, src],
                                    check=True, capture_output=True, text=True).stdout)
    decls = {}
    current = None
    for node in ast.get("inner", []):
        loc = node.get("loc", {})
        spelled = loc.get("spellingLoc", loc)
        if "file" in spelled:
            current = spelled["file"]
        elif "file" in loc:
            current = loc["file"]
        if not current or os.path.basename(current) != "ubpf.h" or node.get("isImplicit"):
            continue
        kind, name = node.get("kind"), node.get("name")
        if not name:
            continue
        if kind == "FunctionDecl":
            decls[("function", name)] = node["type"]["qualType"]
        elif kind == "TypedefDecl":
            decls[("typedef", name)] = node["type"]["qualType"]
        elif kind == "EnumDecl":
            decls[("enum", name)] = [c["name"] for c in node.get("inner", []) if c.get("kind") == "EnumConstantDecl"]
        elif kind == "RecordDecl" and node.get("completeDefinition"):
            decls[("struct", name)] = [(c["name"], c["type"]["qualType"]) for c in node.get("inner", [])
                                       if c.get("kind") == "FieldDecl"]
    macros = subprocess.run(["clang", "-dM", "-E", *flags, src], check=True, capture_output=True, text=True).stdout
    names = sorted(set(re.findall(r"^#define (UBPF_\w+)[ \t]+\S", macros, re.M)) - {"UBPF_H", "UBPF_HAS_ELF_H"})
    for name in names:
        decls[("macro", name)] = None
    return decls, flags


def values(decls, flags, work, wanted):
    """Enum constants, macro values and structure layouts, printed by a program compiled against the header."""
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "ubpf.h"', "int main(void) {"]
    for kind, name in wanted:
        if kind == "enum":
            for c in decls[(kind, name)]:
                lines.append(f'printf("enum {c} %lld\\n", (long long){c});')
        elif kind == "macro":
            lines.append(f'printf("macro {name} %llu\\n", (unsigned long long)({name}));')
        elif kind == "struct":
            lines.append(f'printf("sizeof {name} %zu\\n", sizeof(struct {name}));')
            for field, _ in decls[(kind, name)]:
                lines.append(f'printf("offsetof {name}.{field} %zu\\n", offsetof(struct {name}, {field}));')
    lines.append("return 0; }")
    src = os.path.join(work, "values.c")
    exe = os.path.join(work, "values")
    with open(src, "w") as f:
        f.write("\n".join(lines) + "\n")
    subprocess.run(["cc", *flags, src, "-o", exe], check=True, capture_output=True, text=True)
    out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ours_dir, theirs_dir = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        theirs, theirs_flags = clang_ast(theirs_dir, a, config=True)
        ours, ours_flags = clang_ast(ours_dir, b, config=False)
        passed = failed = 0
        wanted = [k for k in theirs if k[0] in ("enum", "macro", "struct")]
        missing = [k for k in wanted if k not in ours]
        present = [k for k in wanted if k in ours]
        their_values = values(theirs, theirs_flags, a, present)
        our_values = values(ours, ours_flags, b, present)
        for key in sorted(theirs):
            kind, name = key
            if key not in ours:
                print(f"FAIL {kind} {name}: missing from our header")
                failed += 1
                continue
            problems = []
            if kind in ("function", "typedef") and theirs[key] != ours[key]:
                problems.append(f"uBPF: {theirs[key]}; ours: {ours[key]}")
            if kind == "struct" and theirs[key] != ours[key]:
                problems.append(f"fields differ: uBPF {theirs[key]}; ours {ours[key]}")
            if kind == "enum" and theirs[key] != ours[key]:
                problems.append(f"constants differ: uBPF {theirs[key]}; ours {ours[key]}")
            prefix = {"enum": "enum ", "macro": f"macro {name}", "struct": ""}.get(kind)
            if prefix is not None:
                for probe, value in their_values.items():
                    belongs = (kind == "macro" and probe == prefix) or \
                              (kind == "enum" and probe.startswith("enum ") and probe[5:] in theirs[key]) or \
                              (kind == "struct" and (probe == f"sizeof {name}" or probe.startswith(f"offsetof {name}.")))
                    if belongs and our_values.get(probe) != value:
                        problems.append(f"{probe}: uBPF {value}, ours {our_values.get(probe)}")
            if problems:
                print(f"FAIL {kind} {name}: " + "; ".join(problems))
                failed += 1
            else:
                passed += 1
        extra = sorted(f"{k} {n}" for k, n in ours if (k, n) not in theirs)
        if extra:
            print("only in our header: " + ", ".join(extra))
        if missing:
            pass  # reported above, one line each
        print(f"header-compare: {passed} passed, {failed} failed")
        sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
