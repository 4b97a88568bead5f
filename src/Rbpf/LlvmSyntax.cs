using System.Text.RegularExpressions;

namespace Rbpf;

/// <summary>
/// The LLVM/kernel spelling of eBPF assembly, what <c>clang -S -target bpf</c> and
/// <c>llvm-objdump -d</c> print (<c>r0 = 1</c>, <c>w1 += w2</c>, <c>r1 = *(u32 *)(r2 + 4)</c>,
/// <c>if r1 &gt; r2 goto +3</c>, <c>r1 = 0x1234 ll</c>, <c>lock *(u64 *)(r1 + 0) += r2</c>,
/// <c>call bpf_map_lookup_elem</c>): <see cref="ToRbpf"/> rewrites one statement into the
/// assembler's own syntax (the <see cref="Assembler"/> calls it for every line that is not already
/// in that syntax), and <see cref="Format"/> writes one instruction this way (the disassembler's
/// <see cref="AsmSyntax.Llvm"/>).
/// </summary>
internal static partial class LlvmSyntax
{
    private const string Reg = @"[rw](?:10|[0-9])";
    private const string Num = @"[+-]?(?:0x[0-9a-fA-F]+|[0-9]+)";
    private const string Target = @"[+-]?(?:0x[0-9a-fA-F]+|[0-9]+)|[A-Za-z_.][A-Za-z0-9_.]*";
    private const string AddrPattern = @"\(\s*(r(?:10|[0-9]))\s*(?:([+-])\s*(0x[0-9a-fA-F]+|[0-9]+))?\s*\)";

    [GeneratedRegex($@"^({Reg})\s*=\s*\(s(8|16|32)\)\s*({Reg})$")] private static partial Regex MovSx();
    [GeneratedRegex($@"^({Reg})\s*=\s*-\s*({Reg})$")] private static partial Regex Neg();
    [GeneratedRegex($@"^({Reg})\s*=\s*(be|le|bswap)(16|32|64)\s+({Reg})$")] private static partial Regex Endian();
    [GeneratedRegex($@"^(r(?:10|[0-9]))\s*=\s*({Num})\s+ll$")] private static partial Regex Lddw();
    [GeneratedRegex($@"^({Reg})\s*=\s*\*\s*\(\s*([us])(8|16|32|64)\s*\*\s*\)\s*{AddrPattern}$")] private static partial Regex Load();
    [GeneratedRegex($@"^r0\s*=\s*\*\s*\(\s*u(8|16|32|64)\s*\*\s*\)\s*skb\s*\[\s*(?:(r(?:10|[0-9]))\s*(?:\+\s*)?)?({Num})?\s*\]$")] private static partial Regex PacketLoad();
    [GeneratedRegex($@"^\*\s*\(\s*u(8|16|32|64)\s*\*\s*\)\s*{AddrPattern}\s*=\s*({Reg}|{Num})$")] private static partial Regex Store();
    [GeneratedRegex($@"^lock\s+\*\s*\(\s*u(32|64)\s*\*\s*\)\s*{AddrPattern}\s*(\+|\||&|\^)=\s*({Reg})$")] private static partial Regex AtomicOp();
    [GeneratedRegex($@"^({Reg})\s*=\s*atomic_fetch_(add|or|and|xor)\s*\(\s*\(\s*u(32|64)\s*\*\s*\)\s*{AddrPattern}\s*,\s*({Reg})\s*\)$")] private static partial Regex AtomicFetch();
    [GeneratedRegex($@"^({Reg})\s*=\s*xchg(?:32)?_(32|64)\s*\(\s*(r(?:10|[0-9]))\s*(?:([+-])\s*(0x[0-9a-fA-F]+|[0-9]+))?\s*,\s*({Reg})\s*\)$")] private static partial Regex Xchg();
    [GeneratedRegex($@"^({Reg})\s*=\s*cmpxchg(?:32)?_(32|64)\s*\(\s*(r(?:10|[0-9]))\s*(?:([+-])\s*(0x[0-9a-fA-F]+|[0-9]+))?\s*,\s*({Reg})\s*,\s*({Reg})\s*\)$")] private static partial Regex CmpXchg();
    [GeneratedRegex($@"^({Reg})\s*(s>>|<<|>>|s/|s%|\+|-|\*|/|%|\||&|\^)=\s*({Reg}|{Num})$")] private static partial Regex Alu();
    [GeneratedRegex($@"^({Reg})\s*=\s*({Reg}|{Num})$")] private static partial Regex Mov();
    [GeneratedRegex($@"^(goto|gotol)\s+({Target})$")] private static partial Regex Goto();
    [GeneratedRegex($@"^if\s+({Reg})\s*(==|!=|s>=|s<=|s>|s<|>=|<=|>|<|&)\s*({Reg}|{Num})\s+goto\s+({Target})$")] private static partial Regex If();

    /// <summary>Whether <paramref name="statement"/> is written the LLVM way (the assembler's own
    /// syntax has no <c>=</c>, <c>if</c>, <c>goto</c> or <c>*(</c>).</summary>
    public static bool Applies(string statement) =>
        statement.Contains('=') || statement.StartsWith("if ", StringComparison.Ordinal) ||
        statement.StartsWith("goto", StringComparison.Ordinal) || statement.StartsWith("*", StringComparison.Ordinal);

    /// <summary>The statement in the assembler's syntax, or null when it is not a statement of the LLVM syntax.</summary>
    public static string? ToRbpf(string statement)
    {
        string s = Regex.Replace(statement.Trim(), @"\s*<[^>]*>$", ""); // llvm-objdump's "<LBB0_2>" after a target
        Match m;
        if ((m = MovSx().Match(s)).Success)
            return $"movsx{m.Groups[2].Value}{Width(m.Groups[1].Value)} {R(m.Groups[1])}, {R(m.Groups[3])}";
        if ((m = Neg().Match(s)).Success && R(m.Groups[1]) == R(m.Groups[2]))
            return $"neg{Width(m.Groups[1].Value)} {R(m.Groups[1])}";
        if ((m = Endian().Match(s)).Success && R(m.Groups[1]) == R(m.Groups[4]))
            return $"{m.Groups[2].Value}{m.Groups[3].Value} {R(m.Groups[1])}";
        if ((m = Lddw().Match(s)).Success) return $"lddw {m.Groups[1].Value}, {m.Groups[2].Value}";
        if ((m = Load().Match(s)).Success)
        {
            string size = Size(m.Groups[3].Value);
            bool signed = m.Groups[2].Value == "s";
            if (signed && size == "dw") return null;
            return $"ldx{(signed ? "s" : "")}{size} {R(m.Groups[1])}, {Mem(m, 4)}";
        }
        if ((m = PacketLoad().Match(s)).Success)
        {
            string size = Size(m.Groups[1].Value);
            string off = m.Groups[3].Success ? m.Groups[3].Value : "0";
            return m.Groups[2].Success ? $"ldind{size} {m.Groups[2].Value}, {off}" : $"ldabs{size} {off}";
        }
        if ((m = Store().Match(s)).Success)
        {
            string size = Size(m.Groups[1].Value);
            string value = m.Groups[5].Value;
            bool isReg = value[0] is 'r' or 'w';
            return isReg ? $"stx{size} {Mem(m, 2)}, {R(m.Groups[5])}" : $"st{size} {Mem(m, 2)}, {value}";
        }
        if ((m = AtomicOp().Match(s)).Success)
        {
            string op = m.Groups[5].Value switch { "+" => "add", "|" => "or", "&" => "and", _ => "xor" };
            return $"lock {op}{m.Groups[1].Value} {Mem(m, 2)}, {R(m.Groups[6])}";
        }
        if ((m = AtomicFetch().Match(s)).Success && R(m.Groups[1]) == R(m.Groups[7]))
            return $"lock fetch {m.Groups[2].Value}{m.Groups[3].Value} {Mem(m, 4)}, {R(m.Groups[1])}";
        if ((m = Xchg().Match(s)).Success && R(m.Groups[1]) == R(m.Groups[6]))
            return $"lock xchg{m.Groups[2].Value} {Mem(m, 3)}, {R(m.Groups[1])}";
        if ((m = CmpXchg().Match(s)).Success && R(m.Groups[1]) == "r0" && R(m.Groups[6]) == "r0")
            return $"lock cmpxchg{m.Groups[2].Value} {Mem(m, 3)}, {R(m.Groups[7])}";
        if ((m = Alu().Match(s)).Success)
        {
            string op = m.Groups[2].Value switch
            {
                "+" => "add", "-" => "sub", "*" => "mul", "/" => "div", "%" => "mod", "|" => "or", "&" => "and",
                "^" => "xor", "<<" => "lsh", ">>" => "rsh", "s>>" => "arsh", "s/" => "sdiv", _ => "smod",
            };
            return $"{op}{Width(m.Groups[1].Value)} {R(m.Groups[1])}, {Operand(m.Groups[3])}";
        }
        if ((m = Mov().Match(s)).Success)
            return $"mov{Width(m.Groups[1].Value)} {R(m.Groups[1])}, {Operand(m.Groups[2])}";
        if ((m = Goto().Match(s)).Success)
            return $"{(m.Groups[1].Value == "goto" ? "ja" : "gotol")} {m.Groups[2].Value}";
        if ((m = If().Match(s)).Success)
        {
            string op = m.Groups[2].Value switch
            {
                "==" => "jeq", "!=" => "jne", ">" => "jgt", ">=" => "jge", "<" => "jlt", "<=" => "jle", "&" => "jset",
                "s>" => "jsgt", "s>=" => "jsge", "s<" => "jslt", _ => "jsle",
            };
            bool is32 = m.Groups[1].Value[0] == 'w';
            return $"{op}{(is32 ? "32" : "")} {R(m.Groups[1])}, {Operand(m.Groups[3])}, {m.Groups[4].Value}";
        }
        return null;
    }

    private static string R(Group g) => "r" + g.Value[1..];
    private static string Width(string reg) => reg[0] == 'w' ? "32" : "64";
    private static string Operand(Group g) => g.Value[0] is 'r' or 'w' ? R(g) : g.Value;
    private static string Size(string bits) => bits switch { "8" => "b", "16" => "h", "32" => "w", _ => "dw" };

    /// <summary>"[rN+off]" from an address's three groups starting at <paramref name="first"/>.</summary>
    private static string Mem(Match m, int first)
    {
        string reg = m.Groups[first].Value;
        if (!m.Groups[first + 1].Success) return $"[{reg}]";
        return $"[{reg}{m.Groups[first + 1].Value}{m.Groups[first + 2].Value}]";
    }

    private static string Hex(long v) => v < 0 ? $"-0x{(ulong)-v:x}" : $"0x{v:x}";

    private static string Addr(int reg, short off) => off < 0 ? $"(r{reg} - {-off})" : $"(r{reg} + {off})";

    private static string Bits(byte op) => (op & 0x18) switch { Isa.SizeB => "8", Isa.SizeH => "16", Isa.SizeW => "32", _ => "64" };

    /// <summary>
    /// One instruction in the LLVM syntax, or null when it has none (the caller writes
    /// <c>.quad</c>). <paramref name="lddwValue"/> is the whole constant of an lddw; jumps and
    /// local calls go to <paramref name="target"/> (a label, or null for the relative offset).
    /// </summary>
    public static string? Format(Instruction insn, ulong lddwValue, string? target)
    {
        byte op = insn.Opcode;
        int code = op & 0xf0;
        bool reg = (op & Isa.SourceX) != 0;
        switch (Isa.ClassOf(op))
        {
            case Isa.ClassAlu:
            case Isa.ClassAlu64:
            {
                char w = Isa.ClassOf(op) == Isa.ClassAlu64 ? 'r' : 'w';
                string d = $"{w}{insn.Dst}";
                if (code == Isa.OpEnd)
                {
                    string name = w == 'r' ? "bswap" : reg ? "be" : "le";
                    return $"r{insn.Dst} = {name}{insn.Imm} r{insn.Dst}";
                }
                if (code == Isa.OpNeg) return $"{d} = -{d}";
                string src = reg ? $"{w}{insn.Src}" : Hex(insn.Imm);
                if (code == Isa.OpMov)
                    return insn.Offset != 0 ? $"{d} = (s{insn.Offset}){w}{insn.Src}" : $"{d} = {src}";
                string? opText = code switch
                {
                    Isa.OpAdd => "+", Isa.OpSub => "-", Isa.OpMul => "*", Isa.OpOr => "|", Isa.OpAnd => "&",
                    Isa.OpLsh => "<<", Isa.OpRsh => ">>", Isa.OpXor => "^", Isa.OpArsh => "s>>",
                    Isa.OpDiv => insn.Offset == 1 ? "s/" : "/",
                    Isa.OpMod => insn.Offset == 1 ? "s%" : "%",
                    _ => null,
                };
                return opText == null ? null : $"{d} {opText}= {src}";
            }
            case Isa.ClassLd:
                if (op == Isa.Lddw) return $"r{insn.Dst} = 0x{lddwValue:x} ll";
                if ((op & 0xe0) == Isa.ModeAbs) return $"r0 = *(u{Bits(op)} *)skb[{Hex(insn.Imm)}]";
                if ((op & 0xe0) == Isa.ModeInd) return $"r0 = *(u{Bits(op)} *)skb[r{insn.Src} + {Hex(insn.Imm)}]";
                return null;
            case Isa.ClassLdx:
                return (op & 0xe0) switch
                {
                    Isa.ModeMem => $"r{insn.Dst} = *(u{Bits(op)} *){Addr(insn.Src, insn.Offset)}",
                    Isa.ModeMemSx => $"r{insn.Dst} = *(s{Bits(op)} *){Addr(insn.Src, insn.Offset)}",
                    _ => null,
                };
            case Isa.ClassSt:
                return $"*(u{Bits(op)} *){Addr(insn.Dst, insn.Offset)} = {Hex(insn.Imm)}";
            case Isa.ClassStx:
                if ((op & 0xe0) == Isa.ModeAtomic)
                {
                    string bits = Bits(op);
                    char w = bits == "64" ? 'r' : 'w';
                    string place = $"(u{bits} *){Addr(insn.Dst, insn.Offset)}";
                    string plain = $"r{insn.Dst} {(insn.Offset < 0 ? "-" : "+")} {Math.Abs((int)insn.Offset)}";
                    string s = $"{w}{insn.Src}";
                    string? basic = (insn.Imm & ~Isa.AtomicFetch) switch
                    {
                        Isa.AtomicAdd => "add", Isa.AtomicOr => "or", Isa.AtomicAnd => "and", Isa.AtomicXor => "xor", _ => null,
                    };
                    if (basic != null && (insn.Imm & Isa.AtomicFetch) == 0)
                        return $"lock *{place} {basic switch { "add" => "+", "or" => "|", "and" => "&", _ => "^" }}= {s}";
                    if (basic != null) return $"{s} = atomic_fetch_{basic}({place}, {s})";
                    if (insn.Imm == Isa.AtomicXchg) return $"{s} = xchg{(w == 'w' ? "32" : "")}_{bits}({plain}, {s})";
                    if (insn.Imm == Isa.AtomicCmpXchg) return $"{w}0 = cmpxchg{(w == 'w' ? "32" : "")}_{bits}({plain}, {w}0, {s})";
                    return null;
                }
                return $"*(u{Bits(op)} *){Addr(insn.Dst, insn.Offset)} = r{insn.Src}";
            default:
            {
                bool is32 = Isa.ClassOf(op) == Isa.ClassJmp32;
                char w = is32 ? 'w' : 'r';
                if (op == Isa.Exit) return "exit";
                if (op == Isa.CallX) return $"callx r{insn.Dst}";
                if (op == Isa.Call)
                {
                    if (insn.Src == Isa.PseudoCallLocal) return target == null ? null : $"call {target}";
                    return $"call {KernelHelpers.NameOf((uint)insn.Imm) ?? ((uint)insn.Imm).ToString()}";
                }
                if (op == Isa.Ja) return $"goto {target ?? Rel(insn.Offset)}";
                if (op == Isa.Ja32) return $"gotol {target ?? Rel(insn.Imm)}";
                string? cmp = code switch
                {
                    Isa.OpJeq => "==", Isa.OpJne => "!=", Isa.OpJgt => ">", Isa.OpJge => ">=", Isa.OpJlt => "<",
                    Isa.OpJle => "<=", Isa.OpJset => "&", Isa.OpJsgt => "s>", Isa.OpJsge => "s>=", Isa.OpJslt => "s<",
                    Isa.OpJsle => "s<=", _ => null,
                };
                if (cmp == null) return null;
                string rhs = reg ? $"{w}{insn.Src}" : Hex(insn.Imm);
                return $"if {w}{insn.Dst} {cmp} {rhs} goto {target ?? Rel(insn.Offset)}";
            }
        }
    }

    private static string Rel(long off) => off < 0 ? off.ToString(System.Globalization.CultureInfo.InvariantCulture) : "+" + off;
}
