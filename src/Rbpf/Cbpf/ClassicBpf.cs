using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Rbpf.Cbpf;

/// <summary>One classic BPF instruction (libpcap's <c>struct bpf_insn</c>, Linux's <c>struct sock_filter</c>).</summary>
/// <param name="Code">The opcode.</param>
/// <param name="Jt">Instructions to skip when a conditional jump is taken.</param>
/// <param name="Jf">Instructions to skip when it is not.</param>
/// <param name="K">The constant operand.</param>
public readonly record struct CbpfInstruction(ushort Code, byte Jt, byte Jf, uint K);

/// <summary>
/// Classic BPF (tcpdump and libpcap filters, Linux socket filters) on the eBPF engine: a program is
/// validated as libpcap's <c>bpf_validate</c> and Linux's checker would, then translated into eBPF for a
/// raw VM (r1 the packet, r2 its length) that returns what <c>bpf_filter</c> returns, so it runs in
/// the interpreter and the JIT.
/// </summary>
/// <remarks>
/// The meaning is libpcap's <c>bpf_filter()</c>: A and X start at 0 and are 32 bits; loads of 1, 2 and 4
/// bytes are in network byte order; a load outside the packet ends the program with 0 (drop);
/// <c>len</c> is the packet's length (one length here: the captured one); division or modulo by an X of 0
/// ends the program with 0; a shift by an X of 32 or more gives 0 (libpcap 1.10). The 16 scratch words start at 0 (bpf_filter leaves them undefined and
/// Linux refuses programs that read one before writing it). Linux's ancillary loads
/// (<c>SKF_AD_OFF</c> and the other negative offsets) are refused.
/// </remarks>
public static class ClassicBpf
{
    /// <summary>Most instructions a classic program may have (BPF_MAXINSNS).</summary>
    public const int MaxInstructions = 4096;

    // Classes and fields of the classic encoding.
    private const int Ld = 0x00, Ldx = 0x01, St = 0x02, Stx = 0x03, Alu = 0x04, Jmp = 0x05, Ret = 0x06, Misc = 0x07;
    private const int W = 0x00, H = 0x08, B = 0x10;
    private const int Imm = 0x00, Abs = 0x20, Ind = 0x40, Mem = 0x60, Len = 0x80, Msh = 0xa0;
    private const int Add = 0x00, Sub = 0x10, Mul = 0x20, Div = 0x30, Or = 0x40, And = 0x50, Lsh = 0x60, Rsh = 0x70,
        Neg = 0x80, Mod = 0x90, Xor = 0xa0;
    private const int Ja = 0x00, Jeq = 0x10, Jgt = 0x20, Jge = 0x30, Jset = 0x40;
    private const int K = 0x00, X = 0x08, A = 0x10;
    private const int Tax = 0x00, Txa = 0x80;
    private const int ScratchWords = 16;
    /// <summary>Linux's ancillary and layer offsets start here (SKF_LL_OFF = -0x200000).</summary>
    private const uint LinuxSpecialOffsets = 0xffe0_0000;

    private static RbpfException Bad(int pc, string message) =>
        new(RbpfErrorCode.InvalidProgram, pc < 0 ? $"classic BPF: {message}" : $"classic BPF: insn #{pc}: {message}", pc);

    /// <summary>Reads 8-byte instructions (code u16, jt u8, jf u8, k u32, host byte order).</summary>
    public static CbpfInstruction[] Read(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % 8 != 0) throw Bad(-1, $"{bytes.Length} bytes is not a whole number of 8-byte instructions");
        var insns = new CbpfInstruction[bytes.Length / 8];
        for (int i = 0; i < insns.Length; i++)
        {
            var b = bytes.Slice(i * 8, 8);
            insns[i] = new CbpfInstruction(BinaryPrimitives.ReadUInt16LittleEndian(b), b[2], b[3], BinaryPrimitives.ReadUInt32LittleEndian(b[4..]));
        }
        return insns;
    }

    /// <summary>The instructions as bytes (host byte order, as <see cref="Read"/> takes them).</summary>
    public static byte[] Write(IReadOnlyList<CbpfInstruction> program)
    {
        var bytes = new byte[program.Count * 8];
        for (int i = 0; i < program.Count; i++)
        {
            var b = bytes.AsSpan(i * 8, 8);
            BinaryPrimitives.WriteUInt16LittleEndian(b, program[i].Code);
            b[2] = program[i].Jt;
            b[3] = program[i].Jf;
            BinaryPrimitives.WriteUInt32LittleEndian(b[4..], program[i].K);
        }
        return bytes;
    }

    /// <summary>
    /// Reads a program as tcpdump prints it: <c>-dd</c> (C array text: <c>{ 0x28, 0, 0, 0x0000000c },</c>)
    /// or <c>-ddd</c> (decimal: the count on the first line, then <c>code jt jf k</c> per line).
    /// </summary>
    public static CbpfInstruction[] Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var lines = text.Replace("\r\n", "\n").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        var insns = new List<CbpfInstruction>();
        if (lines.Count > 0 && lines[0].StartsWith('{'))
        {
            for (int n = 0; n < lines.Count; n++)
            {
                string l = lines[n].TrimEnd(',');
                if (!l.StartsWith('{') || !l.EndsWith('}'))
                    throw Bad(-1, $"line {n + 1}: expected {{ code, jt, jf, k }}, got '{lines[n]}'");
                var parts = l[1..^1].Split(',').Select(p => p.Trim()).ToArray();
                if (parts.Length != 4) throw Bad(-1, $"line {n + 1}: expected 4 numbers, got {parts.Length}");
                insns.Add(Make(parts, n + 1));
            }
            return insns.ToArray();
        }
        if (lines.Count == 0) throw Bad(-1, "no instructions (expected tcpdump -dd or -ddd output)");
        if (!uint.TryParse(lines[0], NumberStyles.None, CultureInfo.InvariantCulture, out uint count))
            throw Bad(-1, $"line 1: expected tcpdump -dd ({{ code, jt, jf, k }}) or -ddd (a count, then code jt jf k), got '{lines[0]}'");
        if (count != lines.Count - 1) throw Bad(-1, $"line 1 says {count} instructions, {lines.Count - 1} follow");
        for (int n = 1; n < lines.Count; n++)
        {
            var parts = lines[n].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 4) throw Bad(-1, $"line {n + 1}: expected code jt jf k, got '{lines[n]}'");
            insns.Add(Make(parts, n + 1));
        }
        return insns.ToArray();
    }

    private static CbpfInstruction Make(string[] parts, int line)
    {
        ulong Num(string s, ulong max, string what)
        {
            bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v)
                : ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
            if (!ok || v > max) throw Bad(-1, $"line {line}: {what} '{s}' is not a number up to {max}");
            return v;
        }
        return new CbpfInstruction((ushort)Num(parts[0], ushort.MaxValue, "code"), (byte)Num(parts[1], byte.MaxValue, "jt"),
            (byte)Num(parts[2], byte.MaxValue, "jf"), (uint)Num(parts[3], uint.MaxValue, "k"));
    }

    /// <summary>
    /// Refuses what libpcap's <c>bpf_validate</c> or Linux's checker refuse: no instructions or more
    /// than 4096, unknown opcodes, jumps out of the program, scratch indexes over 15, division or
    /// modulo by a constant 0, shifts by a constant of 32 or more, a last instruction that is not a
    /// return; and Linux's ancillary loads, which only Linux has.
    /// </summary>
    public static void Validate(IReadOnlyList<CbpfInstruction> program)
    {
        ArgumentNullException.ThrowIfNull(program);
        if (program.Count == 0) throw Bad(-1, "the program has no instructions");
        if (program.Count > MaxInstructions) throw Bad(-1, $"the program has {program.Count} instructions, more than {MaxInstructions}");
        for (int pc = 0; pc < program.Count; pc++)
        {
            var i = program[pc];
            int code = i.Code;
            if (code > 0xff) throw Bad(pc, $"unknown opcode 0x{code:x4}");
            switch (code & 0x07)
            {
                case Ld:
                case Ldx:
                {
                    int mode = code & 0xe0, size = code & 0x18;
                    bool ok = (code & 0x07) == Ld
                        ? (mode is Abs or Ind && size is W or H or B) || (mode is Imm or Mem or Len && size == W)
                        : (mode is Imm or Mem or Len && size == W) || (mode == Msh && size == B);
                    if (!ok) throw Bad(pc, $"unknown load opcode 0x{code:x2}");
                    if (mode == Mem && i.K >= ScratchWords) throw Bad(pc, $"scratch word {i.K} does not exist (0 to 15)");
                    if (mode is Abs or Ind or Msh && i.K >= LinuxSpecialOffsets)
                        throw Bad(pc, $"load at offset 0x{i.K:x} is one of Linux's ancillary or layer loads (SKF_AD_OFF and the like), which only the Linux kernel has");
                    break;
                }
                case St:
                case Stx:
                    if ((code & 0xf8) != 0) throw Bad(pc, $"unknown store opcode 0x{code:x2}");
                    if (i.K >= ScratchWords) throw Bad(pc, $"scratch word {i.K} does not exist (0 to 15)");
                    break;
                case Alu:
                {
                    int op = code & 0xf0;
                    bool src = (code & 0x08) != 0;
                    if (op > Xor || (op == Neg && src)) throw Bad(pc, $"unknown arithmetic opcode 0x{code:x2}");
                    if (!src && op is Div or Mod && i.K == 0) throw Bad(pc, (op == Div ? "division" : "modulo") + " by the constant 0");
                    if (!src && op is Lsh or Rsh && i.K >= 32) throw Bad(pc, $"shift by {i.K}, 32 or more");
                    break;
                }
                case Jmp:
                {
                    int op = code & 0xf0;
                    if (op > Jset || (op == Ja && (code & 0x08) != 0)) throw Bad(pc, $"unknown jump opcode 0x{code:x2}");
                    if (op == Ja)
                    {
                        if (i.K >= (uint)(program.Count - pc - 1)) throw Bad(pc, $"ja {i.K} jumps past the end of the program");
                    }
                    else if (pc + 1 + i.Jt >= program.Count || pc + 1 + i.Jf >= program.Count)
                        throw Bad(pc, $"conditional jump (jt {i.Jt}, jf {i.Jf}) goes past the end of the program");
                    break;
                }
                case Ret:
                    if ((code & 0xf8) is not (K or A)) throw Bad(pc, $"unknown return opcode 0x{code:x2}");
                    break;
                case Misc:
                    if ((code & 0xf8) is not (Tax or Txa)) throw Bad(pc, $"unknown opcode 0x{code:x2} (tax 0x07, txa 0x87)");
                    break;
            }
        }
        if ((program[^1].Code & 0x07) != Ret) throw Bad(program.Count - 1, "the program does not end with a return");
    }

    /// <summary>Validates and translates a classic program (8-byte instructions) into eBPF for a raw VM.</summary>
    public static byte[] Translate(ReadOnlySpan<byte> cbpf) => Translate(Read(cbpf));

    /// <summary>Validates <paramref name="program"/> and translates it into eBPF for a raw VM (r1 the packet, r2 its length).</summary>
    public static byte[] Translate(IReadOnlyList<CbpfInstruction> program) => Assembler.Assemble(TranslateToAssembly(program));

    /// <summary>
    /// The translation as eBPF assembly text, a label <c>c7:</c> before the code of classic
    /// instruction 7. Registers: A is w0, X is w5, r1 the packet and r2 its length as the VM passes
    /// them, r3 and r4 for addresses; no helper is called, so r6-r9 (which the JIT would have to
    /// save and restore on every run) are not used. The scratch words are 64 bytes below r10,
    /// zeroed first.
    /// </summary>
    public static string TranslateToAssembly(IReadOnlyList<CbpfInstruction> program)
    {
        Validate(program);
        var sb = new StringBuilder();
        void E(string line) => sb.Append(line).Append('\n');
        string Hex(uint v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

        E("; classic BPF: A w0, X w5, packet r1, length r2, scratch [r10-64, r10)");
        var (readsA, readsX) = ReadBeforeWritten(program);
        if (readsA) E("mov32 r0, 0");
        if (readsX) E("mov32 r5, 0");
        // A length check drops the packet when it is shorter than every path to an accepting
        // return needs (NeededLength), so a short packet is dropped by the first check and the
        // checks that follow it are known to pass: `known` is the length every path here has
        // passed a check for.
        ulong[] need = NeededLength(program);
        var known = new ulong[program.Count];
        if (need[0] != Unreachable && need[0] != 0 && need[0] <= int.MaxValue)
        {
            E($"jlt r2, {need[0]}, ret0");
            known[0] = need[0];
        }
        for (int pc = 1; pc < program.Count; pc++) known[pc] = Unreachable;
        void Reaches(int target, ulong length) => known[target] = Math.Min(known[target], length);
        // The check before a load of `size` bytes at k: none when an earlier one covered it, else
        // for as much as every accepting path from here needs. Returns the length known after it.
        ulong LengthCheck(int pc, ulong end)
        {
            if (known[pc] >= end) return known[pc];
            ulong check = need[pc] != Unreachable && need[pc] <= int.MaxValue ? Math.Max(need[pc], end) : end;
            E($"jlt r2, {check}, ret0");
            return check;
        }
        bool scratch = program.Any(i => (i.Code & 0x07) is St or Stx || ((i.Code & 0x07) is Ld or Ldx && (i.Code & 0xe0) == Mem));
        if (scratch)
            for (int k = 0; k < ScratchWords / 2; k++) E($"stdw [r10-{8 * (k + 1)}], 0");

        // r3 = the address of `size` bytes at offset r3 (already there) of the packet, or end with 0.
        void CheckedAddress(int size)
        {
            E("mov r4, r3");
            E($"add r4, {size}");
            E("jgt r4, r2, ret0");
            E("add r3, r1");
        }
        void LoadConstant(string reg, uint k)
        {
            E($"mov32 {reg}, {Hex(k)}"); // zero-extends: offsets are unsigned
        }
        void Fetch(string dst, int size)
        {
            string op = size switch { 1 => "ldxb", 2 => "ldxh", _ => "ldxw" };
            E($"{op} {dst}, [r3+0]");
            if (size == 2) E($"be16 {dst}");
            if (size == 4) E($"be32 {dst}");
        }
        static int SizeOf(int code) => (code & 0x18) switch { H => 2, B => 1, _ => 4 };
        string Target(int pc) => $"c{pc}";

        for (int pc = 0; pc < program.Count; pc++)
        {
            var i = program[pc];
            int code = i.Code;
            E($"{Target(pc)}:");
            ulong after = known[pc]; // the length known after this instruction, when it goes on
            switch (code & 0x07)
            {
                case Ld:
                    switch (code & 0xe0)
                    {
                        case Imm: E($"mov32 r0, {Hex(i.K)}"); break;
                        case Len: E("mov32 r0, r2"); break;
                        case Mem: E($"ldxw r0, [r10-{64 - 4 * (int)i.K}]"); break;
                        case Abs when i.K + (uint)SizeOf(code) <= short.MaxValue:
                        {
                            // The usual header field: one compare with the length, a load at a constant offset.
                            int size = SizeOf(code);
                            after = LengthCheck(pc, i.K + (ulong)size);
                            E($"{(size == 1 ? "ldxb" : size == 2 ? "ldxh" : "ldxw")} r0, [r1+{i.K}]");
                            if (size == 2) E("be16 r0");
                            if (size == 4) E("be32 r0");
                            break;
                        }
                        case Abs:
                            LoadConstant("r3", i.K);
                            CheckedAddress(SizeOf(code));
                            Fetch("r0", SizeOf(code));
                            after = Math.Max(after, i.K + (ulong)SizeOf(code));
                            break;
                        case Ind:
                            // X + k in 64 bits: no wrap, as bpf_filter refuses a sum past the packet.
                            LoadConstant("r3", i.K);
                            E("mov32 r4, r5");
                            E("add r3, r4");
                            CheckedAddress(SizeOf(code));
                            Fetch("r0", SizeOf(code));
                            after = Math.Max(after, i.K + (ulong)SizeOf(code));
                            break;
                    }
                    break;
                case Ldx:
                    switch (code & 0xe0)
                    {
                        case Imm: E($"mov32 r5, {Hex(i.K)}"); break;
                        case Len: E("mov32 r5, r2"); break;
                        case Mem: E($"ldxw r5, [r10-{64 - 4 * (int)i.K}]"); break;
                        case Msh when i.K + 1u <= short.MaxValue:
                            // A constant offset, as for absolute loads: one compare with the length.
                            after = LengthCheck(pc, i.K + 1UL);
                            E($"ldxb r5, [r1+{i.K}]");
                            E("and32 r5, 0xf");
                            E("lsh32 r5, 2");
                            break;
                        case Msh:
                            LoadConstant("r3", i.K);
                            CheckedAddress(1);
                            Fetch("r5", 1);
                            E("and32 r5, 0xf");
                            E("lsh32 r5, 2");
                            after = Math.Max(after, i.K + 1UL);
                            break;
                    }
                    break;
                case St: E($"stxw [r10-{64 - 4 * (int)i.K}], r0"); break;
                case Stx: E($"stxw [r10-{64 - 4 * (int)i.K}], r5"); break;
                case Alu:
                {
                    int op = code & 0xf0;
                    bool fromX = (code & 0x08) != 0;
                    if (op == Neg) { E("neg32 r0"); break; }
                    string name = op switch
                    {
                        Add => "add32", Sub => "sub32", Mul => "mul32", Div => "div32", Or => "or32", And => "and32",
                        Lsh => "lsh32", Rsh => "rsh32", Mod => "mod32", _ => "xor32",
                    };
                    if (fromX && op is Div or Mod) E("jeq32 r5, 0, ret0"); // bpf_filter: by zero, the program returns 0
                    if (fromX && op is Lsh or Rsh)
                    {
                        // bpf_filter: a shift by 32 or more gives 0 (eBPF would take the count modulo 32).
                        E($"jge32 r5, 32, z{pc}");
                        E($"{name} r0, r5");
                        E($"ja {Target(pc + 1)}");
                        E($"z{pc}:");
                        E("mov32 r0, 0");
                        break;
                    }
                    E(fromX ? $"{name} r0, r5" : $"{name} r0, {Hex(i.K)}");
                    break;
                }
                case Jmp:
                {
                    int op = code & 0xf0;
                    if (op == Ja)
                    {
                        Reaches(pc + 1 + (int)i.K, after);
                        E($"ja {Target(pc + 1 + (int)i.K)}");
                        break;
                    }
                    Reaches(pc + 1 + i.Jt, after);
                    Reaches(pc + 1 + i.Jf, after);
                    string t = Target(pc + 1 + i.Jt), f = Target(pc + 1 + i.Jf);
                    if (i.Jt == i.Jf)
                    {
                        if (i.Jt != 0) E($"ja {t}");
                        break;
                    }
                    string name = op switch { Jeq => "jeq32", Jgt => "jgt32", Jge => "jge32", _ => "jset32" };
                    string rhs = (code & 0x08) != 0 ? "r5" : Hex(i.K);
                    E($"{name} r0, {rhs}, {t}");
                    if (i.Jf != 0) E($"ja {f}");
                    break;
                }
                case Ret:
                    // A's upper half is always zero: every write of w0 zero-extends.
                    if ((code & 0x18) != A) E($"mov32 r0, {Hex(i.K)}");
                    E("exit");
                    break;
                case Misc:
                    E((code & 0xf8) == Tax ? "mov32 r5, r0" : "mov32 r0, r5");
                    break;
            }
            if ((code & 0x07) is not (Jmp or Ret) && pc + 1 < program.Count) Reaches(pc + 1, after);
        }
        E("ret0:");
        E("mov32 r0, 0");
        E("exit");
        return sb.ToString();
    }

    /// <summary>The length of no path to an accepting return (<see cref="NeededLength"/>).</summary>
    private const ulong Unreachable = ulong.MaxValue;

    /// <summary>
    /// For each instruction, a packet length that every path from it to a return of something
    /// other than 0 needs: the path passes a load whose bytes end there, and a load past the end
    /// drops. A shorter packet therefore gets 0 from that instruction on, whichever way it goes
    /// (classic programs have no side effects, and a division by 0 also drops), so one check of
    /// this length can stand for all the checks after it. <see cref="Unreachable"/> where no path
    /// returns anything but 0; 0 where one needs no load.
    /// </summary>
    private static ulong[] NeededLength(IReadOnlyList<CbpfInstruction> program)
    {
        var need = new ulong[program.Count];
        for (int pc = program.Count - 1; pc >= 0; pc--) // jumps go forward only
        {
            var i = program[pc];
            int code = i.Code;
            ulong next = pc + 1 < program.Count ? need[pc + 1] : Unreachable;
            switch (code & 0x07)
            {
                case Ret:
                    need[pc] = (code & 0x18) == A || i.K != 0 ? 0 : Unreachable;
                    break;
                case Jmp:
                    need[pc] = (code & 0xf0) == Ja
                        ? need[pc + 1 + (int)i.K]
                        : Math.Min(need[pc + 1 + i.Jt], need[pc + 1 + i.Jf]);
                    break;
                case Ld when (code & 0xe0) is Abs or Ind:
                    // An indirect load at X + k needs at least k + size bytes.
                    need[pc] = Math.Max(next, i.K + (ulong)((code & 0x18) switch { H => 2, B => 1, _ => 4 }));
                    break;
                case Ldx when (code & 0xe0) == Msh:
                    need[pc] = Math.Max(next, i.K + 1UL);
                    break;
                default:
                    need[pc] = next;
                    break;
            }
        }
        return need;
    }

    /// <summary>Whether some path reads A, and X, before writing it: only then does the
    /// translation set it to 0 first.</summary>
    private static (bool A, bool X) ReadBeforeWritten(IReadOnlyList<CbpfInstruction> program)
    {
        // Backward liveness over forward jumps: bit 0 A, bit 1 X live before each instruction.
        var live = new int[program.Count];
        for (int pc = program.Count - 1; pc >= 0; pc--)
        {
            var i = program[pc];
            int code = i.Code;
            int next = pc + 1 < program.Count ? live[pc + 1] : 0;
            bool fromX = (code & 0x08) != 0;
            live[pc] = (code & 0x07) switch
            {
                Ld when (code & 0xe0) == Ind => (next & ~1) | 2,
                Ld => next & ~1,
                Ldx => next & ~2,
                St => next | 1,
                Stx => next | 2,
                Alu => next | 1 | (fromX && (code & 0xf0) != Neg ? 2 : 0),
                Jmp when (code & 0xf0) == Ja => live[pc + 1 + (int)i.K],
                Jmp => live[pc + 1 + i.Jt] | live[pc + 1 + i.Jf] | (i.Jt == i.Jf ? 0 : 1 | (fromX ? 2 : 0)),
                Ret => (code & 0x18) == A ? 1 : 0,
                _ => (code & 0xf8) == Tax ? (next & ~2) | 1 : (next & ~1) | 2,
            };
        }
        return ((live[0] & 1) != 0, (live[0] & 2) != 0);
    }
}
