using System.Buffers.Binary;
using System.Text;

namespace Rbpf;

/// <summary>The spellings of eBPF assembly the disassembler writes.</summary>
public enum AsmSyntax
{
    /// <summary>rbpf's: <c>add64 r1, 0x605</c>, <c>ldxh r0, [r1+2]</c>, <c>jeq r1, 0x5, +2</c>.</summary>
    Rbpf,
    /// <summary>LLVM's and the kernel's, as <c>llvm-objdump -d</c> prints: <c>r1 += 0x605</c>,
    /// <c>r0 = *(u16 *)(r1 + 2)</c>, <c>if r1 == 0x5 goto +2</c>.</summary>
    Llvm,
}

/// <summary>
/// Turns bytecode into assembly text the <see cref="Assembler"/> reads back to the same bytes.
/// Mnemonics follow rbpf (<c>add64 r1, 0x605</c>, <c>ldxh r0, [r1+2]</c>, <c>jeq r1, 0x5, +2</c>);
/// a slot with no other exact spelling (unknown opcode, non-zero unused fields, a stray
/// <c>lddw</c> half) is written as <c>.quad 0x...</c>, so any byte sequence round-trips.
/// </summary>
public static class Disassembler
{
    /// <summary>
    /// The program as text in <paramref name="syntax"/>; with <paramref name="labels"/>, every jump
    /// and local-call target inside the program gets a label (<c>L7:</c> before slot 7) and the
    /// instructions name it instead of an offset. The <see cref="Assembler"/> reads every form back
    /// to the same bytes.
    /// </summary>
    public static string Disassemble(ReadOnlySpan<byte> program, AsmSyntax syntax, bool labels = true)
    {
        var insns = Instruction.ReadAll(program);
        var lines = DisassembleLines(program);
        var starts = new HashSet<int>();
        foreach (var l in lines) starts.Add(l.Slot);
        var names = new Dictionary<int, string>();
        if (labels)
            foreach (var l in lines)
                if (!l.Text.StartsWith(".quad", StringComparison.Ordinal) && TargetOf(insns[l.Slot], l.Slot) is long t
                    && t >= 0 && t <= int.MaxValue && starts.Contains((int)t))
                    names[(int)t] = $"L{t}";
        var sb = new StringBuilder();
        foreach (var l in lines)
        {
            if (names.TryGetValue(l.Slot, out var here)) sb.Append(here).Append(":\n");
            var insn = insns[l.Slot];
            string? name = TargetOf(insn, l.Slot) is long t && t >= 0 && t <= int.MaxValue && names.TryGetValue((int)t, out var n) ? n : null;
            string text = l.Text;
            if (!text.StartsWith(".quad", StringComparison.Ordinal))
            {
                if (syntax == AsmSyntax.Llvm && LlvmText(insns, l.Slot, name) is string llvm) text = llvm;
                else if (name != null) text = text[..(text.LastIndexOf(' ') + 1)] + name;
            }
            sb.Append(text).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>The slot a jump or local call at <paramref name="pc"/> goes to, or null.</summary>
    private static long? TargetOf(Instruction insn, int pc)
    {
        byte op = insn.Opcode;
        if (op == Isa.Call) return insn.Src == Isa.PseudoCallLocal ? pc + 1L + insn.Imm : null;
        if (op == Isa.Ja32) return pc + 1L + insn.Imm;
        byte cls = Isa.ClassOf(op);
        if ((cls == Isa.ClassJmp || cls == Isa.ClassJmp32) && op != Isa.Exit && op != Isa.CallX && (op & 0xf0) != 0x80)
            return pc + 1L + insn.Offset;
        return null;
    }

    /// <summary>The LLVM spelling of the slot at <paramref name="pc"/> when it assembles back to the same bytes.</summary>
    private static string? LlvmText(Instruction[] insns, int pc, string? target)
    {
        var insn = insns[pc];
        ulong value = insn.Opcode == Isa.Lddw && pc + 1 < insns.Length ? (uint)insn.Imm | ((ulong)(uint)insns[pc + 1].Imm << 32) : 0;
        string? plain = LlvmSyntax.Format(insn, value, null);
        if (plain == null) return target == null ? null : LlvmSyntax.Format(insn, value, target);
        try
        {
            var back = Assembler.AssembleInstructions(plain);
            if (back.Count == 0 || back[0] != insn) return null;
        }
        catch (AssemblyException) { return null; }
        return target == null ? plain : LlvmSyntax.Format(insn, value, target);
    }

    private static readonly string[] AluNames =
    {
        "add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "neg", "mod", "xor", "mov", "arsh", "end", "?", "?",
    };

    private static readonly string[] JumpNames =
    {
        "ja", "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "call", "exit", "jlt", "jle", "jslt", "jsle", "?", "?",
    };

    /// <summary>The text of a whole program, one instruction per line (an <c>lddw</c> is one line).
    /// The length must be a multiple of 8.</summary>
    public static string Disassemble(ReadOnlySpan<byte> program)
    {
        var sb = new StringBuilder();
        foreach (var line in DisassembleLines(program)) sb.Append(line.Text).Append('\n');
        return sb.ToString();
    }

    /// <summary>One line of disassembly and the slot it starts at.</summary>
    public readonly record struct Line(int Slot, string Text);

    /// <summary>The program as lines, each with the slot it starts at.</summary>
    public static List<Line> DisassembleLines(ReadOnlySpan<byte> program)
    {
        var insns = Instruction.ReadAll(program);
        var lines = new List<Line>(insns.Length);
        for (int pc = 0; pc < insns.Length; pc++)
        {
            var insn = insns[pc];
            // An lddw into a register the assembler has no name for (r11-r15) is two .quad slots.
            if (insn.Opcode == Isa.Lddw && pc + 1 < insns.Length && insn.Dst <= 10)
            {
                var next = insns[pc + 1];
                ulong value = (uint)insn.Imm | ((ulong)(uint)next.Imm << 32);
                if (insn.Src == Isa.PseudoMapFd && insn.Offset == 0 && next.Opcode == 0 && next.Dst == 0 && next.Src == 0 && next.Offset == 0 && next.Imm == 0)
                {
                    lines.Add(new Line(pc, $"lddw r{insn.Dst}, map {(uint)insn.Imm}"));
                    pc++;
                    continue;
                }
                string text = $"lddw r{insn.Dst}, 0x{value:x}";
                if (insn.Src == 0 && insn.Offset == 0 && next.Opcode == 0 && next.Dst == 0 && next.Src == 0 && next.Offset == 0)
                {
                    lines.Add(new Line(pc, text));
                    pc++;
                    continue;
                }
                lines.Add(new Line(pc, Quad(insn)));
                continue;
            }
            lines.Add(new Line(pc, Format(insn)));
        }
        return lines;
    }

    /// <summary>Text of one instruction slot (an <c>lddw</c> shows only its low half).</summary>
    public static string Format(Instruction insn)
    {
        string? text = FormatOrNull(insn);
        if (text == null) return Quad(insn);
        // Only keep the readable form when it encodes back to exactly these bytes.
        try
        {
            var back = Assembler.AssembleInstructions(text);
            if (back.Count >= 1 && back[0] == insn && (back.Count == 1 || insn.Opcode == Isa.Lddw)) return text;
        }
        catch (AssemblyException) { }
        return Quad(insn);
    }

    private static string Quad(Instruction insn)
    {
        Span<byte> b = stackalloc byte[8];
        insn.WriteTo(b);
        return $".quad 0x{BinaryPrimitives.ReadUInt64LittleEndian(b):x16}";
    }

    private static string Hex(long v) => v < 0 ? $"-0x{(ulong)-v:x}" : $"0x{v:x}";

    private static string Mem(int reg, short off) => off < 0 ? $"[r{reg}{off}]" : $"[r{reg}+{off}]";

    private static string Rel(long off) => off < 0 ? off.ToString() : "+" + off;

    private static string SizeSuffix(byte op) => (op & 0x18) switch
    {
        Isa.SizeB => "b",
        Isa.SizeH => "h",
        Isa.SizeW => "w",
        _ => "dw",
    };

    private static string? FormatOrNull(Instruction insn)
    {
        byte op = insn.Opcode;
        int code = op & 0xf0;
        bool reg = (op & Isa.SourceX) != 0;
        switch (Isa.ClassOf(op))
        {
            case Isa.ClassAlu:
            case Isa.ClassAlu64:
            {
                bool is64 = Isa.ClassOf(op) == Isa.ClassAlu64;
                string w = is64 ? "64" : "32";
                if (code == Isa.OpEnd)
                {
                    string name = is64 ? "bswap" : reg ? "be" : "le";
                    return $"{name}{insn.Imm} r{insn.Dst}";
                }
                if (code == Isa.OpNeg) return $"neg{w} r{insn.Dst}";
                if (code == Isa.OpMov && insn.Offset != 0)
                    return $"movsx{insn.Offset}{w} r{insn.Dst}, r{insn.Src}";
                string n = AluNames[code >> 4];
                if (insn.Offset == 1 && (code == Isa.OpDiv || code == Isa.OpMod)) n = "s" + n;
                return reg ? $"{n}{w} r{insn.Dst}, r{insn.Src}" : $"{n}{w} r{insn.Dst}, {Hex(insn.Imm)}";
            }
            case Isa.ClassLd:
                if ((op & 0xe0) == Isa.ModeAbs) return $"ldabs{SizeSuffix(op)} {Hex(insn.Imm)}";
                if ((op & 0xe0) == Isa.ModeInd) return $"ldind{SizeSuffix(op)} r{insn.Src}, {Hex(insn.Imm)}";
                return null;
            case Isa.ClassLdx:
                return (op & 0xe0) switch
                {
                    Isa.ModeMem => $"ldx{SizeSuffix(op)} r{insn.Dst}, {Mem(insn.Src, insn.Offset)}",
                    Isa.ModeMemSx => $"ldxs{SizeSuffix(op)} r{insn.Dst}, {Mem(insn.Src, insn.Offset)}",
                    _ => null,
                };
            case Isa.ClassSt:
                return $"st{SizeSuffix(op)} {Mem(insn.Dst, insn.Offset)}, {Hex(insn.Imm)}";
            case Isa.ClassStx:
                if ((op & 0xe0) == Isa.ModeAtomic)
                {
                    string? name = insn.Imm switch
                    {
                        Isa.AtomicAdd => "add", Isa.AtomicOr => "or", Isa.AtomicAnd => "and", Isa.AtomicXor => "xor",
                        Isa.AtomicAdd | Isa.AtomicFetch => "fetch add", Isa.AtomicOr | Isa.AtomicFetch => "fetch or",
                        Isa.AtomicAnd | Isa.AtomicFetch => "fetch and", Isa.AtomicXor | Isa.AtomicFetch => "fetch xor",
                        Isa.AtomicXchg => "xchg", Isa.AtomicCmpXchg => "cmpxchg",
                        _ => null,
                    };
                    if (name == null) return null;
                    string w = (op & 0x18) == Isa.SizeDW ? "64" : "32";
                    return $"lock {name}{w} {Mem(insn.Dst, insn.Offset)}, r{insn.Src}";
                }
                return $"stx{SizeSuffix(op)} {Mem(insn.Dst, insn.Offset)}, r{insn.Src}";
            default:
            {
                bool is32 = Isa.ClassOf(op) == Isa.ClassJmp32;
                if (op == Isa.Exit) return "exit";
                if (op == Isa.CallX) return $"callx r{insn.Dst}";
                if (op == Isa.Call)
                    return insn.Src == Isa.PseudoCallLocal ? $"call local {Rel(insn.Imm)}" : $"call {Hex((uint)insn.Imm)}";
                if (op == Isa.Ja) return $"ja {Rel(insn.Offset)}";
                if (op == Isa.Ja32) return $"ja32 {Rel(insn.Imm)}";
                string n = JumpNames[code >> 4] + (is32 ? "32" : "");
                return reg
                    ? $"{n} r{insn.Dst}, r{insn.Src}, {Rel(insn.Offset)}"
                    : $"{n} r{insn.Dst}, {Hex(insn.Imm)}, {Rel(insn.Offset)}";
            }
        }
    }
}
