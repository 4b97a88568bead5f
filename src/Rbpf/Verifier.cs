namespace Rbpf;

/// <summary>The rule of the default verifier a refused program broke (<see cref="RbpfException.Check"/>).</summary>
public enum VerifierCheck
{
    /// <summary>Not a verifier error.</summary>
    None = 0,
    /// <summary>The program is empty or its length is not a multiple of 8 bytes.</summary>
    Length,
    /// <summary>More slots than <see cref="Isa.MaxInstructions"/>.</summary>
    TooManyInstructions,
    /// <summary>An opcode (or a variant of one) that does not exist.</summary>
    UnknownOpcode,
    /// <summary>A destination register above r10.</summary>
    InvalidDestinationRegister,
    /// <summary>A source register above r10.</summary>
    InvalidSourceRegister,
    /// <summary>An instruction that writes r10.</summary>
    ReadOnlyFramePointer,
    /// <summary>An lddw without its second slot.</summary>
    IncompleteLddw,
    /// <summary>An lddw whose second slot has a non-zero opcode, register or offset.</summary>
    MalformedLddw,
    /// <summary>An lddw with a source (a pseudo load) only an ELF loader can resolve.</summary>
    LddwSource,
    /// <summary>A byte swap of a width other than 16, 32 or 64.</summary>
    ByteSwapWidth,
    /// <summary>A division or modulo whose offset is neither 0 (unsigned) nor 1 (signed).</summary>
    DivisionOffset,
    /// <summary>A move whose offset is not a sign-extension width it supports.</summary>
    SignExtensionWidth,
    /// <summary>An atomic operation that does not exist.</summary>
    AtomicOperation,
    /// <summary>A call whose source field names no kind of call.</summary>
    CallKind,
    /// <summary>A jump to a slot outside the program.</summary>
    JumpOutOfBounds,
    /// <summary>A jump into the second slot of an lddw.</summary>
    JumpIntoLddw,
    /// <summary>A local call to a slot outside the program, or into the second slot of an lddw.</summary>
    LocalCallOutOfBounds,
    /// <summary>A field the instruction does not use (RFC 9669 says it must be 0) is not 0: the offset.</summary>
    UnusedOffset,
    /// <summary>The same, for the immediate.</summary>
    UnusedImmediate,
    /// <summary>The same, for the source register.</summary>
    UnusedSource,
    /// <summary>The same, for the destination register.</summary>
    UnusedDestination,
    /// <summary>A loop with no way out: a jump to itself, or a cycle of straight-line code and unconditional jumps.</summary>
    InfiniteLoop,
    /// <summary>The last instruction is neither exit nor an unconditional jump.</summary>
    FallsOffEnd,
    /// <summary>A function (the code before a local call's target) whose last instruction is neither exit nor an unconditional jump.</summary>
    FunctionFallsThrough,
    /// <summary>A jump from one function (see <see cref="FunctionFallsThrough"/>) into another.</summary>
    JumpBetweenFunctions,
    /// <summary>A kernel program's access to its context that the kernel's verifier refuses (a field
    /// the type does not have, a narrow read of a pointer field, a write to a read-only field).</summary>
    ContextAccess,
}

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
/// width other than 16, 32 or 64, fields an instruction does not use that are not zero (RFC 9669),
/// jumps to themselves and cycles of straight-line code and unconditional jumps (loops with no way
/// out), and code that can run past its end: a last instruction, or a last instruction before a
/// local call's target, that is neither <c>exit</c> nor an unconditional jump. The code from one
/// local call target to the next is a function: jumps stay inside it (except a first instruction that
/// is an unconditional jump: the way into an entry function that is not first). Division and modulo by an
/// immediate zero are accepted, because RFC 9669 defines their result (0, and the dividend kept).
/// Every refusal carries its rule in <see cref="RbpfException.Check"/>.
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
            throw Reject(VerifierCheck.Length, "program is empty", -1);
        if (program.Length % Isa.InstructionSize != 0)
            throw Reject(VerifierCheck.Length, $"program length {program.Length} is not a multiple of {Isa.InstructionSize} bytes", -1);
        int count = program.Length / Isa.InstructionSize;
        if (count > Isa.MaxInstructions)
            throw Reject(VerifierCheck.TooManyInstructions, $"program has {count} instructions, more than the limit of {Isa.MaxInstructions}", -1);
        var insns = Instruction.ReadAll(program);
        var tails = LddwTails(insns);
        for (int pc = 0; pc < insns.Length; pc++)
        {
            if (Check(insns, tails, pc) is { } problem) throw Reject(problem.Check, problem.Message, pc);
            if (!tails[pc] && UnusedField(insns[pc]) is { } unused) throw Reject(unused.Check, unused.Message, pc);
        }
        CheckFunctions(insns, tails);
        CheckLoops(insns, tails);
    }

    private static RbpfException Reject(VerifierCheck check, string message, int pc) =>
        new(RbpfErrorCode.InvalidProgram, pc >= 0 ? $"insn #{pc}: {message}" : message, pc) { Check = check };

    /// <summary>A broken rule and its message.</summary>
    internal readonly record struct Problem(VerifierCheck Check, string Message);

    /// <summary>
    /// Functions are the stretches from one local call target (or slot 0) to the next: none may run
    /// past its end, and jumps stay inside their function.
    /// </summary>
    private static void CheckFunctions(Instruction[] insns, bool[] tails)
    {
        var starts = new SortedSet<int> { 0 };
        for (int pc = 0; pc < insns.Length; pc++)
            if (!tails[pc] && insns[pc].Opcode == Isa.Call && insns[pc].Src == Isa.PseudoCallLocal)
                starts.Add(pc + 1 + insns[pc].Imm);
        // A program may begin with an unconditional jump to its entry function (the ELF loader writes
        // one when the entry is not the first function): that jump may go anywhere.
        bool entryJump = insns[0].Opcode is Isa.Ja or Isa.Ja32;
        var bounds = starts.ToArray();
        for (int f = 0; f < bounds.Length; f++)
        {
            int start = bounds[f], end = f + 1 < bounds.Length ? bounds[f + 1] : insns.Length;
            for (int pc = start; pc < end; pc++)
            {
                if (tails[pc] || !IsJump(insns[pc].Opcode) || (pc == 0 && entryJump)) continue;
                long target = JumpTarget(insns[pc], pc);
                if (target < start || target >= end)
                    throw Reject(VerifierCheck.JumpBetweenFunctions,
                        $"jump to slot {target}, outside its function (slots {start}..{end - 1}: local call targets start functions)", pc);
            }
            int last = tails[end - 1] ? end - 2 : end - 1;
            byte op = insns[last].Opcode;
            if (tails[end - 1] || (op != Isa.Exit && op != Isa.Ja && op != Isa.Ja32))
            {
                if (end == insns.Length && tails[end - 1])
                    throw Reject(VerifierCheck.FallsOffEnd, "program ends with lddw: execution would fall off the end", last);
                if (end == insns.Length)
                    throw Reject(VerifierCheck.FallsOffEnd,
                        "last instruction is neither exit nor an unconditional jump: execution would fall off the end", last);
                throw Reject(VerifierCheck.FunctionFallsThrough,
                    $"the function at slots {start}..{end - 1} would run into the next (at the local call target {end}): it must end with exit or an unconditional jump", last);
            }
        }
    }

    /// <summary>
    /// Refuses loops with no way out: a jump to itself (conditional or not: nothing in between can
    /// change what it tests), and cycles made only of straight-line instructions and unconditional
    /// jumps. A cycle with a conditional jump, a call or an exit may end, so it is left to the
    /// instruction limit.
    /// </summary>
    private static void CheckLoops(Instruction[] insns, bool[] tails)
    {
        int n = insns.Length;
        var next = new int[n];
        for (int pc = 0; pc < n; pc++)
        {
            next[pc] = -1;
            if (tails[pc]) continue;
            var i = insns[pc];
            byte op = i.Opcode;
            if (IsJump(op) && JumpTarget(i, pc) == pc)
                throw Reject(VerifierCheck.InfiniteLoop, "infinite loop: the instruction jumps to itself", pc);
            switch (Isa.ClassOf(op))
            {
                case Isa.ClassAlu: case Isa.ClassAlu64: case Isa.ClassLdx: case Isa.ClassSt: case Isa.ClassStx:
                    next[pc] = pc + 1;
                    break;
                case Isa.ClassLd:
                    if (op == Isa.Lddw) next[pc] = pc + 2;
                    break;
                case Isa.ClassJmp: case Isa.ClassJmp32:
                    if (op == Isa.Ja || op == Isa.Ja32) next[pc] = (int)JumpTarget(i, pc);
                    break;
            }
            if (next[pc] >= n) next[pc] = -1;
        }
        // Each slot has at most one forced successor: walk the chains, marking the walk in progress.
        var state = new byte[n]; // 0 unseen, 1 on the current walk, 2 done
        for (int s = 0; s < n; s++)
        {
            int pc = s;
            while (pc >= 0 && state[pc] == 0)
            {
                state[pc] = 1;
                pc = next[pc];
            }
            if (pc >= 0 && state[pc] == 1)
            {
                // A cycle through pc: report its backward jump.
                int at = pc;
                for (int k = next[pc]; ; k = next[k])
                {
                    if (next[k] <= k) { at = k; break; }
                    if (k == pc) break;
                }
                throw Reject(VerifierCheck.InfiniteLoop,
                    $"infinite loop: the jump back to slot {next[at]} closes a cycle with no conditional jump, call or exit", at);
            }
            for (pc = s; pc >= 0 && state[pc] == 1; pc = next[pc]) state[pc] = 2;
        }
    }

    private static bool IsJump(byte op) =>
        (Isa.ClassOf(op) == Isa.ClassJmp || Isa.ClassOf(op) == Isa.ClassJmp32) &&
        (op & 0xf0) != Isa.OpCall && (op & 0xf0) != Isa.OpExit;

    private static long JumpTarget(Instruction i, int pc) => pc + 1L + (i.Opcode == Isa.Ja32 ? i.Imm : i.Offset);

    /// <summary>
    /// A field the instruction does not use that is not zero (RFC 9669 requires zero), or null.
    /// The legacy packet loads (<c>ldabs</c>, <c>ldind</c>) keep rbpf's looser encoding.
    /// </summary>
    internal static Problem? UnusedField(Instruction i)
    {
        byte op = i.Opcode;
        bool reg = (op & Isa.SourceX) != 0;
        switch (Isa.ClassOf(op))
        {
            case Isa.ClassAlu:
            case Isa.ClassAlu64:
                switch (op & 0xf0)
                {
                    case Isa.OpEnd: return Zero(i, VerifierCheck.UnusedSource, "src", i.Src) ?? Zero(i, VerifierCheck.UnusedOffset, "offset", i.Offset);
                    case Isa.OpNeg:
                        return Zero(i, VerifierCheck.UnusedSource, "src", i.Src) ?? Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm)
                            ?? Zero(i, VerifierCheck.UnusedOffset, "offset", i.Offset);
                    default: return reg ? Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm) : Zero(i, VerifierCheck.UnusedSource, "src", i.Src);
                }
            case Isa.ClassLdx:
                return Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm);
            case Isa.ClassSt:
                return Zero(i, VerifierCheck.UnusedSource, "src", i.Src);
            case Isa.ClassStx:
                return (op & 0xe0) == Isa.ModeMem ? Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm) : null;
            case Isa.ClassLd:
                return op == Isa.Lddw ? Zero(i, VerifierCheck.UnusedOffset, "offset", i.Offset) : null;
            case Isa.ClassJmp:
            case Isa.ClassJmp32:
                if (op == Isa.Ja)
                    return Zero(i, VerifierCheck.UnusedDestination, "dst", i.Dst) ?? Zero(i, VerifierCheck.UnusedSource, "src", i.Src) ?? Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm);
                if (op == Isa.Ja32)
                    return Zero(i, VerifierCheck.UnusedDestination, "dst", i.Dst) ?? Zero(i, VerifierCheck.UnusedSource, "src", i.Src) ?? Zero(i, VerifierCheck.UnusedOffset, "offset", i.Offset);
                if (op == Isa.Call)
                    return Zero(i, VerifierCheck.UnusedDestination, "dst", i.Dst) ?? Zero(i, VerifierCheck.UnusedOffset, "offset", i.Offset);
                if (op == Isa.CallX)
                    return Zero(i, VerifierCheck.UnusedSource, "src", i.Src) ?? Zero(i, VerifierCheck.UnusedOffset, "offset", i.Offset) ?? Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm);
                if (op == Isa.Exit)
                    return Zero(i, VerifierCheck.UnusedDestination, "dst", i.Dst) ?? Zero(i, VerifierCheck.UnusedSource, "src", i.Src)
                        ?? Zero(i, VerifierCheck.UnusedOffset, "offset", i.Offset) ?? Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm);
                return reg ? Zero(i, VerifierCheck.UnusedImmediate, "imm", i.Imm) : Zero(i, VerifierCheck.UnusedSource, "src", i.Src);
        }
        return null;
    }

    private static Problem? Zero(Instruction i, VerifierCheck check, string field, int value) =>
        value == 0 ? null : new Problem(check, $"the {field} field is not used by opcode 0x{i.Opcode:x2} and must be 0 (it is {value})");

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
    internal static string? CheckInstruction(ReadOnlySpan<Instruction> insns, bool[] tails, int pc) => Check(insns, tails, pc)?.Message;

    /// <summary>As <see cref="CheckInstruction"/>, with the rule broken.</summary>
    internal static Problem? Check(ReadOnlySpan<Instruction> insns, bool[] tails, int pc)
    {
        var insn = insns[pc];
        byte op = insn.Opcode;
        if (tails[pc])
            return null; // validated together with its lddw
        if (insn.Dst > 10) return new Problem(VerifierCheck.InvalidDestinationRegister, $"invalid destination register r{insn.Dst}");
        if (insn.Src > 10) return new Problem(VerifierCheck.InvalidSourceRegister, $"invalid source register r{insn.Src}");
        switch (Isa.ClassOf(op))
        {
            case Isa.ClassAlu:
            case Isa.ClassAlu64:
                return CheckAlu(insn);
            case Isa.ClassLdx:
                if ((op & 0xe0) == Isa.ModeMem || ((op & 0xe0) == Isa.ModeMemSx && (op & 0x18) != Isa.SizeDW))
                    return insn.Dst == Isa.FramePointer ? ReadOnlyR10 : null;
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
                        _ => new Problem(VerifierCheck.AtomicOperation, $"unknown atomic operation 0x{insn.Imm:x}"),
                    };
                }
                return UnknownOpcode(op);
            case Isa.ClassLd:
                if (op == Isa.Lddw)
                {
                    if (pc + 1 >= insns.Length) return new Problem(VerifierCheck.IncompleteLddw, "incomplete lddw: its second slot is missing");
                    var next = insns[pc + 1];
                    if (next.Opcode != 0)
                        return new Problem(VerifierCheck.IncompleteLddw, $"incomplete lddw: the next slot holds opcode 0x{next.Opcode:x2}, not its second half (opcode 0)");
                    if (next.Dst != 0 || next.Src != 0 || next.Offset != 0)
                        return new Problem(VerifierCheck.MalformedLddw, "malformed lddw: the second slot must have opcode, registers and offset 0");
                    if (insn.Src == Isa.PseudoMapFd && next.Imm != 0)
                        return new Problem(VerifierCheck.LddwSource, "a map fd load (lddw source 1) has 0 in its second slot's immediate");
                    if (insn.Src != 0 && insn.Src != Isa.PseudoMapFd)
                        return new Problem(VerifierCheck.LddwSource, $"unsupported lddw source {insn.Src} (0: a constant, 1: a map fd)");
                    if (insn.Dst == Isa.FramePointer) return ReadOnlyR10;
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

    private static Problem UnknownOpcode(byte op) => new(VerifierCheck.UnknownOpcode, $"unknown opcode 0x{op:x2}");

    private static readonly Problem ReadOnlyR10 = new(VerifierCheck.ReadOnlyFramePointer, "r10 is read-only");

    private static Problem? CheckAlu(Instruction insn)
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
                    return new Problem(VerifierCheck.ByteSwapWidth, $"invalid byte swap width {insn.Imm} (16, 32 or 64)");
                break;
            case Isa.OpNeg:
                if (reg) return UnknownOpcode(op);
                break;
            case Isa.OpDiv:
            case Isa.OpMod:
                if (insn.Offset != 0 && insn.Offset != 1)
                    return new Problem(VerifierCheck.DivisionOffset, $"invalid offset {insn.Offset} for division (0 unsigned, 1 signed)");
                break;
            case Isa.OpMov:
                if (insn.Offset != 0)
                {
                    bool ok = reg && (insn.Offset == 8 || insn.Offset == 16 || (is64 && insn.Offset == 32));
                    if (!ok) return new Problem(VerifierCheck.SignExtensionWidth, $"invalid sign-extension width {insn.Offset} for {(is64 ? "mov64" : "mov32")}");
                }
                break;
            case 0xe0:
            case 0xf0:
                return UnknownOpcode(op);
            default:
                if (insn.Offset != 0) return new Problem(VerifierCheck.UnusedOffset, $"offset must be 0 for this arithmetic instruction, not {insn.Offset}");
                break;
        }
        return insn.Dst == Isa.FramePointer ? ReadOnlyR10 : null;
    }

    private static Problem? CheckJump(ReadOnlySpan<Instruction> insns, bool[] tails, int pc)
    {
        var insn = insns[pc];
        byte op = insn.Opcode;
        bool is32 = Isa.ClassOf(op) == Isa.ClassJmp32;
        int code = op & 0xf0;
        switch (code)
        {
            case Isa.OpJa:
                if ((op & Isa.SourceX) != 0) return UnknownOpcode(op);
                return CheckTarget(insns, tails, pc, is32 ? (long)insn.Imm : insn.Offset, local: false);
            case Isa.OpCall:
                if (is32) return UnknownOpcode(op);
                if (op == Isa.CallX) return null; // the helper id comes from the dst register
                return insn.Src switch
                {
                    0 => null,
                    Isa.PseudoCallLocal => CheckTarget(insns, tails, pc, insn.Imm, local: true),
                    _ => new Problem(VerifierCheck.CallKind, $"unsupported call kind (src = {insn.Src})"),
                };
            case Isa.OpExit:
                return op == Isa.Exit ? null : UnknownOpcode(op);
            case 0xe0:
            case 0xf0:
                return UnknownOpcode(op);
            default:
                return CheckTarget(insns, tails, pc, insn.Offset, local: false);
        }
    }

    private static Problem? CheckTarget(ReadOnlySpan<Instruction> insns, bool[] tails, int pc, long delta, bool local)
    {
        long target = pc + 1 + delta;
        string what = local ? "local call" : "jump";
        if (target < 0 || target >= insns.Length)
            return new Problem(local ? VerifierCheck.LocalCallOutOfBounds : VerifierCheck.JumpOutOfBounds,
                $"{what} to slot {target}, outside the program (0..{insns.Length - 1})");
        if (tails[target])
            return new Problem(local ? VerifierCheck.LocalCallOutOfBounds : VerifierCheck.JumpIntoLddw,
                $"{what} into the middle of lddw at slot {target - 1}");
        return null;
    }
}
