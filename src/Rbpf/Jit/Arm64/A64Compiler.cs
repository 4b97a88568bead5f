using static Rbpf.Jit.Arm64.A64Assembler;

namespace Rbpf.Jit.Arm64;

/// <summary>
/// Compiles a decoded program to AArch64 machine code, with the x86-64 backend's contract: the same
/// entries and <see cref="JitContext"/>, memory checks on by default with the interpreter's errors,
/// the instruction limit charged per block, interrupts polled at loop heads, constant blinding,
/// helpers and local calls. It runs on any host (the tests compile here and check every encoding
/// with GNU as); the code runs on AArch64 Linux.
/// eBPF registers: r0 x7, r1-r5 x0-x4 (the first helper arguments as they are), r6-r9 x19-x22,
/// r10 x23; x24 holds the context, x25 the packet's start, x26 the VM's interrupt word and x27 its
/// value as the run began, x28 the instructions left; x9-x12,
/// x16 and x17 are scratch (x16 carries the address of a checked access). x29 keeps the entry's
/// frame, and x30 is free inside the body: local calls push their return address themselves.
/// </summary>
internal sealed class A64Compiler
{
    private static readonly int[] R = { 7, 0, 1, 2, 3, 4, 19, 20, 21, 22, 23 };
    private const int Ctx = 24, PacketStart = 25, InterruptWord = 26, Epoch = 27, Budget = 28, Fp = 23;
    private const int T0 = 9, T1 = 10, T2 = 11, T3 = 12, Ip0 = 16, Ip1 = 17;

    private readonly DecodedProgram _program;
    private readonly HelperTable _helpers;
    private readonly JitOptions _options;
    private readonly long _unwindHelper;
    private readonly bool _countInstructions;
    private readonly JitTarget _target;
    private readonly bool _far;
    /// <summary>The blinding keys' generator, seeded for the listing to repeat them; made on the first blinded constant.</summary>
    private Random BlindKeys => _blindKeys ??= new Random(_blindSeed);
    private Random? _blindKeys;
    private readonly int _blindSeed;
    private readonly A64Assembler _a;
    private readonly A64Label[] _pcLabels;
    /// <summary>
    /// What out-of-line code emits, in order after the body: data, not closures (most programs
    /// have many pieces: a failure per call site, an out-of-line path per checked access).
    /// </summary>
    private enum ColdKind : byte
    {
        /// <summary><see cref="Fail"/> at slot A with status B.</summary>
        Fail,
        /// <summary><see cref="FailArgument"/> of A.</summary>
        FailArgument,
        /// <summary>A checked access's way out of line: slot A in FaultPc, bl to the shared check To, back to Back.</summary>
        Access,
        /// <summary>A helper's failure seen in the status after it returned (slot A).</summary>
        StatusCheck,
        /// <summary>A native helper that reported a failure (slot A, helper slot B), then on to To.</summary>
        HelperReported,
        /// <summary>A frame partly below the stack's bottom, zeroed byte by byte, then on to To.</summary>
        ZeroBytewise,
        /// <summary>A legacy packet load outside the packet: an out-of-bounds fault at slot A of B bytes.</summary>
        PacketFault,
        /// <summary>A legacy packet load outside the packet as the kernel runs it: the program ends with 0.</summary>
        PacketEndsRun,
        /// <summary>The shared check of accesses of A bytes with flags B (<see cref="EmitSlowCheck"/>).</summary>
        SlowCheck,
    }

    private readonly record struct ColdCode(A64Label Label, ColdKind Kind, int A = 0, int B = 0, A64Label? To = null, A64Label? Back = null);

    private readonly List<ColdCode> _cold;
    /// <summary>The thread's out-of-line queue, kept between compiles as the assembler's buffers are (not when large).</summary>
    [ThreadStatic] private static List<ColdCode>? t_cold;
    /// <summary>The shared out-of-line checks made so far, by size * 4 + flags (made with the first).</summary>
    private A64Label?[]? _slowChecks;
    private readonly A64Label _errorExit, _exitWithResult, _leave, _return, _mainEntry;

    private A64Compiler(DecodedProgram program, HelperTable helpers, JitOptions options, long unwindHelper, bool countInstructions,
        JitTarget target, bool far, int blindSeed, bool listing)
    {
        _program = program;
        _helpers = helpers;
        _options = options;
        _unwindHelper = unwindHelper;
        _countInstructions = countInstructions;
        _target = target;
        _far = far;
        _blindSeed = blindSeed;
        _a = new A64Assembler(listing);
        _cold = t_cold ??= new List<ColdCode>();
        _cold.Clear(); // what a compile that threw on this thread left
        var (words, branches, labels, cold) = Estimate(program.Code);
        if (words >= MinReservedWords)
        {
            _a.Reserve(words, branches, labels);
            _cold.EnsureCapacity(cold);
        }
        (_errorExit, _exitWithResult, _leave, _return, _mainEntry) = (_a.NewLabel(), _a.NewLabel(), _a.NewLabel(), _a.NewLabel(), _a.NewLabel());
        _pcLabels = new A64Label[program.Code.Length];
        for (int i = 0; i < _pcLabels.Length; i++) _pcLabels[i] = _a.NewLabel();
    }

    /// <summary>The code, and the assembler (with the text of each instruction when compiled with a listing: <see cref="A64Assembler.Text"/>).</summary>
    public sealed record Output(byte[] Code, int[] PcOffsets, int MainEntry, A64Assembler Assembler);

    /// <summary>
    /// Compiles; branches are short (b.cond and cbz reach 1 MiB) unless the code is larger, when it
    /// compiles again with every conditional branch to an eBPF target or out-of-line code made far
    /// (an inverted short branch over an unconditional one). <paramref name="blindSeed"/> fixes the
    /// blinding keys, so a listing made later shows the same code.
    /// </summary>
    public static Output Compile(DecodedProgram program, HelperTable helpers, JitOptions options, long unwindHelper,
        bool countInstructions, JitTarget target, int blindSeed, bool listing = false)
    {
        // Code estimated at 4 MiB or more is far from the start: short branches to the out-of-line code
        // after the body could not reach it, so the short attempt would only be thrown away.
        if (Estimate(program.Code).Words < FarWords)
            try
            {
                return new A64Compiler(program, helpers, options, unwindHelper, countInstructions, target, far: false, blindSeed, listing).Run();
            }
            catch (A64BranchRangeException) { }
        return new A64Compiler(program, helpers, options, unwindHelper, countInstructions, target, far: true, blindSeed, listing).Run();
    }

    /// <summary>Instructions from which a program is compiled with far branches at once (4 MiB of code; short ones reach 1 MiB).</summary>
    private const int FarWords = 1 << 20;
    /// <summary>The least estimate for which the assembler's buffers are sized up front (16 MiB of code).</summary>
    private const int MinReservedWords = 4 << 20;

    /// <summary>
    /// About how many instructions, branches, labels and out-of-line entries the code of <paramref name="code"/>
    /// takes (0 below 4,096 slots: small programs need no estimate). Measured: about 2.4 instructions, half a
    /// branch and 1.25 labels per plain slot; 33 instructions, 7 branches and 4 labels per local call (one
    /// more of each with far branches), and an out-of-line failure per call. The estimate leans high for plain code.
    /// </summary>
    private static (int Words, int Branches, int Labels, int Cold) Estimate(DecodedInsn[] code)
    {
        if (code.Length < CodeEstimate.LargeProgram) return (0, 0, 0, 0);
        var (localCalls, helperCalls) = CodeEstimate.Calls(code);
        long n = code.Length;
        return (CodeEstimate.Clamp(3 * n + 36 * localCalls + 16 * helperCalls), CodeEstimate.Clamp(n / 2 + 9 * localCalls + 2 * helperCalls),
            CodeEstimate.Clamp(n + n / 2 + 6 * localCalls + 2 * helperCalls), CodeEstimate.Clamp(localCalls + helperCalls + n / 16));
    }

    /// <summary>Where the code polls for interrupts (<see cref="BoundedLoops.PollsFor(DecodedProgram, VmKind, InputBounds.Facts?)"/>).</summary>
    private bool[] _polls = Array.Empty<bool>();
    /// <summary>Plain accesses of a raw VM's program proven inside the input (<see cref="InputBounds"/>): no check; null when none.</summary>
    private bool[]? _inInput;

    private Output Run()
    {
        var code = _program.Code;
        (_inInput, _polls) = JumpThreading.ProofsAndPolls(_program, _target.Kind); // checked code leaves the proven checks out
        EmitEntry();
        for (int pc = 0; pc < code.Length; pc++)
        {
            if (pc > 0 && code[pc - 1].Op == Op.Lddw)
            {
                ColdFail(_pcLabels[pc], pc, RbpfErrorCode.IllegalInstruction);
                continue;
            }
            _a.Bind(_pcLabels[pc]);
            if (_options.Interruptible && _polls[pc]) EmitPoll(pc);
            if (_countInstructions && code[pc].Charge > 0) EmitBudget(pc, code[pc].Charge);
            EmitInstruction(pc, code[pc]);
        }

        // Exits. An exit can come from inside local calls: sp comes back from x29.
        _a.Bind(_exitWithResult);
        _a.Access(Mem.LdrX, T0, Ctx, JitContext.OffResultPtr);
        _a.Access(Mem.StrX, R[0], T0, 0);
        _a.Mov(false, 0, Zr);
        _a.Bind(_leave);
        _a.MovSp(Sp, A64Assembler.Fp);
        _a.Pair(true, 19, 20, Sp, 16);
        _a.Pair(true, 21, 22, Sp, 32);
        _a.Pair(true, 23, 24, Sp, 48);
        _a.Pair(true, 25, 26, Sp, 64);
        _a.Pair(true, 27, 28, Sp, 80);
        _a.Pair(true, A64Assembler.Fp, Lr, Sp, 96, 'p');
        _a.Ret();
        // A failure (status in w1): the runtime turns the context into the error.
        _a.Bind(_errorExit);
        _a.MovSp(Sp, Ctx);
        _a.Mov(true, 0, Ctx);
        CallAbsolute((long)JitRuntime.FailFn);
        _a.B(_leave);
        // The return of a local call: its address is where the call site pushed it.
        _a.Bind(_return);
        _a.Access(Mem.LdrX, Ip0, Sp, 40);
        _a.Br(Ip0);
        if (_lowerStack is { } lowerStack)
        {
            _a.Bind(lowerStack);
            EmitStackStartUpdate();
            _a.Ret();
        }
        for (int k = 0; k < _cold.Count; k++) EmitCold(_cold[k]); // cold code may queue more cold code

        var bytes = _a.Finish();
        var offsets = new int[code.Length];
        for (int pc = 0; pc < code.Length; pc++)
            offsets[pc] = pc > 0 && code[pc - 1].Op == Op.Lddw ? -1 : _pcLabels[pc].Index * 4;
        if (_cold.Capacity > 1 << 14) t_cold = null; // a thread keeps no large buffers
        return new Output(bytes, offsets, _mainEntry.Index * 4, _a);
    }

    private void ColdFail(A64Label label, int pc, RbpfErrorCode code) => _cold.Add(new ColdCode(label, ColdKind.Fail, pc, (int)code));

    private void ColdFailArgument(A64Label label, int which) => _cold.Add(new ColdCode(label, ColdKind.FailArgument, which));

    private void EmitCold(in ColdCode c)
    {
        _a.Bind(c.Label);
        switch (c.Kind)
        {
            case ColdKind.Fail:
                Fail(c.A, (RbpfErrorCode)c.B);
                break;
            case ColdKind.FailArgument:
                FailArgument(c.A);
                break;
            case ColdKind.Access:
                _a.MovImm(false, T0, c.A);
                CtxStore(T0, JitContext.OffFaultPc, false);
                _a.Bl(c.To!);
                _a.B(c.Back!);
                break;
            case ColdKind.StatusCheck:
                _a.MovImm(false, T0, c.A);
                CtxStore(T0, JitContext.OffFaultPc, false);
                CtxLoad(1, JitContext.OffStatus, false);
                _a.B(_errorExit);
                break;
            case ColdKind.HelperReported:
                SetFaultPcAndSlot(c.A, c.B);
                _a.Pair(false, R[0], Zr, Sp, -16, '!');
                EmitCallWithArguments((long)JitRuntime.TakeHelperFailureFn, withContext: true);
                _a.Pair(true, R[0], T0, Sp, 16, 'p');
                EmitStatusCheck(c.A);
                _a.B(c.To!);
                break;
            case ColdKind.ZeroBytewise:
            {
                var loop = _a.NewLabel();
                _a.Mov(true, Ip0, Fp);
                _a.Bind(loop);
                CtxLoad(Ip1, JitContext.OffStackBottom);
                _a.Cmp(true, Ip0, Ip1);
                BCond(A64Cond.Ls, c.To!);
                _a.SubImm(true, Ip0, Ip0, 1);
                _a.Access(Mem.Strb, Zr, Ip0, 0);
                _a.B(loop);
                break;
            }
            case ColdKind.PacketFault:
                _a.Add(true, Ip1, Ip1, PacketStart);
                CtxStore(Ip1, JitContext.OffFaultAddress);
                _a.MovImm(false, T0, c.B);
                CtxStore(T0, JitContext.OffFaultSize, false);
                _a.MovImm(false, T0, 2);
                CtxStore(T0, JitContext.OffFaultKind, false);
                Fail(c.A, RbpfErrorCode.OutOfBounds);
                break;
            case ColdKind.PacketEndsRun:
                _a.Mov(true, R[0], Zr);
                _a.B(_exitWithResult);
                break;
            case ColdKind.SlowCheck:
                EmitSlowCheck(c.A, c.B);
                break;
        }
    }

    /// <summary>A conditional branch; far code jumps over an unconditional branch instead.</summary>
    private void BCond(A64Cond cond, A64Label target)
    {
        if (!_far) { _a.BCond(cond, target); return; }
        var skip = _a.NewLabel();
        _a.BCond(A64Assembler.Invert(cond), skip);
        _a.B(target);
        _a.Bind(skip);
    }

    private void Cbz(bool is64, int rt, A64Label target, bool nonZero = false)
    {
        if (!_far)
        {
            if (nonZero) _a.Cbnz(is64, rt, target); else _a.Cbz(is64, rt, target);
            return;
        }
        var skip = _a.NewLabel();
        if (nonZero) _a.Cbz(is64, rt, skip); else _a.Cbnz(is64, rt, skip);
        _a.B(target);
        _a.Bind(skip);
    }

    private void Cbnz(bool is64, int rt, A64Label target) => Cbz(is64, rt, target, nonZero: true);

    private void CallAbsolute(long target)
    {
        _a.MovImm(true, T0, target);
        _a.Blr(T0);
    }

    /// <summary>rd = rn + value, with any value (through <see cref="T3"/> when it does not fit an immediate).</summary>
    private void AddConst(int rd, int rn, long value)
    {
        if (value >= 0 && value < 4096) _a.AddImm(true, rd, rn, (int)value);
        else if (value < 0 && value > -4096) _a.SubImm(true, rd, rn, (int)-value);
        else if (value >= 0 && value < 1 << 24 && (value & 0xfff) == 0) _a.AddImm(true, rd, rn, (int)(value >> 12), shift12: true);
        else
        {
            _a.MovImm(true, T3, value);
            _a.Add(true, rd, rn, T3);
        }
    }

    private void CtxLoad(int rt, int offset, bool is64 = true) => _a.Access(is64 ? Mem.LdrX : Mem.LdrW, rt, Ctx, offset);
    private void CtxStore(int rt, int offset, bool is64 = true) => _a.Access(is64 ? Mem.StrX : Mem.StrW, rt, Ctx, offset);

    private void Fail(int pc, RbpfErrorCode code)
    {
        _a.MovImm(false, T0, pc);
        CtxStore(T0, JitContext.OffFaultPc, false);
        _a.MovImm(false, 1, (int)code);
        _a.B(_errorExit);
    }

    private void FailArgument(int which)
    {
        _a.MovImm(false, 1, JitRuntime.BadArgument(which));
        _a.B(_errorExit);
    }

    /// <summary>
    /// At offset 0 <c>int run(void *mem, size_t mem_len, void *mbuff, size_t mbuff_len, uint64_t
    /// *result)</c>: clears x5 and falls into the main entry, which takes a <see cref="JitExtra"/>*
    /// in x5. As on x86-64, the main entry builds the context, the fixed buffer and the stack in its
    /// own frame, checks the arguments and sets r1 and r2 by the VM's kind.
    /// </summary>
    private void EmitEntry()
    {
        int fixedLength = _target.FixedLength;
        bool inlineFixed = fixedLength > 0 && fixedLength <= JitTarget.InlineFixedLimit;
        int fixedBytes = inlineFixed ? (fixedLength + 15) & ~15 : 0;
        int frameSize = JitContext.Size + fixedBytes + Isa.StackSize;
        _a.Mov(true, 5, Zr);
        _a.Bind(_mainEntry);
        _a.Pair(false, A64Assembler.Fp, Lr, Sp, -96, '!');
        _a.Pair(false, 19, 20, Sp, 16);
        _a.Pair(false, 21, 22, Sp, 32);
        _a.Pair(false, 23, 24, Sp, 48);
        _a.Pair(false, 25, 26, Sp, 64);
        _a.Pair(false, 27, 28, Sp, 80);
        _a.MovSp(A64Assembler.Fp, Sp);
        // Page by page, touching each, so a guard page below the thread's stack is always hit first.
        for (int left = frameSize; left > 0;)
        {
            if (left >= 4096) { _a.SubImm(true, Sp, Sp, 1, shift12: true); left -= 4096; }
            else { _a.SubImm(true, Sp, Sp, left); left = 0; }
            _a.Access(Mem.LdrX, Zr, Sp, 0);
        }
        _a.MovSp(Ctx, Sp);
        CtxStore(4, JitContext.OffResultPtr);
        CtxStore(0, JitContext.OffPacketStart);
        CtxStore(1, JitContext.OffPacketLength);
        _a.MovImm(true, T0, _target.Link);
        CtxStore(T0, JitContext.OffLink);
        if (_countInstructions)
        {
            _a.Access(Mem.LdrX, Budget, T0, JitLink.OffBudget);
        }
        if (_options.Interruptible && Array.IndexOf(_polls, true) >= 0)
        {
            _a.MovImm(true, InterruptWord, _target.InterruptWord);
            _a.Access(Mem.LdrW, Epoch, InterruptWord, 0);
            CtxStore(Epoch, JitContext.OffInterruptEpoch, false);
        }
        CtxStore(Zr, JitContext.OffStatus); // Status and Depth

        var badResult = _a.NewLabel();
        var badMem = _a.NewLabel();
        var badMbuff = _a.NewLabel();
        var memOk = _a.NewLabel();
        var mbuffOk = _a.NewLabel();
        Cbz(true, 4, badResult);
        _a.Cbnz(true, 0, memOk);
        Cbnz(true, 1, badMem);
        _a.Bind(memOk);
        _a.Cbnz(true, 2, mbuffOk);
        Cbnz(true, 3, badMbuff);
        _a.Bind(mbuffOk);
        ColdFailArgument(badResult, JitRuntime.BadResult);
        ColdFailArgument(badMem, JitRuntime.BadMem);
        ColdFailArgument(badMbuff, JitRuntime.BadMbuff);
        if (_target.Kind == VmKind.NoData)
        {
            var unusedMem = _a.NewLabel();
            Cbnz(true, 1, unusedMem);
            ColdFailArgument(unusedMem, JitRuntime.UnusedMem);
        }
        if (_target.Kind != VmKind.Mbuff)
        {
            var unusedMbuff = _a.NewLabel();
            Cbnz(true, 3, unusedMbuff);
            ColdFailArgument(unusedMbuff, JitRuntime.UnusedMbuff);
        }

        // Packet bounds per access size: len - size + 1, or 0 when it does not fit at all.
        CtxStore(1, JitContext.OffPacketBound);
        foreach (int size in (ReadOnlySpan<int>)[2, 4, 8])
        {
            _a.SubsImm(true, T1, 1, size - 1);
            _a.Csel(true, T1, T1, Zr, A64Cond.Hs);
            CtxStore(T1, JitContext.OffPacketBound + 8 * JitContext.BoundIndex(size));
        }
        _a.Mov(true, PacketStart, 0);

        // The stack: the caller's, or the top of this frame.
        var ownStack = _a.NewLabel();
        var stackDone = _a.NewLabel();
        _a.Cbz(true, 5, ownStack);
        _a.Access(Mem.LdrX, T1, 5, JitExtra.OffStackTop);
        _a.Cbz(true, T1, ownStack);
        _a.Mov(true, Fp, T1);
        _a.Access(Mem.LdrX, T1, 5, JitExtra.OffStackBottom);
        _a.B(stackDone);
        _a.Bind(ownStack);
        AddConst(T1, Ctx, JitContext.Size + fixedBytes);
        AddConst(Fp, T1, Isa.StackSize);
        _a.Bind(stackDone);
        CtxStore(T1, JitContext.OffStackBottom);
        CtxStore(Fp, JitContext.OffStackTop);
        if (_target.FullFrames)
        {
            _a.SubImm(true, T1, Fp, Isa.StackFrameSize);
            CtxStore(T1, JitContext.OffStackStart);
            foreach (int size in (ReadOnlySpan<int>)[1, 2, 4, 8])
            {
                _a.MovImm(true, T1, Isa.StackFrameSize - size + 1);
                CtxStore(T1, JitContext.OffStackBound + 8 * JitContext.BoundIndex(size));
            }
        }
        else
        {
            CtxStore(Fp, JitContext.OffStackStart);
            _a.SubImm(true, Ip0, Fp, Isa.StackFrameSize);
            EmitLowerStackStart();
        }
        ZeroBelowFramePointer();

        // Kinds without a metadata buffer get an empty region at 0 (the runtime's slow checks list every region).
        switch (_target.Kind)
        {
            case VmKind.NoData:
                CtxStore(Zr, JitContext.OffMetaStart);
                CtxStore(Zr, JitContext.OffMetaLength);
                _a.Mov(true, 0, Zr);
                _a.Mov(true, 1, Zr);
                break;
            case VmKind.Raw:
                CtxStore(Zr, JitContext.OffMetaStart);
                CtxStore(Zr, JitContext.OffMetaLength);
                break;
            case VmKind.Mbuff:
                // As rbpf: without a metadata buffer, r1 and r2 describe the packet itself.
                CtxStore(2, JitContext.OffMetaStart);
                CtxStore(3, JitContext.OffMetaLength);
                _a.CmpImm(true, 3, 0);
                _a.Csel(true, 0, 2, 0, A64Cond.Ne);
                _a.Csel(true, 1, 3, 1, A64Cond.Ne);
                break;
            default:
            {
                if (inlineFixed)
                {
                    AddConst(T1, Ctx, JitContext.Size);
                    for (int off = 0; off < fixedBytes; off += 8) _a.Access(Mem.StrX, Zr, T1, off);
                }
                else
                {
                    var noBuffer = _a.NewLabel();
                    var zeroLoop = _a.NewLabel();
                    var zeroed = _a.NewLabel();
                    Cbz(true, 5, noBuffer);
                    _a.Access(Mem.LdrX, T1, 5, JitExtra.OffFixedBuffer);
                    Cbz(true, T1, noBuffer);
                    ColdFailArgument(noBuffer, JitRuntime.NoFixedBuffer);
                    _a.MovImm(true, T2, fixedLength);
                    _a.Bind(zeroLoop);
                    _a.Cbz(true, T2, zeroed);
                    _a.SubImm(true, T2, T2, 1);
                    _a.Add(true, Ip0, T1, T2);
                    _a.Access(Mem.Strb, Zr, Ip0, 0);
                    _a.B(zeroLoop);
                    _a.Bind(zeroed);
                }
                AddConst(Ip0, T1, _target.DataOffset);
                _a.Access(Mem.StrX, 0, Ip0, 0);
                _a.Add(true, T2, 0, 1);
                AddConst(Ip0, T1, _target.DataEndOffset);
                _a.Access(Mem.StrX, T2, Ip0, 0);
                CtxStore(T1, JitContext.OffMetaStart);
                _a.MovImm(true, T2, fixedLength);
                CtxStore(T2, JitContext.OffMetaLength);
                _a.Mov(true, 0, T1);
                _a.MovImm(true, 1, fixedLength);
                break;
            }
        }
        foreach (int reg in new[] { R[0], R[3], R[4], R[5], R[6], R[7], R[8], R[9] }) _a.Mov(true, reg, Zr);
    }

    /// <summary>Zeroes the bytes of the current frame the program can read (<see cref="DecodedProgram.StackReach"/>).</summary>
    private void ZeroBelowFramePointer()
    {
        if (_program.StackReach == 0) return;
        var zeroed = _a.NewLabel();
        if (!_target.FullFrames)
        {
            // Frames may be partly outside the stack: never zero below its bottom (byte by byte, rarely).
            var near = _a.NewLabel();
            _a.SubImm(true, Ip0, Fp, _program.StackReach);
            CtxLoad(Ip1, JitContext.OffStackBottom);
            _a.Cmp(true, Ip0, Ip1);
            BCond(A64Cond.Lo, near);
            _cold.Add(new ColdCode(near, ColdKind.ZeroBytewise, To: zeroed));
        }
        for (int off = -_program.StackReach; off < 0; off += 16) _a.Pair(false, Zr, Zr, Fp, off);
        _a.Bind(zeroed);
    }

    /// <summary>Makes x16 (a new lowest stack address) the start of the stack region when it is lower,
    /// clamped to the stack's bottom, and recomputes the bounds. Clobbers x16 and x17.</summary>
    private void EmitLowerStackStart(bool shared = false)
    {
        var known = _a.NewLabel();
        if (!_target.FullFrames)
        {
            CtxLoad(Ip1, JitContext.OffStackBottom);
            _a.Cmp(true, Ip0, Ip1);
            _a.Csel(true, Ip0, Ip1, Ip0, A64Cond.Lo);
        }
        CtxLoad(Ip1, JitContext.OffStackStart);
        _a.Cmp(true, Ip0, Ip1);
        _a.BCond(A64Cond.Hs, known);
        if (shared)
        {
            // Rare (a frame deeper than any before): one copy of the update for every call site, reached
            // with bl (x30 is free in the body: local calls keep their return address themselves).
            _lowerStack ??= _a.NewLabel();
            _a.Bl(_lowerStack);
        }
        else EmitStackStartUpdate();
        _a.Bind(known);
    }

    /// <summary>The local calls' shared update of the stack region (<see cref="EmitLowerStackStart"/>), called with the new start in x16.</summary>
    private A64Label? _lowerStack;

    /// <summary>x16 is the stack region's new start: stores it and the per-size bounds. Clobbers x16 and x17.</summary>
    private void EmitStackStartUpdate()
    {
        CtxStore(Ip0, JitContext.OffStackStart);
        CtxLoad(Ip1, JitContext.OffStackTop);
        _a.Sub(true, Ip1, Ip1, Ip0);
        foreach (int size in (ReadOnlySpan<int>)[1, 2, 4, 8])
        {
            _a.SubImm(true, Ip0, Ip1, size - 1);
            CtxStore(Ip0, JitContext.OffStackBound + 8 * JitContext.BoundIndex(size));
        }
    }

    private void EmitPoll(int pc)
    {
        var stop = _a.NewLabel();
        _a.Access(Mem.LdrW, T0, InterruptWord, 0);
        _a.Cmp(false, T0, Epoch);
        BCond(A64Cond.Ne, stop);
        ColdFail(stop, pc, RbpfErrorCode.Interrupted);
    }

    private void EmitBudget(int pc, int length)
    {
        var fail = _a.NewLabel();
        _a.SubsImm(true, Budget, Budget, length);
        BCond(A64Cond.Lt, fail);
        ColdFail(fail, pc, RbpfErrorCode.InstructionLimit);
    }

    private bool Blind => _options.ConstantBlinding;

    /// <summary>rd = value, blinded when asked (the key goes through x12).</summary>
    private void LoadImm(int rd, long value)
    {
        if (Blind)
        {
            long key = BlindKeys.NextInt64() | 1;
            _a.MovImm(true, rd, value ^ key);
            _a.MovImm(true, T3, key);
            _a.Eor(true, rd, rd, T3);
        }
        else _a.MovImm(true, rd, value);
    }

    private void EmitInstruction(int pc, DecodedInsn i)
    {
        int d = i.Dst <= 10 ? R[i.Dst] : T0;
        int s = i.Src <= 10 ? R[i.Src] : T0;
        switch (i.Op)
        {
            case >= Op.Add64Imm and <= Op.Arsh32Reg when (i.Op - Op.Add64Imm) / 4 is not (3 or 8): // not div, mod
                EmitAlu(i, d, s);
                break;
            case Op.Neg64: _a.Neg(true, d, d); break;
            case Op.Neg32: _a.Neg(false, d, d); break;
            case >= Op.Div64Imm and <= Op.Div32Reg:
            case >= Op.Mod64Imm and <= Op.Mod32Reg:
            case >= Op.SDiv64Imm and <= Op.SMod32Reg:
                EmitDivision(i, d, s);
                break;
            case Op.MovSx64From8: _a.Sbfm(true, d, s, 0, 7); break;
            case Op.MovSx64From16: _a.Sbfm(true, d, s, 0, 15); break;
            case Op.MovSx64From32: _a.Sbfm(true, d, s, 0, 31); break;
            case Op.MovSx32From8: _a.Sbfm(false, d, s, 0, 7); break;
            case Op.MovSx32From16: _a.Sbfm(false, d, s, 0, 15); break;
            case Op.Zext16: _a.Ubfm(false, d, d, 0, 15); break;
            case Op.Zext32: _a.Mov(false, d, d); break;
            case Op.Nop: break;
            case Op.Swap16: _a.Rev16(d, d); _a.Ubfm(false, d, d, 0, 15); break;
            case Op.Swap32: _a.Rev32(d, d); break;
            case Op.Swap64: _a.Rev64(d, d); break;
            case Op.Lddw: LoadImm(d, i.Imm); break;
            case >= Op.LdAbsB and <= Op.LdIndDW: EmitPacketLoad(pc, i); break;
            case >= Op.LdxB and <= Op.LdxSW: EmitLoad(pc, i); break;
            case >= Op.StB and <= Op.StxDW: EmitStore(pc, i); break;
            case Op.Atomic32 or Op.Atomic64: EmitAtomic(pc, i); break;
            case Op.Ja: _a.B(_pcLabels[i.Off]); break;
            case >= Op.Jeq64Imm and <= Op.Jsle32Reg: EmitConditionalJump(i); break;
            case Op.Call: EmitHelperCall(pc, i); break;
            case Op.CallX: EmitCallX(pc, i); break;
            case Op.CallLocal: EmitLocalCall(pc, i); break;
            case Op.Exit:
                CtxLoad(T0, JitContext.OffDepth, false);
                Cbnz(false, T0, _return);
                _a.B(_exitWithResult);
                break;
            default:
                Fail(pc, RbpfErrorCode.IllegalInstruction);
                break;
        }
    }

    /// <summary>add, sub, mul, or, and, lsh, rsh, xor, mov, arsh in their four forms.</summary>
    private void EmitAlu(DecodedInsn i, int d, int s)
    {
        int group = (i.Op - Op.Add64Imm) / 4, form = (i.Op - Op.Add64Imm) % 4;
        bool is64 = form < 2, reg = (form & 1) != 0;
        long imm = is64 ? i.Imm : (uint)(int)i.Imm;
        int shiftBits = is64 ? 63 : 31;
        if (!reg)
        {
            switch (group)
            {
                case 6: case 7: case 11: // shifts by a constant
                {
                    int n = (int)(i.Imm & shiftBits);
                    if (n == 0) { if (!is64) _a.Mov(false, d, d); return; }
                    if (group == 6) _a.LslImm(is64, d, d, n);
                    else if (group == 7) _a.LsrImm(is64, d, d, n);
                    else _a.AsrImm(is64, d, d, n);
                    return;
                }
                case 10: // mov
                    LoadImm(d, imm);
                    return;
                case 0: case 1:
                    if (!Blind)
                    {
                        long v = group == 0 ? (int)i.Imm : -(long)(int)i.Imm;
                        if (v >= 0 && v < 4096) { _a.AddImm(is64, d, d, (int)v); return; }
                        if (v < 0 && v > -4096) { _a.SubImm(is64, d, d, (int)-v); return; }
                    }
                    break;
            }
            LoadImm(T0, imm);
            s = T0;
        }
        switch (group)
        {
            case 0: _a.Add(is64, d, d, s); break;
            case 1: _a.Sub(is64, d, d, s); break;
            case 2: _a.Mul(is64, d, d, s); break;
            case 4: _a.Orr(is64, d, d, s); break;
            case 5: _a.And(is64, d, d, s); break;
            case 6: _a.Lslv(is64, d, d, s); break;
            case 7: _a.Lsrv(is64, d, d, s); break;
            case 9: _a.Eor(is64, d, d, s); break;
            case 10: _a.Mov(is64, d, s); break;
            case 11: _a.Asrv(is64, d, d, s); break;
        }
    }

    /// <summary>
    /// AArch64's divisions do not trap: by zero they give 0 (the eBPF quotient; msub then leaves the
    /// dividend, the eBPF remainder), and INT_MIN / -1 wraps to INT_MIN as eBPF wants.
    /// </summary>
    private void EmitDivision(DecodedInsn i, int d, int s)
    {
        int k = i.Op switch
        {
            >= Op.SDiv64Imm and <= Op.SDiv32Reg => i.Op - Op.SDiv64Imm,
            >= Op.SMod64Imm and <= Op.SMod32Reg => i.Op - Op.SMod64Imm,
            >= Op.Div64Imm and <= Op.Div32Reg => i.Op - Op.Div64Imm,
            _ => i.Op - Op.Mod64Imm,
        };
        bool reg = (k & 1) != 0, is64 = (k & 2) == 0;
        bool signed = i.Op >= Op.SDiv64Imm;
        bool mod = i.Op is >= Op.Mod64Imm and <= Op.Mod32Reg or >= Op.SMod64Imm and <= Op.SMod32Reg;
        if (!reg)
        {
            LoadImm(T0, is64 ? i.Imm : (uint)(int)i.Imm);
            s = T0;
        }
        if (!mod)
        {
            if (signed) _a.Sdiv(is64, d, d, s); else _a.Udiv(is64, d, d, s);
            return;
        }
        if (signed) _a.Sdiv(is64, T1, d, s); else _a.Udiv(is64, T1, d, s);
        _a.Msub(is64, d, T1, s, d);
    }

    /// <summary>
    /// The address [base + off] for an access: checked (unless it is inside the frame, or checks are
    /// off), it ends in x16 and the access uses [x16]; returns the base register and offset to use.
    /// </summary>
    private (int Base, int Offset) CheckedAddress(int pc, int baseReg, int off, int size, bool write, bool atomic, Mem mem)
    {
        int b = R[baseReg];
        bool check = _options.CheckedMemory && (atomic || !_target.InsideFrame(baseReg, off, size) && !(_inInput?[pc] ?? false));
        if (!check && !atomic && Encodable(mem, off)) return (b, off);
        AddConst(Ip0, b, off);
        if (!check) return (Ip0, 0);
        var slow = _a.NewLabel();
        var back = _a.NewLabel();
        int bi = JitContext.BoundIndex(size);
        // Inline, only the input: an access inside it falls through with no branch taken.
        if (atomic)
        {
            _a.TstLowBits(Ip0, size == 8 ? 3 : 2);
            BCond(A64Cond.Ne, slow);
        }
        _a.Sub(true, Ip1, Ip0, PacketStart);
        CtxLoad(T0, JitContext.OffPacketBound + 8 * bi);
        _a.Cmp(true, Ip1, T0);
        BCond(A64Cond.Hs, slow);
        _a.Bind(back);
        var stub = SlowCheck(size, (write ? 1 : 0) | (atomic ? 2 : 0));
        _cold.Add(new ColdCode(slow, ColdKind.Access, pc, To: stub, Back: back));
        return (Ip0, 0);
    }

    /// <summary>The shared out-of-line check for accesses of <paramref name="size"/> bytes with
    /// <paramref name="flags"/>: entered by bl with the address in x16; returns, or fails the run.</summary>
    private A64Label SlowCheck(int size, int flags)
    {
        int key = size * 4 + flags;
        _slowChecks ??= new A64Label?[8 * 4 + 4];
        if (_slowChecks[key] is { } label) return label;
        label = _a.NewLabel();
        _slowChecks[key] = label;
        _cold.Add(new ColdCode(label, ColdKind.SlowCheck, size, flags));
        return label;
    }

    /// <summary>The body of the shared check for accesses of <paramref name="size"/> bytes with <paramref name="flags"/> (see <see cref="SlowCheck"/>).</summary>
    private void EmitSlowCheck(int size, int flags)
    {
        var runtime = _a.NewLabel();
        var inStack = _a.NewLabel();
        var fault = _a.NewLabel();
        int bi = JitContext.BoundIndex(size);
        if ((flags & 2) != 0)
        {
            _a.TstLowBits(Ip0, size == 8 ? 3 : 2);
            _a.BCond(A64Cond.Ne, runtime);
        }
        CtxLoad(Ip1, JitContext.OffStackStart);
        _a.Sub(true, Ip1, Ip0, Ip1);
        CtxLoad(T0, JitContext.OffStackBound + 8 * bi);
        _a.Cmp(true, Ip1, T0);
        _a.BCond(A64Cond.Lo, inStack);
        // The runtime: keep what is live (r0-r5, the address, the return address).
        _a.Bind(runtime);
        _a.Pair(false, 0, 1, Sp, -64, '!');
        _a.Pair(false, 2, 3, Sp, 16);
        _a.Pair(false, 4, 7, Sp, 32);
        _a.Pair(false, Ip0, Lr, Sp, 48);
        _a.Mov(true, 0, Ctx);
        _a.Mov(true, 1, Ip0);
        _a.MovImm(false, 2, size);
        _a.MovImm(false, 3, flags);
        CallAbsolute((long)JitRuntime.CheckAccessFn);
        _a.Mov(false, Ip1, 0);
        _a.Pair(true, Ip0, Lr, Sp, 48);
        _a.Pair(true, 4, 7, Sp, 32);
        _a.Pair(true, 2, 3, Sp, 16);
        _a.Pair(true, 0, 1, Sp, 64, 'p');
        _a.Cbz(false, Ip1, fault);
        _a.Bind(inStack);
        _a.Ret();
        _a.Bind(fault); // the caller put the instruction in FaultPc
        _a.MovImm(false, 1, (int)RbpfErrorCode.OutOfBounds);
        _a.B(_errorExit);
    }

    private void EmitLoad(int pc, DecodedInsn i)
    {
        int size = JitTarget.AccessSize(i.Op);
        var mem = i.Op switch
        {
            Op.LdxB => Mem.Ldrb, Op.LdxH => Mem.Ldrh, Op.LdxW => Mem.LdrW, Op.LdxDW => Mem.LdrX,
            Op.LdxSB => Mem.Ldrsb, Op.LdxSH => Mem.Ldrsh, _ => Mem.Ldrsw,
        };
        var (b, off) = CheckedAddress(pc, i.Src, i.Off, size, write: false, atomic: false, mem);
        _a.Access(mem, R[i.Dst], b, off);
    }

    private void EmitStore(int pc, DecodedInsn i)
    {
        int size = JitTarget.AccessSize(i.Op);
        bool imm = i.Op is Op.StB or Op.StH or Op.StW or Op.StDW;
        var mem = size switch { 1 => Mem.Strb, 2 => Mem.Strh, 4 => Mem.StrW, _ => Mem.StrX };
        var (b, off) = CheckedAddress(pc, i.Dst, i.Off, size, write: true, atomic: false, mem);
        int value = R[i.Src];
        if (imm)
        {
            if (i.Imm == 0) value = Zr;
            else
            {
                LoadImm(T1, i.Imm);
                value = T1;
            }
        }
        _a.Access(mem, value, b, off);
    }

    /// <summary>Atomics as exclusive-access loops (ARMv8.0, so no LSE needed); the fetching forms are
    /// fully ordered, as the kernel's are.</summary>
    private void EmitAtomic(int pc, DecodedInsn i)
    {
        bool is64 = i.Op == Op.Atomic64;
        int size = is64 ? 8 : 4;
        CheckedAddress(pc, i.Dst, i.Off, size, write: true, atomic: true, is64 ? Mem.LdrX : Mem.LdrW);
        int s = R[i.Src];
        int kind = (int)i.Imm; // AtomicKind
        var loop = _a.NewLabel();
        _a.Bind(loop);
        switch (kind)
        {
            case 0: case 1: case 2: case 3:
                _a.LoadExclusive(is64, false, T0, Ip0);
                Combine(kind, is64, T0, T0, s);
                _a.StoreExclusive(is64, false, T1, T0, Ip0);
                _a.Cbnz(false, T1, loop);
                break;
            case 4: case 5: case 6: case 7:
                _a.LoadExclusive(is64, true, T0, Ip0);
                Combine(kind - 4, is64, T1, T0, s);
                _a.StoreExclusive(is64, true, T2, T1, Ip0);
                _a.Cbnz(false, T2, loop);
                _a.DmbIsh();
                _a.Mov(is64, s, T0);
                break;
            case 8:
                _a.LoadExclusive(is64, true, T0, Ip0);
                _a.StoreExclusive(is64, true, T2, s, Ip0);
                _a.Cbnz(false, T2, loop);
                _a.DmbIsh();
                _a.Mov(is64, s, T0);
                break;
            default:
            {
                var done = _a.NewLabel();
                _a.LoadExclusive(is64, true, T0, Ip0);
                _a.Cmp(is64, T0, R[0]);
                _a.BCond(A64Cond.Ne, done);
                _a.StoreExclusive(is64, true, T2, s, Ip0);
                _a.Cbnz(false, T2, loop);
                _a.Bind(done);
                _a.DmbIsh();
                _a.Mov(is64, R[0], T0);
                break;
            }
        }
    }

    private void Combine(int kind, bool is64, int rd, int rn, int rm)
    {
        switch (kind)
        {
            case 0: _a.Add(is64, rd, rn, rm); break;
            case 1: _a.Orr(is64, rd, rn, rm); break;
            case 2: _a.And(is64, rd, rn, rm); break;
            default: _a.Eor(is64, rd, rn, rm); break;
        }
    }

    private void EmitPacketLoad(int pc, DecodedInsn i)
    {
        bool ind = i.Op >= Op.LdIndB;
        int k = i.Op - (ind ? Op.LdIndB : Op.LdAbsB);
        int size = 1 << k;
        var fault = _a.NewLabel();
        LoadImm(Ip1, (uint)(int)i.Imm);
        if (ind)
        {
            _a.Adds(true, Ip1, Ip1, R[i.Src]);
            BCond(A64Cond.Hs, fault); // a wrapped sum is as bad as one past the end
        }
        CtxLoad(T0, JitContext.OffPacketBound + 8 * JitContext.BoundIndex(size));
        _a.Cmp(true, Ip1, T0);
        BCond(A64Cond.Hs, fault);
        _a.LoadIndexed(size switch { 1 => Mem.Ldrb, 2 => Mem.Ldrh, 4 => Mem.LdrW, _ => Mem.LdrX }, R[0], PacketStart, Ip1);
        if (_target.KernelPacketLoads)
        {
            // The kernel's meaning (socket and tc programs): network byte order, and outside the
            // packet the program ends with 0.
            if (size == 2) _a.Rev16(R[0], R[0]);
            if (size == 4) _a.Rev32(R[0], R[0]);
            _cold.Add(new ColdCode(fault, ColdKind.PacketEndsRun));
            return;
        }
        _cold.Add(new ColdCode(fault, ColdKind.PacketFault, pc, size));
    }

    private void EmitConditionalJump(DecodedInsn i)
    {
        int k = i.Op - Op.Jeq64Imm;
        int cond = k / 4;
        bool reg = (k & 1) != 0, is64 = (k & 2) == 0;
        int d = R[i.Dst];
        bool test = cond == 3; // jset
        int s;
        if (reg) s = R[i.Src];
        else
        {
            long imm = i.Imm;
            if (!test && !Blind && imm >= 0 && imm < 4096) { _a.CmpImm(is64, d, (int)imm); s = -1; }
            else if (!test && !Blind && imm < 0 && imm > -4096) { _a.CmnImm(is64, d, (int)-imm); s = -1; }
            else
            {
                LoadImm(T0, imm);
                s = T0;
            }
        }
        if (s >= 0)
        {
            if (test) _a.Tst(is64, d, s); else _a.Cmp(is64, d, s);
        }
        var c = cond switch
        {
            0 => A64Cond.Eq, 1 => A64Cond.Hi, 2 => A64Cond.Hs, 3 => A64Cond.Ne, 4 => A64Cond.Ne,
            5 => A64Cond.Gt, 6 => A64Cond.Ge, 7 => A64Cond.Lo, 8 => A64Cond.Ls, 9 => A64Cond.Lt, _ => A64Cond.Le,
        };
        BCond(c, _pcLabels[i.Off]);
    }

    /// <summary>
    /// Calls <paramref name="target"/> with r1-r5 (x0-x4, already in place) and a sixth argument
    /// in x5: the context for the runtime's trampolines, or the run's memory for native helpers
    /// (uBPF's convention); r1-r5 are kept, and r0 receives the result.
    /// </summary>
    private void EmitCallWithArguments(long target, bool withContext)
    {
        _a.Pair(false, 0, 1, Sp, -48, '!');
        _a.Pair(false, 2, 3, Sp, 16);
        _a.Access(Mem.StrX, 4, Sp, 32);
        _a.Mov(true, 5, withContext ? Ctx : PacketStart);
        CallAbsolute(target);
        _a.Mov(true, R[0], 0);
        _a.Access(Mem.LdrX, 4, Sp, 32);
        _a.Pair(true, 2, 3, Sp, 16);
        _a.Pair(true, 0, 1, Sp, 48, 'p');
    }

    private void EmitStatusCheck(int pc)
    {
        var fail = _a.NewLabel();
        CtxLoad(T0, JitContext.OffStatus, false);
        Cbnz(false, T0, fail);
        _cold.Add(new ColdCode(fail, ColdKind.StatusCheck, pc));
    }

    private void SetFaultPcAndSlot(int pc, int slot)
    {
        _a.MovImm(false, T0, pc);
        CtxStore(T0, JitContext.OffFaultPc, false);
        _a.MovImm(false, T0, slot);
        CtxStore(T0, JitContext.OffHelperSlot, false);
    }

    private unsafe void EmitHelperCall(int pc, DecodedInsn i)
    {
        uint key = (uint)i.Imm;
        HelperEntry? h = i.Off >= 0 ? _helpers.BySlot(i.Off) : null;
        if (h == null)
        {
            var fail = _a.NewLabel();
            _a.B(fail);
            ColdFail(fail, pc, RbpfErrorCode.UnknownHelper);
            return;
        }
        if (h.Native != null)
        {
            EmitCallWithArguments((long)h.Native, withContext: false);
            // A native helper fails its run by reporting it (rbpf_helper_fail) before it returns.
            var reported = _a.NewLabel();
            var checkedFailure = _a.NewLabel();
            _a.MovImm(true, T0, (long)HelperFailure.Pending);
            _a.Access(Mem.LdrW, T0, T0, 0);
            Cbnz(false, T0, reported);
            _cold.Add(new ColdCode(reported, ColdKind.HelperReported, pc, i.Off, To: checkedFailure));
            _a.Bind(checkedFailure);
        }
        else
        {
            SetFaultPcAndSlot(pc, i.Off);
            EmitCallWithArguments((long)JitRuntime.HelperTrampolineFn, withContext: true);
            EmitStatusCheck(pc);
        }
        if (_unwindHelper == key) Cbz(true, R[0], _exitWithResult);
    }

    private void EmitCallX(int pc, DecodedInsn i)
    {
        CtxStore(R[i.Dst], JitContext.OffCallXKey);
        _a.MovImm(false, T0, pc);
        CtxStore(T0, JitContext.OffFaultPc, false);
        EmitCallWithArguments((long)JitRuntime.CallXTrampolineFn, withContext: true);
        EmitStatusCheck(pc);
        if (_unwindHelper >= 0)
        {
            var skip = _a.NewLabel();
            _a.MovImm(true, T0, _unwindHelper);
            CtxLoad(T1, JitContext.OffCallXKey);
            _a.Cmp(true, T0, T1);
            _a.BCond(A64Cond.Ne, skip);
            Cbz(true, R[0], _exitWithResult);
            _a.Bind(skip);
        }
    }

    /// <summary>
    /// A local call: r6-r10 and the return address go on the stack (48 bytes), r10 moves down by the
    /// caller's frame, and the callee is a branch; its exit finds the return address at [sp + 40].
    /// </summary>
    private void EmitLocalCall(int pc, DecodedInsn i)
    {
        int drop = (int)(uint)i.Imm, callee = (int)((ulong)i.Imm >> 32);
        var tooDeep = _a.NewLabel();
        var back = _a.NewLabel();
        CtxLoad(T0, JitContext.OffDepth, false);
        _a.MovImm(false, T1, _target.MaxFrames - 1);
        _a.Cmp(false, T0, T1);
        BCond(A64Cond.Hs, tooDeep);
        CtxLoad(T1, JitContext.OffStackBottom);
        _a.Sub(true, T1, Fp, T1);
        _a.MovImm(true, T2, (long)drop + callee);
        _a.Cmp(true, T1, T2);
        BCond(A64Cond.Lo, tooDeep);
        ColdFail(tooDeep, pc, RbpfErrorCode.CallDepthExceeded);
        _a.AddImm(false, T0, T0, 1);
        CtxStore(T0, JitContext.OffDepth, false);
        _a.Pair(false, 19, 20, Sp, -48, '!');
        _a.Pair(false, 21, 22, Sp, 16);
        _a.Adr(Ip0, back);
        _a.Pair(false, Fp, Ip0, Sp, 32);
        if (drop != 0)
        {
            _a.MovImm(true, T1, drop);
            _a.Sub(true, Fp, Fp, T1);
        }
        _a.SubImm(true, Ip0, Fp, Isa.StackFrameSize);
        EmitLowerStackStart(shared: true);
        ZeroBelowFramePointer();
        _a.B(_pcLabels[i.Off]);
        _a.Bind(back);
        _a.Pair(true, 21, 22, Sp, 16);
        _a.Access(Mem.LdrX, Fp, Sp, 32);
        _a.Pair(true, 19, 20, Sp, 48, 'p');
        CtxLoad(T0, JitContext.OffDepth, false);
        _a.SubImm(false, T0, T0, 1);
        CtxStore(T0, JitContext.OffDepth, false);
    }
}
