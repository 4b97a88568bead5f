using System.Runtime.CompilerServices;

namespace Rbpf;

/// <summary>
/// Operations of the decoded form the interpreter dispatches on. Every variant the raw encoding
/// selects with another field (signed division by the offset, sign-extending moves, byte-swap
/// width, atomic operation in the immediate) is its own operation, so dispatch is one switch.
/// ALU and jump groups are laid out as [operation][64 imm, 64 reg, 32 imm, 32 reg].
/// </summary>
internal enum Op : byte
{
    // ALU groups, each four variants: 64-bit imm, 64-bit reg, 32-bit imm, 32-bit reg.
    Add64Imm, Add64Reg, Add32Imm, Add32Reg,
    Sub64Imm, Sub64Reg, Sub32Imm, Sub32Reg,
    Mul64Imm, Mul64Reg, Mul32Imm, Mul32Reg,
    Div64Imm, Div64Reg, Div32Imm, Div32Reg,
    Or64Imm, Or64Reg, Or32Imm, Or32Reg,
    And64Imm, And64Reg, And32Imm, And32Reg,
    Lsh64Imm, Lsh64Reg, Lsh32Imm, Lsh32Reg,
    Rsh64Imm, Rsh64Reg, Rsh32Imm, Rsh32Reg,
    Mod64Imm, Mod64Reg, Mod32Imm, Mod32Reg,
    Xor64Imm, Xor64Reg, Xor32Imm, Xor32Reg,
    Mov64Imm, Mov64Reg, Mov32Imm, Mov32Reg,
    Arsh64Imm, Arsh64Reg, Arsh32Imm, Arsh32Reg,
    SDiv64Imm, SDiv64Reg, SDiv32Imm, SDiv32Reg,
    SMod64Imm, SMod64Reg, SMod32Imm, SMod32Reg,
    Neg64, Neg32,
    MovSx64From8, MovSx64From16, MovSx64From32, MovSx32From8, MovSx32From16,
    Zext16, Zext32, Nop, Swap16, Swap32, Swap64,
    Lddw,
    LdAbsB, LdAbsH, LdAbsW, LdAbsDW, LdIndB, LdIndH, LdIndW, LdIndDW,
    LdxB, LdxH, LdxW, LdxDW, LdxSB, LdxSH, LdxSW,
    StB, StH, StW, StDW, StxB, StxH, StxW, StxDW,
    /// <summary>An atomic operation on a 32- or 64-bit cell, which one in Imm (<see cref="AtomicKind"/>).</summary>
    Atomic32, Atomic64,
    Ja,
    // Conditional jump groups, each four variants: 64-bit imm, 64-bit reg, 32-bit imm, 32-bit reg.
    Jeq64Imm, Jeq64Reg, Jeq32Imm, Jeq32Reg,
    Jgt64Imm, Jgt64Reg, Jgt32Imm, Jgt32Reg,
    Jge64Imm, Jge64Reg, Jge32Imm, Jge32Reg,
    Jset64Imm, Jset64Reg, Jset32Imm, Jset32Reg,
    Jne64Imm, Jne64Reg, Jne32Imm, Jne32Reg,
    Jsgt64Imm, Jsgt64Reg, Jsgt32Imm, Jsgt32Reg,
    Jsge64Imm, Jsge64Reg, Jsge32Imm, Jsge32Reg,
    Jlt64Imm, Jlt64Reg, Jlt32Imm, Jlt32Reg,
    Jle64Imm, Jle64Reg, Jle32Imm, Jle32Reg,
    Jslt64Imm, Jslt64Reg, Jslt32Imm, Jslt32Reg,
    Jsle64Imm, Jsle64Reg, Jsle32Imm, Jsle32Reg,
    Call, CallLocal, CallX, Exit,
    /// <summary>A slot that cannot execute; its problem is in <see cref="DecodedProgram.Problems"/>.</summary>
    Illegal,
    // Fused instructions, only in DecodedProgram.Fused (the interpreter's unobserved runs): each
    // stands for the two to four slots it starts, none of which but the first a block starts at.
    // The operations are a byte: 255 of its 256 values are taken.
    /// <summary><c>mov d, s; op d, x</c> as one three-operand instruction, d = s op x (s in Src, the
    /// immediate or t in Imm; t is not d), in the ALU groups' layout. A mov32 only before a 32-bit
    /// operation (a 64-bit one would read s without the mov's zero extension).</summary>
    AddTo64Imm, AddTo64Reg, AddTo32Imm, AddTo32Reg,
    SubTo64Imm, SubTo64Reg, SubTo32Imm, SubTo32Reg,
    MulTo64Imm, MulTo64Reg, MulTo32Imm, MulTo32Reg,
    OrTo64Imm, OrTo64Reg, OrTo32Imm, OrTo32Reg,
    AndTo64Imm, AndTo64Reg, AndTo32Imm, AndTo32Reg,
    LshTo64Imm, LshTo64Reg, LshTo32Imm, LshTo32Reg,
    RshTo64Imm, RshTo64Reg, RshTo32Imm, RshTo32Reg,
    XorTo64Imm, XorTo64Reg, XorTo32Imm, XorTo32Reg,
    ArshTo64Imm, ArshTo64Reg, ArshTo32Imm, ArshTo32Reg,
    /// <summary><c>mov64 d, s; add64 d, t; ldx x, [d + off]</c> (x in Dst, s in Src, t | d &lt;&lt; 8 in
    /// Imm): d = s + t, then the load; a fault is the third slot's.</summary>
    LdxIndexedB, LdxIndexedH, LdxIndexedW, LdxIndexedDW,
    /// <summary><c>ldx x, [s + off]; be x</c> of the load's width: the load, byte-swapped.</summary>
    LdxSwapH, LdxSwapW, LdxSwapDW,
    /// <summary><see cref="LdxIndexedH"/> and the others followed by that byte swap (four slots).</summary>
    LdxIndexedSwapH, LdxIndexedSwapW, LdxIndexedSwapDW,
    /// <summary><c>d = s + k; jcc ...</c>: an instruction that sets one register (d &lt;&lt; 4 | s in Src,
    /// k in Imm's high half), then the conditional jump after it (its register in Dst, its
    /// immediate or register in Imm's low half, its target in Off), in the conditional jump
    /// groups' layout. The first is <c>mov64 d, s</c> (k = 0), <c>add64 d, k</c> or <c>sub64 d, -k</c>
    /// (s = d), or <c>mov64 d, k</c> or <c>mov32 d, k</c> with k &gt;= 0 (s = <see cref="DecodedProgram.ZeroRegister"/>).</summary>
    SetJeq64Imm, SetJeq64Reg, SetJeq32Imm, SetJeq32Reg,
    SetJgt64Imm, SetJgt64Reg, SetJgt32Imm, SetJgt32Reg,
    SetJge64Imm, SetJge64Reg, SetJge32Imm, SetJge32Reg,
    SetJset64Imm, SetJset64Reg, SetJset32Imm, SetJset32Reg,
    SetJne64Imm, SetJne64Reg, SetJne32Imm, SetJne32Reg,
    SetJsgt64Imm, SetJsgt64Reg, SetJsgt32Imm, SetJsgt32Reg,
    SetJsge64Imm, SetJsge64Reg, SetJsge32Imm, SetJsge32Reg,
    SetJlt64Imm, SetJlt64Reg, SetJlt32Imm, SetJlt32Reg,
    SetJle64Imm, SetJle64Reg, SetJle32Imm, SetJle32Reg,
    SetJslt64Imm, SetJslt64Reg, SetJslt32Imm, SetJslt32Reg,
    SetJsle64Imm, SetJsle64Reg, SetJsle32Imm, SetJsle32Reg,
    /// <summary><c>ldxdw x, [b + off]; add64 x, t; stxdw [b + off], x</c> (a counter kept in memory,
    /// as clang spills one to the stack): x in Dst, b in Src (not x), the immediate or t in Imm.
    /// Where the slot is not writable, the load runs alone and the others after it.</summary>
    LdxAddStxDWImm, LdxAddStxDWReg,
    /// <summary>A load or store through r10 with a constant offset inside its 512-byte frame, run
    /// unchecked where the VM's stack layout gives every frame those bytes (as the JIT does,
    /// <see cref="Jit.JitTarget.InsideFrame"/>), else as the plain one: the same fields.</summary>
    LdxStackB, LdxStackH, LdxStackW, LdxStackDW,
    StxStackB, StxStackH, StxStackW, StxStackDW,
    /// <summary><c>ldx x, [s + off]; lsh64 x, k; arsh64 x, k</c> with k = 64 less the load's bits: a
    /// sign-extending load as clang writes one before -mcpu=v4 (the load's fields).</summary>
    LdxSextB, LdxSextH, LdxSextW,
    /// <summary><c>ldx x, [s + off]; be64 x; arsh64 x, k</c> (16 or 32 bits; k in Imm): a big-endian
    /// field read signed, as clang writes <c>(int16_t)ntohs(...)</c> and signed bit fields.</summary>
    LdxBe64ArshH, LdxBe64ArshW,
    /// <summary><c>mov64 d, s; be d</c> of 16, 32 or 64 bits: d = s byte-swapped.</summary>
    MovSwap16, MovSwap32, MovSwap64,
    /// <summary><c>add64 d, k; stxw [b + off], s</c> / <c>stxdw</c>: the add (this slot's Dst and
    /// Imm), then the store, which keeps its own slot (as decoded, or <see cref="StxStackW"/>):
    /// one dispatch for the two, as clang updates an index next to a store in a loop.</summary>
    AddStxW, AddStxDW,
}

/// <summary>The operation of an <see cref="Op.Atomic32"/> or <see cref="Op.Atomic64"/> (its Imm): one
/// operation for both widths keeps the operations' byte free for the interpreter's fused forms.</summary>
internal enum AtomicKind
{
    Add, Or, And, Xor, FetchAdd, FetchOr, FetchAnd, FetchXor, Xchg, CmpXchg,
}

/// <summary>One decoded instruction: 16 bytes, everything the interpreter needs precomputed.</summary>
internal struct DecodedInsn
{
    public Op Op;
    public byte Dst;
    public byte Src;
    /// <summary>At the first slot of a basic block, the block's length in instructions (lddw counts
    /// once; blocks longer than 255 are cut); 0 elsewhere. Both engines charge the instruction limit
    /// with it as a block begins (see <see cref="DecodedProgram.MarkBlocks"/>).</summary>
    public byte Charge;
    /// <summary>Memory offset, absolute jump or call target, or resolved helper slot (-1: none).</summary>
    public int Off;
    /// <summary>Sign-extended immediate, the full 64-bit value of lddw, the helper id of a call, or for a
    /// local call the stack layout's frame sizes (<see cref="StackLayout"/>: drop | callee &lt;&lt; 32).</summary>
    public long Imm;
}

/// <summary>
/// A program decoded once at load into the form the interpreter runs. Decoding is total: any
/// byte sequence decodes, and slots that cannot execute become <see cref="Op.Illegal"/> with a
/// message, plus one trailing illegal slot that catches execution falling off the end.
/// </summary>
internal sealed class DecodedProgram
{
    private static readonly int[] AluIndex = BuildAluIndex();
    private static readonly int[] JumpIndex = BuildJumpIndex();

    private DecodedProgram(byte[] bytes, Instruction[] instructions, DecodedInsn[] code, Dictionary<int, string> problems, bool fuse = true)
    {
        Bytes = bytes;
        Instructions = instructions;
        Code = code;
        unsafe { CodeStart = (DecodedInsn*)Unsafe.AsPointer(ref code[0]); }
        PollPoints = MarkBlocks(code);
        HasBackwardJumps = FindBackwardJump(code);
        Fused = fuse ? Fuse(code) : code;
        unsafe { FusedStart = ReferenceEquals(Fused, code) ? CodeStart : (DecodedInsn*)Unsafe.AsPointer(ref Fused[0]); }
        Problems = problems;
        StackReach = ComputeStackReach(code);
        HasLocalCalls = Array.Exists(code, i => i.Op == Op.CallLocal);
    }

    /// <summary>The same program with its code rewritten (<see cref="Jit.JumpThreading"/>, for the JIT and
    /// the interpreter): the bytes, instructions and problems stay the original's, the blocks, poll
    /// points and fused copy are the new code's. <paramref name="fuse"/> false (a copy only the JIT
    /// compiles): no fused copy (<see cref="Fused"/> is the code itself, which an interpreter could run too).</summary>
    internal DecodedProgram WithCode(DecodedInsn[] code, bool[]? polls, bool[]? proven, bool fuse = true)
    {
        for (int k = 0; k < code.Length; k++) code[k].Charge = 0; // MarkBlocks sets the new blocks' own
        return new DecodedProgram(Bytes, Instructions, code, Problems, fuse) { ThreadedPolls = polls, ThreadedProven = proven };
    }

    /// <summary>The register <see cref="Jit.JumpThreading"/> threads on, or -1; found on the first compile and kept.</summary>
    internal int StateRegister
    {
        get
        {
            int r = _stateRegister;
            if (r == int.MinValue) _stateRegister = r = Jit.JumpThreading.StateRegister(Code);
            return r;
        }
    }
    private int _stateRegister = int.MinValue;

    /// <summary>The threaded form the interpreter runs when it neither observes nor counts
    /// (<see cref="Jit.JumpThreading.ForInterpreter"/>) and its slot map; null when nothing is threaded.
    /// Worked out on the first such run (<see cref="PrepareInterpreter"/>) and kept.</summary>
    internal (DecodedProgram Program, int[] Origin)? InterpreterThreaded => (Volatile.Read(ref _threaded) ?? ThreadForInterpreter()).Value;

    /// <summary>The first slot of what the interpreter runs when it neither observes nor counts: the
    /// threaded form's fused code, or <see cref="FusedStart"/>; null before the first such run.</summary>
    internal unsafe DecodedInsn* InterpreterStart => (DecodedInsn*)Volatile.Read(ref _interpreterStart);

    /// <summary>Works out <see cref="InterpreterStart"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal unsafe DecodedInsn* PrepareInterpreter()
    {
        var form = Volatile.Read(ref _threaded) ?? ThreadForInterpreter();
        var start = form.Value is { } t ? t.Program.FusedStart : FusedStart;
        Volatile.Write(ref _interpreterStart, (nint)start); // after the form it points into is kept
        return start;
    }

    private ThreadedForm ThreadForInterpreter()
    {
        var form = new ThreadedForm(Jit.JumpThreading.ForInterpreter(this));
        return Interlocked.CompareExchange(ref _threaded, form, null) ?? form; // racing runs keep one
    }

    private sealed class ThreadedForm((DecodedProgram Program, int[] Origin)? value)
    {
        public readonly (DecodedProgram Program, int[] Origin)? Value = value;
    }
    private ThreadedForm? _threaded;
    private nint _interpreterStart;

    /// <summary>For a threaded program, where the JIT polls for interrupts: where the original polls, in
    /// the original and in the copies (the JIT's loop analysis is not run on the copies again).</summary>
    internal bool[]? ThreadedPolls { get; private init; }

    /// <summary>For a threaded program of a raw VM, the accesses inside the input on every path: those
    /// the input analysis proved in the original, and their copies (not analysed again).</summary>
    internal bool[]? ThreadedProven { get; private init; }

    /// <summary>Whether the program makes local calls (else a run uses one stack frame).</summary>
    public bool HasLocalCalls { get; }

    /// <summary>
    /// Bit n set when some instruction names rn (as destination or source), r0 always, and r1-r5
    /// when the program calls helpers (they read their arguments there); computed once, for the
    /// JIT entries that zero or save only the registers a program uses.
    /// </summary>
    public int UsedRegisters
    {
        get
        {
            int mask = _usedRegisters;
            if (mask != 0) return mask;
            mask = 1;
            foreach (var i in Code)
            {
                mask |= 1 << Math.Min((int)i.Dst, 15) | 1 << Math.Min((int)i.Src, 15);
                if (i.Op is Op.Call or Op.CallX) mask |= 0b111110;
            }
            return _usedRegisters = mask;
        }
    }
    private int _usedRegisters;

    /// <summary>Whether a jump goes back to its own slot or before (or outside the program): without
    /// one, every path runs forward and the JIT's loop analyses have nothing to find.</summary>
    public bool HasBackwardJumps { get; }

    private static bool FindBackwardJump(DecodedInsn[] code)
    {
        for (int pc = 0; pc < code.Length; pc++)
            if ((code[pc].Op == Op.Ja || code[pc].Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg) && (code[pc].Off <= pc || code[pc].Off >= code.Length))
                return true;
        return false;
    }

    /// <summary>
    /// Slots where a run checks whether it was interrupted: the target of every backward jump (so
    /// every loop passes one) and of every local call (so does recursion).
    /// </summary>
    public bool[] PollPoints { get; }

    /// <summary>
    /// Cuts the program into basic blocks and writes each block's length into its first slot's
    /// <see cref="DecodedInsn.Charge"/>. A block starts at slot 0, at every jump or local-call target,
    /// and after every jump, call (helper or local), exit and illegal slot; none starts at an lddw's
    /// second slot. A block runs whole unless the run ends inside it, so charging the instruction
    /// limit per block as it begins gives the same verdict as counting one by one; the interpreter
    /// and the JIT both do it this way, so both stop at the same block and name its first instruction.
    /// </summary>
    internal static bool[] MarkBlocks(DecodedInsn[] code)
    {
        int n = code.Length;
        var start = new bool[n];
        var poll = new bool[n];
        start[0] = true;
        for (int pc = 0; pc < n; pc += code[pc].Op == Op.Lddw ? 2 : 1)
        {
            var i = code[pc];
            bool isJump = i.Op == Op.Ja || (i.Op >= Op.Jeq64Imm && i.Op <= Op.Jsle32Reg);
            if ((isJump || i.Op == Op.CallLocal) && i.Off >= 0 && i.Off < n)
            {
                start[i.Off] = true;
                if (i.Op == Op.CallLocal || i.Off <= pc) poll[i.Off] = true;
            }
            int next = pc + (i.Op == Op.Lddw ? 2 : 1);
            bool ends = isJump || i.Op is Op.CallLocal or Op.Call or Op.CallX or Op.Exit or Op.Illegal;
            if (ends && next < n) start[next] = true;
        }
        for (int pc = 1; pc < n; pc++)
            if (code[pc - 1].Op == Op.Lddw) start[pc] = false; // jumps there are illegal slots of their own
        int count = 0, first = -1;
        for (int pc = 0; pc < n; pc += code[pc].Op == Op.Lddw ? 2 : 1)
        {
            if (start[pc] || count == byte.MaxValue)
            {
                if (first >= 0) code[first].Charge = (byte)count;
                first = pc;
                count = 0;
            }
            count++;
        }
        if (first >= 0) code[first].Charge = (byte)count;
        return poll;
    }

    /// <summary>
    /// How many bytes below r10 (a multiple of 64, at most one frame) the program can ever read:
    /// only those need zeroing when a frame is entered. A program that uses r10 only as the base of
    /// constant-offset accesses inside the frame reaches its deepest such access; any other use of
    /// r10 (copying it, passing it on, an access outside the frame) reaches the whole frame.
    /// </summary>
    public int StackReach { get; }

    private static int ComputeStackReach(DecodedInsn[] code)
    {
        int reach = 0;
        foreach (var i in code)
        {
            if (i.Op == Op.Illegal || (i.Src != Isa.FramePointer && i.Dst != Isa.FramePointer)) continue;
            int size = i.Op switch
            {
                Op.LdxB or Op.LdxSB or Op.StB or Op.StxB => 1,
                Op.LdxH or Op.LdxSH or Op.StH or Op.StxH => 2,
                Op.LdxW or Op.LdxSW or Op.StW or Op.StxW => 4,
                Op.LdxDW or Op.StDW or Op.StxDW => 8,
                _ => 0,
            };
            bool isLoad = i.Op is >= Op.LdxB and <= Op.LdxSW;
            bool isStore = i.Op is >= Op.StB and <= Op.StxDW;
            bool storesRegister = i.Op is >= Op.StxB and <= Op.StxDW;
            bool baseOnly = size != 0 &&
                ((isLoad && i.Src == Isa.FramePointer) ||
                 (isStore && i.Dst == Isa.FramePointer && !(storesRegister && i.Src == Isa.FramePointer)));
            if (!baseOnly || i.Off > -size || i.Off < -Isa.StackFrameSize) return Isa.StackFrameSize;
            reach = Math.Max(reach, -i.Off);
        }
        return (reach + 63) & ~63;
    }

    /// <summary>The program as loaded.</summary>
    public byte[] Bytes { get; }

    /// <summary>The raw instruction slots.</summary>
    public Instruction[] Instructions { get; }

    /// <summary>The decoded slots, one more than <see cref="Instructions"/>.</summary>
    public DecodedInsn[] Code { get; }

    /// <summary>The first slot of <see cref="Code"/>, which is pinned: valid while this object lives.</summary>
    public unsafe DecodedInsn* CodeStart { get; }

    /// <summary>
    /// <see cref="Code"/> with pairs and runs of instructions fused into one slot (the ops from
    /// <see cref="Op.AddTo64Imm"/> on): a mov and the ALU operation on its register after it, clang's
    /// address arithmetic and the load through it, a load and the byte swap of its width, a mov64 and
    /// the conditional jump after it; where no block starts inside: fewer dispatches for the
    /// interpreter's runs that observe no single instruction. The same slots as <see cref="Code"/>
    /// (jumps and faults keep their numbers); <see cref="Code"/> itself when nothing fuses. Pinned.
    /// </summary>
    public DecodedInsn[] Fused { get; }

    /// <summary>The first slot of <see cref="Fused"/>.</summary>
    public unsafe DecodedInsn* FusedStart { get; }

    /// <summary>Writes what loading works out for a call slot (a helper's slot in Off, a local
    /// call's frame sizes in Imm) into <see cref="Code"/> and its fused copy alike (calls are never fused).</summary>
    public void SetCallOperands(int pc, int off, long imm)
    {
        Code[pc].Off = Fused[pc].Off = off;
        Code[pc].Imm = Fused[pc].Imm = imm;
    }

    /// <summary>Builds <see cref="Fused"/> (after <see cref="MarkBlocks"/>: a slot with a charge starts a block).</summary>
    private static DecodedInsn[] Fuse(DecodedInsn[] code)
    {
        DecodedInsn[]? fused = null;
        for (int pc = 0; pc + 1 < code.Length; pc++)
        {
            DecodedInsn first = code[pc], next = code[pc + 1];
            if (first.Op is Op.LdxH or Op.LdxW or Op.LdxDW && SwapsLoad(first, next))
            {
                fused ??= Copy(code);
                fused[pc].Op = first.Op switch { Op.LdxH => Op.LdxSwapH, Op.LdxW => Op.LdxSwapW, _ => Op.LdxSwapDW };
                continue;
            }
            if (next.Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg && next.Charge == 0 && SetsOne(first, out int setDst, out int setSrc, out int k))
            {
                fused ??= Copy(code);
                bool immediate = ((next.Op - Op.Jeq64Imm) & 1) == 0;
                fused[pc] = new DecodedInsn
                {
                    Op = (Op)((int)Op.SetJeq64Imm + (next.Op - Op.Jeq64Imm)), Charge = first.Charge,
                    Dst = next.Dst, Src = (byte)(setDst << 4 | setSrc), Off = next.Off,
                    Imm = (long)k << 32 | (uint)(immediate ? (int)next.Imm : next.Src),
                };
                continue;
            }
            if (first.Op == Op.LdxDW && next is { Op: Op.Add64Imm or Op.Add64Reg, Charge: 0 } && next.Dst == first.Dst && first.Src != first.Dst
                && pc + 2 < code.Length && code[pc + 2] is { Op: Op.StxDW, Charge: 0 } store
                && store.Dst == first.Src && store.Src == first.Dst && store.Off == first.Off)
            {
                fused ??= Copy(code);
                fused[pc].Op = next.Op == Op.Add64Imm ? Op.LdxAddStxDWImm : Op.LdxAddStxDWReg;
                fused[pc].Imm = next.Op == Op.Add64Imm ? next.Imm : next.Src;
                continue;
            }
            if (first.Op is >= Op.LdxB and <= Op.LdxW && pc + 2 < code.Length && next is { Op: Op.Lsh64Imm, Charge: 0 } && next.Dst == first.Dst
                && code[pc + 2] is { Op: Op.Arsh64Imm, Charge: 0 } extend && extend.Dst == first.Dst
                && next.Imm == 64 - (8 << (first.Op - Op.LdxB)) && extend.Imm == next.Imm)
            {
                fused ??= Copy(code);
                fused[pc].Op = Op.LdxSextB + (first.Op - Op.LdxB);
                continue;
            }
            if (first.Op is Op.LdxH or Op.LdxW && pc + 2 < code.Length && next is { Op: Op.Swap64, Charge: 0 } && next.Dst == first.Dst
                && code[pc + 2] is { Op: Op.Arsh64Imm, Charge: 0 } shift && shift.Dst == first.Dst)
            {
                fused ??= Copy(code);
                fused[pc].Op = first.Op == Op.LdxH ? Op.LdxBe64ArshH : Op.LdxBe64ArshW;
                fused[pc].Imm = shift.Imm & 63;
                continue;
            }
            if (first.Op == Op.Add64Imm && next is { Op: Op.StxW or Op.StxDW, Charge: 0 })
            {
                fused ??= Copy(code);
                fused[pc].Op = next.Op == Op.StxW ? Op.AddStxW : Op.AddStxDW;
                continue;
            }
            if (first.Op == Op.Mov64Reg && next is { Op: Op.Swap16 or Op.Swap32 or Op.Swap64, Charge: 0 } && next.Dst == first.Dst)
            {
                fused ??= Copy(code);
                fused[pc].Op = Op.MovSwap16 + (next.Op - Op.Swap16);
                continue;
            }
            if (first.Op is >= Op.LdxB and <= Op.LdxDW && InFrame(first.Src, first.Off, first.Op - Op.LdxB)
                || first.Op is >= Op.StxB and <= Op.StxDW && InFrame(first.Dst, first.Off, first.Op - Op.StxB))
            {
                fused ??= Copy(code);
                fused[pc].Op = first.Op <= Op.LdxDW ? Op.LdxStackB + (first.Op - Op.LdxB) : Op.StxStackB + (first.Op - Op.StxB);
                continue;
            }
            if (first.Op is not (Op.Mov64Reg or Op.Mov32Reg) || next.Dst != first.Dst || next.Charge != 0) continue;
            int family = ThreeOperandFamily(next.Op);
            if (family < 0) continue;
            int variant = (next.Op - Op.Add64Imm) & 3; // 64 imm, 64 reg, 32 imm, 32 reg
            bool register = (variant & 1) != 0;
            int d = first.Dst;
            if (first.Op == Op.Mov32Reg && variant < 2) continue; // a 64-bit op after mov32
            if (register && next.Src == d) continue; // d = s op s: the op reads the moved value
            var f = new DecodedInsn { Charge = first.Charge, Src = first.Src, Dst = (byte)d };
            if (next.Op == Op.Add64Reg && first.Op == Op.Mov64Reg && pc + 2 < code.Length
                && code[pc + 2] is { Op: Op.LdxB or Op.LdxH or Op.LdxW or Op.LdxDW, Charge: 0 } load && load.Src == d)
            {
                f.Op = load.Op switch { Op.LdxB => Op.LdxIndexedB, Op.LdxH => Op.LdxIndexedH, Op.LdxW => Op.LdxIndexedW, _ => Op.LdxIndexedDW };
                if (load.Op != Op.LdxB && pc + 3 < code.Length && SwapsLoad(load, code[pc + 3]))
                    f.Op = load.Op switch { Op.LdxH => Op.LdxIndexedSwapH, Op.LdxW => Op.LdxIndexedSwapW, _ => Op.LdxIndexedSwapDW };
                f.Dst = load.Dst;
                f.Off = load.Off;
                f.Imm = next.Src | d << 8;
            }
            else
            {
                f.Op = (Op)((int)Op.AddTo64Imm + 4 * family + variant);
                f.Imm = register ? next.Src : next.Imm;
            }
            fused ??= Copy(code);
            fused[pc] = f;
        }
        return fused ?? code;

        static DecodedInsn[] Copy(DecodedInsn[] code)
        {
            var copy = GC.AllocateArray<DecodedInsn>(code.Length, pinned: true);
            code.CopyTo(copy, 0);
            return copy;
        }

        // Through r10, inside its frame for an access of 1 << log2 bytes.
        static bool InFrame(int baseRegister, int off, int log2) =>
            baseRegister == Isa.FramePointer && off >= -Isa.StackFrameSize && off <= -(1 << log2);

        // d = s + k for the first of a fused SetJ* (immediates are sign-extended 32-bit values, as decoded).
        static bool SetsOne(DecodedInsn i, out int d, out int s, out int k)
        {
            d = i.Dst;
            (s, k) = (-1, 0);
            if (i.Op == Op.Mov64Reg) s = i.Src;
            else if (i.Imm != (int)i.Imm) return false;
            else if (i.Op is Op.Add64Imm) (s, k) = (d, (int)i.Imm);
            else if (i.Op is Op.Sub64Imm && i.Imm != int.MinValue) (s, k) = (d, -(int)i.Imm);
            else if (i.Op is Op.Mov64Imm || (i.Op is Op.Mov32Imm && i.Imm >= 0)) (s, k) = (ZeroRegister, (int)i.Imm);
            return s >= 0;
        }

        // The byte swap of the loaded register at the load's width (be16 after ldxh, and so on), in the same block.
        static bool SwapsLoad(DecodedInsn load, DecodedInsn swap) => swap.Charge == 0 && swap.Dst == load.Dst && swap.Op == load.Op switch
        {
            Op.LdxH => Op.Swap16,
            Op.LdxW => Op.Swap32,
            _ => Op.Swap64,
        };
    }

    /// <summary>A register slot past r10 that the interpreter keeps zero: the source of a fused
    /// <c>mov d, k; jcc</c> (<see cref="Op.SetJeq64Imm"/>).</summary>
    public const int ZeroRegister = 11;

    /// <summary>Which three-operand family (<see cref="Op.AddTo64Imm"/> on, in fours) an ALU
    /// operation after a mov fuses into; -1 for those that do not (division, modulo, moves, negation).</summary>
    private static int ThreeOperandFamily(Op op) => op switch
    {
        >= Op.Add64Imm and <= Op.Add32Reg => 0,
        >= Op.Sub64Imm and <= Op.Sub32Reg => 1,
        >= Op.Mul64Imm and <= Op.Mul32Reg => 2,
        >= Op.Or64Imm and <= Op.Or32Reg => 3,
        >= Op.And64Imm and <= Op.And32Reg => 4,
        >= Op.Lsh64Imm and <= Op.Lsh32Reg => 5,
        >= Op.Rsh64Imm and <= Op.Rsh32Reg => 6,
        >= Op.Xor64Imm and <= Op.Xor32Reg => 7,
        >= Op.Arsh64Imm and <= Op.Arsh32Reg => 8,
        _ => -1,
    };

    /// <summary>Why each illegal slot is illegal.</summary>
    public Dictionary<int, string> Problems { get; }

    public static DecodedProgram Decode(ReadOnlySpan<byte> program)
    {
        var insns = Instruction.ReadAll(program);
        var tails = Verifier.LddwTails(insns);
        // Pinned: the interpreter runs it through a pointer kept beside it (CodeStart), no fixed per run.
        var code = GC.AllocateArray<DecodedInsn>(insns.Length + 1, pinned: true);
        var problems = new Dictionary<int, string>();
        for (int pc = 0; pc < insns.Length; pc++)
        {
            string? problem = tails[pc]
                ? "jump into the middle of lddw"
                : Verifier.CheckInstruction(insns, tails, pc);
            if (problem != null)
            {
                code[pc] = new DecodedInsn { Op = Op.Illegal };
                problems[pc] = problem;
                continue;
            }
            code[pc] = DecodeOne(insns, pc);
        }
        code[insns.Length] = new DecodedInsn { Op = Op.Illegal };
        problems[insns.Length] = "execution fell off the end of the program";
        return new DecodedProgram(program.ToArray(), insns, code, problems);
    }

    private static DecodedInsn DecodeOne(Instruction[] insns, int pc)
    {
        var insn = insns[pc];
        byte op = insn.Opcode;
        var d = new DecodedInsn { Dst = (byte)insn.Dst, Src = (byte)insn.Src, Off = insn.Offset, Imm = insn.Imm };
        bool reg = (op & Isa.SourceX) != 0;
        switch (Isa.ClassOf(op))
        {
            case Isa.ClassAlu:
            case Isa.ClassAlu64:
            {
                bool is64 = Isa.ClassOf(op) == Isa.ClassAlu64;
                int code = op & 0xf0;
                if (code == Isa.OpEnd)
                {
                    d.Op = (is64, reg, insn.Imm) switch
                    {
                        (false, false, 16) => Op.Zext16,
                        (false, false, 32) => Op.Zext32,
                        (false, false, _) => Op.Nop,
                        (_, _, 16) => Op.Swap16,
                        (_, _, 32) => Op.Swap32,
                        _ => Op.Swap64,
                    };
                    if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("big-endian hosts are not supported");
                    return d;
                }
                if (code == Isa.OpNeg) { d.Op = is64 ? Op.Neg64 : Op.Neg32; return d; }
                if (code == Isa.OpMov && insn.Offset != 0)
                {
                    d.Op = (is64, insn.Offset) switch
                    {
                        (true, 8) => Op.MovSx64From8,
                        (true, 16) => Op.MovSx64From16,
                        (true, _) => Op.MovSx64From32,
                        (false, 8) => Op.MovSx32From8,
                        _ => Op.MovSx32From16,
                    };
                    return d;
                }
                int group = AluIndex[code >> 4];
                if (insn.Offset == 1 && code == Isa.OpDiv) group = AluIndex[14];
                if (insn.Offset == 1 && code == Isa.OpMod) group = AluIndex[15];
                d.Op = (Op)(group * 4 + (is64 ? 0 : 2) + (reg ? 1 : 0));
                return d;
            }
            case Isa.ClassLd:
                if (op == Isa.Lddw)
                {
                    d.Op = Op.Lddw;
                    d.Imm = insn.Src == Isa.PseudoMapFd
                        ? (long)(Maps.MapHelpers.Tag | (uint)insn.Imm) // a map: what the map helpers take
                        : (long)((ulong)(uint)insn.Imm | ((ulong)(uint)insns[pc + 1].Imm << 32));
                    return d;
                }
                d.Op = (Op)((int)((op & 0xe0) == Isa.ModeAbs ? Op.LdAbsB : Op.LdIndB) + SizeIndex(op));
                d.Imm = (uint)insn.Imm; // packet offsets are unsigned
                return d;
            case Isa.ClassLdx:
                d.Op = (op & 0xe0) == Isa.ModeMemSx ? (Op)((int)Op.LdxSB + SizeIndex(op)) : (Op)((int)Op.LdxB + SizeIndex(op));
                return d;
            case Isa.ClassSt:
                d.Op = (Op)((int)Op.StB + SizeIndex(op));
                return d;
            case Isa.ClassStx:
                if ((op & 0xe0) == Isa.ModeMem)
                {
                    d.Op = (Op)((int)Op.StxB + SizeIndex(op));
                    return d;
                }
                d.Imm = (long)(insn.Imm switch
                {
                    Isa.AtomicAdd => AtomicKind.Add, Isa.AtomicOr => AtomicKind.Or, Isa.AtomicAnd => AtomicKind.And, Isa.AtomicXor => AtomicKind.Xor,
                    Isa.AtomicAdd | Isa.AtomicFetch => AtomicKind.FetchAdd, Isa.AtomicOr | Isa.AtomicFetch => AtomicKind.FetchOr,
                    Isa.AtomicAnd | Isa.AtomicFetch => AtomicKind.FetchAnd, Isa.AtomicXor | Isa.AtomicFetch => AtomicKind.FetchXor,
                    Isa.AtomicXchg => AtomicKind.Xchg, _ => AtomicKind.CmpXchg,
                });
                d.Op = (op & 0x18) == Isa.SizeDW ? Op.Atomic64 : Op.Atomic32;
                return d;
            default: // jumps
            {
                bool is32 = Isa.ClassOf(op) == Isa.ClassJmp32;
                int code = op & 0xf0;
                switch (code)
                {
                    case Isa.OpJa:
                        d.Op = Op.Ja;
                        d.Off = pc + 1 + (is32 ? insn.Imm : insn.Offset);
                        return d;
                    case Isa.OpCall:
                        if (op == Isa.CallX) { d.Op = Op.CallX; return d; }
                        if (insn.Src == Isa.PseudoCallLocal) { d.Op = Op.CallLocal; d.Off = pc + 1 + insn.Imm; return d; }
                        d.Op = Op.Call;
                        d.Off = -1; // resolved against the VM's helpers when linked
                        d.Imm = (uint)insn.Imm;
                        return d;
                    case Isa.OpExit:
                        d.Op = Op.Exit;
                        return d;
                    default:
                        d.Op = (Op)((int)Op.Jeq64Imm + JumpIndex[code >> 4] * 4 + (is32 ? 2 : 0) + (reg ? 1 : 0));
                        d.Off = pc + 1 + insn.Offset;
                        return d;
                }
            }
        }
    }

    private static int SizeIndex(byte op) => (op & 0x18) switch
    {
        Isa.SizeB => 0,
        Isa.SizeH => 1,
        Isa.SizeW => 2,
        _ => 3,
    };

    private static int[] BuildAluIndex()
    {
        // Index by (opcode >> 4); 14 and 15 are the signed division and modulo groups.
        var t = new int[16];
        t[Isa.OpAdd >> 4] = 0; t[Isa.OpSub >> 4] = 1; t[Isa.OpMul >> 4] = 2; t[Isa.OpDiv >> 4] = 3;
        t[Isa.OpOr >> 4] = 4; t[Isa.OpAnd >> 4] = 5; t[Isa.OpLsh >> 4] = 6; t[Isa.OpRsh >> 4] = 7;
        t[Isa.OpMod >> 4] = 8; t[Isa.OpXor >> 4] = 9; t[Isa.OpMov >> 4] = 10; t[Isa.OpArsh >> 4] = 11;
        t[14] = 12; t[15] = 13;
        return t;
    }

    private static int[] BuildJumpIndex()
    {
        var t = new int[16];
        t[Isa.OpJeq >> 4] = 0; t[Isa.OpJgt >> 4] = 1; t[Isa.OpJge >> 4] = 2; t[Isa.OpJset >> 4] = 3;
        t[Isa.OpJne >> 4] = 4; t[Isa.OpJsgt >> 4] = 5; t[Isa.OpJsge >> 4] = 6; t[Isa.OpJlt >> 4] = 7;
        t[Isa.OpJle >> 4] = 8; t[Isa.OpJslt >> 4] = 9; t[Isa.OpJsle >> 4] = 10;
        return t;
    }
}
