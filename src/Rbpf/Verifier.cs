namespace Rbpf;

/// <summary>
/// A verifier: inspects program bytes before they are loaded and throws an
/// <see cref="RbpfException"/> (or any exception) to reject them.
/// </summary>
public delegate void ProgramVerifier(ReadOnlySpan<byte> program);

/// <summary>
/// The default verifier. It checks structure, not safety of data flow: safety at run time comes
/// from the checked memory accesses of the engines, so a program it accepts can still fail while
/// running, but never crash the host.
/// </summary>
/// <remarks>
/// Rejected: empty programs, lengths that are not a multiple of 8 or above
/// <see cref="Isa.MaxInstructions"/> slots, unknown opcodes or variants, registers above r10,
/// writes to r10, an <c>lddw</c> without its second slot or with a malformed one, jumps and
/// local calls that leave the program or land in the middle of an <c>lddw</c>, byte swaps of a
/// width other than 16, 32 or 64, and a last instruction that is neither <c>exit</c> nor an
/// unconditional jump. Division and modulo by an immediate zero are accepted, because
/// RFC 9669 defines their result (0, and the dividend kept).
/// </remarks>
public static class Verifier
{
    /// <summary>The default verifier, usable wherever a <see cref="ProgramVerifier"/> is expected.</summary>
    public static readonly ProgramVerifier Default = Verify;

    /// <summary>Checks a program; throws <see cref="RbpfException"/> with code
    /// <see cref="RbpfErrorCode.InvalidProgram"/> and the faulty slot when it is rejected.</summary>
    public static void Verify(ReadOnlySpan<byte> program)
    {
        if (program.Length == 0)
            throw Reject("program is empty", -1);
        if (program.Length % Isa.InstructionSize != 0)
            throw Reject($"program length {program.Length} is not a multiple of {Isa.InstructionSize} bytes", -1);
        int count = program.Length / Isa.InstructionSize;
        if (count > Isa.MaxInstructions)
            throw Reject($"program has {count} instructions, more than the limit of {Isa.MaxInstructions}", -1);
        var insns = Instruction.ReadAll(program);
        var tails = LddwTails(insns);
        for (int pc = 0; pc < insns.Length; pc++)
        {
            string? problem = CheckInstruction(insns, tails, pc);
            if (problem != null) throw Reject(problem, pc);
        }
        int last = insns.Length - 1;
        var end = insns[last];
        if (tails[last])
            throw Reject("program ends with lddw: execution would fall off the end", last - 1);
        if (end.Opcode != Isa.Exit && end.Opcode != Isa.Ja && end.Opcode != Isa.Ja32)
            throw Reject("last instruction is neither exit nor an unconditional jump: execution would fall off the end", last);
    }

    private static RbpfException Reject(string message, int pc) =>
        new(RbpfErrorCode.InvalidProgram, pc >= 0 ? $"insn #{pc}: {message}" : message, pc);

    /// <summary>Marks the second slot of every <c>lddw</c>, found by walking the program from its start.</summary>
    internal static bool[] LddwTails(ReadOnlySpan<Instruction> insns)
    {
        var tails = new bool[insns.Length];
        for (int pc = 0; pc < insns.Length; pc++)
        {
            if (insns[pc].Opcode == Isa.Lddw && pc + 1 < insns.Length)
                tails[++pc] = true;
        }
        return tails;
    }

    /// <summary>
    /// Why the instruction at <paramref name="pc"/> can never execute correctly, or null when it is
    /// well formed. Shared by the verifier and the decoder, which turns such slots into run-time
    /// errors so that a program loaded without verification still cannot crash the host.
    /// </summary>
    internal static string? CheckInstruction(ReadOnlySpan<Instruction> insns, bool[] tails, int pc)
    {
        var insn = insns[pc];
        byte op = insn.Opcode;
        if (tails[pc])
            return null; // validated together with its lddw
        if (insn.Dst > 10) return $"invalid destination register r{insn.Dst}";
        if (insn.Src > 10) return $"invalid source register r{insn.Src}";
        switch (Isa.ClassOf(op))
        {
            case Isa.ClassAlu:
            case Isa.ClassAlu64:
                return CheckAlu(insn);
            case Isa.ClassLdx:
                if ((op & 0xe0) == Isa.ModeMem || ((op & 0xe0) == Isa.ModeMemSx && (op & 0x18) != Isa.SizeDW))
                    return insn.Dst == Isa.FramePointer ? "r10 is read-only" : null;
                return UnknownOpcode(op);
            case Isa.ClassSt:
                return (op & 0xe0) == Isa.ModeMem ? null : UnknownOpcode(op);
            case Isa.ClassStx:
                if ((op & 0xe0) == Isa.ModeMem) return null;
                if ((op & 0xe0) == Isa.ModeAtomic && ((op & 0x18) == Isa.SizeW || (op & 0x18) == Isa.SizeDW))
                {
                    return insn.Imm switch
                    {
                        Isa.AtomicAdd or Isa.AtomicOr or Isa.AtomicAnd or Isa.AtomicXor => null,
                        Isa.AtomicAdd | Isa.AtomicFetch or Isa.AtomicOr | Isa.AtomicFetch
                            or Isa.AtomicAnd | Isa.AtomicFetch or Isa.AtomicXor | Isa.AtomicFetch
                            or Isa.AtomicXchg or Isa.AtomicCmpXchg => null,
                        _ => $"unknown atomic operation 0x{insn.Imm:x}",
                    };
                }
                return UnknownOpcode(op);
            case Isa.ClassLd:
                if (op == Isa.Lddw)
                {
                    if (pc + 1 >= insns.Length) return "incomplete lddw: its second slot is missing";
                    var next = insns[pc + 1];
                    if (next.Opcode != 0 || next.Dst != 0 || next.Src != 0 || next.Offset != 0)
                        return "malformed lddw: the second slot must have opcode, registers and offset 0";
                    if (insn.Src != 0) return $"unsupported lddw source {insn.Src} (map and BTF pseudo loads need an ELF loader)";
                    if (insn.Dst == Isa.FramePointer) return "r10 is read-only";
                    return null;
                }
                if ((op & 0xe0) == Isa.ModeAbs || (op & 0xe0) == Isa.ModeInd)
                    return null; // legacy packet loads: r0 = packet[imm (+ src)]
                return UnknownOpcode(op);
            case Isa.ClassJmp:
            case Isa.ClassJmp32:
                return CheckJump(insns, tails, pc);
        }
        return UnknownOpcode(op);
    }

    private static string UnknownOpcode(byte op) => $"unknown opcode 0x{op:x2}";

    private static string? CheckAlu(Instruction insn)
    {
        byte op = insn.Opcode;
        bool is64 = Isa.ClassOf(op) == Isa.ClassAlu64;
        bool reg = (op & Isa.SourceX) != 0;
        int code = op & 0xf0;
        switch (code)
        {
            case Isa.OpEnd:
                if (is64 && reg) return UnknownOpcode(op);
                if (insn.Imm != 16 && insn.Imm != 32 && insn.Imm != 64)
                    return $"invalid byte swap width {insn.Imm} (16, 32 or 64)";
                break;
            case Isa.OpNeg:
                if (reg) return UnknownOpcode(op);
                break;
            case Isa.OpDiv:
            case Isa.OpMod:
                if (insn.Offset != 0 && insn.Offset != 1)
                    return $"invalid offset {insn.Offset} for division (0 unsigned, 1 signed)";
                break;
            case Isa.OpMov:
                if (insn.Offset != 0)
                {
                    bool ok = reg && (insn.Offset == 8 || insn.Offset == 16 || (is64 && insn.Offset == 32));
                    if (!ok) return $"invalid sign-extension width {insn.Offset} for {(is64 ? "mov64" : "mov32")}";
                }
                break;
            case 0xe0:
            case 0xf0:
                return UnknownOpcode(op);
            default:
                if (insn.Offset != 0) return $"offset must be 0 for this arithmetic instruction, not {insn.Offset}";
                break;
        }
        return insn.Dst == Isa.FramePointer ? "r10 is read-only" : null;
    }

    private static string? CheckJump(ReadOnlySpan<Instruction> insns, bool[] tails, int pc)
    {
        var insn = insns[pc];
        byte op = insn.Opcode;
        bool is32 = Isa.ClassOf(op) == Isa.ClassJmp32;
        int code = op & 0xf0;
        switch (code)
        {
            case Isa.OpJa:
                if ((op & Isa.SourceX) != 0) return UnknownOpcode(op);
                return CheckTarget(insns, tails, pc, is32 ? (long)insn.Imm : insn.Offset, "jump");
            case Isa.OpCall:
                if (is32) return UnknownOpcode(op);
                if (op == Isa.CallX) return null; // the helper id comes from the dst register
                return insn.Src switch
                {
                    0 => null,
                    Isa.PseudoCallLocal => CheckTarget(insns, tails, pc, insn.Imm, "local call"),
                    _ => $"unsupported call kind (src = {insn.Src})",
                };
            case Isa.OpExit:
                return op == Isa.Exit ? null : UnknownOpcode(op);
            case 0xe0:
            case 0xf0:
                return UnknownOpcode(op);
            default:
                return CheckTarget(insns, tails, pc, insn.Offset, "jump");
        }
    }

    private static string? CheckTarget(ReadOnlySpan<Instruction> insns, bool[] tails, int pc, long delta, string what)
    {
        long target = pc + 1 + delta;
        if (target < 0 || target >= insns.Length)
            return $"{what} to slot {target}, outside the program (0..{insns.Length - 1})";
        if (tails[target])
            return $"{what} into the middle of lddw at slot {target - 1}";
        return null;
    }
}
