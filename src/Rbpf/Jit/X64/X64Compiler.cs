using System.Runtime.CompilerServices;
using Rbpf.Jit.X64;
using static Rbpf.Jit.X64.X64Registers;

namespace Rbpf.Jit;

/// <summary>
/// Compiles a decoded program to x86-64 machine code (<see cref="X64Assembler"/>). The body follows the System V
/// convention; under the Microsoft x64 convention (Windows) the entries are wrappers that move the
/// arguments where the body expects them and keep rdi and rsi, and every call out of the body goes
/// through <see cref="CallOut"/>, which places its arguments the Windows way.
/// eBPF registers live in host registers: r0 rax, r1 rdi, r2 rsi, r3 rdx, r4 r9, r5 r8, r6 rbx,
/// r7 r13, r8 r14, r9 r15, r10 rbp; r12 holds the <see cref="JitContext"/>; rcx, r10 and r11 are
/// scratch. The entry points return 0 or an error code (see <see cref="EmitEntry"/>).
/// </summary>
internal sealed class X64Compiler
{
    private static readonly Gpr64[] R64 = { rax, rdi, rsi, rdx, r9, r8, rbx, r13, r14, r15, rbp };
    private static readonly Gpr32[] R32 = { eax, edi, esi, edx, r9d, r8d, ebx, r13d, r14d, r15d, ebp };
    private static readonly Gpr16[] R16 = { ax, di, si, dx, r9w, r8w, bx, r13w, r14w, r15w, bp };
    private static readonly Gpr8[] R8 = { al, dil, sil, dl, r9b, r8b, bl, r13b, r14b, r15b, bpl };

    private readonly DecodedProgram _program;
    private readonly HelperTable _helpers;
    private readonly JitOptions _options;
    private readonly long _unwindHelper;
    /// <summary>One assembler per thread, reset for each compilation (its buffers keep their capacity).</summary>
    private readonly X64Assembler _a;

    private readonly X64Label[] _pcLabels;

    /// <summary>
    /// What a compile uses only while it runs, kept per thread in one object (one thread-local
    /// lookup per compile): the assembler, the lists of out-of-line code, and arrays at least as
    /// long as the program, cleared over its length by <see cref="Rent{T}"/> (allocating them per
    /// compile was most of what compiling allocated after the code itself).
    /// </summary>
    private sealed class Scratch
    {
        public readonly X64Assembler Assembler = new();
        /// <summary>Out-of-line code to place after the body (growing a list per compile was a tenth of compiling).</summary>
        public readonly List<ColdCode> Cold = new(256);
        public readonly List<ColdAccess> ColdAccesses = new(256);
        public X64Label[] Labels = [], SlowChecks = new X64Label[8 * 4 + 4];
        public bool[] NeedsCheck = [], LoopHeads = [], JumpTargets = [];
        public int[] BlockStarts = [];
        public Gpr64[] Saved = new Gpr64[8];

        /// <summary>Whether anything has grown large (a thread keeps no large buffers).</summary>
        public bool IsLarge => Labels.Length > 1 << 16 || Assembler.IsLarge(1 << 20) || Cold.Capacity > 16384 || ColdAccesses.Capacity > 16384;
    }
    [ThreadStatic] private static Scratch? t_scratch;
    private readonly Scratch _scratch;

    /// <summary><paramref name="array"/> with at least <paramref name="n"/> elements, the first <paramref name="n"/> cleared.</summary>
    private static T[] Rent<T>(ref T[] array, int n)
    {
        if (array.Length < n) array = new T[Math.Max(n, array.Length * 2)];
        else Array.Clear(array, 0, n);
        return array;
    }

    /// <summary>What out-of-line code emits, as data rather than closures (most programs have several
    /// pieces, and the closures were most of what a compile allocated): a failure (<see cref="Fail"/> at A with status B), a failed argument
    /// (<see cref="FailArgument"/> of A), a shared slow check (<see cref="EmitSlowCheck"/> of size A, flags B),
    /// an entry's mem of NULL (<see cref="EmitNullMemory"/>, back to To), a frame zeroed byte by byte
    /// (<see cref="ZeroBytewise"/>, back to To), a helper's failure left in the status
    /// (<see cref="EmitStatusFailure"/> at A), a native helper's reported failure (<see cref="EmitHelperReported"/>
    /// at A, helper slot B, then on to To), a legacy packet load outside the packet (<see cref="EmitPacketFault"/>
    /// at A of B bytes; ending the run with 0 when B is 0), a fused group of accesses run again one by
    /// one (<see cref="EmitSeparately"/>, A the first slot, B how many), the moves sunk onto a jump out of a
    /// loop (<see cref="EmitSunkEdge"/> of the jump at A, on to To), a lean entry's NULL input
    /// (<see cref="EmitLeanNullMemory"/>, back to To) and bad arguments (<see cref="EmitLeanArgumentFailure"/>),
    /// an emulated Microsoft-convention adapter (<see cref="EmitWin64Adapter"/> of the target A | B &lt;&lt; 32).</summary>
    private enum ColdKind : byte { Fail, FailArgument, SlowCheck, NullMemory, ZeroBytewise, StatusFailure, HelperReported, PacketFault, Separately, SunkEdge, LeanNullMemory, LeanFailure, Win64Adapter }
    private readonly record struct ColdCode(X64Label Label, ColdKind Kind, int A, int B, X64Label To = default);
    private readonly List<ColdCode> _cold;
    /// <summary>A checked access's way out of line (see <see cref="CheckedAddress"/>), kept as data
    /// rather than a closure: most programs have many, and the closures were most of what compiling allocated.</summary>
    private readonly record struct ColdAccess(X64Label NotPacket, X64Label Back, X64Label Stub, int Pc, Gpr64 Base, int Off, bool Atomic);
    private readonly List<ColdAccess> _coldAccesses;
    private static Random _blindKeys => Random.Shared; // seeded once per process, not per compile (a system call)
    private X64Label _errorExit, _exitWithResult, _ret, _leave;
    /// <summary>A lean entry's way to its argument failures (<see cref="EmitLeanArgumentFailure"/>).</summary>
    private X64Label _leanSlow;
    /// <summary>Where each run's setup starts (<see cref="EmitRunSetup"/>), the batch loop's way in.</summary>
    private X64Label _runSetup;
    /// <summary>Whether to emit the batch entry (<see cref="EmitBatch"/>): asked for (the code a VM compiles for batches, on their first use), System V only, and no caller-brought fixed buffer.</summary>
    private readonly bool _batch;
    private X64Label _batchEntry, _batchNext;
    /// <summary>The batch loop's index register, when the program leaves one of r6-r9 unnamed; else the index lives in <see cref="JitBatch.Done"/> alone.</summary>
    private Gpr64? _batchIndex;
    /// <summary>The batch's array of inputs (or of lengths, for packed inputs) when a second register is free.</summary>
    private Gpr64? _batchBase;

    private readonly bool _countInstructions;

    private readonly JitTarget _target;

    /// <summary>Microsoft x64 at the edges (Windows, or emulated).</summary>
    private readonly bool _win64;
    /// <summary>...with System V adapters around it, to run on a System V host (<see cref="JitAbi.Win64Emulated"/>).</summary>
    private readonly bool _emulated;
    private Dictionary<ulong, X64Label>? _adapters; // made when the first adapter is (emulated Windows calls only)

    private X64Compiler(DecodedProgram program, HelperTable helpers, JitOptions options, long unwindHelper, bool countInstructions,
        JitTarget target, bool batchEntry)
    {
        _scratch = t_scratch ??= new Scratch();
        _a = _scratch.Assembler;
        _a.Reset();
        _cold = _scratch.Cold;
        _coldAccesses = _scratch.ColdAccesses;
        _target = target;
        _win64 = OperatingSystem.IsWindows() || options.Abi == JitAbi.Win64Emulated;
        _emulated = _win64 && !OperatingSystem.IsWindows();
        _countInstructions = countInstructions;
        _batch = batchEntry && SupportsBatch(options, target);
        _program = program;
        _helpers = helpers;
        _options = options;
        _unwindHelper = unwindHelper;
        if (program.Code.Length >= CodeEstimate.LargeProgram) ReserveForLarge(program.Code);
        _pcLabels = Rent(ref _scratch.Labels, program.Code.Length);
        _a.CreateLabels(_pcLabels.AsSpan(0, program.Code.Length));
        _cold.Clear(); // what a compile that threw on this thread left
        _coldAccesses.Clear();
    }

    /// <summary>The least code estimate for which the buffers are sized up front: below it, doubling wastes
    /// little, and reserving at once raised the peak (1,000,000 plain slots: 208 -> 231 MB).</summary>
    private const long MinReserved = 16 << 20;

    /// <summary>
    /// Sizes the assembler's buffers and the list of out-of-line code for a large program from what
    /// it holds, so they do not double their way up (each doubling leaves the old copy as garbage:
    /// a program of 1,000,000 local calls allocated 1.3 GB to compile). Measured on the benchmarks'
    /// shapes: about 7 bytes, half a branch and 1.25 labels per plain slot; 88 bytes, 6 branches (the
    /// out-of-line failure's jump included), 3 labels and an out-of-line failure per local call. The estimates lean high for plain code;
    /// past them the buffers grow as before. Only for an estimate of <see cref="MinReserved"/> or more.
    /// </summary>
    private void ReserveForLarge(DecodedInsn[] code)
    {
        var (localCalls, helperCalls) = CodeEstimate.Calls(code);
        long n = code.Length, bytes = 10 * n + 100 * localCalls + 48 * helperCalls;
        if (bytes < MinReserved) return;
        _a.Reserve(CodeEstimate.Clamp(bytes), CodeEstimate.Clamp(n / 2 + 6 * localCalls + 2 * helperCalls),
            CodeEstimate.Clamp(n + n / 2 + 3 * localCalls));
        _cold.EnsureCapacity(CodeEstimate.Clamp(localCalls + helperCalls + n / 16));
    }

    /// <summary>Machine code and, for each eBPF slot, the offset of its first byte (-1 for lddw tails);
    /// the offsets of the main entry and of the batch entry (-1: none, see <see cref="EmitBatch"/>).
    /// The code lies in this thread's assembler: valid until the thread compiles again.</summary>
    public readonly ref struct Output(ReadOnlySpan<byte> code, int[] pcOffsets, int mainEntry, int batchEntry)
    {
        public readonly ReadOnlySpan<byte> Code = code;
        public readonly int[] PcOffsets = pcOffsets;
        public readonly int MainEntry = mainEntry, BatchEntry = batchEntry;
    }

    /// <summary>Compiles; with <paramref name="countInstructions"/> every basic block charges its length to the
    /// instruction budget on entry (a memory update per block, so it is left out when no limit is set).</summary>
    public static Output Compile(DecodedProgram program, HelperTable helpers, JitOptions options, long unwindHelper,
        bool countInstructions, JitTarget target, bool batchEntry = false) =>
        new X64Compiler(program, helpers, options, unwindHelper, countInstructions, target, batchEntry).Run();

    /// <summary>Whether code for <paramref name="target"/> can have a batch entry: the System V convention, and a fixed metadata buffer (if any) in the frame.</summary>
    public static bool SupportsBatch(JitOptions options, JitTarget target) =>
        !OperatingSystem.IsWindows() && options.Abi != JitAbi.Win64Emulated && target.FixedLength <= JitTarget.InlineFixedLimit;

    /// <summary>Binds a label here.</summary>
    private void Bind(ref X64Label label) => _a.Label(ref label);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Mem CtxQ(int offset) => __qword_ptr[r12 + offset];
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Mem CtxD(int offset) => __dword_ptr[r12 + offset];

    private Output Run()
    {
        var code = _program.Code;
        var blockStarts = BlockStarts(code, Rent(ref _scratch.BlockStarts, code.Length));
        (_inInput, _polls) = JumpThreading.ProofsAndPolls(_program, _target.Kind); // checked code leaves the proven checks out
        _needsCheck = Rent(ref _scratch.NeedsCheck, code.Length);
        for (int pc = 0; pc < code.Length; pc++)
            if (code[pc].Op is >= Op.LdxB and <= Op.Atomic64) // loads, stores, atomics: the rest never need one
                _anyCheck |= _needsCheck[pc] = NeedsCheck(code[pc]) && !(_inInput?[pc] ?? false);
        _dropsAsFlag = CanTurnDropsIntoAFlag();
        _boundSizes = BoundSizes(blockStarts); // also finds the fused groups the loop below emits
        _lean = CanRunLean();
        _errorExit = _a.CreateLabel();
        _exitWithResult = _a.CreateLabel();
        _ret = _a.CreateLabel();
        _leave = _a.CreateLabel();
        _runSetup = _a.CreateLabel();
        _batchEntry = _a.CreateLabel();
        _batchNext = _a.CreateLabel();

        EmitEntry();
        // A program whose jumps all go forward has no loop heads to align and no loop to sink moves out of.
        var loopHeads = _program.HasBackwardJumps ? LoopHeads(code, Rent(ref _scratch.LoopHeads, code.Length)) : null;
        if (_program.HasBackwardJumps) FindSinks(code, blockStarts);

        for (int pc = 0; pc < code.Length; pc++)
        {
            if (pc > 0 && code[pc - 1].Op == Op.Lddw)
            {
                LddwTail(pc);
                continue;
            }
            if (loopHeads != null && loopHeads[pc]) _a.Align(LoopAlignment);
            Bind(ref _pcLabels[pc]);
            _currentPc = pc;
            if (_options.Interruptible && _polls[pc]) EmitPoll(pc);
            if (_countInstructions && blockStarts[pc] > 0) EmitBudget(pc, blockStarts[pc]);
            if (_sinks != null)
            {
                if (_sinks[pc] == Sunk) continue; // runs on the edge out of the loop instead
                if (_sinks[pc] != 0)
                {
                    EmitSinkingJump(pc);
                    continue;
                }
            }
            // The peepholes, each tried only where its first instruction can start it (a call
            // per slot to every one of them cost about a sixth of the compile).
            var op = code[pc].Op;
            if (op is Op.Mov64Reg or Op.Mov32Reg)
            {
                if (op == Op.Mov64Reg && TryEmitIndexedLoad(pc, blockStarts))
                {
                    Bind(ref _pcLabels[pc + 1]); // no code of their own: no jump lands inside a block
                    Bind(ref _pcLabels[pc + 2]);
                    pc += 2;
                    continue;
                }
                if (pc + 1 < code.Length && blockStarts[pc + 1] == 0 && !_program.PollPoints[pc + 1] && TryEmitLea(code[pc], code[pc + 1]))
                {
                    Bind(ref _pcLabels[pc + 1]); // no code of its own: no jump lands inside a block
                    pc++;
                    continue;
                }
                if (op == Op.Mov64Reg && TryEmitProductRotate(pc, blockStarts))
                {
                    pc += 4;
                    continue;
                }
                if (op == Op.Mov64Reg && TryEmitRotate(pc, blockStarts))
                {
                    pc += 3;
                    continue;
                }
            }
            else if (op is Op.Mul64Imm or Op.Mul32Imm or Op.Lsh64Imm or Op.Lsh32Imm)
            {
                if (TryEmitScaledAdd(pc, blockStarts))
                {
                    Bind(ref _pcLabels[pc + 1]); // the add: no code of its own
                    pc++;
                    continue;
                }
            }
            else if (op == Op.LdxDW)
            {
                if (TryEmitStackUpdate(pc, blockStarts))
                {
                    Bind(ref _pcLabels[pc + 1]); // the operation and the store: no code of their own
                    Bind(ref _pcLabels[pc + 2]);
                    pc += 2;
                    continue;
                }
            }
            else if (op is Op.LdxH or Op.LdxW)
            {
                if (TryEmitUnswappedLoad(pc))
                {
                    Bind(ref _pcLabels[pc + 1]); // the swap: no code of its own
                    pc++;
                    continue;
                }
            }
            else if (op is >= Op.Jeq64Imm and <= Op.Jsle32Reg)
            {
                if (TryEmitAnyOf(pc, out int chained))
                {
                    for (int k = 1; k < chained; k++) Bind(ref _pcLabels[pc + k]); // no code of their own: nothing jumps to them
                    pc += chained - 1;
                    continue;
                }
                if (TryEmitVerdict(pc)) continue;
                if (TryEmitDropAsFlag(pc, out bool jaLeftOut))
                {
                    if (jaLeftOut)
                    {
                        Bind(ref _pcLabels[pc + 1]); // no code of its own: nothing runs or lands there
                        pc++;
                    }
                    continue;
                }
                if (TryEmitSelect(pc))
                {
                    pc++;
                    continue;
                }
                if (code[pc].Off == pc + 2 && pc + 2 < code.Length
                    && code[pc + 1].Op == Op.Ja && !_countInstructions && !_program.PollPoints[pc + 1] && !_polls[pc + 1] && !IsJumpTarget(pc + 1))
                {
                    // "if (c) goto next; goto T" (classic BPF translations are full of them): "if (!c) goto T".
                    EmitConditionalJump(pc, code[pc], invertedTo: code[pc + 1].Off);
                    Bind(ref _pcLabels[pc + 1]);
                    pc++;
                    continue;
                }
            }
            var group = _groups != null && _groups[pc].Count > 1 ? _groups[pc] : NoGroup;
            if (group.Count > 1)
            {
                EmitFusedGroup(pc, group);
                pc += group.Count - 1;
                continue;
            }
            EmitInstruction(pc, code[pc]);
        }

        // Exits; rsp comes back from r12 because an exit can come from inside local calls (unwind helper).
        // A lean program returns from each exit itself (past 16 of them, through the shared one) and
        // never leaves through the frame or the error exit: it has no frame. Their labels stay unbound,
        // so a jump to one would fail the compile rather than run.
        if (!_lean || _inlineExits > 16)
        {
            Bind(ref _exitWithResult);
            EmitExitWithResult(inline: false);
        }
        if (!_lean)
        {
            // The exits through the frame (the shared one above falls into _leave), the error exit and
            // the local calls' return: a lean program has none of them.
            Bind(ref _leave);
            _a.mov(rsp, r12);
            _a.add(rsp, _frameSize);
            for (int k = _saved.Length - 1; k >= 0; k--) _a.pop(_saved[k]);
            _a.ret();
            // A failure (status in eax): the runtime turns the context into the error before the frame goes.
            Bind(ref _errorExit);
            if (_batchIndex is { } batchIndex)
            {
                // A failed run of a batch: the index of the input goes back to Done.
                var single = _a.CreateLabel();
                _a.cmp(CtxQ(JitContext.OffResultPtr), BatchMarker);
                _a.jne(single);
                _a.mov(r11, CtxQ(JitContext.OffBatch));
                _a.mov(__qword_ptr[r11 + JitBatch.OffDone], batchIndex);
                Bind(ref single);
            }
            _a.mov(rsp, r12);
            _a.mov(rdi, r12);
            _a.mov(esi, eax);
            CallOut((ulong)JitRuntime.FailFn, 2);
            _a.jmp(_leave);
            Bind(ref _ret);
            _a.ret();
        }
        if (_lowerStackUsed)
        {
            Bind(ref _lowerStack);
            EmitStackStartUpdate();
            _a.ret();
        }
        if (_batch) EmitBatch();
        for (int k = 0; k < _cold.Count; k++) // cold code may queue more cold code
        {
            var c = _cold[k];
            var label = c.Label;
            Bind(ref label);
            switch (c.Kind)
            {
                case ColdKind.Fail: Fail(c.A, (RbpfErrorCode)c.B); break;
                case ColdKind.FailArgument: FailArgument(c.A); break;
                case ColdKind.NullMemory: EmitNullMemory(c.To); break;
                case ColdKind.ZeroBytewise: ZeroBytewise(c.To); break;
                case ColdKind.StatusFailure: EmitStatusFailure(c.A); break;
                case ColdKind.HelperReported: EmitHelperReported(c.A, c.B, c.To); break;
                case ColdKind.PacketFault: EmitPacketFault(c.A, c.B); break;
                case ColdKind.Separately: EmitSeparately(c.A, c.B); break;
                case ColdKind.SunkEdge: EmitSunkEdge(c.A, c.To); break;
                case ColdKind.LeanNullMemory: EmitLeanNullMemory(c.To); break;
                case ColdKind.LeanFailure: EmitLeanArgumentFailure(); break;
                case ColdKind.Win64Adapter: EmitWin64Adapter((ulong)(uint)c.A | (ulong)(uint)c.B << 32); break;
                default: EmitSlowCheck(c.A, c.B); break;
            }
        }
        foreach (var access in _coldAccesses) EmitColdAccess(access);

        var bytes = _a.AssembleInPlace();
        var offsets = new int[code.Length];
        _a.LabelOffsets(_pcLabels.AsSpan(0, code.Length), offsets);
        for (int pc = 1; pc < code.Length; pc++)
            if (code[pc - 1].Op == Op.Lddw) offsets[pc] = -1;
        int main = _a.LabelOffset(_mainEntry);
        int batch = _batch ? _a.LabelOffset(_batchEntry) : -1;
        if (_scratch.IsLarge) t_scratch = null; // a thread keeps no large buffers
        _cold.Clear();
        _coldAccesses.Clear();
        return new Output(bytes, offsets, main, batch);
    }

    private X64Label _mainEntry;

    /// <summary>
    /// The end of a run with r0 in rax: stored where the caller asked, or handed to the batch loop.
    /// Exits without local calls carry a copy of their own (<paramref name="inline"/>: one jump
    /// fewer per run) while they are few; the shared one falls into <see cref="_leave"/>.
    /// </summary>
    private void EmitExitWithResult(bool inline)
    {
        if (inline && ++_inlineExits > 16)
        {
            _a.jmp(_exitWithResult);
            return;
        }
        if (_keep is { } keep)
        {
            // A drop passed over on the way (TryEmitDropAsFlag): the verdict is 0.
            _a.test(keep, keep);
            _a.cmov(4, rax, keep); // cmovz
        }
        if (_lean)
        {
            // No context: the result pointer is on the stack, above the saved registers' pushes.
            _a.pop(r10);
            _a.mov(__qword_ptr[r10], rax);
            for (int k = _saved.Length - 1; k >= 0; k--) _a.pop(_saved[k]);
            _a.xor(eax, eax);
            _a.ret();
            return;
        }
        _a.mov(r10, CtxQ(JitContext.OffResultPtr));
        if (_batch)
        {
            _a.cmp(r10, BatchMarker); // a batch's runs have no result pointer of their own
            _a.je(_batchNext);
        }
        _a.mov(__qword_ptr[r10], rax);
        _a.xor(eax, eax);
        if (inline) _a.jmp(_leave);
    }
    private int _inlineExits;
    private bool[]? _jumpTargets;

    /// <summary>
    /// Where a loop's head is placed: at the start of a 64-byte line (the arena places code 64-byte
    /// aligned), so a short loop does not straddle two. Unaligned, the same insertion-sort loop of
    /// clang's ran 1.3x or 1.85x native depending on the code before it.
    /// </summary>
    internal const int LoopAlignment = 64;

    /// <summary>
    /// Moves sunk out of a loop's path (<see cref="FindSinks"/>): per slot, <see cref="Sunk"/> for
    /// a move that runs on an edge instead, <see cref="SinkingJump"/> for the jump whose edge out of
    /// the loop runs them (a backward jump's fallthrough, a forward jump's target); null when none.
    /// </summary>
    private byte[]? _sinks;
    private const byte Sunk = 1, SinkingJump = 2;

    /// <summary>
    /// Partly dead moves, as clang leaves them in loops: <c>r8 = r7</c> before a loop's exit test,
    /// read only when the loop exits, written again on the way round. A move between the start of
    /// a block and the jump that ends it moves to the jump's edge out of the loop when nothing on
    /// the way reads or writes its destination or writes its source, and the edge that stays in
    /// the loop writes the destination before reading it. The loop edge is a backward jump's taken
    /// side (the moves then run on the fallthrough), or the fallthrough of a forward jump past the
    /// backward jump that closes the loop (they run on the way to the jump's target). Not with an
    /// instruction limit (it counts blocks) or blinding.
    /// </summary>
    private void FindSinks(DecodedInsn[] code, int[] blockStarts)
    {
        if (_countInstructions || Blind) return;
        for (int j = 1; j < code.Length; j++)
        {
            var jump = code[j];
            if (jump.Op is < Op.Jeq64Imm or > Op.Jsle32Reg || jump.Off < 0 || jump.Off >= code.Length || j + 1 >= code.Length) continue;
            int target = jump.Off;
            bool takenStays;
            if (target <= j) takenStays = true;
            else if (ClosedBefore(code, j, target)) takenStays = false;
            else continue;
            int stay = takenStays ? target : j + 1;
            bool byRegister = ((jump.Op - Op.Jeq64Imm) & 1) != 0;
            int read = 1 << jump.Dst | (byRegister ? 1 << jump.Src : 0), written = 0;
            List<int>? moves = null;
            for (int p = j - 1; p >= 0 && blockStarts[p + 1] == 0 && !(p > 0 && code[p - 1].Op == Op.Lddw); p--)
            {
                var i = code[p];
                // Straight-line instructions that cannot fault: what runs between a sunk move and
                // its jump may be seen by nothing but registers.
                if (!RegisterUse.Of(i, out int reads, out int writes) || i.Op is >= Op.LdxB and <= Op.StxDW
                    or (>= Op.Div64Imm and <= Op.Div32Reg) or (>= Op.Mod64Imm and <= Op.Mod32Reg) or >= Op.SDiv64Imm and <= Op.SMod32Reg or Op.Lddw)
                    break;
                int budget = 64;
                if (i.Op is Op.Mov64Reg or Op.Mov32Reg or Op.Mov64Imm or Op.Mov32Imm && i.Dst <= 9
                    && (writes & (read | written)) == 0 && (reads & written) == 0 && RegisterUse.DeadAt(code, i.Dst, stay, ref budget))
                {
                    _sinks ??= new byte[code.Length];
                    _sinks[p] = Sunk;
                    (moves ??= new List<int>()).Insert(0, p); // in program order
                }
                read |= reads;
                written |= writes;
            }
            if (moves == null) continue;
            _sinks![j] = SinkingJump;
            (_sunkMoves ??= new Dictionary<int, List<int>>())[j] = moves;
        }
    }

    /// <summary>The moves each sinking jump runs on its edge, in program order.</summary>
    private Dictionary<int, List<int>>? _sunkMoves;

    /// <summary>
    /// Whether a backward jump between <paramref name="j"/> and <paramref name="target"/> goes back
    /// to <paramref name="j"/> or before: a jump to the target leaves that loop. Looks 256 slots
    /// ahead at most (small loops are what this is for; the compile stays linear).
    /// </summary>
    private static bool ClosedBefore(DecodedInsn[] code, int j, int target)
    {
        for (int b = j + 1; b < target && b <= j + 256; b++)
            if ((code[b].Op is Op.Ja or (>= Op.Jeq64Imm and <= Op.Jsle32Reg)) && code[b].Off <= j) return true;
        return false;
    }

    /// <summary>A jump with moves sunk to one of its edges (<see cref="FindSinks"/>), which it runs there in their order.</summary>
    private void EmitSinkingJump(int j)
    {
        var code = _program.Code;
        int cond = EmitCompare(j, code[j]);
        var moves = _sunkMoves![j];
        if (code[j].Off <= j) // a back edge: the loop goes round on the taken side, leaves on the fallthrough
        {
            Jcc(cond, _pcLabels[code[j].Off]);
            foreach (int p in moves) EmitInstruction(p, code[p]);
        }
        else
        {
            var edge = _a.CreateLabel();
            Jcc(cond, edge);
            _cold.Add(new ColdCode(edge, ColdKind.SunkEdge, j, 0, _pcLabels[code[j].Off]));
        }
    }

    /// <summary>The taken edge of a forward jump out of a loop (<see cref="EmitSinkingJump"/>): the moves
    /// sunk onto it, then on to <paramref name="target"/>.</summary>
    private void EmitSunkEdge(int j, X64Label target)
    {
        var code = _program.Code;
        foreach (int p in _sunkMoves![j]) EmitInstruction(p, code[p]);
        _a.jmp(target);
    }

    /// <summary>
    /// The slots a backward jump lands on that nothing falls into (the slot before is a ja or an
    /// exit): the padding before them never runs. A head the code before falls into is left where it
    /// is: up to seven no-ops on the way into it every time cost clang's header parser (whose loop
    /// heads are fallen into once a frame) more than the alignment gave back.
    /// </summary>
    private static bool[] LoopHeads(DecodedInsn[] code, bool[] heads)
    {
        for (int pc = 0; pc < code.Length; pc++)
        {
            var i = code[pc];
            if ((i.Op is Op.Ja or (>= Op.Jeq64Imm and <= Op.Jsle32Reg)) && i.Off > 0 && i.Off <= pc && code[i.Off - 1].Op is Op.Ja or Op.Exit)
                heads[i.Off] = true;
        }
        return heads;
    }

    /// <summary>Whether a jump or a local call lands on slot <paramref name="pc"/>.</summary>
    private bool IsJumpTarget(int pc)
    {
        if (_jumpTargets == null)
        {
            var code = _program.Code;
            _jumpTargets = Rent(ref _scratch.JumpTargets, code.Length);
            foreach (var i in code)
                if ((i.Op is Op.Ja or Op.CallLocal or (>= Op.Jeq64Imm and <= Op.Jsle32Reg)) && i.Off >= 0 && i.Off < code.Length)
                    _jumpTargets[i.Off] = true;
        }
        return _jumpTargets[pc];
    }
    /// <summary>Whether the program makes local calls (without them, an exit always ends the run: depth is 0).</summary>
    private bool _hasLocalCalls => _program.HasLocalCalls;
    /// <summary>The callee-saved registers the entry saves, in push order.</summary>
    private ReadOnlySpan<Gpr64> _saved => _scratch.Saved.AsSpan(0, _savedCount);
    private int _savedCount;

    /// <summary>Adds a register to <see cref="_saved"/>.</summary>
    private void Save(Gpr64 r) => _scratch.Saved[_savedCount++] = r;

    /// <summary>
    /// Whether eBPF register <paramref name="r"/> may be read or written: named by any instruction,
    /// r0 always (exit reads it), r1-r5 when the program calls helpers (they are the arguments).
    /// </summary>
    private bool UsesRegister(int r) => (_program.UsedRegisters & (1 << r)) != 0;
    private int _frameSize;
    /// <summary>Bytes of eBPF stack the entry carves out of its frame (when the caller brings none).</summary>
    private int _stackSize;
    /// <summary>Bit <c>size</c> set for every access size whose packet and stack bounds the checks read (<see cref="BoundSizes"/>).</summary>
    private int _boundSizes;
    /// <summary>The fused groups <see cref="BoundSizes"/> found, by first slot (Count 0 elsewhere); null when none.</summary>
    private FusedGroup[]? _groups;

    /// <summary>
    /// The access sizes the code's checks compare against a bound: every checked access, the span
    /// of every fused group, legacy packet loads. The entry computes only those bounds.
    /// </summary>
    private int BoundSizes(int[] blockStarts)
    {
        var code = _program.Code;
        int mask = 0;
        for (int pc = 0; pc < code.Length; pc++)
        {
            var i = code[pc];
            if (i.Op is < Op.LdAbsB or > Op.Atomic64) continue; // no access: nothing to bound
            if (i.Op is >= Op.LdAbsB and <= Op.LdIndDW) mask |= 1 << (1 << (i.Op - (i.Op >= Op.LdIndB ? Op.LdIndB : Op.LdAbsB)));
            if (!_options.CheckedMemory || !NeedsCheck(pc)) continue;
            // As Run meets them: a group's span, and each access's own size (its out-of-line path).
            var group = FusableGroup(code, blockStarts, pc);
            for (int k = pc; k < pc + group.Count; k++) mask |= 1 << JitTarget.AccessSize(code[k].Op);
            if (group.Count > 1)
            {
                (_groups ??= new FusedGroup[code.Length])[pc] = group; // Run emits it as found here
                int width = group.Max - group.Min;
                mask |= 1 << (width <= 1 ? 1 : width <= 2 ? 2 : width <= 4 ? 4 : 8);
                pc += group.Count - 1;
            }
        }
        return mask;
    }
    private int _currentPc;


    /// <summary>A frame partly below the stack's bottom: zeroes from r10 (the frame pointer) down to the bottom, byte
    /// by byte, then goes on at <paramref name="zeroed"/> (out of line, from <see cref="ZeroBelowFramePointer"/>).</summary>
    private void ZeroBytewise(X64Label zeroed)
    {
        var loop = _a.CreateLabel();
        _a.mov(r10, rbp);
        Bind(ref loop);
        _a.cmp(r10, CtxQ(JitContext.OffStackBottom));
        _a.jbe(zeroed);
        _a.dec(r10);
        _a.mov(__byte_ptr[r10], 0);
        _a.jmp(loop);
    }

    /// <summary>Zeroes the bytes of the current frame the program can read (<see cref="DecodedProgram.StackReach"/>).</summary>
    private void ZeroBelowFramePointer()
    {
        if (_program.StackReach == 0) return;
        var zeroed = _a.CreateLabel();
        if (!_target.FullFrames)
        {
            // Frames may be partly outside the stack: never zero below its bottom (byte by byte, rarely).
            var near = _a.CreateLabel();
            _a.lea(r10, __[rbp - _program.StackReach]);
            _a.cmp(r10, CtxQ(JitContext.OffStackBottom));
            _a.jb(near);
            _cold.Add(new ColdCode(near, ColdKind.ZeroBytewise, 0, 0, zeroed));
        }
        _a.pxor(xmm0, xmm0);
        for (int off = -_program.StackReach; off < 0; off += 16) _a.movdqu(__xmmword_ptr[rbp + off], xmm0);
        Bind(ref zeroed);
    }

    /// <summary>
    /// Makes r10 (a new lowest stack address, 512 bytes below the deepest frame pointer) the start of
    /// the stack region when it is lower than the current start, clamped to the stack's bottom, and
    /// recomputes the per-size bounds. Clobbers r10 and r11.
    /// </summary>
    private void EmitLowerStackStart(bool shared = false)
    {
        var known = _a.CreateLabel();
        if (!_target.FullFrames)
        {
            _a.cmp(r10, CtxQ(JitContext.OffStackBottom));
            _a.cmovb(r10, CtxQ(JitContext.OffStackBottom));
        }
        _a.cmp(r10, CtxQ(JitContext.OffStackStart));
        _a.jae(known);
        if (shared)
        {
            // Rare (a frame deeper than any before): one copy of the update for every call site.
            if (!_lowerStackUsed) (_lowerStack, _lowerStackUsed) = (_a.CreateLabel(), true);
            _a.call(_lowerStack);
        }
        else EmitStackStartUpdate();
        Bind(ref known);
    }

    /// <summary>The local calls' shared update of the stack region (<see cref="EmitLowerStackStart"/>), called with the new start in r10.</summary>
    private X64Label _lowerStack;
    private bool _lowerStackUsed;

    /// <summary>r10 is the stack region's new start: stores it and the per-size bounds. Clobbers r10 and r11.</summary>
    private void EmitStackStartUpdate()
    {
        _a.mov(CtxQ(JitContext.OffStackStart), r10);
        _a.mov(r11, CtxQ(JitContext.OffStackTop));
        _a.sub(r11, r10);
        foreach (int size in (ReadOnlySpan<int>)[1, 2, 4, 8])
        {
            _a.lea(r10, __[r11 - (size - 1)]);
            _a.mov(CtxQ(JitContext.OffStackBound + 8 * JitContext.BoundIndex(size)), r10);
        }
    }

    /// <summary>
    /// The entry points. At offset 0, <c>int run(void *mem, size_t mem_len, void *mbuff, size_t
    /// mbuff_len, uint64_t *result)</c>, callable from C; it clears r9 and falls into the main entry,
    /// which takes a <see cref="JitExtra"/>* in r9 (NULL: none). The main entry saves the callee-saved
    /// registers and builds everything in its own frame: the context, the fixed metadata buffer, and
    /// the 4 KiB stack (unless the caller brings one); checks the arguments; zeroes what the program
    /// can read of its first frame; and sets r1 and r2 as the VM's kind says.
    /// </summary>
    private void EmitEntry()
    {
        if (_lean)
        {
            EmitLeanEntry();
            return;
        }
        // rbp (r10) and r12 (the context) always; r6-r9's registers only if the program uses them.
        _savedCount = 0;
        Save(rbp);
        Save(r12);
        for (int r = 6; r <= 9; r++)
            if (UsesRegister(r)) Save(R64[r]);
        // The batch loop keeps its index in the register of an eBPF register the program never
        // names (callee-saved, so helpers and local calls keep it): saved by every entry, as they share the exit.
        // A second one keeps the array of inputs (or of lengths) at hand.
        Span<int> unnamed = stackalloc int[4];
        int unnamedCount = 0;
        for (int r = 6; r <= 9; r++)
            if (!UsesRegister(r)) unnamed[unnamedCount++] = r;
        if (_dropsAsFlag)
        {
            // The "not dropped" flag (see TryEmitDropAsFlag) takes the last unnamed register.
            Save((_keep = R64[unnamed[--unnamedCount]]).Value);
        }
        if (_batch && unnamedCount >= 1) Save((_batchIndex = R64[unnamed[0]]).Value);
        if (_batch && unnamedCount >= 2) Save((_batchBase = R64[unnamed[1]]).Value);
        // Entered with rsp = 8 (mod 16); after the pushes the frame must bring it to 0 (mod 16) to align r12.
        // The caller's stack or this frame's: one 512-byte frame when there are no local calls (and
        // frames are whole), else the stack for every call depth.
        _stackSize = _target.FullFrames && !_hasLocalCalls ? Isa.StackFrameSize : Isa.StackSize;
        _frameSize = JitContext.Size + FixedBytes + _stackSize + (_saved.Length % 2 == 0 ? 8 : 0);
        _mainEntry = _a.CreateLabel();
        if (_win64) EmitWin64Entries();
        else
        {
            _a.xor(r9d, r9d);
            Bind(ref _mainEntry);
        }
        EmitPrologue(batch: false);
        _a.mov(CtxQ(JitContext.OffResultPtr), r8);
        // Arguments a batch never passes: a result pointer, no metadata buffer pointer without one
        // (and none at all for kinds without it). mem and mem_len are checked for each run.
        var badResult = _a.CreateLabel();
        var badMbuff = _a.CreateLabel();
        var mbuffOk = _a.CreateLabel();
        _a.cmp(r8, BatchMarker); // NULL, or the batch marker (never a pointer) a batch's exits look for
        _a.jbe(badResult);
        _a.test(rdx, rdx);
        _a.jnz(mbuffOk);
        _a.test(rcx, rcx);
        _a.jnz(badMbuff);
        Bind(ref mbuffOk);
        ColdFailArgument(badResult, JitRuntime.BadResult);
        ColdFailArgument(badMbuff, JitRuntime.BadMbuff);
        if (_target.Kind != VmKind.Mbuff)
        {
            var unusedMbuff = _a.CreateLabel();
            _a.test(rcx, rcx);
            _a.jnz(unusedMbuff);
            ColdFailArgument(unusedMbuff, JitRuntime.UnusedMbuff);
        }
        EmitCallSetup();
        EmitRunSetup();
    }

    /// <summary>Whether the program runs with the lean entry (<see cref="CanRunLean"/>).</summary>
    private bool _lean;
    /// <summary>A lean program's lddw tails, bound to the trap at its trailing slot (see <see cref="Fail"/>).</summary>
    private List<int>? _leanTraps;

    /// <summary>
    /// Whether the program can run without a context or a frame: a raw or no-data VM's program (System V,
    /// single runs) that cannot fail once its arguments are good and needs nothing but its registers:
    /// no memory access left to check, no stack (r10 unnamed), no calls, packet loads or atomics, no
    /// interrupt polls, no instruction limit, no illegal slot but the trailing one, which nothing
    /// reaches. Most classic BPF filters are such programs; their per-call cost is the entry's.
    /// </summary>
    private bool CanRunLean()
    {
        var code = _program.Code;
        if (_win64 || _batch || _countInstructions || _hasLocalCalls || _target.Kind is not (VmKind.Raw or VmKind.NoData)) return false;
        if (_options.CheckedMemory && _anyCheck || UsesRegister(10)) return false;
        if (_options.Interruptible && Array.IndexOf(_polls, true) >= 0) return false;
        int n = code.Length;
        for (int pc = 0; pc < n - 1; pc++)
        {
            var i = code[pc];
            if (pc > 0 && code[pc - 1].Op == Op.Lddw) continue;
            if (i.Op is Op.Call or Op.CallX or Op.CallLocal or Op.Illegal or (>= Op.LdAbsB and <= Op.LdIndDW) or (Op.Atomic32 or Op.Atomic64))
                return false;
            if (i.Op is Op.Ja or (>= Op.Jeq64Imm and <= Op.Jsle32Reg)
                && (i.Off >= n - 1 || i.Off > 0 && code[i.Off - 1].Op == Op.Lddw)) // to the trailing slot, or into an lddw
                return false;
        }
        // Nothing falls into the trailing illegal slot.
        int last = n - 2;
        if (last >= 1 && code[last - 1].Op == Op.Lddw) return false;
        return last >= 0 && code[last].Op is Op.Exit or Op.Ja;
    }

    /// <summary>
    /// The entry of a lean program (<see cref="CanRunLean"/>), at offset 0 for both entries (the
    /// <see cref="JitExtra"/> in r9 brings only a stack and a fixed buffer, which it does not use): the
    /// arguments checked inline, the result pointer pushed, the callee-saved registers the program
    /// names saved, registers cleared; r1 and r2 are rdi and rsi already. Bad arguments go to the
    /// runtime (<see cref="EmitLeanArgumentFailure"/>), which reports them as the full entry does.
    /// </summary>
    private void EmitLeanEntry()
    {
        _savedCount = 0;
        for (int r = 6; r <= 9; r++)
            if (UsesRegister(r)) Save(R64[r]);
        if (_dropsAsFlag)
            for (int r = 9; r >= 6; r--)
                if (!UsesRegister(r))
                {
                    Save((_keep = R64[r]).Value);
                    break;
                }
        _mainEntry = _a.CreateLabel();
        Bind(ref _mainEntry);
        var slow = _a.CreateLabel();
        var nullMem = _a.CreateLabel();
        var memOk = _a.CreateLabel();
        _a.cmp(r8, BatchMarker); // the result pointer: NULL (or the batch marker) is refused
        _a.jbe(slow);
        _a.test(rcx, rcx); // a raw VM takes no metadata buffer
        _a.jnz(slow);
        if (_target.Kind == VmKind.NoData)
        {
            _a.test(rsi, rsi); // no input either; r1 and r2 are 0
            _a.jnz(slow);
        }
        else
        {
            _a.test(rdi, rdi);
            _a.jz(nullMem);
            Bind(ref memOk);
            _cold.Add(new ColdCode(nullMem, ColdKind.LeanNullMemory, 0, 0, memOk));
        }
        _leanSlow = slow;
        _cold.Add(new ColdCode(slow, ColdKind.LeanFailure, 0, 0));
        foreach (var r in _saved) _a.push(r);
        _a.push(r8);
        if (_target.Kind == VmKind.NoData && UsesRegister(1)) _a.xor(edi, edi);
        EmitRegisterStart();
    }

    /// <summary>A lean program's NULL input (<see cref="EmitLeanEntry"/>): good with a length of 0, back
    /// to <paramref name="memOk"/>; else the slow path.</summary>
    private void EmitLeanNullMemory(X64Label memOk)
    {
        _a.test(rsi, rsi);
        _a.jnz(_leanSlow);
        _a.jmp(memOk);
    }

    /// <summary>
    /// A lean program's bad arguments: a jump to the runtime (<see cref="JitRuntime.LeanFailFn"/>) with the
    /// entry's own arguments and the program's link in front of them. Nothing is pushed yet when the
    /// checks come here, so the runtime's return goes straight to the entry's caller with the status.
    /// The runtime finds the bad argument in the full entry's order and reports it as the full entry would.
    /// </summary>
    private void EmitLeanArgumentFailure()
    {
        _a.mov(r9, r8);   // result
        _a.mov(r8, rcx);  // mbuff_len
        _a.mov(rcx, rdx); // mbuff
        _a.mov(rdx, rsi); // mem_len
        _a.mov(rsi, rdi); // mem
        _a.mov(rdi, (ulong)_target.Link);
        _a.mov(rax, (ulong)(_target.Kind == VmKind.NoData ? JitRuntime.LeanFailNoDataFn : JitRuntime.LeanFailFn));
        _a.jmp(rax);
    }

    /// <summary>Bytes of the frame for a fixed metadata buffer built inline (up to <see cref="JitTarget.InlineFixedLimit"/>, 16-byte aligned); 0 when none, or when the caller brings it.</summary>
    private int FixedBytes => _target.FixedLength is > 0 and var n && n <= JitTarget.InlineFixedLimit ? (n + 15) & ~15 : 0;

    /// <summary>
    /// Whether the stack region stays as the entry set it for every run: whole frames and no local
    /// calls (which lower the region's start and move r10); then a batch sets it up once.
    /// </summary>
    private bool StackFixedPerCall => _target.FullFrames && !_hasLocalCalls;

    /// <summary>
    /// The part of the setup that is the same for every run of a call (once per batch): the status,
    /// the stack region when <see cref="StackFixedPerCall"/>, an empty metadata region for kinds
    /// without one. Reads the <see cref="JitExtra"/>* in r9.
    /// </summary>
    private void EmitCallSetup()
    {
        _a.mov(CtxQ(JitContext.OffStatus), 0); // Status and Depth (an exit leaves the depth at 0 without local calls)
        if (StackFixedPerCall) EmitStackSetup();
        // Kinds without a metadata buffer get an empty region at 0: the runtime's slow checks list
        // every region, so none may be left as stack garbage.
        if (_target.Kind is VmKind.Raw or VmKind.NoData)
        {
            _a.mov(CtxQ(JitContext.OffMetaStart), 0);
            _a.mov(CtxQ(JitContext.OffMetaLength), 0);
        }
    }

    /// <summary>The stack: the caller's (<see cref="JitExtra"/>* in r9), or the top of this frame. Clobbers r10 and r11.</summary>
    private void EmitStackSetup()
    {
        bool checks = _options.CheckedMemory && _anyCheck;
        var ownStack = _a.CreateLabel();
        var stackDone = _a.CreateLabel();
        LoadExtra(JitExtra.OffStackTop, ownStack);
        _a.mov(rbp, r10);
        _a.mov(r10, __qword_ptr[r9 + JitExtra.OffStackBottom]);
        _a.jmp(stackDone);
        Bind(ref ownStack);
        _a.lea(r10, __[r12 + (JitContext.Size + FixedBytes)]);
        _a.lea(rbp, __[r10 + _stackSize]);
        Bind(ref stackDone);
        _a.mov(CtxQ(JitContext.OffStackBottom), r10);
        _a.mov(CtxQ(JitContext.OffStackTop), rbp);
        if (_target.FullFrames)
        {
            _a.lea(r10, __[rbp - Isa.StackFrameSize]);
            _a.mov(CtxQ(JitContext.OffStackStart), r10);
            if (checks)
            {
                foreach (int size in (ReadOnlySpan<int>)[1, 2, 4, 8])
                    if ((_boundSizes & 1 << size) != 0)
                        _a.mov(CtxQ(JitContext.OffStackBound + 8 * JitContext.BoundIndex(size)), Isa.StackFrameSize - size + 1);
            }
        }
        else
        {
            // The region starts empty at the top and grows to 512 bytes below r10, within the stack.
            _a.mov(CtxQ(JitContext.OffStackStart), rbp);
            _a.lea(r10, __[rbp - Isa.StackFrameSize]);
            EmitLowerStackStart();
        }
    }

    /// <summary>
    /// What every entry does once: saves the callee-saved registers, carves the frame (the context
    /// at r12, then the fixed metadata buffer and the stack), and stores what stays the same for
    /// every run of a batch (the link, the interrupt word as the call begins).
    /// </summary>
    private void EmitPrologue(bool batch)
    {
        foreach (var r in _saved) _a.push(r);
        // Page by page, so a guard page below the thread's stack is always hit first (a frame under
        // a page needs no probe, as compilers do).
        if (_frameSize < 4096) _a.sub(rsp, _frameSize);
        else
            for (int left = _frameSize; left > 0; left -= 4096)
            {
                _a.sub(rsp, Math.Min(left, 4096));
                _a.test(__dword_ptr[rsp], esp);
            }
        _a.mov(r12, rsp);
        _a.mov(r10, (ulong)_target.Link);
        _a.mov(CtxQ(JitContext.OffLink), r10);
        if (_options.Interruptible && (batch || Array.IndexOf(_polls, true) >= 0))
        {
            // The interrupt word as the call begins: an interrupt is a change of it from here on.
            _a.mov(r11, (long)_target.InterruptWord);
            _a.mov(r11d, __dword_ptr[r11]);
            _a.mov(CtxD(JitContext.OffInterruptEpoch), r11d);
        }
    }

    /// <summary>
    /// What every run does before the program's first instruction, with mem, mem_len, mbuff and
    /// mbuff_len in rdi, rsi, rdx, rcx and the <see cref="JitExtra"/>* (or NULL) in r9: checks the
    /// arguments, computes the packet bounds, sets up the stack and the metadata, r1, r2 and the
    /// registers the program names. The batch loop jumps here for each input (<see cref="_runSetup"/>).
    /// </summary>
    private void EmitRunSetup()
    {
        int fixedLength = _target.FixedLength;
        Bind(ref _runSetup);
        if (NeedsPacketFields)
        {
            _a.mov(CtxQ(JitContext.OffPacketStart), rdi);
            _a.mov(CtxQ(JitContext.OffPacketLength), rsi);
        }
        if (_countInstructions)
        {
            _a.mov(r10, (ulong)_target.Link);
            _a.mov(r11, __qword_ptr[r10 + JitLink.OffBudget]);
            _a.mov(CtxQ(JitContext.OffBudget), r11);
        }
        if (_hasLocalCalls) _a.mov(CtxD(JitContext.OffDepth), 0); // an unwinding helper can end a run inside a call
        _a.xor(r11d, r11d);

        // mem: NULL only with a length of 0.
        var nullMem = _a.CreateLabel();
        var memOk = _a.CreateLabel();
        _a.test(rdi, rdi);
        _a.jz(nullMem);
        Bind(ref memOk);
        _cold.Add(new ColdCode(nullMem, ColdKind.NullMemory, 0, 0, memOk));
        // Input a kind does not use is refused, not ignored.
        if (_target.Kind == VmKind.NoData)
        {
            var unusedMem = _a.CreateLabel();
            _a.test(rsi, rsi);
            _a.jnz(unusedMem);
            ColdFailArgument(unusedMem, JitRuntime.UnusedMem);
        }

        // Packet bounds per access size: len - size + 1, or 0 when it does not fit at all (only
        // for programs that have checks or legacy packet loads to use them).
        if ((_boundSizes & 1 << 1) != 0) _a.mov(CtxQ(JitContext.OffPacketBound), rsi);
        foreach (int size in (ReadOnlySpan<int>)[2, 4, 8])
        {
            if ((_boundSizes & 1 << size) == 0) continue;
            _a.mov(r10, rsi);
            _a.sub(r10, size - 1);
            _a.cmovb(r10, r11);
            _a.mov(CtxQ(JitContext.OffPacketBound + 8 * JitContext.BoundIndex(size)), r10);
        }

        if (!StackFixedPerCall) EmitStackSetup();
        ZeroBelowFramePointer();

        // r1 and r2 (and the metadata region) by kind (raw and no-data VMs have theirs from EmitCallSetup).
        switch (_target.Kind)
        {
            case VmKind.NoData:
                _a.xor(edi, edi);
                _a.xor(esi, esi);
                break;
            case VmKind.Raw:
                break;
            case VmKind.Mbuff:
                // As rbpf: without a metadata buffer, r1 and r2 describe the packet itself.
                _a.mov(CtxQ(JitContext.OffMetaStart), rdx);
                _a.mov(CtxQ(JitContext.OffMetaLength), rcx);
                _a.test(rcx, rcx);
                _a.cmovnz(rdi, rdx);
                _a.cmovnz(rsi, rcx);
                break;
            default:
            {
                if (FixedBytes > 0)
                {
                    _a.lea(r10, __[r12 + JitContext.Size]);
                    _a.pxor(xmm0, xmm0);
                    for (int off = 0; off < FixedBytes; off += 16) _a.movdqu(__xmmword_ptr[r10 + off], xmm0);
                }
                else
                {
                    var noBuffer = _a.CreateLabel();
                    LoadExtra(JitExtra.OffFixedBuffer, noBuffer);
                    ColdFailArgument(noBuffer, JitRuntime.NoFixedBuffer);
                    _a.mov(r11, rdi);
                    _a.mov(rdi, r10);
                    _a.mov(ecx, fixedLength);
                    _a.xor(eax, eax);
                    _a.rep.stosb();
                    _a.mov(rdi, r11);
                }
                _a.mov(__qword_ptr[r10 + _target.DataOffset], rdi);
                _a.lea(r11, __[rdi + rsi]);
                _a.mov(__qword_ptr[r10 + _target.DataEndOffset], r11);
                _a.mov(CtxQ(JitContext.OffMetaStart), r10);
                _a.mov(CtxQ(JitContext.OffMetaLength), fixedLength);
                _a.mov(rdi, r10);
                _a.mov(esi, fixedLength);
                break;
            }
        }
        EmitRegisterStart();
    }

    /// <summary>
    /// Registers start at 0, as in the interpreter (one the program never names cannot be read, one
    /// it sets first need not be cleared), and the drop flag at 1; r1, r2 and r10 are the entry's.
    /// </summary>
    private void EmitRegisterStart()
    {
        if (_keep is { } keep) _a.mov(new Gpr32(keep.N), 1);
        // The registers a run starts with at 0 that the program may read: r1, r2 and r10 come from
        // the arguments and the stack, and one the first instructions set or every path writes
        // first needs nothing (64 slots of walk for each register asked about).
        int clear = ClearedAtStart & _program.UsedRegisters & ~SetBeforeRead();
        int budget = 64 * System.Numerics.BitOperations.PopCount((uint)clear);
        clear &= ~RegisterUse.DeadOf(_program.Code, clear, 0, ref budget);
        for (int r = 0; r <= 9; r++)
            if ((clear & 1 << r) != 0) _a.xor(R32[r], R32[r]);
    }

    /// <summary>The eBPF registers a run starts with at 0 (r1, r2 and r10 come from the arguments and the stack).</summary>
    private const int ClearedAtStart = 0b11_1111_1001;

    /// <summary>
    /// The registers the program's first instructions set to a constant before anything can read
    /// them (a straight run of immediate moves from slot 0; classic BPF translations start by
    /// clearing A and X): the entry need not zero them.
    /// </summary>
    private int SetBeforeRead()
    {
        var code = _program.Code;
        int mask = 0;
        // Up to the first block start after slot 0 (a jump target starts a block; the moves end none).
        for (int pc = 0; pc < code.Length && (pc == 0 || code[pc].Charge == 0); pc++)
        {
            if (code[pc].Op is not (Op.Mov32Imm or Op.Mov64Imm) || code[pc].Dst > 9) break;
            mask |= 1 << code[pc].Dst;
        }
        return mask;
    }

    /// <summary>
    /// Whether anything reads the input's start and length from the context: checked accesses
    /// (and their out-of-line paths), helpers, legacy packet loads. Else a run does not store them.
    /// </summary>
    private bool NeedsPacketFields => _needsPacketFields ??= FindPacketFieldReaders();
    private bool? _needsPacketFields;

    private bool FindPacketFieldReaders()
    {
        var code = _program.Code;
        for (int pc = 0; pc < code.Length; pc++)
            if (_options.CheckedMemory && NeedsCheck(pc)
                || code[pc].Op is Op.Call or Op.CallX or (>= Op.LdAbsB and <= Op.LdIndDW) or (Op.Atomic32 or Op.Atomic64))
                return true;
        return false;
    }

    /// <summary>
    /// The batch entry, <c>int batch(JitBatch *batch)</c> (System V): one prologue, then a run per
    /// input through the same setup and body as a single call, each exit coming back here (the
    /// context's result pointer is NULL) to store or count r0 and take the next input. Returns 0
    /// when every input has run, or the first failure's status with <see cref="JitBatch.Done"/> at
    /// its index. Between runs it polls the interrupt word, so a batch of loop-free runs can be
    /// interrupted too.
    /// </summary>
    private void EmitBatch()
    {
        var fetch = _a.CreateLabel();
        var packed = _a.CreateLabel();
        var fetched = _a.CreateLabel();
        var count = _a.CreateLabel();
        var stored = _a.CreateLabel();
        var finished = _a.CreateLabel();
        Bind(ref _batchEntry);
        EmitPrologue(batch: true);
        _a.mov(CtxQ(JitContext.OffResultPtr), BatchMarker);
        _a.mov(CtxQ(JitContext.OffBatch), rdi);
        _a.xor(r9d, r9d); // no JitExtra: the frame's own stack
        EmitCallSetup();
        // The index: in a register when one is free (the next input's address does not wait for a
        // store and a load of it), always written back to Done for the caller.
        var index = _batchIndex ?? r10;
        _a.mov(r11, CtxQ(JitContext.OffBatch));
        _a.mov(index, __qword_ptr[r11 + JitBatch.OffDone]);
        if (_batchBase is { } b)
        {
            var hasBuffers = _a.CreateLabel();
            _a.mov(b, __qword_ptr[r11 + JitBatch.OffBuffers]);
            _a.test(b, b);
            _a.jnz(hasBuffers);
            _a.mov(b, __qword_ptr[r11 + JitBatch.OffLengths]);
            Bind(ref hasBuffers);
        }
        _a.jmp(fetch);

        // A run ended with r0 in rax (the stack pointer may be anywhere below the context).
        Bind(ref _batchNext);
        if (_hasLocalCalls) _a.mov(rsp, r12); // an unwinding helper can end a run inside a call
        _a.mov(r11, CtxQ(JitContext.OffBatch));
        if (_batchIndex == null) _a.mov(index, __qword_ptr[r11 + JitBatch.OffDone]);
        _a.mov(rcx, __qword_ptr[r11 + JitBatch.OffResults]);
        _a.test(rcx, rcx);
        _a.jz(count);
        _a.mov(__qword_ptr[rcx + index * 8], rax);
        Bind(ref stored);
        _a.inc(index);
        // In memory the index is Done itself; in a register it goes back to Done when the batch ends or fails.
        if (_batchIndex == null) _a.mov(__qword_ptr[r11 + JitBatch.OffDone], index);
        Bind(ref fetch);
        _a.cmp(index, __qword_ptr[r11 + JitBatch.OffCount]);
        _a.jae(finished);
        if (_options.Interruptible)
        {
            var stop = _a.CreateLabel();
            _a.mov(rcx, (long)_target.InterruptWord);
            _a.mov(ecx, __dword_ptr[rcx]);
            _a.cmp(ecx, CtxD(JitContext.OffInterruptEpoch));
            _a.jne(stop);
            ColdFail(stop, 0, RbpfErrorCode.Interrupted);
        }
        var inputs = _batchBase ?? rcx;
        if (_batchBase != null) _a.cmp(__qword_ptr[r11 + JitBatch.OffBuffers], 0);
        else
        {
            _a.mov(rcx, __qword_ptr[r11 + JitBatch.OffBuffers]);
            _a.test(rcx, rcx);
        }
        _a.jz(packed);
        _a.mov(r10, index);
        _a.shl(r10, 4);
        _a.mov(rdi, __qword_ptr[inputs + r10]);
        _a.mov(rsi, __qword_ptr[inputs + r10 + 8]);
        Bind(ref fetched);
        if (_target.Kind == VmKind.Mbuff)
        {
            _a.xor(edx, edx); // no metadata buffer: r1 and r2 describe the input
            _a.xor(ecx, ecx);
        }
        if (!StackFixedPerCall) _a.xor(r9d, r9d);
        _a.jmp(_runSetup);

        Bind(ref packed);
        if (_batchBase == null) _a.mov(rcx, __qword_ptr[r11 + JitBatch.OffLengths]);
        _a.mov(rsi, __qword_ptr[inputs + index * 8]);
        _a.mov(rdi, __qword_ptr[r11 + JitBatch.OffPacked]);
        _a.lea(rcx, __[rdi + rsi]);
        _a.mov(__qword_ptr[r11 + JitBatch.OffPacked], rcx);
        _a.jmp(fetched);

        // counts[min(r0, ncounts - 1)] += 1
        Bind(ref count);
        _a.mov(rcx, __qword_ptr[r11 + JitBatch.OffNCounts]);
        _a.dec(rcx);
        _a.cmp(rax, rcx);
        _a.cmova(rax, rcx);
        _a.mov(rcx, __qword_ptr[r11 + JitBatch.OffCounts]);
        _a.inc(__qword_ptr[rcx + rax * 8]);
        _a.jmp(stored);

        Bind(ref finished);
        if (_batchIndex != null) _a.mov(__qword_ptr[r11 + JitBatch.OffDone], index);
        _a.xor(eax, eax);
        _a.jmp(_leave);
    }

    /// <summary>The result pointer of a batch's context: not a pointer (the single entries refuse NULL, and 1 is never one).</summary>
    internal const int BatchMarker = 1;

    /// <summary>
    /// The entries under the Microsoft convention: at offset 0 the five-argument one, then the main
    /// one with the <see cref="JitExtra"/>* as sixth argument; each keeps rdi and rsi (callee-saved
    /// there), moves the arguments where the System V body expects them and calls the body, which
    /// follows right after. Emulated, each is reached through an adapter from System V.
    /// </summary>
    private void EmitWin64Entries()
    {
        var direct = _a.CreateLabel();
        var main = _a.CreateLabel();
        var body = _a.CreateLabel();
        if (_emulated)
        {
            SysVToWin64(direct);
            Bind(ref _mainEntry);
            SysVToWin64(main);
        }
        Bind(ref direct);
        EnterFromWin64(sixth: false); // the JitExtra* is NULL
        _a.call(body);
        LeaveToWin64();
        if (_emulated) Bind(ref main);
        else Bind(ref _mainEntry);
        EnterFromWin64(sixth: true);
        _a.call(body);
        LeaveToWin64();
        Bind(ref body);
    }

    /// <summary>
    /// A function called the Microsoft way, first half: keeps rdi and rsi and moves the arguments
    /// where System V puts them (the sixth from the stack, or 0 without <paramref name="sixth"/>),
    /// rsp 16-byte aligned for the call that follows; <see cref="LeaveToWin64"/> returns its result.
    /// </summary>
    private void EnterFromWin64(bool sixth)
    {
        _a.push(rdi); _a.push(rsi);
        _a.sub(rsp, 8); // entered at 8 (mod 16): 24 bytes down, aligned for the call
        _a.mov(rdi, rcx);
        _a.mov(rsi, rdx);
        _a.mov(rdx, r8);
        _a.mov(rcx, r9);
        _a.mov(r8, __qword_ptr[rsp + 24 + 40]);
        if (sixth) _a.mov(r9, __qword_ptr[rsp + 24 + 48]);
        else _a.xor(r9d, r9d);
    }

    /// <summary>The second half of <see cref="EnterFromWin64"/>, after its call.</summary>
    private void LeaveToWin64()
    {
        _a.add(rsp, 8);
        _a.pop(rsi); _a.pop(rdi);
        _a.ret();
    }

    /// <summary>
    /// Moves <paramref name="argc"/> arguments from where System V puts them (rdi, rsi, rdx, rcx,
    /// r8, r9) to where the Microsoft convention wants them (rcx, rdx, r8, r9, [rsp+32], [rsp+40]),
    /// the space at rsp already reserved.
    /// </summary>
    private void ToWin64(int argc)
    {
        if (argc >= 6) _a.mov(__qword_ptr[rsp + 40], r9);
        if (argc >= 5) _a.mov(__qword_ptr[rsp + 32], r8);
        if (argc >= 4) _a.mov(r9, rcx);
        if (argc >= 3) _a.mov(r8, rdx);
        if (argc >= 2) _a.mov(rdx, rsi);
        _a.mov(rcx, rdi);
    }

    /// <summary>Emulation only: called the System V way with up to six arguments, calls <paramref name="win64"/> the Microsoft way.</summary>
    private void SysVToWin64(X64Label win64)
    {
        _a.sub(rsp, 56); // entered at 8 (mod 16): shadow space and two stack arguments, aligned
        ToWin64(6);
        _a.call(win64);
        _a.add(rsp, 56);
        _a.ret();
    }

    /// <summary>r10 = the <see cref="JitExtra"/> field at <paramref name="offset"/>; to <paramref name="missing"/>
    /// when there is no JitExtra (r9 NULL) or the field is 0.</summary>
    private void LoadExtra(int offset, X64Label missing)
    {
        _a.test(r9, r9);
        _a.jz(missing);
        _a.mov(r10, __qword_ptr[r9 + offset]);
        _a.test(r10, r10);
        _a.jz(missing);
    }

    private void FailArgument(int which)
    {
        _a.mov(eax, JitRuntime.BadArgument(which));
        _a.jmp(_errorExit);
    }

    /// <summary>Each slot's block length (0 inside a block): <see cref="DecodedProgram.MarkBlocks"/>.</summary>
    private static int[] BlockStarts(DecodedInsn[] code, int[] length)
    {
        for (int pc = 0; pc < code.Length; pc++) length[pc] = code[pc].Charge;
        return length;
    }

    /// <summary>
    /// Stops the run with <see cref="RbpfErrorCode.Interrupted"/> when the VM's interrupt word has
    /// moved on since the run began (<see cref="EbpfVm.Interrupt"/>); emitted at loop heads and
    /// function entries. r11 is free between instructions.
    /// </summary>
    private void EmitPoll(int pc)
    {
        var stop = _a.CreateLabel();
        _a.mov(r11, (long)_target.InterruptWord);
        _a.mov(r11d, __dword_ptr[r11]);
        _a.cmp(r11d, CtxD(JitContext.OffInterruptEpoch));
        _a.jne(stop);
        ColdFail(stop, pc, RbpfErrorCode.Interrupted);
    }

    private void EmitBudget(int pc, int length)
    {
        _a.sub(CtxQ(JitContext.OffBudget), length);
        var fail = _a.CreateLabel();
        _a.jl(fail);
        ColdFail(fail, pc, RbpfErrorCode.InstructionLimit);
    }

    /// <summary>Queues out-of-line code placed after the function body, reached through <paramref name="label"/>.</summary>
    /// <summary>Out of line at <paramref name="label"/>: <see cref="Fail"/> (data rather than a closure: most programs have several).</summary>
    private void ColdFail(X64Label label, int pc, RbpfErrorCode code) => _cold.Add(new ColdCode(label, ColdKind.Fail, pc, (int)code));

    /// <summary>Out of line at <paramref name="label"/>: <see cref="FailArgument"/>.</summary>
    private void ColdFailArgument(X64Label label, int which) => _cold.Add(new ColdCode(label, ColdKind.FailArgument, which, 0));

    /// <summary>The second slot of an lddw: only a (bad) jump lands here, out of line. No jump does in
    /// a lean program (<see cref="CanRunLean"/>): its label goes to the trailing slot's trap (<see cref="Fail"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // rare: kept out of Run's loop
    private void LddwTail(int pc)
    {
        if (_lean) (_leanTraps ??= new List<int>()).Add(pc);
        else ColdFail(_pcLabels[pc], pc, RbpfErrorCode.IllegalInstruction);
    }

    private void Fail(int pc, RbpfErrorCode code)
    {
        if (_lean)
        {
            // Only the trailing slot of a lean program comes here (CanRunLean refuses other illegal
            // slots), and nothing falls or jumps into it or into an lddw's tail: a trap where the
            // failure would need the context a lean program does not have.
            if (_leanTraps != null)
                foreach (int tail in _leanTraps) Bind(ref _pcLabels[tail]);
            _a.ud2();
            return;
        }
        _a.mov(CtxD(JitContext.OffFaultPc), pc);
        _a.mov(eax, (int)code);
        _a.jmp(_errorExit);
    }

    /// <summary>Loads a 64-bit immediate into r11 (blinded when asked) for use as a register operand.</summary>
    private void LoadImm(Gpr64 target, long value)
    {
        if (_options.ConstantBlinding)
        {
            long key = _blindKeys.NextInt64() | 1;
            _a.mov(target, value ^ key);
            _a.mov(rcx, key);
            _a.xor(target, rcx);
        }
        else
        {
            _a.mov(target, value);
        }
    }

    private bool Blind => _options.ConstantBlinding;

    /// <summary>
    /// d *= k: by 3, 5 or 9 a lea (one cycle, where imul takes three: hashes multiply by 5 in their
    /// dependency chain), by a power of two a shift, else imul. 32-bit forms zero-extend as imul does.
    /// </summary>
    private void MultiplyByConstant(Gpr64 d64, Gpr32 d32, int k, bool wide)
    {
        if (k is 3 or 5 or 9)
        {
            var address = d64 + d64 * (k - 1);
            if (wide) _a.lea(d64, address);
            else _a.lea(d32, address);
        }
        else if (k > 1 && (k & (k - 1)) == 0)
        {
            byte shift = (byte)System.Numerics.BitOperations.Log2((uint)k);
            if (wide) _a.shl(d64, shift);
            else _a.shl(d32, shift);
        }
        else if (wide) _a.imul(d64, d64, k);
        else _a.imul(d32, d32, k);
    }

    /// <summary>
    /// A counter clang keeps on the stack for want of registers: <c>t = *(u64 *)(r10 + off); t op= x;
    /// *(u64 *)(r10 + off) = t</c> with op add, sub, and, or or xor and x a constant or another
    /// register, when nothing reads t afterwards: one x86 instruction on the stack slot
    /// (<c>add qword [rbp + off], x</c>) instead of a load, an operation and a store. Only where the
    /// slot needs no check (inside the frame, or unchecked code) and the three are one block.
    /// </summary>
    private bool TryEmitStackUpdate(int pc, int[] blockStarts)
    {
        var code = _program.Code;
        if (pc + 2 >= code.Length || blockStarts[pc + 1] != 0 || blockStarts[pc + 2] != 0) return false;
        DecodedInsn load = code[pc], op = code[pc + 1], store = code[pc + 2];
        int t = load.Dst;
        if (load.Op != Op.LdxDW || load.Src != 10 || store.Op != Op.StxDW || store.Dst != 10 || store.Src != t || store.Off != load.Off || t > 9) return false;
        if (_options.CheckedMemory && (_needsCheck[pc] || _needsCheck[pc + 2])) return false;
        bool byRegister = op.Op is Op.Add64Reg or Op.Sub64Reg or Op.Or64Reg or Op.And64Reg or Op.Xor64Reg;
        bool byConstant = op.Op is Op.Add64Imm or Op.Sub64Imm or Op.Or64Imm or Op.And64Imm or Op.Xor64Imm;
        if (op.Dst != t || !(byRegister && op.Src != t && op.Src <= 10 || byConstant && !Blind)) return false;
        int budget = 64;
        if (!RegisterUse.DeadAt(code, t, pc + 3, ref budget, exitEndsRun: !_hasLocalCalls)) return false;
        var slot = __qword_ptr[rbp + load.Off];
        int imm = (int)op.Imm;
        var x = byRegister ? R64[op.Src] : default;
        switch (op.Op)
        {
            case Op.Add64Imm: _a.add(slot, imm); break;
            case Op.Sub64Imm: _a.sub(slot, imm); break;
            case Op.Or64Imm: _a.or(slot, imm); break;
            case Op.And64Imm: _a.and(slot, imm); break;
            case Op.Xor64Imm: _a.xor(slot, imm); break;
            case Op.Add64Reg: _a.add(slot, x); break;
            case Op.Sub64Reg: _a.sub(slot, x); break;
            case Op.Or64Reg: _a.or(slot, x); break;
            case Op.And64Reg: _a.and(slot, x); break;
            default: _a.xor(slot, x); break;
        }
        return true;
    }

    /// <summary>
    /// <c>mul d, k; add d, c</c> with k 2, 3, 5 or 9 (or <c>lsh d, 1</c>), and c a constant (or a
    /// <c>sub</c> of one): one <c>lea d, [d + d*(k-1) + c]</c>, as compilers write <c>h * 5 + c</c>.
    /// The multiplication and the add are one step of d's chain of dependences instead of two.
    /// </summary>
    private bool TryEmitScaledAdd(int pc, int[] blockStarts)
    {
        var code = _program.Code;
        if (Blind || pc + 1 >= code.Length || blockStarts[pc + 1] != 0) return false;
        DecodedInsn mul = code[pc], add = code[pc + 1];
        bool wide = mul.Op is Op.Mul64Imm or Op.Lsh64Imm;
        int k = mul.Op is Op.Lsh64Imm or Op.Lsh32Imm ? (mul.Imm == 1 ? 2 : 0) : (int)mul.Imm;
        if (k is not (2 or 3 or 5 or 9) || add.Dst != mul.Dst || mul.Dst > 9) return false;
        long disp = add.Op == (wide ? Op.Add64Imm : Op.Add32Imm) ? add.Imm : add.Op == (wide ? Op.Sub64Imm : Op.Sub32Imm) ? -add.Imm : long.MaxValue;
        if (disp is < int.MinValue or > int.MaxValue) return false; // not an add of a constant, or its negation does not fit
        var d = R64[mul.Dst];
        var address = d + d * (k - 1) + (int)disp;
        if (wide) _a.lea(d, address);
        else _a.lea(R32[mul.Dst], address); // the low 32 bits, zero-extended
        return true;
    }

    /// <summary>
    /// A rotate as clang writes one (eBPF has none): <c>t = x; t &gt;&gt;= a; x &lt;&lt;= 64 - a; x |= t</c> (or
    /// with the shifts the other way round) is x rotated left by 64 - a (or a). Emits one <c>rol</c>
    /// for x, and the copy and t's shift only when something may read t afterwards (the block goes
    /// on to write t first: clang's rotates in hash loops): one or three instructions less, and x's
    /// chain of dependences one cycle shorter.
    /// </summary>
    private bool TryEmitRotate(int pc, int[] blockStarts)
    {
        var code = _program.Code;
        if (code[pc].Op != Op.Mov64Reg || pc + 3 >= code.Length || blockStarts[pc + 1] != 0 || blockStarts[pc + 2] != 0 || blockStarts[pc + 3] != 0) return false;
        DecodedInsn mov = code[pc], first = code[pc + 1], second = code[pc + 2], or = code[pc + 3];
        int t = mov.Dst, x = mov.Src;
        if (t == x || t > 9 || x > 9) return false;
        if (first.Op is not (Op.Rsh64Imm or Op.Lsh64Imm) || first.Dst != t || first.Imm is < 1 or > 63) return false;
        var opposite = first.Op == Op.Rsh64Imm ? Op.Lsh64Imm : Op.Rsh64Imm;
        if (second.Op != opposite || second.Dst != x || second.Imm != 64 - first.Imm) return false;
        if (or.Op != Op.Or64Reg || or.Dst != x || or.Src != t) return false;
        if (!RegisterUse.OverwrittenBeforeRead(code, blockStarts, t, pc + 4))
        {
            _a.mov(R64[t], R64[x]);
            if (first.Op == Op.Rsh64Imm) _a.shr(R64[t], (byte)first.Imm);
            else _a.shl(R64[t], (byte)first.Imm);
        }
        _a.rol(R64[x], (byte)(first.Op == Op.Rsh64Imm ? second.Imm : first.Imm));
        for (int k = 1; k <= 3; k++) Bind(ref _pcLabels[pc + k]); // no code of their own: no jump lands inside a block
        return true;
    }

    /// <summary>
    /// A select as clang writes one (eBPF has no conditional move): <c>if (c) goto L; x = v; L:</c>
    /// is <c>x = c ? x : v</c>, a compare and a <c>cmov</c> on the opposite condition, with v (a
    /// constant or a register) in r11 or its own register. No branch to mispredict where c follows
    /// the data (a tokenizer's character classes). Not when the move is a jump target or the
    /// instruction limit counts blocks (the move starts a block of its own).
    /// </summary>
    private bool TryEmitSelect(int pc)
    {
        var code = _program.Code;
        if (pc + 2 >= code.Length || code[pc].Op is < Op.Jeq64Imm or > Op.Jsle32Reg || code[pc].Off != pc + 2) return false;
        var mov = code[pc + 1];
        if (mov.Op is not (Op.Mov64Imm or Op.Mov32Imm or Op.Mov64Reg or Op.Mov32Reg) || mov.Dst > 9 || mov.Src > 10) return false;
        if (Blind || _countInstructions || IsJumpTarget(pc + 1) || (_options.Interruptible && _polls[pc + 1])) return false;
        if (_groups != null && _groups[pc].Count > 1) return false;
        // The compare first where the value is a move (moves leave the flags alone, so the compare
        // may use those an operation before it left); a zero is an xor before it (clang's tokenizer
        // measured 1.5x native with xor and 1.6x with a move of 0 after the compare).
        var value = r11;
        if (mov.Op is Op.Mov64Imm or Op.Mov32Imm && mov.Imm == 0) _a.xor(r11d, r11d);
        int cond = EmitCompare(pc, code[pc]);
        switch (mov.Op)
        {
            case Op.Mov64Imm or Op.Mov32Imm when mov.Imm == 0: break;
            case Op.Mov64Imm: _a.mov(r11, mov.Imm); break;              // sign-extended, as eBPF's mov
            case Op.Mov32Imm: _a.mov(r11, (long)(uint)mov.Imm); break;  // zero-extended
            case Op.Mov64Reg: value = R64[mov.Src]; break;
            default: _a.mov(r11d, R32[mov.Src]); break;                 // a 32-bit cmov would clear x's upper half even when it keeps x
        }
        _a.cmov(CondCodes[cond] ^ 1, R64[mov.Dst], value); // the opposite condition is the code ^ 1
        Bind(ref _pcLabels[pc + 1]); // no code of its own: nothing jumps to it
        return true;
    }

    /// <summary>
    /// clang's load through a sum (<c>mov d, s; add d, t; ldx x, [d + off]</c>, an array element or a
    /// byte at an index) as one load from <c>[s + t + off]</c>, when the load needs no check (proven
    /// inside the input, or unchecked code) and nothing reads the sum in d afterwards: x is d, or the
    /// block writes d before reading it.
    /// </summary>
    private bool TryEmitIndexedLoad(int pc, int[] blockStarts)
    {
        var code = _program.Code;
        if (pc + 2 >= code.Length || blockStarts[pc + 1] != 0 || blockStarts[pc + 2] != 0) return false;
        DecodedInsn mov = code[pc], add = code[pc + 1], load = code[pc + 2];
        if (mov.Op != Op.Mov64Reg || add.Op != Op.Add64Reg || load.Op is < Op.LdxB or > Op.LdxSW) return false;
        int d = mov.Dst, s = mov.Src, t = add.Src;
        if (add.Dst != d || load.Src != d || t == d || s == d || d > 9 || s > 10 || t > 10) return false;
        if (_options.CheckedMemory && _needsCheck[pc + 2]) return false;
        if (load.Dst != d && !RegisterUse.OverwrittenBeforeRead(code, blockStarts, d, pc + 3)) return false;
        EmitLoad(pc + 2, load, R64[s] + R64[t] + load.Off);
        return true;
    }

    /// <summary>
    /// clang's rotate of a product, <c>rotl(x * B, r)</c>, which it writes as two multiplications:
    /// <c>t = x; t *= A; x *= B; x &gt;&gt;= 64 - r; x |= t</c> with A = B &lt;&lt; r (modulo 2^64). One
    /// multiplication and a <c>rol</c> when A and B are constants (immediates, or registers that hold
    /// them on every path: <see cref="ConstantRegisters"/>) and the block writes t before anything
    /// reads it: murmur-style hash rounds, one multiplication less each.
    /// </summary>
    private bool TryEmitProductRotate(int pc, int[] blockStarts)
    {
        var code = _program.Code;
        if (Blind || code[pc].Op != Op.Mov64Reg || pc + 4 >= code.Length) return false;
        for (int k = 1; k <= 4; k++)
            if (blockStarts[pc + k] != 0) return false;
        DecodedInsn mov = code[pc], mulT = code[pc + 1], mulX = code[pc + 2], shift = code[pc + 3], or = code[pc + 4];
        int t = mov.Dst, x = mov.Src;
        if (t == x || t > 9 || x > 9) return false;
        if (mulT.Op is not (Op.Mul64Reg or Op.Mul64Imm) || mulT.Dst != t || mulX.Op is not (Op.Mul64Reg or Op.Mul64Imm) || mulX.Dst != x) return false;
        if (shift.Op != Op.Rsh64Imm || shift.Dst != x || shift.Imm is < 1 or > 63) return false;
        if (or.Op != Op.Or64Reg || or.Dst != x || or.Src != t) return false;
        if (!RegisterUse.OverwrittenBeforeRead(code, blockStarts, t, pc + 5)) return false;
        if (Factor(mulT, pc + 1) is not { } a || Factor(mulX, pc + 2) is not { } b || a != b << (int)(64 - shift.Imm)) return false;
        if (mulX.Op == Op.Mul64Imm) _a.imul(R64[x], R64[x], (int)mulX.Imm);
        else _a.imul(R64[x], R64[mulX.Src]);
        _a.rol(R64[x], (byte)(64 - shift.Imm));
        for (int k = 1; k <= 4; k++) Bind(ref _pcLabels[pc + k]); // no code of their own: no jump lands inside a block
        return true;
    }

    /// <summary>The constant a multiplication at <paramref name="pc"/> multiplies by, when known.</summary>
    private ulong? Factor(DecodedInsn mul, int pc) =>
        mul.Op == Op.Mul64Imm ? (ulong)mul.Imm : (_constants ??= ConstantRegisters.Analyze(_program.Code)).ValueAt(pc, mul.Src);

    private ConstantRegisters? _constants;

    /// <summary>
    /// A copy followed by an addition to the copy (<c>mov d, s; add d, k</c> or <c>add d, t</c>, and
    /// the subtraction of a constant), which compilers emit for every address and loop bound, as
    /// one lea. 32-bit forms work too: a 32-bit lea keeps the low half of the sum and zero-extends.
    /// </summary>
    private bool TryEmitLea(DecodedInsn mov, DecodedInsn op)
    {
        bool wide = mov.Op == Op.Mov64Reg;
        if (!wide && mov.Op != Op.Mov32Reg || op.Dst != mov.Dst || mov.Dst > 10 || mov.Src > 10 || op.Src > 10) return false;
        var source = R64[mov.Src];
        Mem address;
        if (op.Op == (wide ? Op.Add64Imm : Op.Add32Imm) && !Blind) address = source + (int)op.Imm;
        else if (op.Op == (wide ? Op.Sub64Imm : Op.Sub32Imm) && !Blind && (int)op.Imm != int.MinValue) address = source - (int)op.Imm;
        else if (op.Op == (wide ? Op.Add64Reg : Op.Add32Reg)) address = source + (op.Src == op.Dst ? source : R64[op.Src]); // d = s + s when t is d
        else return false;
        if (wide) _a.lea(R64[mov.Dst], address);
        else _a.lea(R32[mov.Dst], address);
        return true;
    }

    /// <summary>
    /// The operations <see cref="EmitInstruction"/> ends with the x86 instruction of the same name on
    /// the register (add, sub, and, or, xor), whose zero flag is the result's, for a test against 0
    /// right after; a mask of the low byte or half (a movzx) is left out where it is emitted.
    /// </summary>
    private static readonly bool[] s_setsZeroFlag = BuildSetsZeroFlag();

    private static bool[] BuildSetsZeroFlag()
    {
        var t = new bool[256];
        for (var op = Op.Add64Imm; op <= Op.Xor32Reg; op++)
            t[(int)op] = op is <= Op.Sub32Reg or (>= Op.Or64Imm and <= Op.And32Reg) or >= Op.Xor64Imm;
        return t;
    }

    /// <summary>The slot whose add, sub, and, or or xor emitted last set the zero flag, and where the code then ended.</summary>
    private int _zeroFlagPc = -1;
    private long _zeroFlagMark;

    /// <summary>
    /// Whether the flags hold what <c>test d, d</c> would give a jeq or jne of d against 0 at
    /// <paramref name="pc"/>: the slot before is an add, sub, and, or or xor of d, with nothing
    /// emitted since and nothing jumping in between; a 32-bit test needs a 32-bit operation.
    /// </summary>
    private bool ZeroFlagHolds(int pc, DecodedInsn jump, bool is32)
    {
        if (_zeroFlagPc != pc - 1 || _zeroFlagPc < 0 || _zeroFlagMark != _a.Mark || IsJumpTarget(pc)) return false;
        var op = _program.Code[pc - 1];
        return op.Dst == jump.Dst && (!is32 || ((op.Op - Op.Add64Imm) & 2) != 0);
    }

    private void EmitInstruction(int pc, DecodedInsn i)
    {
        var d64 = i.Dst <= 10 ? R64[i.Dst] : r11;
        var d32 = i.Dst <= 10 ? R32[i.Dst] : r11d;
        var s64 = i.Src <= 10 ? R64[i.Src] : r11;
        var s32 = i.Src <= 10 ? R32[i.Src] : r11d;
        int imm = (int)i.Imm;
        switch (i.Op)
        {
            // 64-bit arithmetic with an immediate (sign-extended, as x86 does with imm32)
            case Op.Add64Imm: if (Blind) { LoadImm(r11, i.Imm); _a.add(d64, r11); } else _a.add(d64, imm); break;
            case Op.Sub64Imm: if (Blind) { LoadImm(r11, i.Imm); _a.sub(d64, r11); } else _a.sub(d64, imm); break;
            case Op.Mul64Imm: if (Blind) { LoadImm(r11, i.Imm); _a.imul(d64, r11); } else MultiplyByConstant(d64, d32, imm, wide: true); break;
            case Op.Or64Imm: if (Blind) { LoadImm(r11, i.Imm); _a.or(d64, r11); } else _a.or(d64, imm); break;
            // A mask of the low byte or half is a zero-extending move (3-4 bytes where the and is 6-7).
            case Op.And64Imm or Op.And32Imm when !Blind && i.Dst <= 10 && i.Imm == 0xff: _a.movzx(d32, R8[i.Dst]); break;
            case Op.And64Imm or Op.And32Imm when !Blind && i.Dst <= 10 && i.Imm == 0xffff: _a.movzx(d32, R16[i.Dst]); break;
            case Op.And64Imm: if (Blind) { LoadImm(r11, i.Imm); _a.and(d64, r11); } else _a.and(d64, imm); break;
            case Op.Xor64Imm: if (Blind) { LoadImm(r11, i.Imm); _a.xor(d64, r11); } else _a.xor(d64, imm); break;
            case Op.Mov64Imm: if (Blind) { LoadImm(r11, i.Imm); _a.mov(d64, r11); } else _a.mov(d64, i.Imm); break;
            case Op.Lsh64Imm: _a.shl(d64, (byte)(imm & 63)); break;
            case Op.Rsh64Imm: _a.shr(d64, (byte)(imm & 63)); break;
            case Op.Arsh64Imm: _a.sar(d64, (byte)(imm & 63)); break;
            case Op.Add64Reg: _a.add(d64, s64); break;
            case Op.Sub64Reg: _a.sub(d64, s64); break;
            case Op.Mul64Reg: _a.imul(d64, s64); break;
            case Op.Or64Reg: _a.or(d64, s64); break;
            case Op.And64Reg: _a.and(d64, s64); break;
            case Op.Xor64Reg: _a.xor(d64, s64); break;
            case Op.Mov64Reg: _a.mov(d64, s64); break;
            case Op.Lsh64Reg: _a.mov(ecx, s32); _a.shl(d64, cl); break;
            case Op.Rsh64Reg: _a.mov(ecx, s32); _a.shr(d64, cl); break;
            case Op.Arsh64Reg: _a.mov(ecx, s32); _a.sar(d64, cl); break;
            case Op.Neg64: _a.neg(d64); break;

            // 32-bit arithmetic: writing a 32-bit register zero-extends it
            case Op.Add32Imm: if (Blind) { LoadImm(r11, imm); _a.add(d32, r11d); } else _a.add(d32, imm); break;
            case Op.Sub32Imm: if (Blind) { LoadImm(r11, imm); _a.sub(d32, r11d); } else _a.sub(d32, imm); break;
            case Op.Mul32Imm: if (Blind) { LoadImm(r11, imm); _a.imul(d32, r11d); } else MultiplyByConstant(d64, d32, imm, wide: false); break;
            case Op.Or32Imm: if (Blind) { LoadImm(r11, imm); _a.or(d32, r11d); } else _a.or(d32, imm); break;
            case Op.And32Imm: if (Blind) { LoadImm(r11, imm); _a.and(d32, r11d); } else _a.and(d32, imm); break;
            case Op.Xor32Imm: if (Blind) { LoadImm(r11, imm); _a.xor(d32, r11d); } else _a.xor(d32, imm); break;
            case Op.Mov32Imm: if (Blind) { LoadImm(r11, imm); _a.mov(d32, r11d); } else _a.mov(d32, (uint)imm); break;
            case Op.Lsh32Imm: if ((imm & 31) == 0) _a.mov(d32, d32); else _a.shl(d32, (byte)(imm & 31)); break;
            case Op.Rsh32Imm: if ((imm & 31) == 0) _a.mov(d32, d32); else _a.shr(d32, (byte)(imm & 31)); break;
            case Op.Arsh32Imm: if ((imm & 31) == 0) _a.mov(d32, d32); else _a.sar(d32, (byte)(imm & 31)); break;
            case Op.Add32Reg: _a.add(d32, s32); break;
            case Op.Sub32Reg: _a.sub(d32, s32); break;
            case Op.Mul32Reg: _a.imul(d32, s32); break;
            case Op.Or32Reg: _a.or(d32, s32); break;
            case Op.And32Reg: _a.and(d32, s32); break;
            case Op.Xor32Reg: _a.xor(d32, s32); break;
            case Op.Mov32Reg: _a.mov(d32, s32); break;
            // A 32-bit shift by a count of 0 may leave the upper half alone: zero-extend explicitly.
            case Op.Lsh32Reg: _a.mov(ecx, s32); _a.shl(d32, cl); _a.mov(d32, d32); break;
            case Op.Rsh32Reg: _a.mov(ecx, s32); _a.shr(d32, cl); _a.mov(d32, d32); break;
            case Op.Arsh32Reg: _a.mov(ecx, s32); _a.sar(d32, cl); _a.mov(d32, d32); break;
            case Op.Neg32: _a.neg(d32); break;

            case Op.Div64Imm: case Op.Div64Reg: case Op.Mod64Imm: case Op.Mod64Reg:
            case Op.Div32Imm: case Op.Div32Reg: case Op.Mod32Imm: case Op.Mod32Reg:
            case Op.SDiv64Imm: case Op.SDiv64Reg: case Op.SMod64Imm: case Op.SMod64Reg:
            case Op.SDiv32Imm: case Op.SDiv32Reg: case Op.SMod32Imm: case Op.SMod32Reg:
                EmitDivision(i);
                break;

            case Op.MovSx64From8: _a.movsx(d64, R8[i.Src]); break;
            case Op.MovSx64From16: _a.movsx(d64, R16[i.Src]); break;
            case Op.MovSx64From32: _a.movsxd(d64, s32); break;
            case Op.MovSx32From8: _a.movsx(d32, R8[i.Src]); break;
            case Op.MovSx32From16: _a.movsx(d32, R16[i.Src]); break;

            case Op.Zext16: _a.movzx(d32, R16[i.Dst]); break;
            case Op.Zext32: _a.mov(d32, d32); break;
            case Op.Nop: break;
            case Op.Swap16:
                _a.ror(R16[i.Dst], 8);
                // After ldxh into the same register in the same block the upper bits are zero already.
                if (!(pc > 0 && _program.Code[pc - 1] is { Op: Op.LdxH } prev && prev.Dst == i.Dst && !IsJumpTarget(pc)))
                    _a.movzx(d32, R16[i.Dst]);
                break;
            case Op.Swap32: _a.bswap(d32); break;
            case Op.Swap64: _a.bswap(d64); break;

            case Op.Lddw:
                if (Blind) LoadImm(d64, i.Imm);
                else _a.mov(d64, i.Imm);
                break;

            case Op.LdAbsB: case Op.LdAbsH: case Op.LdAbsW: case Op.LdAbsDW:
            case Op.LdIndB: case Op.LdIndH: case Op.LdIndW: case Op.LdIndDW:
                EmitPacketLoad(pc, i);
                break;

            case Op.LdxB: case Op.LdxH: case Op.LdxW: case Op.LdxDW:
            case Op.LdxSB: case Op.LdxSH: case Op.LdxSW:
                EmitLoad(pc, i);
                break;
            case Op.StB: case Op.StH: case Op.StW: case Op.StDW:
            case Op.StxB: case Op.StxH: case Op.StxW: case Op.StxDW:
                EmitStore(pc, i);
                break;

            case Op.Atomic32 or Op.Atomic64:
                EmitAtomic(pc, i);
                break;

            case Op.Ja: _a.jmp(_pcLabels[i.Off]); break;
            case >= Op.Jeq64Imm and <= Op.Jsle32Reg:
                EmitConditionalJump(pc, i);
                break;

            case Op.Call: EmitHelperCall(pc, i); break;
            case Op.CallX: EmitCallX(pc, i); break;
            case Op.CallLocal: EmitLocalCall(pc, i); break;
            case Op.Exit:
                if (_hasLocalCalls)
                {
                    _a.cmp(CtxD(JitContext.OffDepth), 0);
                    _a.jne(_ret);
                    _a.jmp(_exitWithResult);
                }
                else EmitExitWithResult(inline: true);
                break;
            default:
                Fail(pc, RbpfErrorCode.IllegalInstruction);
                break;
        }
        if (s_setsZeroFlag[(int)i.Op] && !Blind && i.Dst <= 9 && !(i.Op is Op.And64Imm or Op.And32Imm && i.Imm is 0xff or 0xffff))
        {
            _zeroFlagPc = pc;
            _zeroFlagMark = _a.Mark;
        }
    }

    private void EmitDivision(DecodedInsn i)
    {
        int k = i.Op switch
        {
            >= Op.SDiv64Imm and <= Op.SDiv32Reg => i.Op - Op.SDiv64Imm,
            >= Op.SMod64Imm and <= Op.SMod32Reg => i.Op - Op.SMod64Imm,
            >= Op.Div64Imm and <= Op.Div32Reg => i.Op - Op.Div64Imm,
            _ => i.Op - Op.Mod64Imm,
        };
        bool reg = (k & 1) != 0, is32 = (k & 2) != 0;
        bool signed = i.Op >= Op.SDiv64Imm;
        bool mod = i.Op is >= Op.Mod64Imm and <= Op.Mod32Reg or >= Op.SMod64Imm and <= Op.SMod32Reg;
        var d64 = R64[i.Dst];
        var d32 = R32[i.Dst];
        // Divisor into r11.
        if (reg)
        {
            if (is32) _a.mov(r11d, R32[i.Src]); else _a.mov(r11, R64[i.Src]);
        }
        else
        {
            LoadImm(r11, is32 ? (long)(uint)(int)i.Imm : i.Imm);
            if (is32) _a.mov(r11d, r11d);
        }
        var done = _a.CreateLabel();
        var zero = _a.CreateLabel();
        if (is32) _a.test(r11d, r11d); else _a.test(r11, r11);
        _a.jz(zero);
        var minusOne = _a.CreateLabel();
        if (signed)
        {
            if (is32) _a.cmp(r11d, -1); else _a.cmp(r11, -1);
            _a.je(minusOne);
        }
        // rax and rdx hold r0 and r3: park them in r10 and rcx unless they are the destination.
        _a.mov(r10, rax);
        _a.mov(rcx, rdx);
        if (is32)
        {
            _a.mov(eax, d32);
            if (signed) { _a.cdq(); _a.idiv(r11d); } else { _a.xor(edx, edx); _a.div(r11d); }
            _a.mov(r11d, mod ? edx : eax);
        }
        else
        {
            _a.mov(rax, d64);
            if (signed) { _a.cqo(); _a.idiv(r11); } else { _a.xor(edx, edx); _a.div(r11); }
            _a.mov(r11, mod ? rdx : rax);
        }
        _a.mov(rax, r10);
        _a.mov(rdx, rcx);
        _a.mov(d64, r11);
        _a.jmp(done);
        // Division by zero: quotient 0, remainder the dividend (zero-extended for 32 bits).
        Bind(ref zero);
        if (mod) { if (is32) _a.mov(d32, d32); }
        else _a.xor(d32, d32);
        if (signed)
        {
            _a.jmp(done);
            // Division by -1: x86 traps on INT_MIN / -1, eBPF wraps: quotient -x, remainder 0.
            Bind(ref minusOne);
            if (mod) _a.xor(d32, d32);
            else if (is32) _a.neg(d32);
            else _a.neg(d64);
        }
        Bind(ref done);
    }

    /// <summary>
    /// Puts the address [base + off] in r11 after checking it, and returns the memory operand to
    /// use. Accesses through r10 with a constant offset inside the current frame need no check.
    /// </summary>
    private Mem CheckedAddress(int baseReg, int off, int size, bool write, bool atomic)
    {
        var b = R64[baseReg];
        if (!atomic && _target.InsideFrame(baseReg, off, size))
            return __[rbp + off];
        if (!_options.CheckedMemory || _fused || !atomic && _inInput != null && _inInput[_currentPc])
        {
            if (!atomic) return __[b + off];
            _a.lea(r11, __[b + off]); // atomics may use rax (r0) themselves: address through r11
            return __[r11];
        }
        var back = _a.CreateLabel();
        var notPacket = _a.CreateLabel();
        int bi = JitContext.BoundIndex(size);
        // Inline, only the input: an access inside it falls through with no branch taken. Plain
        // loads and stores then address [base + off] themselves; atomics go through r11, since
        // their code may change r0 (rax), which can be the base.
        if (atomic)
        {
            _a.lea(r11, __[b + off]);
            _a.test(r11b, (byte)(size - 1)); // misaligned: the stub reports it
            _a.jnz(notPacket);
            _a.mov(r10, r11);
        }
        else
        {
            _a.lea(r10, __[b + off]);
        }
        _a.sub(r10, CtxQ(JitContext.OffPacketStart));
        _a.cmp(r10, CtxQ(JitContext.OffPacketBound + 8 * bi));
        _a.jae(notPacket);
        Bind(ref back);
        var stub = SlowCheck(size, (write ? 1 : 0) | (atomic ? 2 : 0));
        _coldAccesses.Add(new ColdAccess(notPacket, back, stub, _currentPc, b, off, atomic));
        return atomic ? __[r11] : __[b + off];
    }

    /// <summary>
    /// An access's out-of-line path: a stub shared by every access of its size and kind checks the
    /// stack frames in use, then asks the runtime about the other regions; it returns, or fails the
    /// run at the instruction left in FaultPc. It takes the address in r11.
    /// </summary>
    private void EmitColdAccess(ColdAccess c)
    {
        var label = c.NotPacket;
        Bind(ref label);
        if (!c.Atomic) _a.lea(r11, __[c.Base + c.Off]);
        _a.mov(CtxD(JitContext.OffFaultPc), c.Pc);
        _a.call(c.Stub);
        _a.jmp(c.Back);
    }

    /// <summary>Accesses one check covers: how many, their base register, the span [Min, Max) of offsets.</summary>
    private readonly record struct FusedGroup(int Count, int BaseReg, int Min, int Max);

    private static readonly FusedGroup NoGroup = new(1, 0, 0, 0);

    /// <summary>Set while emitting the accesses of a fused group, which one check covers.</summary>
    private bool _fused;

    /// <summary>A plain load or store (no atomics, no legacy packet loads): its base, offset and size.</summary>
    private static bool IsPlainAccess(DecodedInsn i, out int baseReg, out int off, out int size)
    {
        bool load = i.Op is >= Op.LdxB and <= Op.LdxSW;
        bool store = i.Op is >= Op.StB and <= Op.StxDW;
        baseReg = load ? i.Src : i.Dst;
        off = i.Off;
        size = load || store ? JitTarget.AccessSize(i.Op) : 0;
        return load || store;
    }

    /// <summary>
    /// How many checked plain accesses starting at <paramref name="pc"/> one check can cover: they
    /// follow each other inside one basic block (no jump lands between them), use one base register
    /// that none of them changes before the last, and span at most 8 bytes; with the base register
    /// and the span's offsets. A count of 1 means no group.
    /// </summary>
    private FusedGroup FusableGroup(DecodedInsn[] code, int[] blockStarts, int pc)
    {
        if (!_options.CheckedMemory || !NeedsCheck(pc) || !IsPlainAccess(code[pc], out int baseReg, out int off, out int size))
            return NoGroup;
        int min = off, max = off + size, n = 1;
        bool baseChanged = code[pc].Op is >= Op.LdxB and <= Op.LdxSW && code[pc].Dst == baseReg;
        for (int k = pc + 1; !baseChanged && k < code.Length; k++)
        {
            if (blockStarts[k] > 0 || !NeedsCheck(k) || !IsPlainAccess(code[k], out int b, out int o, out int sz) || b != baseReg)
                break;
            int lo = Math.Min(min, o), hi = Math.Max(max, o + sz);
            if (hi - lo > 8) break;
            (min, max) = (lo, hi);
            n++;
            baseChanged = code[k].Op is >= Op.LdxB and <= Op.LdxSW && code[k].Dst == baseReg;
        }
        return new FusedGroup(n, baseReg, min, max);
    }

    /// <summary>
    /// A group of accesses through one base register (<see cref="FusableGroup"/>): one inline check
    /// that the whole span they touch lies in the input, then the accesses unchecked. When the span
    /// is not all input, the group runs again out of line with a check per access, so errors come
    /// from the same instruction with the same message as without fusion.
    /// </summary>
    private void EmitFusedGroup(int pc, FusedGroup group)
    {
        var code = _program.Code;
        int count = group.Count, width = group.Max - group.Min;
        int span = width <= 1 ? 1 : width <= 2 ? 2 : width <= 4 ? 4 : 8; // bounds exist for these sizes
        var separately = _a.CreateLabel();
        _a.lea(r10, __[R64[group.BaseReg] + group.Min]);
        _a.sub(r10, CtxQ(JitContext.OffPacketStart));
        _a.cmp(r10, CtxQ(JitContext.OffPacketBound + 8 * JitContext.BoundIndex(span)));
        _a.jae(separately);
        _fused = true;
        for (int k = pc; k < pc + count; k++)
        {
            if (k > pc) Bind(ref _pcLabels[k]);
            _currentPc = k;
            EmitInstruction(k, code[k]);
        }
        _fused = false;
        _cold.Add(new ColdCode(separately, ColdKind.Separately, pc, count));
    }

    /// <summary>A fused group's accesses one by one, each with its own check, then on after the group.</summary>
    private void EmitSeparately(int pc, int count)
    {
        var code = _program.Code;
        for (int k = pc; k < pc + count; k++)
        {
            _currentPc = k;
            EmitInstruction(k, code[k]);
        }
        _a.jmp(_pcLabels[pc + count]);
    }

    /// <summary>Plain accesses of a raw VM's program proven inside the input (<see cref="InputBounds"/>): no check; null when none.</summary>
    private bool[]? _inInput;
    /// <summary>Where the code polls for interrupts (<see cref="BoundedLoops.PollsFor(DecodedProgram, VmKind, InputBounds.Facts?)"/>).</summary>
    private bool[] _polls = Array.Empty<bool>();

    /// <summary>Whether checked code checks the access of the instruction at <paramref name="pc"/> at run time.</summary>
    private bool NeedsCheck(int pc) => _needsCheck[pc];
    /// <summary><see cref="NeedsCheck(int)"/> of every slot, worked out once as compiling begins; whether any is true.</summary>
    private bool[] _needsCheck = Array.Empty<bool>();
    private bool _anyCheck;

    /// <summary>Whether checked code checks this instruction's access at run time (unless proven, <see cref="NeedsCheck(int)"/>).</summary>
    private bool NeedsCheck(DecodedInsn i) => i.Op switch
    {
        >= Op.LdxB and <= Op.LdxSW => !_target.InsideFrame(i.Src, i.Off, JitTarget.AccessSize(i.Op)),
        >= Op.StB and <= Op.StxDW => !_target.InsideFrame(i.Dst, i.Off, JitTarget.AccessSize(i.Op)),
        Op.Atomic32 or Op.Atomic64 => true,
        _ => false,
    };

    /// <summary>What a slow check saves around the runtime's check: the registers a call may change, and r11 (the address).</summary>
    private static readonly Gpr64[] s_clobbered = [rax, rdi, rsi, rdx, r8, r9, rcx, r11];

    /// <summary>The shared out-of-line checks made so far, by size * 4 + flags (a label's id is 0 where none is).</summary>
    private X64Label[]? _slowChecks;

    /// <summary>The shared out-of-line check for accesses of <paramref name="size"/> bytes with <paramref name="flags"/>.</summary>
    private X64Label SlowCheck(int size, int flags)
    {
        int key = size * 4 + flags;
        _slowChecks ??= Rent(ref _scratch.SlowChecks, 8 * 4 + 4);
        if (_slowChecks[key].Id != 0) return _slowChecks[key];
        var label = _a.CreateLabel();
        _slowChecks[key] = label;
        _cold.Add(new ColdCode(label, ColdKind.SlowCheck, size, flags));
        return label;
    }

    /// <summary>An entry's mem of NULL, out of line: fine with a length of 0 (back to <paramref name="memOk"/>), else a failed argument.</summary>
    private void EmitNullMemory(X64Label memOk)
    {
        var badMem = _a.CreateLabel();
        _a.test(rsi, rsi);
        _a.jnz(badMem);
        _a.jmp(memOk);
        Bind(ref badMem);
        _a.mov(CtxQ(JitContext.OffPacketLength), rsi); // for the message
        FailArgument(JitRuntime.BadMem);
    }

    /// <summary>The body of the shared slow check for accesses of <paramref name="size"/> bytes with <paramref name="flags"/> (see <see cref="SlowCheck"/>).</summary>
    private void EmitSlowCheck(int size, int flags)
    {
        // Entered by a call with the address in r11. First the stack frames in use (for an
        // aligned access), inline.
        var runtime = _a.CreateLabel();
        var inStack = _a.CreateLabel();
        int bi = JitContext.BoundIndex(size);
        if ((flags & 2) != 0)
        {
            _a.test(r11b, (byte)(size - 1));
            _a.jnz(runtime);
        }
        _a.mov(r10, r11);
        _a.sub(r10, CtxQ(JitContext.OffStackStart));
        _a.cmp(r10, CtxQ(JitContext.OffStackBound + 8 * bi));
        _a.jb(inStack);
        if (_target.MapRegionCount > 0)
        {
            // Then the values of the maps bound when the code was compiled ((start, length)
            // pairs; all writable), inline: a program's loads and stores through map values stay here.
            var next = _a.CreateLabel();
            var loop = _a.CreateLabel();
            var found = _a.CreateLabel();
            var none = _a.CreateLabel();
            _a.push(rax);
            _a.push(rcx);
            _a.mov(rax, (long)_target.MapRegions);
            _a.mov(ecx, _target.MapRegionCount);
            Bind(ref loop);
            _a.mov(r10, r11);
            _a.sub(r10, __qword_ptr[rax]);
            _a.cmp(r10, __qword_ptr[rax + 8]);
            _a.jae(next);
            _a.add(r10, size);
            _a.cmp(r10, __qword_ptr[rax + 8]);
            _a.jbe(found);
            Bind(ref next);
            _a.add(rax, 16);
            _a.dec(ecx);
            _a.jnz(loop);
            _a.jmp(none);
            Bind(ref found);
            _a.pop(rcx);
            _a.pop(rax);
            _a.ret();
            Bind(ref none);
            _a.pop(rcx);
            _a.pop(rax);
        }
        // Then the runtime: save the registers it may clobber (r11 holds the address), keeping
        // rsp 16-byte aligned at the inner call.
        Bind(ref runtime);
        var fault = _a.CreateLabel();
        var saved = s_clobbered;
        foreach (var r in saved) _a.push(r);
        _a.sub(rsp, 8);
        _a.mov(rdi, r12);
        _a.mov(rsi, r11);
        _a.mov(edx, size);
        _a.mov(ecx, flags);
        CallOut((ulong)JitRuntime.CheckAccessFn, 4);
        _a.mov(r10d, eax);
        _a.add(rsp, 8);
        for (int k = saved.Length - 1; k >= 0; k--) _a.pop(saved[k]);
        _a.test(r10d, r10d);
        _a.jz(fault);
        _a.ret();
        Bind(ref fault); // the caller put the instruction in FaultPc
        _a.mov(eax, (int)RbpfErrorCode.OutOfBounds);
        _a.jmp(_errorExit);
        Bind(ref inStack);
        _a.ret();
    }

    /// <summary>A load; from <paramref name="at"/> when given (an address that needs no check), else from its checked address.</summary>
    private void EmitLoad(int pc, DecodedInsn i, Mem? at = null)
    {
        int size = JitTarget.AccessSize(i.Op);
        var m = at ?? CheckedAddress(i.Src, i.Off, size, write: false, atomic: false);
        var d64 = R64[i.Dst];
        var d32 = R32[i.Dst];
        switch (i.Op)
        {
            case Op.LdxB: _a.movzx(d32, __byte_ptr[m]); break;
            case Op.LdxH: _a.movzx(d32, __word_ptr[m]); break;
            case Op.LdxW: _a.mov(d32, __dword_ptr[m]); break;
            case Op.LdxDW: _a.mov(d64, __qword_ptr[m]); break;
            case Op.LdxSB: _a.movsx(d64, __byte_ptr[m]); break;
            case Op.LdxSH: _a.movsx(d64, __word_ptr[m]); break;
            default: _a.movsxd(d64, __dword_ptr[m]); break;
        }
    }

    private void EmitStore(int pc, DecodedInsn i)
    {
        int size = JitTarget.AccessSize(i.Op);
        bool imm = i.Op is Op.StB or Op.StH or Op.StW or Op.StDW;
        if (imm && Blind)
        {
            // Blinded immediate stores go through a register: rcx is free once the address is checked.
            var m0 = CheckedAddress(i.Dst, i.Off, size, write: true, atomic: false);
            long key = _blindKeys.NextInt64() | 1;
            _a.mov(r10, i.Imm ^ key);
            _a.mov(rcx, key);
            _a.xor(r10, rcx);
            switch (size)
            {
                case 1: _a.mov(__byte_ptr[m0], r10b); break;
                case 2: _a.mov(__word_ptr[m0], r10w); break;
                case 4: _a.mov(__dword_ptr[m0], r10d); break;
                default: _a.mov(__qword_ptr[m0], r10); break;
            }
            return;
        }
        var m = CheckedAddress(i.Dst, i.Off, size, write: true, atomic: false);
        if (imm)
        {
            switch (size)
            {
                case 1: _a.mov(__byte_ptr[m], (int)(sbyte)i.Imm); break;
                case 2: _a.mov(__word_ptr[m], (int)(short)i.Imm); break;
                case 4: _a.mov(__dword_ptr[m], (int)i.Imm); break;
                default: _a.mov(__qword_ptr[m], (int)i.Imm); break;
            }
            return;
        }
        switch (size)
        {
            case 1: _a.mov(__byte_ptr[m], R8[i.Src]); break;
            case 2: _a.mov(__word_ptr[m], R16[i.Src]); break;
            case 4: _a.mov(__dword_ptr[m], R32[i.Src]); break;
            default: _a.mov(__qword_ptr[m], R64[i.Src]); break;
        }
    }

    private void EmitAtomic(int pc, DecodedInsn i)
    {
        bool is64 = i.Op == Op.Atomic64;
        int size = is64 ? 8 : 4;
        var m = CheckedAddress(i.Dst, i.Off, size, write: true, atomic: true);
        var mem = is64 ? __qword_ptr[m] : __dword_ptr[m];
        var s64 = R64[i.Src];
        var s32 = R32[i.Src];
        int kind = (int)i.Imm; // AtomicKind
        switch (kind)
        {
            case 0: if (is64) _a.@lock.add(mem, s64); else _a.@lock.add(mem, s32); break;
            case 1: if (is64) _a.@lock.or(mem, s64); else _a.@lock.or(mem, s32); break;
            case 2: if (is64) _a.@lock.and(mem, s64); else _a.@lock.and(mem, s32); break;
            case 3: if (is64) _a.@lock.xor(mem, s64); else _a.@lock.xor(mem, s32); break;
            case 4: if (is64) _a.@lock.xadd(mem, s64); else _a.@lock.xadd(mem, s32); break;
            case 5: case 6: case 7:
            {
                // fetch or/and/xor: a compare-exchange loop; rax (r0) is parked in r10.
                var loop = _a.CreateLabel();
                _a.mov(r10, rax);
                Bind(ref loop);
                if (is64) _a.mov(rax, mem); else _a.mov(eax, mem);
                _a.mov(rcx, rax);
                var src = i.Src == 0 ? r10 : s64; // r0 as the operand: use its parked value
                if (kind == 5) _a.or(rcx, src);
                else if (kind == 6) _a.and(rcx, src);
                else _a.xor(rcx, src);
                if (is64) _a.@lock.cmpxchg(mem, rcx); else _a.@lock.cmpxchg(mem, ecx);
                _a.jne(loop);
                if (i.Src == 0)
                {
                    if (!is64) _a.mov(eax, eax); // r0 receives the old value
                }
                else
                {
                    if (is64) _a.mov(s64, rax); else _a.mov(s32, eax);
                    _a.mov(rax, r10);
                }
                break;
            }
            case 8: if (is64) _a.xchg(mem, s64); else _a.xchg(mem, s32); break;
            default:
                if (is64) _a.@lock.cmpxchg(mem, s64);
                else
                {
                    _a.@lock.cmpxchg(mem, s32);
                    _a.mov(eax, eax); // r0 is the zero-extended old value in both outcomes
                }
                break;
        }
    }

    private void EmitPacketLoad(int pc, DecodedInsn i)
    {
        bool ind = i.Op >= Op.LdIndB;
        int k = i.Op - (ind ? Op.LdIndB : Op.LdAbsB);
        int size = 1 << k;
        // r11 = offset into the packet (imm is unsigned, plus src for the indirect form).
        LoadImm(r11, (long)(uint)(int)i.Imm);
        if (ind) _a.add(r11, R64[i.Src]);
        var fault = _a.CreateLabel();
        if (ind)
        {
            // A wrapped sum is as bad as one past the end.
            _a.jc(fault);
        }
        _a.cmp(r11, CtxQ(JitContext.OffPacketBound + 8 * JitContext.BoundIndex(size)));
        _a.jae(fault);
        _a.add(r11, CtxQ(JitContext.OffPacketStart));
        switch (size)
        {
            case 1: _a.movzx(eax, __byte_ptr[r11]); break;
            case 2: _a.movzx(eax, __word_ptr[r11]); break;
            case 4: _a.mov(eax, __dword_ptr[r11]); break;
            default: _a.mov(rax, __qword_ptr[r11]); break;
        }
        if (_target.KernelPacketLoads)
        {
            // The kernel's meaning (socket and tc programs): network byte order, and outside the
            // packet the program ends with 0.
            if (size == 2) _a.rol(ax, 8);
            if (size == 4) _a.bswap(eax);
            _cold.Add(new ColdCode(fault, ColdKind.PacketFault, pc, 0));
            return;
        }
        _cold.Add(new ColdCode(fault, ColdKind.PacketFault, pc, size));
    }

    /// <summary>A legacy packet load of <paramref name="size"/> bytes at <paramref name="pc"/> outside the
    /// packet (the offset in r11): an out-of-bounds fault, or with size 0 (the kernel's meaning) the end
    /// of the run with 0.</summary>
    private void EmitPacketFault(int pc, int size)
    {
        if (size == 0)
        {
            _a.xor(eax, eax);
            _a.jmp(_exitWithResult);
            return;
        }
        _a.add(r11, CtxQ(JitContext.OffPacketStart));
        _a.mov(CtxQ(JitContext.OffFaultAddress), r11);
        _a.mov(CtxD(JitContext.OffFaultSize), size);
        _a.mov(CtxD(JitContext.OffFaultKind), 2);
        Fail(pc, RbpfErrorCode.OutOfBounds);
    }

    /// <summary>
    /// Where the run goes from <paramref name="pc"/> (through ja) when that is <c>mov r0, K; exit</c>
    /// ending the run: r0's value K; else null.
    /// </summary>
    private long? TerminalConstant(int pc)
    {
        var code = _program.Code;
        for (int hops = 0; hops < 8 && pc >= 0 && pc + 1 < code.Length; hops++)
        {
            var i = code[pc];
            if (i.Op == Op.Ja) { pc = i.Off; continue; }
            if (i.Dst != 0 || code[pc + 1].Op != Op.Exit) return null;
            return i.Op switch { Op.Mov32Imm => (long)(uint)i.Imm, Op.Mov64Imm => i.Imm, _ => null };
        }
        return null;
    }

    /// <summary>
    /// A conditional jump both of whose sides end the run with a constant in r0 (classic BPF
    /// filters end in "accept or drop" this way): the comparison, then r0 picked by a cmov and the
    /// exit, so a verdict that follows the data costs no mispredicted branch. Not with local calls
    /// (an exit may return from a function), instruction counting or blinding.
    /// </summary>
    private bool TryEmitVerdict(int pc)
    {
        var i = _program.Code[pc];
        if (i.Op is < Op.Jeq64Imm or > Op.Jsle32Reg || _hasLocalCalls || _countInstructions || Blind) return false;
        if (TerminalConstant(i.Off) is not { } taken || TerminalConstant(pc + 1) is not { } fallthrough) return false;
        int cond = EmitCompare(pc, i);
        _a.mov(rax, fallthrough); // moves leave the flags alone
        _a.mov(r10, taken);
        _a.cmov(CondCodes[cond], rax, r10);
        EmitExitWithResult(inline: true);
        return true;
    }

    /// <summary>
    /// A chain of tests that all jump to one target T and otherwise fall through to the next
    /// (<c>if (p == 132 || p == 6 || p == 17) goto T</c>, classic filters' protocol lists): the
    /// compares without branches, each a cmov into r11, so traffic that mixes the values no longer
    /// mispredicts the chain. Then, by what follows:
    /// both sides end the run with constants: r0 picked by a cmov and the exit (<see cref="TryEmitVerdict"/>);
    /// the fallthrough drops and drops are a flag: the flag cleared when no test holds, and the run
    /// goes on at T (<see cref="TryEmitDropAsFlag"/>), leaving out a <c>ja</c> to the drop before T;
    /// otherwise one branch to T. <paramref name="slots"/>: the slots handled (the tests, and the
    /// <c>ja</c> left out). Not for tests of r2 (guards of loads), nor with blinding (its compares use
    /// r11) or instruction counting (every test ends a block).
    /// </summary>
    private bool TryEmitAnyOf(int pc, out int slots)
    {
        slots = 0;
        var code = _program.Code;
        // Most slots are not two tests with one target: out at once.
        if ((uint)(pc + 2) >= (uint)code.Length || code[pc].Op is < Op.Jeq64Imm or > Op.Jsle32Reg
            || code[pc + 1].Op is < Op.Jeq64Imm or > Op.Jsle32Reg || code[pc + 1].Off != code[pc].Off || Blind || _countInstructions)
            return false;
        int target = code[pc].Off, n = 0;
        while (pc + n < code.Length - 1 && code[pc + n] is { Op: >= Op.Jeq64Imm and <= Op.Jsle32Reg } t && t.Off == target
            && t.Dst != 2 && !((((t.Op - Op.Jeq64Imm) & 1) != 0) && t.Src == 2)
            && (n == 0 || !IsJumpTarget(pc + n) && !_program.PollPoints[pc + n] && !(_options.Interruptible && _polls[pc + n]))
            && (_groups == null || _groups[pc + n].Count <= 1))
            n++;
        if (n < 2 || target <= pc + n) return false;
        int fall = pc + n, last = pc + n - 1;
        long? taken = TerminalConstant(target), fallen = TerminalConstant(fall);
        bool verdict = !_hasLocalCalls && taken is not null && fallen is not null;
        bool flag = !verdict && _keep != null && BecomesFlag(last) && DropSide(last) < 0;
        if (!verdict && !flag && _keep != null && taken == 0) return false; // drop tests: each a flag already
        // r11 = 1 (or the flag) when a test holds, else 0
        var any = flag ? _keep!.Value : r10;
        if (!flag) _a.mov(r10d, 1);
        _a.xor(r11d, r11d);
        for (int k = 0; k < n; k++) _a.cmov(CondCodes[EmitCompare(pc + k, code[pc + k])], r11, any);
        slots = n;
        if (verdict)
        {
            _a.test(r11, r11);
            _a.mov(rax, fallen!.Value); // moves leave the flags alone
            _a.mov(r10, taken!.Value);
            _a.cmov(5, rax, r10); // cmovnz
            EmitExitWithResult(inline: true);
        }
        else if (flag)
        {
            _a.mov(_keep!.Value, r11); // cleared when no test held: the fallthrough drops
            if (target == fall + 1 && code[fall].Op == Op.Ja && !IsJumpTarget(fall) && !_program.PollPoints[fall]
                && !(_options.Interruptible && _polls[fall]))
                slots = n + 1; // the ja to the drop is left out: the run falls through to T
            else _a.jmp(_pcLabels[target]);
        }
        else
        {
            _a.test(r11, r11);
            _a.jnz(_pcLabels[target]);
        }
        return true;
    }

    /// <summary>The register holding 1 while no drop was passed over, 0 after (see <see cref="TryEmitDropAsFlag"/>); null when not used.</summary>
    private Gpr64? _keep;
    private bool _dropsAsFlag;

    /// <summary>
    /// Whether drops may become a flag (<see cref="TryEmitDropAsFlag"/>): a raw VM's program that
    /// cannot fail, loop, or change anything but its registers and stack whichever way its tests
    /// go: every input access proven inside the input (<see cref="InputBounds"/>), no stores but
    /// to the stack, no calls, atomics or legacy packet loads, no backward jumps; with an eBPF
    /// register it never names for the flag, and no instruction counting or blinding. The input
    /// accesses must be proven without what the drop tests tell, since the run goes past them.
    /// </summary>
    private bool CanTurnDropsIntoAFlag()
    {
        var code = _program.Code;
        if (_target.Kind != VmKind.Raw || _inInput == null || _countInstructions || Blind || _hasLocalCalls) return false;
        if (UsesRegister(6) && UsesRegister(7) && UsesRegister(8) && UsesRegister(9)) return false; // no register left for the flag
        bool any = false;
        for (int pc = 0; pc < code.Length - 1; pc++) // the last slot is the trailing illegal one
        {
            var i = code[pc];
            if (pc > 0 && code[pc - 1].Op == Op.Lddw) continue;
            switch (i.Op)
            {
                case Op.Call or Op.CallX or Op.CallLocal or Op.Illegal or (>= Op.LdAbsB and <= Op.LdIndDW) or (Op.Atomic32 or Op.Atomic64):
                    return false;
                case >= Op.LdxB and <= Op.LdxSW:
                    if (!_target.InsideFrame(i.Src, i.Off, JitTarget.AccessSize(i.Op)) && !_inInput[pc]) return false;
                    break;
                case >= Op.StB and <= Op.StxDW:
                    if (!_target.InsideFrame(i.Dst, i.Off, JitTarget.AccessSize(i.Op))) return false;
                    break;
                case Op.Ja:
                    if (i.Off <= pc) return false;
                    break;
                case >= Op.Jeq64Imm and <= Op.Jsle32Reg:
                    if (i.Off <= pc) return false;
                    any |= BecomesFlag(pc);
                    break;
            }
        }
        if (!any) return false;
        // The run goes on past the tests that would drop, the way the program does not: the loads
        // must stay inside the input whichever way those tests go (a test that bounds an offset,
        // `if (off > 56) drop`, no longer guards the load through it). So prove them again with
        // the tests telling nothing.
        var forced = new bool[code.Length];
        for (int pc = 0; pc < code.Length - 1; pc++)
            forced[pc] = code[pc].Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg && !(pc > 0 && code[pc - 1].Op == Op.Lddw) && BecomesFlag(pc);
        using var facts = InputBounds.Analyze(code, forced);
        var proven = facts?.Proven;
        for (int pc = 0; pc < code.Length - 1; pc++)
        {
            var i = code[pc];
            if (i.Op is >= Op.LdxB and <= Op.LdxSW && !(pc > 0 && code[pc - 1].Op == Op.Lddw)
                && !_target.InsideFrame(i.Src, i.Off, JitTarget.AccessSize(i.Op)) && !(proven?[pc] ?? false))
                return false;
        }
        return true;
    }

    /// <summary>Whether the conditional jump at <paramref name="pc"/> clears the flag rather than branching: one
    /// side drops, and not both sides end the run (those are one compare and a cmov, <see cref="TryEmitVerdict"/>).</summary>
    private bool BecomesFlag(int pc) =>
        DropSide(pc) != 0 && (TerminalConstant(_program.Code[pc].Off) is null || TerminalConstant(pc + 1) is null);

    /// <summary>
    /// For a conditional jump that tests the data (not r2, whose tests guard loads) and leads on
    /// one side only to a drop (<c>mov r0, 0; exit</c>): 1 when the taken side drops, -1 when the
    /// fallthrough does; else 0.
    /// </summary>
    private int DropSide(int pc)
    {
        var i = _program.Code[pc];
        bool reg = ((i.Op - Op.Jeq64Imm) & 1) != 0;
        if (i.Dst == 2 || reg && i.Src == 2) return 0;
        bool takenDrops = TerminalConstant(i.Off) == 0, fallthroughDrops = TerminalConstant(pc + 1) == 0;
        return takenDrops == fallthroughDrops ? 0 : takenDrops ? 1 : -1;
    }

    /// <summary>
    /// A test whose one side drops the input, in a program where running on costs nothing but time
    /// (<see cref="CanTurnDropsIntoAFlag"/>): instead of a branch, the flag is cleared when the test
    /// says drop, and the run goes on the other way; every exit then returns 0 if the flag is clear.
    /// The result is the same (the drop's 0, or what the path not dropped returns), and a filter
    /// over mixed traffic no longer mispredicts its protocol and port tests.
    /// </summary>
    /// <remarks>When the fallthrough that drops is a <c>ja</c> to the drop that nothing else
    /// reaches and the test's target is just past it (classic translations: <c>jeq r0, 0x800, c2;
    /// ja drop; c2:</c>), the run no longer goes there: the <c>ja</c> is left out
    /// (<paramref name="jaLeftOut"/>) and the run falls through to the target.</remarks>
    private bool TryEmitDropAsFlag(int pc, out bool jaLeftOut)
    {
        jaLeftOut = false;
        if (_keep is not { } keep || _program.Code[pc].Op is < Op.Jeq64Imm or > Op.Jsle32Reg) return false;
        int side = DropSide(pc);
        if (side == 0) return false;
        var i = _program.Code[pc];
        var code = _program.Code;
        _a.xor(r11d, r11d);
        int cc = CondCodes[EmitCompare(pc, i)];
        if (side > 0) _a.cmov(cc, keep, r11); // taken drops: the run goes on below
        else
        {
            _a.cmov(cc ^ 1, keep, r11); // the fallthrough drops: the run goes on at the target
            jaLeftOut = i.Off == pc + 2 && code[pc + 1].Op == Op.Ja && !IsJumpTarget(pc + 1)
                && !_program.PollPoints[pc + 1] && !(_options.Interruptible && _polls[pc + 1]);
            if (!jaLeftOut) _a.jmp(_pcLabels[i.Off]);
        }
        return true;
    }

    /// <summary>The test whose compare uses <see cref="_unswappedImm"/> (-1: none).</summary>
    private int _unswappedTest = -1;
    private long _unswappedImm;

    /// <summary>
    /// A big-endian field tested for equality or bits (<c>ldxh r0, [r1+12]; be16 r0; jeq r0, 0x800</c>,
    /// how every classic filter starts) when nothing reads the register after the test: the load
    /// without the byte swap, and the test against the swapped constant (<c>cmp eax, 8</c>), which
    /// holds exactly when the original does. Returns whether the load was emitted; the swap's slot
    /// then has no code of its own.
    /// </summary>
    private bool TryEmitUnswappedLoad(int pc)
    {
        var code = _program.Code;
        if ((uint)(pc + 3) >= (uint)code.Length || code[pc].Op is not (Op.LdxH or Op.LdxW) || Blind || _countInstructions) return false;
        DecodedInsn load = code[pc], swap = code[pc + 1], test = code[pc + 2];
        int r = load.Dst;
        if (!(load.Op == Op.LdxH && swap.Op == Op.Swap16 || load.Op == Op.LdxW && swap.Op == Op.Swap32) || swap.Dst != r || test.Dst != r) return false;
        if (test.Op is not (Op.Jeq64Imm or Op.Jeq32Imm or Op.Jne64Imm or Op.Jne32Imm or Op.Jset64Imm or Op.Jset32Imm)) return false;
        for (int k = pc + 1; k <= pc + 2; k++)
            if (IsJumpTarget(k) || _program.PollPoints[k] || (_options.Interruptible && _polls[k]) || (_groups != null && _groups[k].Count > 1)) return false;
        if (_groups != null && _groups[pc].Count > 1) return false;
        // The value the test sees: 16 or 32 bits, zero-extended; the constant as the test widens it.
        ulong value = test.Op is Op.Jeq32Imm or Op.Jne32Imm or Op.Jset32Imm ? (uint)test.Imm : (ulong)test.Imm;
        bool bits = test.Op is Op.Jset64Imm or Op.Jset32Imm;
        if (load.Op == Op.LdxH)
        {
            if (bits) value &= 0xffff;
            else if (value > 0xffff) return false; // never equal: left as it is
            _unswappedImm = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)value);
        }
        else
        {
            if (bits) value &= 0xffff_ffff;
            else if (value > 0xffff_ffff) return false;
            _unswappedImm = (int)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)value);
        }
        int budget = 64;
        if (!RegisterUse.DeadAt(code, r, pc + 3, ref budget) || !RegisterUse.DeadAt(code, r, test.Off, ref budget)) return false;
        EmitInstruction(pc, load);
        _unswappedTest = pc + 2;
        return true;
    }

    /// <summary>x86 condition encodings of jeq, jgt, jge, jset, jne, jsgt, jsge, jlt, jle, jslt, jsle.</summary>
    private static readonly int[] CondCodes = { 4, 7, 3, 5, 5, 15, 13, 2, 6, 12, 14 };

    /// <summary>Compares (or tests, for jset) as the conditional jump <paramref name="i"/> at slot
    /// <paramref name="pc"/> does; returns its condition index. After a load left unswapped
    /// (<see cref="TryEmitUnswappedLoad"/>) its constant is the swapped one, compared in 32 bits.</summary>
    private int EmitCompare(int pc, DecodedInsn i)
    {
        int k = i.Op - Op.Jeq64Imm;
        int cond = k / 4;
        bool reg = (k & 1) != 0, is32 = (k & 2) != 0;
        if (pc == _unswappedTest)
        {
            i.Imm = _unswappedImm;
            is32 = true;
        }
        var d64 = R64[i.Dst];
        var d32 = R32[i.Dst];
        bool test = cond == 3; // jset
        if (reg)
        {
            if (test) { if (is32) _a.test(d32, R32[i.Src]); else _a.test(d64, R64[i.Src]); }
            else { if (is32) _a.cmp(d32, R32[i.Src]); else _a.cmp(d64, R64[i.Src]); }
        }
        else if (Blind)
        {
            LoadImm(r11, i.Imm);
            if (test) { if (is32) _a.test(d32, r11d); else _a.test(d64, r11); }
            else { if (is32) _a.cmp(d32, r11d); else _a.cmp(d64, r11); }
        }
        else
        {
            int imm = (int)i.Imm;
            if (test) { if (is32) _a.test(d32, imm); else _a.test(d64, imm); }
            else if (imm == 0 && cond is 0 or 4 && ZeroFlagHolds(pc, i, is32)) { } // the operation before set them
            else if (imm == 0) { if (is32) _a.test(d32, d32); else _a.test(d64, d64); } // the flags of cmp x, 0, one byte shorter
            else { if (is32) _a.cmp(d32, imm); else _a.cmp(d64, imm); }
        }
        return cond;
    }

    private void EmitConditionalJump(int pc, DecodedInsn i, int? invertedTo = null)
    {
        int cond = EmitCompare(pc, i);
        var target = _pcLabels[i.Off];
        if (invertedTo is { } other)
        {
            // The jump skips a ja that follows it: jump to the ja's target on the opposite condition.
            target = _pcLabels[other];
            cond = cond switch { 0 => 4, 4 => 0, 1 => 8, 8 => 1, 2 => 7, 7 => 2, 5 => 10, 10 => 5, 6 => 9, 9 => 6, _ => -1 };
            if (cond < 0) { _a.jz(target); return; } // not jset
        }
        Jcc(cond, target);
    }

    /// <summary>The x86 jump for an eBPF condition (<see cref="EmitCompare"/>'s result) to <paramref name="target"/>.</summary>
    private void Jcc(int cond, X64Label target)
    {
        switch (cond)
        {
            case 0: _a.je(target); break;   // jeq
            case 1: _a.ja(target); break;   // jgt
            case 2: _a.jae(target); break;  // jge
            case 3: _a.jnz(target); break;  // jset
            case 4: _a.jne(target); break;  // jne
            case 5: _a.jg(target); break;   // jsgt
            case 6: _a.jge(target); break;  // jsge
            case 7: _a.jb(target); break;   // jlt
            case 8: _a.jbe(target); break;  // jle
            case 9: _a.jl(target); break;   // jslt
            default: _a.jle(target); break; // jsle
        }
    }

    private static readonly Gpr64[] HelperSaved = { rdi, rsi, rdx, r8, r9 };

    /// <summary>
    /// Calls <paramref name="target"/> with r1-r5 as its first five arguments (r4 moves from r9 to
    /// rcx) and, for the runtime's trampolines (<paramref name="withContext"/>), the context as the
    /// sixth, or for native helpers (<paramref name="withMemory"/>) the run's memory pointer, as uBPF
    /// passes it; r1-r5 are kept, as the interpreter keeps them.
    /// </summary>
    private void EmitCallWithArguments(ulong target, bool withContext, bool withMemory = false)
    {
        foreach (var r in HelperSaved) _a.push(r);
        _a.sub(rsp, 8);
        _a.mov(rcx, r9);
        if (withContext) _a.mov(r9, r12);
        else if (withMemory) _a.mov(r9, CtxQ(JitContext.OffPacketStart));
        CallOut(target, withContext || withMemory ? 6 : 5);
        _a.add(rsp, 8);
        for (int k = HelperSaved.Length - 1; k >= 0; k--) _a.pop(HelperSaved[k]);
    }

    /// <summary>
    /// Calls <paramref name="target"/> with <paramref name="argc"/> arguments, placed as System V
    /// places them (rdi, rsi, rdx, rcx, r8, r9), rsp 16-byte aligned; clobbers rax. Under the Microsoft
    /// convention they move to rcx, rdx, r8, r9 and the stack above 32 bytes of shadow space (an
    /// emulated call goes to an adapter that moves them back).
    /// </summary>
    private void CallOut(ulong target, int argc)
    {
        if (!_win64)
        {
            _a.mov(rax, target);
            _a.call(rax);
            return;
        }
        int reserve = argc > 4 ? 48 : 32;
        _a.sub(rsp, reserve);
        ToWin64(argc);
        if (_emulated) _a.call(Win64ToSysV(target));
        else
        {
            _a.mov(rax, target);
            _a.call(rax);
        }
        _a.add(rsp, reserve);
    }

    /// <summary>
    /// Emulation only: a function called the Microsoft way that calls <paramref name="target"/> the
    /// System V way with up to six arguments, keeping rdi and rsi as the Microsoft convention requires.
    /// </summary>
    private X64Label Win64ToSysV(ulong target)
    {
        _adapters ??= new();
        if (_adapters.TryGetValue(target, out var label)) return label;
        label = _a.CreateLabel();
        _adapters[target] = label;
        _cold.Add(new ColdCode(label, ColdKind.Win64Adapter, (int)target, (int)(target >> 32)));
        return label;
    }

    /// <summary>The adapter <see cref="Win64ToSysV"/> queued for <paramref name="target"/>.</summary>
    private void EmitWin64Adapter(ulong target)
    {
        EnterFromWin64(sixth: true);
        _a.mov(rax, target);
        _a.call(rax);
        LeaveToWin64();
    }

    /// <summary>After a call into the runtime: fail the run with the status it reported, if any.</summary>
    private void EmitStatusCheck(int pc)
    {
        var fail = _a.CreateLabel();
        _a.cmp(CtxD(JitContext.OffStatus), 0);
        _a.jne(fail);
        _cold.Add(new ColdCode(fail, ColdKind.StatusFailure, pc, 0));
    }

    /// <summary>A native helper reported a failure (rbpf_helper_fail): the runtime takes it as the run's
    /// status at <paramref name="pc"/>, then on to <paramref name="back"/> (past the status check).</summary>
    private void EmitHelperReported(int pc, int slot, X64Label back)
    {
        _a.mov(CtxD(JitContext.OffFaultPc), pc);
        _a.mov(CtxD(JitContext.OffHelperSlot), slot);
        _a.push(rax);
        _a.sub(rsp, 8);
        EmitCallWithArguments((ulong)JitRuntime.TakeHelperFailureFn, withContext: true);
        _a.add(rsp, 8);
        _a.pop(rax);
        EmitStatusCheck(pc);
        _a.jmp(back);
    }

    /// <summary>The failure a helper left in the status, reported at <paramref name="pc"/>.</summary>
    private void EmitStatusFailure(int pc)
    {
        _a.mov(CtxD(JitContext.OffFaultPc), pc);
        _a.mov(eax, CtxD(JitContext.OffStatus));
        _a.jmp(_errorExit);
    }

    /// <summary>
    /// bpf_map_lookup_elem without leaving the generated code, for the usual case: r1 a map bound
    /// when the code was compiled, r2 a key inside the stack frames in use. An array's value address
    /// is computed inline; a hash map's comes from the native lookup (native/maps.c) when the
    /// library has one. Anything else jumps to the code that follows (the managed helper, which
    /// also gives every error). Returns the label to bind after that code.
    /// </summary>
    private X64Label EmitMapLookupFast()
    {
        var slow = _a.CreateLabel();
        var done = _a.CreateLabel();
        var array = _a.CreateLabel();
        var missing = _a.CreateLabel();
        var hash = _a.CreateLabel();
        // The map (Tag | fd, with a map at fd in the table), and the key inside [StackStart, StackTop).
        EmitMapAndStackPointer(slow, findMap: true, rsi, Maps.MapDescriptor.OffKeySize);
        _a.mov(eax, __dword_ptr[r10 + Maps.MapDescriptor.OffType]);
        _a.cmp(eax, (int)Maps.MapType.Array);
        _a.je(array);
        _a.cmp(eax, (int)Maps.MapType.PerCpuArray);
        _a.je(array);
        if (Maps.MapHelpers.NativeHashLookup != 0)
        {
            _a.cmp(eax, (int)Maps.MapType.Hash);
            _a.je(hash);
            _a.cmp(eax, (int)Maps.MapType.PerCpuHash);
            _a.je(hash);
            _a.cmp(eax, (int)Maps.MapType.LruHash);
            _a.je(hash);
        }
        _a.jmp(slow);
        Bind(ref array);
        _a.mov(eax, __dword_ptr[rsi]);
        _a.cmp(eax, __dword_ptr[r10 + Maps.MapDescriptor.OffMaxEntries]);
        _a.jae(missing);
        _a.mov(r11d, __dword_ptr[r10 + Maps.MapDescriptor.OffStride]);
        _a.imul(rax, r11);
        _a.add(rax, __qword_ptr[r10 + Maps.MapDescriptor.OffValues]);
        _a.jmp(done);
        Bind(ref missing);
        _a.xor(eax, eax);
        _a.jmp(done);
        if (Maps.MapHelpers.NativeHashLookup != 0)
        {
            Bind(ref hash);
            foreach (var r in HelperSaved) _a.push(r);
            _a.sub(rsp, 8);
            _a.mov(rdi, r10);
            CallOut((ulong)Maps.MapHelpers.NativeHashLookup, 2);
            _a.add(rsp, 8);
            for (int k = HelperSaved.Length - 1; k >= 0; k--) _a.pop(HelperSaved[k]);
            _a.jmp(done);
        }
        Bind(ref slow);
        return done;
    }

    /// <summary>
    /// The map in r1 as <see cref="EmitMapLookupFast"/> finds it (its descriptor into r10), and
    /// <paramref name="sizeOffset"/>'s bytes at <paramref name="pointer"/> inside the stack frames in
    /// use; otherwise to <paramref name="slow"/>. Clobbers rax, rcx, r11.
    /// </summary>
    private void EmitMapAndStackPointer(X64Label slow, bool findMap, Gpr64 pointer, int sizeOffset)
    {
        if (findMap)
        {
            _a.mov(r11, rdi);
            _a.shr(r11, 32);
            _a.cmp(r11d, unchecked((int)(Maps.MapHelpers.Tag >> 32)));
            _a.jne(slow);
            _a.mov(r11d, edi);
            _a.cmp(r11, _target.MapTableLength);
            _a.jae(slow);
            _a.mov(r10, (long)_target.MapTable);
            _a.mov(r10, __qword_ptr[r10 + r11 * 8]);
            _a.test(r10, r10);
            _a.jz(slow);
        }
        _a.mov(ecx, __dword_ptr[r10 + sizeOffset]);
        _a.mov(r11, pointer);
        _a.sub(r11, CtxQ(JitContext.OffStackStart));
        _a.mov(rax, CtxQ(JitContext.OffStackTop));
        _a.sub(rax, CtxQ(JitContext.OffStackStart));
        _a.sub(rax, rcx);
        _a.jb(slow);
        _a.cmp(r11, rax);
        _a.ja(slow);
    }

    /// <summary>
    /// bpf_map_update_elem of a present key (flags 0 or 2, an array or hash map bound at compile
    /// time, key and value in the stack frames in use) in C; anything else, or a missing key, falls
    /// through to the managed helper.
    /// </summary>
    private X64Label EmitMapUpdateFast()
    {
        var slow = _a.CreateLabel();
        var done = _a.CreateLabel();
        _a.test(r9, ~2); // r4 (the flags) is 0 or 2
        _a.jnz(slow);
        EmitMapAndStackPointer(slow, findMap: true, rsi, Maps.MapDescriptor.OffKeySize);
        EmitMapAndStackPointer(slow, findMap: false, rdx, Maps.MapDescriptor.OffValueSize);
        _a.mov(eax, __dword_ptr[r10 + Maps.MapDescriptor.OffType]);
        _a.cmp(eax, (int)Maps.MapType.ProgramArray);
        _a.je(slow);
        _a.cmp(eax, (int)Maps.MapType.RingBuffer);
        _a.je(slow);
        foreach (var r in HelperSaved) _a.push(r);
        _a.sub(rsp, 8);
        _a.mov(rdi, r10); // rsi: the key, rdx: the value
        CallOut((ulong)Maps.MapHelpers.NativeUpdatePresent, 3);
        _a.add(rsp, 8);
        for (int k = HelperSaved.Length - 1; k >= 0; k--) _a.pop(HelperSaved[k]);
        _a.test(rax, rax);
        _a.jz(done);
        Bind(ref slow);
        return done;
    }

    /// <summary>Calls helper <c>imm</c>: a native function directly, a managed one through the runtime.</summary>
    private unsafe void EmitHelperCall(int pc, DecodedInsn i)
    {
        uint key = (uint)i.Imm;
        HelperEntry? h = i.Off >= 0 ? _helpers.BySlot(i.Off) : null;
        if (h == null)
        {
            var fail = _a.CreateLabel();
            _a.jmp(fail);
            ColdFail(fail, pc, RbpfErrorCode.UnknownHelper);
            return;
        }
        X64Label? fastDone = h.IsMapLookup && _target.MapTable != 0 ? EmitMapLookupFast()
            : h.IsMapUpdate && _target.MapTable != 0 && Maps.MapHelpers.NativeUpdatePresent != 0 ? EmitMapUpdateFast()
            : null;
        if (h.Native != null)
        {
            EmitCallWithArguments((ulong)h.Native, withContext: false, withMemory: true);
            // A native helper fails its run by reporting it (rbpf_helper_fail) before it returns.
            var reported = _a.CreateLabel();
            var checkedFailure = _a.CreateLabel();
            _a.mov(r11, (ulong)HelperFailure.Pending);
            _a.cmp(__dword_ptr[r11], 0);
            _a.jne(reported);
            _cold.Add(new ColdCode(reported, ColdKind.HelperReported, pc, i.Off, checkedFailure));
            Bind(ref checkedFailure);
        }
        else
        {
            _a.mov(CtxD(JitContext.OffFaultPc), pc);
            _a.mov(CtxD(JitContext.OffHelperSlot), i.Off);
            EmitCallWithArguments((ulong)JitRuntime.HelperTrampolineFn, withContext: true);
            EmitStatusCheck(pc);
        }
        if (fastDone is { } doneLabel)
        {
            var l = doneLabel;
            Bind(ref l);
        }
        if (_unwindHelper == key)
        {
            _a.test(rax, rax);
            _a.jz(_exitWithResult);
        }
    }

    /// <summary>callx: the helper id is in a register, so the runtime looks it up.</summary>
    private void EmitCallX(int pc, DecodedInsn i)
    {
        _a.mov(CtxQ(JitContext.OffCallXKey), R64[i.Dst]);
        _a.mov(CtxD(JitContext.OffFaultPc), pc);
        EmitCallWithArguments((ulong)JitRuntime.CallXTrampolineFn, withContext: true);
        EmitStatusCheck(pc);
        if (_unwindHelper >= 0)
        {
            var skip = _a.CreateLabel();
            _a.mov(r11, (ulong)_unwindHelper);
            _a.cmp(CtxQ(JitContext.OffCallXKey), r11);
            _a.jne(skip);
            _a.test(rax, rax);
            _a.jz(_exitWithResult);
            Bind(ref skip);
        }
    }

    private void EmitLocalCall(int pc, DecodedInsn i)
    {
        // The stack layout's sizes: how far r10 moves down (the caller's frame), what the callee needs.
        int drop = (int)(uint)i.Imm, callee = (int)((ulong)i.Imm >> 32);
        var tooDeep = _a.CreateLabel();
        _a.cmp(CtxD(JitContext.OffDepth), _target.MaxFrames - 1);
        _a.jae(tooDeep);
        _a.mov(r10, rbp); // the new frame must fit in the stack: r10 - drop - callee >= bottom
        _a.sub(r10, CtxQ(JitContext.OffStackBottom));
        _a.cmp(r10, drop + callee);
        _a.jb(tooDeep);
        ColdFail(tooDeep, pc, RbpfErrorCode.CallDepthExceeded);
        _a.inc(CtxD(JitContext.OffDepth));
        _a.push(rbx); _a.push(r13); _a.push(r14); _a.push(r15); _a.push(rbp);
        if (drop != 0) _a.sub(rbp, drop);
        // Grow the stack region to 512 bytes below the new frame pointer if it is the deepest yet.
        _a.lea(r10, __[rbp - Isa.StackFrameSize]);
        EmitLowerStackStart(shared: true);
        // A new frame starts zeroed (as far as the program can read it).
        ZeroBelowFramePointer();
        _a.call(_pcLabels[i.Off]);
        _a.pop(rbp); _a.pop(r15); _a.pop(r14); _a.pop(r13); _a.pop(rbx);
        _a.dec(CtxD(JitContext.OffDepth));
    }
}
