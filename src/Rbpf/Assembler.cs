using System.Globalization;

namespace Rbpf;

/// <summary>
/// Turns eBPF assembly text into bytecode. It reads rbpf's syntax (<c>add64 r1, 0x605</c>,
/// <c>ldxh r0, [r1+2]</c>, <c>jeq r1, 5, +2</c>), the bpf_conformance syntax (<c>%r1</c>
/// registers, labels, <c>mov32</c>, <c>lock fetch add [%r10-8], %r1</c>, <c>call local f</c>) and
/// the LLVM/kernel syntax that <c>clang -S -target bpf</c> and <c>llvm-objdump -d</c> print
/// (<c>r0 = 1</c>, <c>w1 += w2</c>, <c>r1 = *(u32 *)(r2 + 4)</c>, <c>if r1 &gt; r2 goto +3</c>,
/// <c>r1 = 0x1234 ll</c>, <c>call bpf_map_lookup_elem</c>; llvm-objdump's offsets and bytes and
/// clang's section and symbol directives are skipped), line by line, mixed as you like.
/// </summary>
/// <remarks>
/// One instruction per line; <c>#</c>, <c>//</c> and <c>;</c> start comments; <c>name:</c> defines a
/// label (alone or before an instruction). Jump targets are labels or signed slot offsets
/// (<c>+2</c>, <c>-3</c>). A jump to an undefined label <c>exit</c> goes to the program's first <c>exit</c>
/// instruction, as the conformance suite's assembler does. <c>.quad 0x...</c> emits one raw slot
/// (the 8 bytes as a little-endian number), which is how the disassembler writes slots that have
/// no other spelling. Errors are <see cref="AssemblyException"/>s with line and column.
/// </remarks>
public static class Assembler
{
    private enum Form
    {
        AluBinary, AluUnary, Endian, MovSx, Lddw, LoadX, StoreImm, StoreX, Ja, Ja32, JumpCond,
        Call, CallX, Exit, LdAbs, LdInd,
    }

    private readonly record struct Mnemonic(Form Form, byte Opcode, short Offset = 0, int Imm = 0);

    private static readonly Dictionary<string, Mnemonic> Mnemonics = BuildMnemonics();

    private static readonly Dictionary<string, int> AtomicOps = new()
    {
        ["add"] = Isa.AtomicAdd, ["or"] = Isa.AtomicOr, ["and"] = Isa.AtomicAnd, ["xor"] = Isa.AtomicXor,
        ["fetch add"] = Isa.AtomicAdd | Isa.AtomicFetch, ["fetch or"] = Isa.AtomicOr | Isa.AtomicFetch,
        ["fetch and"] = Isa.AtomicAnd | Isa.AtomicFetch, ["fetch xor"] = Isa.AtomicXor | Isa.AtomicFetch,
        ["xchg"] = Isa.AtomicXchg, ["cmpxchg"] = Isa.AtomicCmpXchg,
    };

    private static Dictionary<string, Mnemonic> BuildMnemonics()
    {
        var m = new Dictionary<string, Mnemonic>(StringComparer.Ordinal);
        void Alu(string name, byte op, short off = 0)
        {
            m[name] = new(Form.AluBinary, (byte)(Isa.ClassAlu64 | op), off);
            m[name + "64"] = new(Form.AluBinary, (byte)(Isa.ClassAlu64 | op), off);
            m[name + "32"] = new(Form.AluBinary, (byte)(Isa.ClassAlu | op), off);
        }
        Alu("add", Isa.OpAdd); Alu("sub", Isa.OpSub); Alu("mul", Isa.OpMul); Alu("div", Isa.OpDiv);
        Alu("or", Isa.OpOr); Alu("and", Isa.OpAnd); Alu("lsh", Isa.OpLsh); Alu("rsh", Isa.OpRsh);
        Alu("mod", Isa.OpMod); Alu("xor", Isa.OpXor); Alu("mov", Isa.OpMov); Alu("arsh", Isa.OpArsh);
        Alu("sdiv", Isa.OpDiv, 1); Alu("smod", Isa.OpMod, 1);
        m["neg"] = m["neg64"] = new(Form.AluUnary, Isa.ClassAlu64 | Isa.OpNeg);
        m["neg32"] = new(Form.AluUnary, Isa.ClassAlu | Isa.OpNeg);
        m["movsx832"] = new(Form.MovSx, Isa.ClassAlu | Isa.OpMov | Isa.SourceX, 8);
        m["movsx1632"] = new(Form.MovSx, Isa.ClassAlu | Isa.OpMov | Isa.SourceX, 16);
        m["movsx864"] = new(Form.MovSx, Isa.ClassAlu64 | Isa.OpMov | Isa.SourceX, 8);
        m["movsx1664"] = new(Form.MovSx, Isa.ClassAlu64 | Isa.OpMov | Isa.SourceX, 16);
        m["movsx3264"] = new(Form.MovSx, Isa.ClassAlu64 | Isa.OpMov | Isa.SourceX, 32);
        foreach (int w in new[] { 16, 32, 64 })
        {
            m["le" + w] = new(Form.Endian, Isa.ClassAlu | Isa.OpEnd | Isa.SourceK, 0, w);
            m["be" + w] = new(Form.Endian, Isa.ClassAlu | Isa.OpEnd | Isa.SourceX, 0, w);
            m["bswap" + w] = m["swap" + w] = new(Form.Endian, Isa.ClassAlu64 | Isa.OpEnd, 0, w);
        }
        m["lddw"] = new(Form.Lddw, Isa.Lddw);
        foreach (var (suffix, size) in new[] { ("b", Isa.SizeB), ("h", Isa.SizeH), ("w", Isa.SizeW), ("dw", Isa.SizeDW) })
        {
            m["ldx" + suffix] = new(Form.LoadX, (byte)(Isa.ClassLdx | Isa.ModeMem | size));
            if (size != Isa.SizeDW) m["ldxs" + suffix] = new(Form.LoadX, (byte)(Isa.ClassLdx | Isa.ModeMemSx | size));
            m["st" + suffix] = new(Form.StoreImm, (byte)(Isa.ClassSt | Isa.ModeMem | size));
            m["stx" + suffix] = new(Form.StoreX, (byte)(Isa.ClassStx | Isa.ModeMem | size));
            m["ldabs" + suffix] = new(Form.LdAbs, (byte)(Isa.ClassLd | Isa.ModeAbs | size));
            m["ldind" + suffix] = new(Form.LdInd, (byte)(Isa.ClassLd | Isa.ModeInd | size));
        }
        m["ja"] = new(Form.Ja, Isa.Ja);
        m["ja32"] = m["gotol"] = new(Form.Ja32, Isa.Ja32);
        foreach (var (name, op) in new[]
        {
            ("jeq", Isa.OpJeq), ("jgt", Isa.OpJgt), ("jge", Isa.OpJge), ("jset", Isa.OpJset), ("jne", Isa.OpJne),
            ("jsgt", Isa.OpJsgt), ("jsge", Isa.OpJsge), ("jlt", Isa.OpJlt), ("jle", Isa.OpJle), ("jslt", Isa.OpJslt),
            ("jsle", Isa.OpJsle),
        })
        {
            m[name] = m[name + "64"] = new(Form.JumpCond, (byte)(Isa.ClassJmp | op));
            m[name + "32"] = new(Form.JumpCond, (byte)(Isa.ClassJmp32 | op));
        }
        m["call"] = new(Form.Call, Isa.Call);
        m["callx"] = new(Form.CallX, Isa.CallX);
        m["exit"] = new(Form.Exit, Isa.Exit);
        return m;
    }

    /// <summary>All mnemonics the assembler knows (for tools and docs).</summary>
    public static IReadOnlyCollection<string> KnownMnemonics => Mnemonics.Keys;

    /// <summary>Assembles <paramref name="source"/>; throws <see cref="AssemblyException"/> on the first error.</summary>
    /// <example><code>byte[] prog = Assembler.Assemble("mov r0, 1\nexit");</code></example>
    public static byte[] Assemble(string source) => Instruction.Encode(AssembleInstructions(source));

    /// <summary>Assembles <paramref name="source"/> into instruction slots.</summary>
    public static List<Instruction> AssembleInstructions(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var lines = source.Replace("\r\n", "\n").Split('\n');
        var parsed = new List<ParsedLine>();
        var labels = new Dictionary<string, int>(StringComparer.Ordinal);
        int slot = 0;
        for (int ln = 0; ln < lines.Length; ln++)
        {
            string text = StripComment(ObjdumpLine(lines[ln]));
            if (IsIgnoredDirective(text)) continue;
            int col = 0;
            // Labels: "name:" possibly followed by an instruction.
            while (true)
            {
                int start = SkipSpaces(text, col);
                int colon = text.IndexOf(':', start);
                if (colon < 0) break;
                string name = text[start..colon].Trim();
                if (name.Length == 0 || !IsIdentifier(name)) break;
                if (labels.ContainsKey(name))
                    throw new AssemblyException(ln + 1, start + 1, $"label '{name}' is defined twice");
                labels[name] = slot;
                col = colon + 1;
            }
            int s0 = SkipSpaces(text, col);
            if (s0 >= text.Length) continue;
            string statement = text[s0..];
            if (LlvmSyntax.Applies(statement))
            {
                // The LLVM/kernel syntax: rewritten into ours, in the same columns.
                string ours = LlvmSyntax.ToRbpf(statement) ?? throw new AssemblyException(ln + 1, s0 + 1,
                    System.Text.RegularExpressions.Regex.IsMatch(statement, @"=\s*[A-Za-z_.][A-Za-z0-9_.]*\s+ll\s*$")
                        ? $"'{statement.Trim()}' loads the address of a symbol, which needs a relocation: compile to an object file and load the ELF"
                        : $"cannot read '{statement.Trim()}' as an instruction");
                text = new string(' ', s0) + ours;
            }
            var line = new ParsedLine(ln + 1, text, s0, slot);
            parsed.Add(line);
            slot += line.Slots;
        }
        var result = new List<Instruction>(slot);
        foreach (var line in parsed)
            line.Emit(result, labels, parsed);
        return result;
    }

    /// <summary>
    /// A line of <c>llvm-objdump -d</c> output made readable: "  3:  b7 01 00 00 05 00 00 00  r1 = 5"
    /// keeps its instruction, a function or label header "0000000000000028 &lt;LBB0_2&gt;:" becomes a label,
    /// and the file's header lines are dropped. Other lines come back as they are.
    /// </summary>
    private static string ObjdumpLine(string line)
    {
        // The bytes are exact (the text may need relocations, and prints a local call as "call 4"):
        // they become .quad slots.
        var m = System.Text.RegularExpressions.Regex.Match(line,
            @"^\s*[0-9a-f]+:\s+((?:[0-9a-f]{2} ){7}[0-9a-f]{2})(?: ((?:[0-9a-f]{2} ){7}[0-9a-f]{2}))?(?:\s|$)");
        if (m.Success)
        {
            string slots = Quad(m.Groups[1].Value);
            if (m.Groups[2].Success) slots += ", " + Quad(m.Groups[2].Value);
            return ".quad " + slots;
        }
        m = System.Text.RegularExpressions.Regex.Match(line, @"^[0-9a-f]{8,16} <([A-Za-z_.][A-Za-z0-9_.]*)>:\s*$");
        if (m.Success) return m.Groups[1].Value + ":";
        if (line.StartsWith("Disassembly of section ", StringComparison.Ordinal) || line.Contains(":\tfile format ", StringComparison.Ordinal))
            return "";
        return line;
    }

    /// <summary>"b7 01 00 00 05 00 00 00" as the little-endian number .quad takes.</summary>
    private static string Quad(string bytes)
    {
        var parts = bytes.Split(' ');
        ulong v = 0;
        for (int k = 7; k >= 0; k--) v = (v << 8) | Convert.ToByte(parts[k], 16);
        return $"0x{v:x16}";
    }

    /// <summary>Directives of <c>clang -S</c> output that say nothing about the instructions.</summary>
    private static bool IsIgnoredDirective(string text)
    {
        string t = text.TrimStart();
        if (t.Length < 2 || t[0] != '.') return false;
        int end = 0;
        while (end < t.Length && !char.IsWhiteSpace(t[end]) && t[end] != ':') end++;
        if (end < t.Length && t[end] == ':') return false; // a label such as .Lfunc_end0:
        return t[..end] is ".text" or ".file" or ".globl" or ".global" or ".p2align" or ".type" or ".size"
            or ".section" or ".addrsig" or ".addrsig_sym" or ".ident" or ".loc" or ".local"
            || t.StartsWith(".cfi_", StringComparison.Ordinal);
    }

    private static string StripComment(string line)
    {
        int cut = line.Length;
        foreach (var marker in new[] { "#", "//", ";" })
        {
            int k = line.IndexOf(marker, StringComparison.Ordinal);
            if (k >= 0 && k < cut) cut = k;
        }
        return line[..cut].TrimEnd();
    }

    private static int SkipSpaces(string s, int i)
    {
        while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        return i;
    }

    private static bool IsIdentifier(string s)
    {
        if (s.Length == 0 || !(char.IsLetter(s[0]) || s[0] == '_' || s[0] == '.')) return false;
        foreach (char c in s)
            if (!(char.IsLetterOrDigit(c) || c == '_' || c == '.')) return false;
        return true;
    }

    /// <summary>One operand of an instruction and the column it starts at.</summary>
    private readonly record struct Operand(string Text, int Column);

    /// <summary>One instruction line: mnemonic and operands, parsed in the first pass, emitted in the second.</summary>
    private sealed class ParsedLine
    {
        public ParsedLine(int line, string text, int start, int slot)
        {
            Line = line;
            Slot = slot;
            int i = start;
            int mStart = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i])) i++;
            string first = text[mStart..i].ToLowerInvariant();
            MnemonicColumn = mStart + 1;
            // "lock [fetch] op[32]" and ".quad" take the whole mnemonic phrase.
            if (first == "lock")
            {
                int j = SkipSpaces(text, i);
                int k = j;
                while (k < text.Length && !char.IsWhiteSpace(text[k]) && text[k] != '[') k++;
                string word = text[j..k].ToLowerInvariant();
                if (word == "fetch")
                {
                    int j2 = SkipSpaces(text, k);
                    k = j2;
                    while (k < text.Length && !char.IsWhiteSpace(text[k]) && text[k] != '[') k++;
                    word = "fetch " + text[j2..k].ToLowerInvariant();
                }
                Name = "lock " + word;
                i = k;
            }
            else
            {
                Name = first;
            }
            Operands = SplitOperands(text, i);
            Slots = Name == "lddw" ? 2 : Name == ".quad" ? Math.Max(1, Operands.Count) : 1;
        }

        public int Line { get; }
        public int Slot { get; }
        public int Slots { get; }
        public string Name { get; }
        public int MnemonicColumn { get; }
        public List<Operand> Operands { get; }

        private static List<Operand> SplitOperands(string text, int i)
        {
            var ops = new List<Operand>();
            int pos = SkipSpaces(text, i);
            if (pos >= text.Length) return ops;
            int depth = 0;
            int start = pos;
            for (int k = pos; k <= text.Length; k++)
            {
                char c = k < text.Length ? text[k] : ',';
                if (c == '[') depth++;
                else if (c == ']') depth--;
                if (c == ',' && depth <= 0)
                {
                    string piece = text[start..Math.Min(k, text.Length)];
                    int lead = piece.Length - piece.TrimStart().Length;
                    ops.Add(new Operand(piece.Trim(), start + lead + 1));
                    start = k + 1;
                }
            }
            return ops;
        }

        private AssemblyException Error(int column, string message) => new(Line, column, message);

        private AssemblyException Error(string message) => new(Line, MnemonicColumn, message);

        private void Expect(int count, string usage)
        {
            if (Operands.Count != count)
                throw Error(Operands.Count < count
                    ? $"'{Name}' expects {count} operand{(count == 1 ? "" : "s")}: {usage}"
                    : $"too many operands for '{Name}': {usage}");
        }

        public void Emit(List<Instruction> output, Dictionary<string, int> labels, List<ParsedLine> all)
        {
            if (Name.StartsWith("lock ", StringComparison.Ordinal))
            {
                EmitAtomic(output);
                return;
            }
            if (Name == ".quad")
            {
                if (Operands.Count == 0) throw Error("'.quad' expects one or more operands: .quad 0x0123456789abcdef[, ...]");
                Span<byte> b = stackalloc byte[8];
                foreach (var operand in Operands)
                {
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b, ParseUnsigned64(operand));
                    output.Add(Instruction.Read(b, 0));
                }
                return;
            }
            if (!Mnemonics.TryGetValue(Name, out var m))
                throw Error($"unknown instruction '{Name}'");
            switch (m.Form)
            {
                case Form.AluBinary:
                {
                    Expect(2, $"{Name} dst, src|imm");
                    int dst = Register(Operands[0]);
                    if (TryRegister(Operands[1], out int src))
                        output.Add(new Instruction((byte)(m.Opcode | Isa.SourceX), dst, src, m.Offset, 0));
                    else
                        output.Add(new Instruction(m.Opcode, dst, 0, m.Offset, Imm32(Operands[1])));
                    break;
                }
                case Form.AluUnary:
                    Expect(1, $"{Name} dst");
                    output.Add(new Instruction(m.Opcode, Register(Operands[0]), 0, 0, 0));
                    break;
                case Form.Endian:
                    Expect(1, $"{Name} dst");
                    output.Add(new Instruction(m.Opcode, Register(Operands[0]), 0, 0, m.Imm));
                    break;
                case Form.MovSx:
                    Expect(2, $"{Name} dst, src");
                    output.Add(new Instruction(m.Opcode, Register(Operands[0]), Register(Operands[1]), m.Offset, 0));
                    break;
                case Form.Lddw:
                {
                    Expect(2, "lddw dst, imm64 | lddw dst, map FD");
                    int dst = Register(Operands[0]);
                    if (Operands[1].Text.StartsWith("map ", StringComparison.OrdinalIgnoreCase))
                    {
                        // A map by file descriptor (BPF_PSEUDO_MAP_FD): source 1, the fd in the immediate.
                        string fdText = Operands[1].Text[4..].Trim();
                        var fdOperand = new Operand(fdText, Operands[1].Column + Operands[1].Text.Length - fdText.Length);
                        output.Add(new Instruction(m.Opcode, dst, Isa.PseudoMapFd, 0, (int)(uint)ParseSigned(fdOperand, 0, uint.MaxValue)));
                        output.Add(new Instruction(0, 0, 0, 0, 0));
                        break;
                    }
                    ulong v = ParseImm64(Operands[1]);
                    output.Add(new Instruction(m.Opcode, dst, 0, 0, (int)(uint)v));
                    output.Add(new Instruction(0, 0, 0, 0, (int)(uint)(v >> 32)));
                    break;
                }
                case Form.LoadX:
                {
                    Expect(2, $"{Name} dst, [src+off]");
                    int dst = Register(Operands[0]);
                    var (reg, off) = MemoryOperand(Operands[1]);
                    output.Add(new Instruction(m.Opcode, dst, reg, off, 0));
                    break;
                }
                case Form.StoreImm:
                {
                    Expect(2, $"{Name} [dst+off], imm");
                    var (reg, off) = MemoryOperand(Operands[0]);
                    output.Add(new Instruction(m.Opcode, reg, 0, off, Imm32(Operands[1])));
                    break;
                }
                case Form.StoreX:
                {
                    Expect(2, $"{Name} [dst+off], src");
                    var (reg, off) = MemoryOperand(Operands[0]);
                    output.Add(new Instruction(m.Opcode, reg, Register(Operands[1]), off, 0));
                    break;
                }
                case Form.LdAbs:
                    Expect(1, $"{Name} imm");
                    output.Add(new Instruction(m.Opcode, 0, 0, 0, Imm32(Operands[0])));
                    break;
                case Form.LdInd:
                    Expect(2, $"{Name} src, imm");
                    output.Add(new Instruction(m.Opcode, 0, Register(Operands[0]), 0, Imm32(Operands[1])));
                    break;
                case Form.Ja:
                    Expect(1, "ja +off|label");
                    output.Add(new Instruction(m.Opcode, 0, 0, Offset16(Target(Operands[0], labels, all)), 0));
                    break;
                case Form.Ja32:
                    Expect(1, $"{Name} +off|label");
                    output.Add(new Instruction(m.Opcode, 0, 0, 0, Fits32(Target(Operands[0], labels, all), Operands[0])));
                    break;
                case Form.JumpCond:
                {
                    Expect(3, $"{Name} dst, src|imm, +off|label");
                    int dst = Register(Operands[0]);
                    short off = Offset16(Target(Operands[2], labels, all));
                    if (TryRegister(Operands[1], out int src))
                        output.Add(new Instruction((byte)(m.Opcode | Isa.SourceX), dst, src, off, 0));
                    else
                        output.Add(new Instruction(m.Opcode, dst, 0, off, Imm32(Operands[1])));
                    break;
                }
                case Form.Call:
                    EmitCall(output, labels, all);
                    break;
                case Form.CallX:
                    Expect(1, "callx reg | callx imm");
                    if (TryRegister(Operands[0], out int callee))
                        output.Add(new Instruction(Isa.CallX, callee, 0, 0, 0));
                    else // rbpf 0.4's spelling of a local call: callx with the relative offset (or a label)
                        output.Add(new Instruction(Isa.Call, 0, Isa.PseudoCallLocal, 0, Fits32(Target(Operands[0], labels, all), Operands[0])));
                    break;
                case Form.Exit:
                    Expect(0, "exit");
                    output.Add(new Instruction(Isa.Exit, 0, 0, 0, 0));
                    break;
            }
        }

        private void EmitCall(List<Instruction> output, Dictionary<string, int> labels, List<ParsedLine> all)
        {
            if (Operands.Count != 1) throw Error("'call' expects one operand: call imm | call local label|+off | call reg");
            var op = Operands[0];
            if (op.Text.StartsWith("local", StringComparison.OrdinalIgnoreCase) &&
                (op.Text.Length == 5 || char.IsWhiteSpace(op.Text[5])))
            {
                string rest = op.Text[5..];
                int lead = rest.Length - rest.TrimStart().Length;
                var target = new Operand(rest.Trim(), op.Column + 5 + lead);
                if (target.Text.Length == 0) throw Error(op.Column, "'call local' needs a label or offset");
                output.Add(new Instruction(Isa.Call, 0, Isa.PseudoCallLocal, 0, Fits32(Target(target, labels, all), target)));
                return;
            }
            if (TryRegister(op, out int reg))
            {
                output.Add(new Instruction(Isa.CallX, reg, 0, 0, 0));
                return;
            }
            if (IsIdentifier(op.Text) && labels.ContainsKey(op.Text))
            {
                output.Add(new Instruction(Isa.Call, 0, Isa.PseudoCallLocal, 0, Fits32(Target(op, labels, all), op)));
                return;
            }
            if (IsIdentifier(op.Text))
            {
                // A helper by name, rbpf's (call sqrti) or the kernel's (call bpf_map_lookup_elem is
                // call 1), after labels.
                uint id = StandardHelpers.IdOf(op.Text) ?? KernelHelpers.IdOf(op.Text)
                    ?? throw Error(op.Column, $"'{op.Text}' is neither a label nor a helper's name (such as bpf_map_lookup_elem or sqrti)");
                output.Add(new Instruction(Isa.Call, 0, 0, 0, (int)id));
                return;
            }
            output.Add(new Instruction(Isa.Call, 0, 0, 0, Imm32(op)));
        }

        private void EmitAtomic(List<Instruction> output)
        {
            string op = Name["lock ".Length..];
            bool is32 = op.EndsWith("32", StringComparison.Ordinal);
            if (is32 || op.EndsWith("64", StringComparison.Ordinal)) op = op[..^2];
            if (!AtomicOps.TryGetValue(op, out int imm))
                throw Error($"unknown atomic operation '{Name}' (add, or, and, xor, fetch add/or/and/xor, xchg, cmpxchg)");
            Expect(2, $"{Name} [dst+off], src");
            var (reg, off) = MemoryOperand(Operands[0]);
            byte opcode = (byte)(Isa.ClassStx | Isa.ModeAtomic | (is32 ? Isa.SizeW : Isa.SizeDW));
            output.Add(new Instruction(opcode, reg, Register(Operands[1]), off, imm));
        }

        private long Target(Operand op, Dictionary<string, int> labels, List<ParsedLine> all)
        {
            string t = op.Text;
            if (t.Length > 0 && (t[0] == '+' || t[0] == '-' || char.IsDigit(t[0])))
                return ParseSigned(op, long.MinValue, long.MaxValue);
            if (!IsIdentifier(t)) throw Error(op.Column, $"expected a label or an offset such as +2, got '{t}'");
            if (labels.TryGetValue(t, out int slot)) return slot - (Slot + 1);
            if (t == "exit")
            {
                foreach (var l in all)
                    if (l.Name == "exit") return l.Slot - (Slot + 1);
            }
            throw Error(op.Column, $"undefined label '{t}'");
        }

        /// <summary>A 32-bit jump or call offset, or an error at the operand (not an overflow exception).</summary>
        private int Fits32(long delta, Operand op)
        {
            if (delta < int.MinValue || delta > int.MaxValue)
                throw Error(op.Column, $"offset {delta} does not fit in 32 bits");
            return (int)delta;
        }

        private short Offset16(long delta)
        {
            if (delta < short.MinValue || delta > short.MaxValue)
                throw Error($"jump offset {delta} does not fit in 16 bits (use ja32/gotol for long jumps)");
            return (short)delta;
        }

        private int Register(Operand op)
        {
            if (TryRegister(op, out int r)) return r;
            throw Error(op.Column, $"expected a register r0-r10, got '{op.Text}'");
        }

        private static bool TryRegister(Operand op, out int reg)
        {
            string t = op.Text;
            if (t.StartsWith('%')) t = t[1..];
            reg = -1;
            if (t.Length < 2 || (t[0] != 'r' && t[0] != 'R')) return false;
            if (!int.TryParse(t.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > 10) return false;
            reg = n;
            return true;
        }

        private (int Reg, short Off) MemoryOperand(Operand op)
        {
            string t = op.Text;
            if (t.Length < 3 || t[0] != '[' || t[^1] != ']')
                throw Error(op.Column, $"expected a memory operand such as [r1+8], got '{t}'");
            string inner = t[1..^1].Trim();
            int sign = inner.IndexOfAny(new[] { '+', '-' });
            string regText = sign < 0 ? inner : inner[..sign].Trim();
            var regOp = new Operand(regText, op.Column + 1);
            if (!TryRegister(regOp, out int reg))
                throw Error(op.Column + 1, $"expected a register inside '{t}'");
            if (sign < 0) return (reg, 0);
            string offText = inner[sign..].Replace(" ", "");
            long off = ParseSigned(new Operand(offText, op.Column + 1 + sign), short.MinValue, short.MaxValue);
            return (reg, (short)off);
        }

        private int Imm32(Operand op)
        {
            long v = ParseSigned(op, int.MinValue, uint.MaxValue);
            return unchecked((int)v);
        }

        private ulong ParseImm64(Operand op)
        {
            string t = op.Text;
            if (t.StartsWith('-')) return unchecked((ulong)ParseSigned(op, long.MinValue, long.MaxValue));
            return ParseUnsigned64(op);
        }

        private ulong ParseUnsigned64(Operand op)
        {
            string t = op.Text.StartsWith('+') ? op.Text[1..] : op.Text;
            bool ok = t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? ulong.TryParse(t.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v)
                : ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out v);
            if (!ok) throw Error(op.Column, $"expected a 64-bit number, got '{op.Text}'");
            return v;
        }

        private long ParseSigned(Operand op, long min, long max)
        {
            string t = op.Text;
            bool negative = false;
            int i = 0;
            if (t.StartsWith('+')) i = 1;
            else if (t.StartsWith('-')) { negative = true; i = 1; }
            var body = t.AsSpan(i);
            bool ok = body.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? ulong.TryParse(body[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong mag)
                : ulong.TryParse(body, NumberStyles.None, CultureInfo.InvariantCulture, out mag);
            if (!ok) throw Error(op.Column, $"expected a number, got '{t}'");
            if (negative ? mag > (ulong)long.MaxValue + 1 : mag > long.MaxValue)
                throw Error(op.Column, $"number '{t}' is out of range");
            long v = negative ? unchecked(-(long)mag) : (long)mag;
            if (v < min || v > max) throw Error(op.Column, $"number '{t}' is out of range [{min}, {max}]");
            return v;
        }
    }
}
