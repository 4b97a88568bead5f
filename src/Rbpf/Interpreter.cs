using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Rbpf;

/// <summary>Receives each instruction before it executes (the <c>--trace</c> of the CLI, debug callbacks).</summary>
internal interface IExecutionObserver
{
    bool Enabled { get; }
    unsafe void BeforeInstruction(int pc, ulong* registers);
}

/// <summary>Adapts a public <see cref="InstructionObserver"/> delegate.</summary>
internal struct DelegateObserver : IExecutionObserver
{
    private readonly InstructionObserver _callback;
    public DelegateObserver(InstructionObserver callback) => _callback = callback;
    public readonly bool Enabled => true;
    public readonly unsafe void BeforeInstruction(int pc, ulong* registers) =>
        _callback(pc, new ReadOnlySpan<ulong>(registers, Isa.RegisterCount));
}

/// <summary>Whether a run counts instructions against a limit: two instantiations of the
/// interpreter, so runs without a limit pay nothing per instruction.</summary>
internal interface IInstructionBudget { bool Counts { get; } }

internal struct CountedRun : IInstructionBudget { public readonly bool Counts => true; }

internal struct UncountedRun : IInstructionBudget { public readonly bool Counts => false; }

/// <summary>The observer of ordinary runs: compiled away entirely.</summary>
internal struct NoObserver : IExecutionObserver
{
    public readonly bool Enabled => false;
    public readonly unsafe void BeforeInstruction(int pc, ulong* registers) { }
}

/// <summary>Zeroing of small fixed-size blocks (registers, stack frames) with wide stores.</summary>
internal static unsafe class StackMemory
{
    /// <summary>Zeroes <paramref name="bytes"/> (a multiple of 64) with 16-byte stores: inline and
    /// branch-free, where a general block clear is a call into the runtime (about 100 instructions
    /// for a frame, measured with callgrind).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Zero(byte* p, int bytes)
    {
        var zero = System.Runtime.Intrinsics.Vector128<byte>.Zero;
        for (int k = 0; k < bytes; k += 64)
        {
            System.Runtime.Intrinsics.Vector128.Store(zero, p + k);
            System.Runtime.Intrinsics.Vector128.Store(zero, p + k + 16);
            System.Runtime.Intrinsics.Vector128.Store(zero, p + k + 32);
            System.Runtime.Intrinsics.Vector128.Store(zero, p + k + 48);
        }
    }
}

/// <summary>Why the interpreter's inner loop handed an instruction back to the outer one.</summary>
internal enum StopReason : byte { Other, Limit, Fault, PacketFault, Interrupted, EndWithZero }

/// <summary>The state of one execution that the interpreter reads; all of it lives on the caller's stack.</summary>
internal unsafe struct ExecutionState
{
    // No object references here: the struct then needs no zeroing when a run starts.
    public ulong StackTop;       // r10 of the entry frame
    public ulong StackStart;     // lowest byte of the frames entered so far: the stack region is [StackStart, StackTop)
    public ulong StackBottom;    // frames may not go below this
    public ulong PacketStart;    // the input memory
    public ulong PacketLength;
    /// <summary>Offsets into the input and the stack region below which an access of up to 8 bytes
    /// fits (<see cref="FastBound"/>), so that the common check is one compare.</summary>
    public ulong PacketFast, StackFast;
    public ulong MetaStart;      // the metadata buffer (length 0 for kinds without one)
    public ulong MetaLength;
    public ulong InstructionLimit; // 0: none
    public long UnwindHelper;    // helper id whose zero result ends the program, or -1
    /// <summary>Bytes below r10 a frame entry zeroes (<see cref="DecodedProgram.StackReach"/>).</summary>
    public int StackReach;
    /// <summary>Instructions the run may still execute (counted runs only).</summary>
    public ulong Budget;
    /// <summary>Why <see cref="Interpreter"/>'s inner loop returned, and the access that failed.</summary>
    public StopReason Stop;
    public ulong FaultAddress;
    public int FaultSize;
    public bool FaultWrite;
    /// <summary>LD_ABS and LD_IND as the kernel runs them in socket and tc programs: network byte
    /// order, and a load outside the packet ends the program with 0.</summary>
    public bool KernelPacketLoads;
    /// <summary>The VM's stack layout gives every frame its 512 bytes below r10 (<see cref="StackLayout.FullFrames"/>):
    /// accesses through r10 inside them need no check.</summary>
    public bool FullFrames;
    /// <summary>The VM's interrupt word, and its value as the run began (<see cref="EbpfVm.Interrupt"/>).</summary>
    public uint* InterruptWord;
    public uint InterruptEpoch;
    /// <summary>r0-r10 (and room to 16): here rather than in an allocation of their own, so a run
    /// sets up one block of its frame.</summary>
    public fixed ulong Registers[16];

    /// <summary>
    /// Whether the access is allowed. The input and the stack frames in use (both writable) are
    /// checked here, inline; everything else (the metadata buffer, the VM's own regions, the
    /// embedder's callback) out of line.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Allows(EbpfVm vm, ulong address, ulong size, bool write) =>
        address - PacketStart < PacketFast || address - StackStart < StackFast || AllowsExactly(vm, address, size, write);

    /// <summary>The bound for <see cref="PacketFast"/> and <see cref="StackFast"/>: a region of
    /// <paramref name="length"/> bytes holds 8 bytes at every offset below it.</summary>
    public static ulong FastBound(ulong length) => length >= 8 ? length - 7 : 0;

    /// <summary>The last 7 bytes of the input and the stack, and every other region.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool AllowsExactly(EbpfVm vm, ulong address, ulong size, bool write)
    {
        ulong p = address - PacketStart;
        if (p < PacketLength && PacketLength - p >= size) return true;
        ulong s = address - StackStart;
        ulong stackLength = StackTop - StackStart;
        if (s < stackLength && stackLength - s >= size) return true;
        int capacity = EbpfVm.BuiltInRegions + vm.UserRegionCount;
        RegionEntry* regions = stackalloc RegionEntry[capacity];
        int count = FillRegions(vm, regions, capacity);
        return MemoryAccess.Allowed(regions, count, address, size, write, vm.ExtraCheck, vm.ExtraCheckContext);
    }

    /// <summary>The run's allowed regions as a table (for messages and helpers that take pointers).</summary>
    public int FillRegions(EbpfVm vm, RegionEntry* regions, int capacity) =>
        vm.FillRegions(regions, capacity, StackStart, StackTop - StackStart, PacketStart, PacketLength, MetaStart, MetaLength);
}

/// <summary>
/// The interpreter: one switch over the decoded operations, registers and call frames on the host
/// stack, every load and store checked against the regions of the execution. It allocates nothing
/// unless an error is reported.
/// </summary>
internal static unsafe class Interpreter
{
    private struct Frame
    {
        public ulong R6, R7, R8, R9, R10;
        public int ReturnPc;
    }

    // The stores of r0-r11 in Begin zero DecodedProgram.ZeroRegister as r11: this does not compile if it moves.
    private const byte ZeroRegisterIsR11 = DecodedProgram.ZeroRegister == 11 ? 0 : -1;

    [SkipLocalsInit]
    public static RbpfException? Run<TObserver, TBudget>(EbpfVm vm, byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* userStack, nuint userStackLength, ref TObserver observer, ref ulong result)
        where TObserver : struct, IExecutionObserver
        where TBudget : struct, IInstructionBudget
    {
        // The run's memory: the stack (the caller's, or 4 KiB of this thread's), the metadata buffer
        // of a fixed-mbuff VM, the table of allowed regions; all of it on this thread's stack, set up
        // here rather than in a caller so that a call pays for one frame. result is written only
        // when the program ends (a caller may pass the C caller's own result: nothing else touches it).
        var program = vm.Decoded;
        if (program == null) return new RbpfException(RbpfErrorCode.NoProgram, "no program is loaded");
        var layout = vm.StackLayout;
        ulong top, bottom;
        if (userStack != null || userStackLength != 0)
        {
            top = EbpfVm.UserStackTop(layout, userStack, userStackLength);
            bottom = (ulong)userStack;
            if (top == 0) return EbpfVm.BadStack(layout);
        }
        else if (program.HasLocalCalls || !layout.FullFrames)
        {
            byte* unaligned = stackalloc byte[Isa.StackSize + 16];
            bottom = ((ulong)unaligned + 15) & ~15UL; // frames are 16-byte aligned, as the kernel's
            top = bottom + Isa.StackSize;
        }
        else
        {
            // One whole frame is all a run without local calls can use: 512 bytes, no pages to probe.
            byte* unaligned = stackalloc byte[Isa.StackFrameSize + 16];
            bottom = ((ulong)unaligned + 15) & ~15UL;
            top = bottom + Isa.StackFrameSize;
        }
        var bad = CheckInputs(vm.Kind, mem, memLength, mbuff, mbuffLength);
        if (bad != null) return bad;
        int reach = program.StackReach;
        if (reach != 0) ZeroBelow(top, reach, bottom);

        ulong r1, r2, meta, metaLength;
        byte* heap = null; // a fixed metadata buffer too large for the frame (native memory: no GC reference to keep)
        if (vm.Kind != VmKind.FixedMbuff) Arguments(vm.Kind, mem, memLength, mbuff, mbuffLength, out r1, out r2, out meta, out metaLength);
        else
        {
            int fixedLength = vm.FixedBufferLength;
            byte* fixedBuffer;
            if (fixedLength <= EbpfVm.InlineMbuffLimit)
            {
                byte* inline = stackalloc byte[EbpfVm.InlineMbuffLimit];
                fixedBuffer = inline;
            }
            else
            {
                heap = (byte*)NativeMemory.Alloc((nuint)fixedLength);
                fixedBuffer = heap;
            }
            new Span<byte>(fixedBuffer, fixedLength).Clear();
            *(ulong*)(fixedBuffer + vm.DataOffset) = (ulong)mem;
            *(ulong*)(fixedBuffer + vm.DataEndOffset) = (ulong)mem + memLength;
            meta = r1 = (ulong)fixedBuffer;
            metaLength = r2 = (ulong)fixedLength;
        }
        Unsafe.SkipInit(out ExecutionState st); // every field is set here or before it is read
        ulong start = FrameLow(top, bottom);
        Begin(&st, vm, top, start, bottom, ExecutionState.FastBound(top - start), mem, memLength, meta, metaLength, reach, layout.FullFrames, r1, r2);
        if (default(TBudget).Counts) st.InstructionLimit = vm.InstructionLimit; // read by counted runs only
        var elf = vm.LoadedElf;
        try
        {
            ulong* r = st.Registers;
            Frame* frames = null; // the saved registers of local calls, for programs that make them
            if (program.HasLocalCalls)
            {
                Frame* all = stackalloc Frame[StackLayout.MaxFramesLimit];
                frames = all;
            }
            if (default(TBudget).Counts) st.Budget = st.InstructionLimit == 0 ? ulong.MaxValue : st.InstructionLimit;
            // Pinned; program is kept alive below (and its threaded form with it). Observed runs see
            // every instruction: unfused. Runs that neither observe nor count run a state machine
            // threaded (JumpThreading), its copies after the original: messages name the slot copied.
            DecodedInsn* code0; // the first slot
            if (observer.Enabled) code0 = program.CodeStart;
            else if (default(TBudget).Counts) code0 = program.FusedStart;
            else
            {
                code0 = program.InterpreterStart;
                if (code0 == null) code0 = program.PrepareInterpreter();
            }
            // The common instructions run in RunBlock, a method small enough for its instruction pointer
            // to stay in a register; most runs end at the first instruction it hands back.
            DecodedInsn* i = RunBlock<TObserver, TBudget>(code0, code0, r, &st, vm, ref observer);
            if (st.Stop == StopReason.Other && i->Op == Op.Exit)
            {
                result = r[0];
                return null;
            }
            return Continue<TObserver, TBudget>(vm, program, &st, r, frames, code0, i, ref observer, ref result);
        }
        finally
        {
            GC.KeepAlive(elf); // its data regions are in use until here
            GC.KeepAlive(program); // its code too
            if (heap != null) NativeMemory.Free(heap);
        }
    }

    /// <summary>The input arguments' errors that every kind of run reports the same way.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static RbpfException? CheckInputs(VmKind kind, byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength)
    {
        if ((mem == null && memLength != 0) || (mbuff == null && mbuffLength != 0)) return EbpfVm.NullWithLength();
        if (kind == VmKind.NoData && memLength != 0) return EbpfVm.UnusedInput(kind, mbuff: false);
        if (kind != VmKind.Mbuff && mbuffLength != 0) return EbpfVm.UnusedInput(kind, mbuff: true);
        return null;
    }

    /// <summary>r1, r2 and the metadata region of every kind but <see cref="VmKind.FixedMbuff"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Arguments(VmKind kind, byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        out ulong r1, out ulong r2, out ulong meta, out ulong metaLength)
    {
        r1 = r2 = meta = metaLength = 0;
        if (kind == VmKind.Mbuff)
        {
            meta = (ulong)mbuff;
            metaLength = mbuffLength;
            // As rbpf: without a metadata buffer, r1 and r2 describe the packet itself.
            (r1, r2) = mbuffLength != 0 ? ((ulong)mbuff, (ulong)mbuffLength) : ((ulong)mem, (ulong)memLength);
        }
        else if (kind == VmKind.Raw)
        {
            r1 = (ulong)mem;
            r2 = memLength;
        }
    }

    /// <summary>Every field of a run's state but the instruction limit and budget (counted runs set
    /// those), and r0-r11: r1 and r2 as given, r10 the top of the stack, the rest zero. The stack
    /// region is [<paramref name="start"/>, <paramref name="top"/>), <paramref name="startFast"/> its
    /// <see cref="ExecutionState.FastBound"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Begin(ExecutionState* st, EbpfVm vm, ulong top, ulong start, ulong bottom, ulong startFast,
        byte* mem, nuint memLength, ulong meta, ulong metaLength, int reach, bool fullFrames, ulong r1, ulong r2)
    {
        st->StackTop = top;
        st->StackStart = start;
        st->StackBottom = bottom;
        st->PacketStart = (ulong)mem;
        st->PacketLength = memLength;
        st->PacketFast = ExecutionState.FastBound(memLength);
        st->StackFast = startFast;
        st->MetaStart = meta;
        st->MetaLength = metaLength;
        st->UnwindHelper = vm.UnwindHelperKey;
        st->StackReach = reach;
        st->InterruptWord = vm.InterruptWord;
        st->KernelPacketLoads = vm.KernelPacketLoads;
        st->FullFrames = fullFrames;
        st->InterruptEpoch = Volatile.Read(ref *st->InterruptWord);
        // r0-r11 in pairs, six 16-byte stores rather than twelve: a call's setup is mostly stores,
        // and they take their turns. r11 is DecodedProgram.ZeroRegister (fused mov d, k; jcc reads k from it).
        ulong* r = st->Registers;
        Vector128.Store(Vector128.Create(0UL, r1), r);
        Vector128.Store(Vector128.CreateScalar(r2), r + 2);
        Vector128.Store(Vector128<ulong>.Zero, r + 4);
        Vector128.Store(Vector128<ulong>.Zero, r + 6);
        Vector128.Store(Vector128<ulong>.Zero, r + 8);
        Vector128.Store(Vector128.CreateScalar(top), r + 10);
    }

    /// <summary>Whether <see cref="RunPlain"/> can run <paramref name="program"/> on <paramref name="vm"/>:
    /// no local calls, a stack layout of whole frames, any kind but a fixed metadata buffer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool RunsPlain(EbpfVm vm, DecodedProgram program) =>
        !program.HasLocalCalls && vm.StackLayout.FullFrames && vm.Kind != VmKind.FixedMbuff;

    /// <summary>
    /// <see cref="Run"/> for the common case (<see cref="RunsPlain"/>, on the interpreter's own
    /// 512-byte frame, no observer, no instruction limit), with only that case's setup: for a short
    /// program the setup is most of a call. Everything after the first stop is
    /// <see cref="Continue"/>'s, as in Run.
    /// </summary>
    [SkipLocalsInit]
    internal static RbpfException? RunPlain(EbpfVm vm, DecodedProgram program, byte* mem, nuint memLength,
        byte* mbuff, nuint mbuffLength, ref ulong result)
    {
        // In the order that keeps the fewest values live at once: the arguments are in the state before
        // anything is called, and what follows reads them back from there.
        var kind = vm.Kind;
        var bad = CheckInputs(kind, mem, memLength, mbuff, mbuffLength);
        if (bad != null) return bad;
        Arguments(kind, mem, memLength, mbuff, mbuffLength, out ulong r1, out ulong r2, out ulong meta, out ulong metaLength);
        byte* unaligned = stackalloc byte[Isa.StackFrameSize + 16];
        ulong bottom = ((ulong)unaligned + 15) & ~15UL;
        ulong top = bottom + Isa.StackFrameSize;
        Unsafe.SkipInit(out ExecutionState st);
        // The frame is the whole stack region: [bottom, top), 512 bytes.
        Begin(&st, vm, top, bottom, bottom, ExecutionState.FastBound(Isa.StackFrameSize), mem, memLength, meta, metaLength,
            program.StackReach, fullFrames: true, r1, r2);
        if (st.StackReach != 0) ZeroBelow(st.StackTop, st.StackReach, st.StackBottom);
        var elf = vm.LoadedElf;
        DecodedInsn* code0 = program.InterpreterStart;
        if (code0 == null) code0 = program.PrepareInterpreter();
        var observer = default(NoObserver);
        DecodedInsn* i = RunBlock<NoObserver, UncountedRun>(code0, code0, st.Registers, &st, vm, ref observer);
        RbpfException? error = null;
        if (st.Stop == StopReason.Other && i->Op == Op.Exit) result = st.Registers[0];
        else error = Continue<NoObserver, UncountedRun>(vm, program, &st, st.Registers, null, code0, i, ref observer, ref result);
        GC.KeepAlive(elf); // its data regions are in use until here
        GC.KeepAlive(program); // its code too
        return error;
    }

    /// <summary>
    /// The rest of a run, from the instruction RunBlock stopped at (<paramref name="i"/>): helper
    /// and local calls, returns, atomics, the end and the errors, each followed by RunBlock again.
    /// A method of its own, so that a run which ends at its first stop sets up only what it uses.
    /// The run's memory stays in the caller's frame.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static RbpfException? Continue<TObserver, TBudget>(EbpfVm vm, DecodedProgram program, ExecutionState* sp, ulong* r,
        Frame* frames, DecodedInsn* code0, DecodedInsn* i, ref TObserver observer, ref ulong result)
        where TObserver : struct, IExecutionObserver
        where TBudget : struct, IInstructionBudget
    {
        ref ExecutionState st = ref *sp;
        var helpers = vm.Helpers;
        int maxFrames = vm.StackLayout.MaxFrames;
        int depth = 0;
        DecodedInsn* ip;
        while (true)
        {
            ip = i + 1;
            if (st.Stop == StopReason.Other && i->Op == Op.Exit && depth == 0)
            {
                result = r[0];
                return null;
            }
            switch (st.Stop)
            {
                case StopReason.Limit: goto Limit;
                case StopReason.Fault: goto Fault;
                case StopReason.PacketFault: goto PacketFault;
                case StopReason.Interrupted: goto Interrupted;
                case StopReason.EndWithZero: result = 0; return null; // a kernel packet load outside the packet
            }
            ulong a;
            switch (i->Op)
            {
                // Atomics: naturally aligned, inside a writable region
                case Op.Atomic32:
                    a = r[i->Dst] + (ulong)(long)i->Off;
                    if ((a & 3) != 0 || !st.Allows(vm, a, 4, true)) { st.FaultAddress = a; st.FaultSize = 4; st.FaultWrite = true; goto Fault; }
                    Atomic32((AtomicKind)i->Imm, ref Unsafe.AsRef<uint>((void*)a), r, i->Src);
                    break;
                case Op.Atomic64:
                    a = r[i->Dst] + (ulong)(long)i->Off;
                    if ((a & 7) != 0 || !st.Allows(vm, a, 8, true)) { st.FaultAddress = a; st.FaultSize = 8; st.FaultWrite = true; goto Fault; }
                    Atomic64((AtomicKind)i->Imm, ref Unsafe.AsRef<ulong>((void*)a), r, i->Src);
                    break;

                // Calls
                case Op.Call:
                case Op.CallX:
                {
                    HelperEntry? h;
                    uint key;
                    if (i->Op == Op.Call) { key = (uint)i->Imm; h = i->Off >= 0 ? helpers.BySlot(i->Off) : null; }
                    else { key = (uint)r[i->Dst]; h = r[i->Dst] <= uint.MaxValue ? helpers.Find(key) : null; }
                    if (h == null)
                    {
                        int at = Slot(ip, code0);
                        return new RbpfException(RbpfErrorCode.UnknownHelper, UnknownHelperMessage(at, i->Op == Op.Call ? key : r[i->Dst]), at);
                    }
                    if (!CallHelper(vm, h, r, ref st, Slot(ip, code0), out var helperError))
                    {
                        return helperError;
                    }
                    if (st.UnwindHelper == key && r[0] == 0)
                    {
                        result = 0;
                        return null;
                    }
                    break;
                }
                case Op.CallLocal:
                {
                    // The stack layout's sizes: how far r10 moves down (the caller's frame), what the callee needs.
                    ulong drop = (uint)i->Imm, callee = (ulong)i->Imm >> 32;
                    if (depth + 1 >= maxFrames || r[10] - st.StackBottom < drop + callee)
                    {
                        int at = Slot(ip, code0);
                        return new RbpfException(RbpfErrorCode.CallDepthExceeded, CallDepthMessage(at, maxFrames), at);
                    }
                    Frame* f = frames + depth;
                    f->R6 = r[6]; f->R7 = r[7]; f->R8 = r[8]; f->R9 = r[9]; f->R10 = r[10]; f->ReturnPc = (int)(ip - code0);
                    depth++;
                    r[10] -= drop;
                    if (st.StackReach != 0) ZeroBelow(r[10], st.StackReach, st.StackBottom);
                    // The stack region reaches 512 bytes below the deepest frame pointer of the
                    // run (never the untouched, unzeroed memory below), within the stack, as in the JIT.
                    ulong low = FrameLow(r[10], st.StackBottom);
                    if (low < st.StackStart)
                    {
                        st.StackStart = low;
                        st.StackFast = ExecutionState.FastBound(st.StackTop - low);
                    }
                    ip = code0 + i->Off;
                    if (*st.InterruptWord != st.InterruptEpoch) { ip++; goto Interrupted; }
                    break;
                }
                case Op.Exit: // from a local call (the end of the program returned above)
                {
                    depth--;
                    Frame* f = frames + depth;
                    r[6] = f->R6; r[7] = f->R7; r[8] = f->R8; r[9] = f->R9; r[10] = f->R10; ip = code0 + f->ReturnPc;
                    break;
                }
                default:
                {
                    int at = Slot(ip, code0);
                    return new RbpfException(RbpfErrorCode.IllegalInstruction, IllegalMessage(program, at), at);
                }
            }
            i = RunBlock<TObserver, TBudget>(ip, code0, r, sp, vm, ref observer);
        }

    Limit:
    {
        int at = Slot(ip, code0);
        return new RbpfException(RbpfErrorCode.InstructionLimit, LimitMessage(st.InstructionLimit, at), at);
    }
    Interrupted:
    {
        int at = Original(Slot(ip, code0), code0, program);
        return new RbpfException(RbpfErrorCode.Interrupted, InterruptedMessage(at), at);
    }
    Fault:
        return Fault(vm, ref st, st.FaultWrite, st.FaultSize, st.FaultAddress, Original(Slot(ip, code0), code0, program));
    PacketFault:
    {
        int at = Original(Slot(ip, code0), code0, program);
        return new RbpfException(RbpfErrorCode.OutOfBounds, PacketFaultMessage(st.FaultSize, st.FaultAddress, at, st.PacketStart, st.PacketLength), at);
    }
    }

    /// <summary>
    /// Runs instructions from <paramref name="ip"/> until one it does not handle (calls, exit,
    /// atomics, illegal slots), a failed memory check or the instruction limit; returns that
    /// instruction's slot, counted and observed, not executed, with the reason in
    /// <see cref="ExecutionState.Stop"/>. Only ALU, jumps, loads and stores are here, and no
    /// call but the out-of-line region check, so that RyuJIT keeps the instruction pointer in
    /// a register: in the one big method it stayed in memory, each instruction waiting on a
    /// store and a reload of it.
    /// </summary>
    [SkipLocalsInit]
    private static DecodedInsn* RunBlock<TObserver, TBudget>(DecodedInsn* ip, DecodedInsn* code0, ulong* r,
        ExecutionState* st, EbpfVm vm, ref TObserver observer)
        where TObserver : struct, IExecutionObserver
        where TBudget : struct, IInstructionBudget
    {
        ulong budget = default(TBudget).Counts ? st->Budget : 0; // uncounted runs leave it alone
        StopReason why;
#if RBPF_DISPATCH_PAD_A || RBPF_DISPATCH_PAD_B || RBPF_DISPATCH_PAD_C
        // Code that never runs (StackReach is never negative), ahead of the loop of the plain runs'
        // instantiation: it moves the dispatch sequence so that it fits in one 64-byte line, which
        // build.sh checks for after publishing and, when the sequence crosses into the next line,
        // tries these pads for (docs/performance.md, "Interpreter, fourth round").
        if (!observer.Enabled && !default(TBudget).Counts && st->StackReach < 0)
        {
#if RBPF_DISPATCH_PAD_A
            st->FaultAddress = (ulong)st->StackReach * 3;
#endif
#if RBPF_DISPATCH_PAD_B
            st->FaultSize = st->StackReach ^ 5;
            st->FaultWrite = st->StackReach == -2;
#endif
#if RBPF_DISPATCH_PAD_C
            st->MetaLength += st->PacketLength * 7;
            st->MetaStart ^= st->StackTop;
            st->InstructionLimit = st->MetaLength >> 3;
#endif
        }
#endif
        // One pointer, on the running slot (a second one for the next slot cost two moves a
        // dispatch). It moves on at the top of the loop, so that handlers go straight back there:
        // a jump sets it one slot before its target, and the run starts one slot early.
        DecodedInsn* beforeCode = code0 - 1;
        ip--;
        while (true)
        {
            ip++;
            if (default(TBudget).Counts)
            {
                // The limit is charged a basic block at a time, as the JIT does (DecodedProgram.MarkBlocks).
                uint charge = ip->Charge;
                if (charge != 0)
                {
                    if (budget < charge) { why = StopReason.Limit; goto Stop; }
                    budget -= charge;
                }
            }
            if (observer.Enabled) observer.BeforeInstruction((int)(ip - code0), r);
            ulong a;
            switch (ip->Op)
            {
                // ALU 64
                case Op.Add64Imm: r[ip->Dst] += (ulong)ip->Imm; break;
                case Op.Add64Reg: r[ip->Dst] += r[ip->Src]; break;
                case Op.Sub64Imm: r[ip->Dst] -= (ulong)ip->Imm; break;
                case Op.Sub64Reg: r[ip->Dst] -= r[ip->Src]; break;
                case Op.Mul64Imm: r[ip->Dst] *= (ulong)ip->Imm; break;
                case Op.Mul64Reg: r[ip->Dst] *= r[ip->Src]; break;
                case Op.Div64Imm: r[ip->Dst] = Div64(r[ip->Dst], (ulong)ip->Imm); break;
                case Op.Div64Reg: r[ip->Dst] = Div64(r[ip->Dst], r[ip->Src]); break;
                case Op.Or64Imm: r[ip->Dst] |= (ulong)ip->Imm; break;
                case Op.Or64Reg: r[ip->Dst] |= r[ip->Src]; break;
                case Op.And64Imm: r[ip->Dst] &= (ulong)ip->Imm; break;
                case Op.And64Reg: r[ip->Dst] &= r[ip->Src]; break;
                case Op.Lsh64Imm: r[ip->Dst] <<= (int)(ip->Imm & 63); break;
                case Op.Lsh64Reg: r[ip->Dst] <<= (int)(r[ip->Src] & 63); break;
                case Op.Rsh64Imm: r[ip->Dst] >>= (int)(ip->Imm & 63); break;
                case Op.Rsh64Reg: r[ip->Dst] >>= (int)(r[ip->Src] & 63); break;
                case Op.Mod64Imm: r[ip->Dst] = Mod64(r[ip->Dst], (ulong)ip->Imm); break;
                case Op.Mod64Reg: r[ip->Dst] = Mod64(r[ip->Dst], r[ip->Src]); break;
                case Op.Xor64Imm: r[ip->Dst] ^= (ulong)ip->Imm; break;
                case Op.Xor64Reg: r[ip->Dst] ^= r[ip->Src]; break;
                case Op.Mov64Imm: r[ip->Dst] = (ulong)ip->Imm; break;
                case Op.Mov64Reg: r[ip->Dst] = r[ip->Src]; break;
                case Op.Arsh64Imm: r[ip->Dst] = (ulong)((long)r[ip->Dst] >> (int)(ip->Imm & 63)); break;
                case Op.Arsh64Reg: r[ip->Dst] = (ulong)((long)r[ip->Dst] >> (int)(r[ip->Src] & 63)); break;
                case Op.SDiv64Imm: r[ip->Dst] = (ulong)SDiv64((long)r[ip->Dst], ip->Imm); break;
                case Op.SDiv64Reg: r[ip->Dst] = (ulong)SDiv64((long)r[ip->Dst], (long)r[ip->Src]); break;
                case Op.SMod64Imm: r[ip->Dst] = (ulong)SMod64((long)r[ip->Dst], ip->Imm); break;
                case Op.SMod64Reg: r[ip->Dst] = (ulong)SMod64((long)r[ip->Dst], (long)r[ip->Src]); break;
                case Op.Neg64: r[ip->Dst] = (ulong)(-(long)r[ip->Dst]); break;
                case Op.MovSx64From8: r[ip->Dst] = (ulong)(long)(sbyte)r[ip->Src]; break;
                case Op.MovSx64From16: r[ip->Dst] = (ulong)(long)(short)r[ip->Src]; break;
                case Op.MovSx64From32: r[ip->Dst] = (ulong)(long)(int)r[ip->Src]; break;

                // ALU 32: results are zero-extended to 64 bits
                case Op.Add32Imm: r[ip->Dst] = (uint)((uint)r[ip->Dst] + (uint)ip->Imm); break;
                case Op.Add32Reg: r[ip->Dst] = (uint)((uint)r[ip->Dst] + (uint)r[ip->Src]); break;
                case Op.Sub32Imm: r[ip->Dst] = (uint)((uint)r[ip->Dst] - (uint)ip->Imm); break;
                case Op.Sub32Reg: r[ip->Dst] = (uint)((uint)r[ip->Dst] - (uint)r[ip->Src]); break;
                case Op.Mul32Imm: r[ip->Dst] = (uint)((uint)r[ip->Dst] * (uint)ip->Imm); break;
                case Op.Mul32Reg: r[ip->Dst] = (uint)((uint)r[ip->Dst] * (uint)r[ip->Src]); break;
                case Op.Div32Imm: r[ip->Dst] = Div32((uint)r[ip->Dst], (uint)ip->Imm); break;
                case Op.Div32Reg: r[ip->Dst] = Div32((uint)r[ip->Dst], (uint)r[ip->Src]); break;
                case Op.Or32Imm: r[ip->Dst] = (uint)r[ip->Dst] | (uint)ip->Imm; break;
                case Op.Or32Reg: r[ip->Dst] = (uint)r[ip->Dst] | (uint)r[ip->Src]; break;
                case Op.And32Imm: r[ip->Dst] = (uint)r[ip->Dst] & (uint)ip->Imm; break;
                case Op.And32Reg: r[ip->Dst] = (uint)r[ip->Dst] & (uint)r[ip->Src]; break;
                case Op.Lsh32Imm: r[ip->Dst] = (uint)r[ip->Dst] << (int)(ip->Imm & 31); break;
                case Op.Lsh32Reg: r[ip->Dst] = (uint)r[ip->Dst] << (int)(r[ip->Src] & 31); break;
                case Op.Rsh32Imm: r[ip->Dst] = (uint)r[ip->Dst] >> (int)(ip->Imm & 31); break;
                case Op.Rsh32Reg: r[ip->Dst] = (uint)r[ip->Dst] >> (int)(r[ip->Src] & 31); break;
                case Op.Mod32Imm: r[ip->Dst] = Mod32((uint)r[ip->Dst], (uint)ip->Imm); break;
                case Op.Mod32Reg: r[ip->Dst] = Mod32((uint)r[ip->Dst], (uint)r[ip->Src]); break;
                case Op.Xor32Imm: r[ip->Dst] = (uint)r[ip->Dst] ^ (uint)ip->Imm; break;
                case Op.Xor32Reg: r[ip->Dst] = (uint)r[ip->Dst] ^ (uint)r[ip->Src]; break;
                case Op.Mov32Imm: r[ip->Dst] = (uint)ip->Imm; break;
                case Op.Mov32Reg: r[ip->Dst] = (uint)r[ip->Src]; break;
                case Op.Arsh32Imm: r[ip->Dst] = (uint)((int)r[ip->Dst] >> (int)(ip->Imm & 31)); break;
                case Op.Arsh32Reg: r[ip->Dst] = (uint)((int)r[ip->Dst] >> (int)(r[ip->Src] & 31)); break;
                case Op.SDiv32Imm: r[ip->Dst] = (uint)SDiv32((int)r[ip->Dst], (int)ip->Imm); break;
                case Op.SDiv32Reg: r[ip->Dst] = (uint)SDiv32((int)r[ip->Dst], (int)r[ip->Src]); break;
                case Op.SMod32Imm: r[ip->Dst] = (uint)SMod32((int)r[ip->Dst], (int)ip->Imm); break;
                case Op.SMod32Reg: r[ip->Dst] = (uint)SMod32((int)r[ip->Dst], (int)r[ip->Src]); break;
                case Op.Neg32: r[ip->Dst] = (uint)(-(int)r[ip->Dst]); break;
                case Op.MovSx32From8: r[ip->Dst] = (uint)(int)(sbyte)r[ip->Src]; break;
                case Op.MovSx32From16: r[ip->Dst] = (uint)(int)(short)r[ip->Src]; break;

                // Byte order (the host is little-endian)
                case Op.Zext16: r[ip->Dst] = (ushort)r[ip->Dst]; break;
                case Op.Zext32: r[ip->Dst] = (uint)r[ip->Dst]; break;
                case Op.Nop: break;
                case Op.Swap16: r[ip->Dst] = BinaryPrimitives.ReverseEndianness((ushort)r[ip->Dst]); break;
                case Op.Swap32: r[ip->Dst] = BinaryPrimitives.ReverseEndianness((uint)r[ip->Dst]); break;
                case Op.Swap64: r[ip->Dst] = BinaryPrimitives.ReverseEndianness(r[ip->Dst]); break;

                case Op.Lddw: r[ip->Dst] = (ulong)ip->Imm; ip++; break;

                // Legacy packet loads: r0 = packet[imm (+ src)], little-endian as rbpf does
                case Op.LdAbsB: case Op.LdAbsH: case Op.LdAbsW: case Op.LdAbsDW:
                case Op.LdIndB: case Op.LdIndH: case Op.LdIndW: case Op.LdIndDW:
                {
                    int k = ip->Op - (ip->Op >= Op.LdIndB ? Op.LdIndB : Op.LdAbsB);
                    int size = 1 << k;
                    ulong index = ip->Op >= Op.LdIndB ? r[ip->Src] : 0;
                    ulong offset = (ulong)ip->Imm + index;
                    a = st->PacketStart + offset;
                    // An offset that wraps past 2^64 is outside the packet, as in the JIT.
                    if (offset < index || offset > st->PacketLength || st->PacketLength - offset < (ulong)size)
                    {
                        if (st->KernelPacketLoads) { why = StopReason.EndWithZero; goto Stop; }
                        st->FaultAddress = a; st->FaultSize = size; st->FaultWrite = false;
                        goto PacketFault;
                    }
                    r[0] = size switch
                    {
                        1 => *(byte*)a,
                        2 => Unsafe.ReadUnaligned<ushort>((void*)a),
                        4 => Unsafe.ReadUnaligned<uint>((void*)a),
                        _ => Unsafe.ReadUnaligned<ulong>((void*)a),
                    };
                    if (st->KernelPacketLoads)
                        r[0] = size == 2 ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)r[0])
                            : size == 4 ? System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)r[0]) : r[0];
                    break;
                }

                // Loads
                // Fused (DecodedProgram.Fused): ip moves past the slots they stand for.
                // mov d, s; op d, x as d = s op x (DecodedProgram.Fuse)
                case Op.AddTo64Imm: r[ip->Dst] = r[ip->Src] + (ulong)ip->Imm; ip++; break;
                case Op.AddTo64Reg: r[ip->Dst] = r[ip->Src] + r[(int)ip->Imm]; ip++; break;
                case Op.AddTo32Imm: r[ip->Dst] = (uint)((uint)r[ip->Src] + (uint)(ulong)ip->Imm); ip++; break;
                case Op.AddTo32Reg: r[ip->Dst] = (uint)((uint)r[ip->Src] + (uint)r[(int)ip->Imm]); ip++; break;
                case Op.SubTo64Imm: r[ip->Dst] = r[ip->Src] - (ulong)ip->Imm; ip++; break;
                case Op.SubTo64Reg: r[ip->Dst] = r[ip->Src] - r[(int)ip->Imm]; ip++; break;
                case Op.SubTo32Imm: r[ip->Dst] = (uint)((uint)r[ip->Src] - (uint)(ulong)ip->Imm); ip++; break;
                case Op.SubTo32Reg: r[ip->Dst] = (uint)((uint)r[ip->Src] - (uint)r[(int)ip->Imm]); ip++; break;
                case Op.MulTo64Imm: r[ip->Dst] = r[ip->Src] * (ulong)ip->Imm; ip++; break;
                case Op.MulTo64Reg: r[ip->Dst] = r[ip->Src] * r[(int)ip->Imm]; ip++; break;
                case Op.MulTo32Imm: r[ip->Dst] = (uint)((uint)r[ip->Src] * (uint)(ulong)ip->Imm); ip++; break;
                case Op.MulTo32Reg: r[ip->Dst] = (uint)((uint)r[ip->Src] * (uint)r[(int)ip->Imm]); ip++; break;
                case Op.OrTo64Imm: r[ip->Dst] = r[ip->Src] | (ulong)ip->Imm; ip++; break;
                case Op.OrTo64Reg: r[ip->Dst] = r[ip->Src] | r[(int)ip->Imm]; ip++; break;
                case Op.OrTo32Imm: r[ip->Dst] = (uint)((uint)r[ip->Src] | (uint)(ulong)ip->Imm); ip++; break;
                case Op.OrTo32Reg: r[ip->Dst] = (uint)((uint)r[ip->Src] | (uint)r[(int)ip->Imm]); ip++; break;
                case Op.AndTo64Imm: r[ip->Dst] = r[ip->Src] & (ulong)ip->Imm; ip++; break;
                case Op.AndTo64Reg: r[ip->Dst] = r[ip->Src] & r[(int)ip->Imm]; ip++; break;
                case Op.AndTo32Imm: r[ip->Dst] = (uint)((uint)r[ip->Src] & (uint)(ulong)ip->Imm); ip++; break;
                case Op.AndTo32Reg: r[ip->Dst] = (uint)((uint)r[ip->Src] & (uint)r[(int)ip->Imm]); ip++; break;
                case Op.LshTo64Imm: r[ip->Dst] = r[ip->Src] << (int)((ulong)ip->Imm & 63); ip++; break;
                case Op.LshTo64Reg: r[ip->Dst] = r[ip->Src] << (int)(r[(int)ip->Imm] & 63); ip++; break;
                case Op.LshTo32Imm: r[ip->Dst] = (uint)r[ip->Src] << (int)((ulong)ip->Imm & 31); ip++; break;
                case Op.LshTo32Reg: r[ip->Dst] = (uint)r[ip->Src] << (int)(r[(int)ip->Imm] & 31); ip++; break;
                case Op.RshTo64Imm: r[ip->Dst] = r[ip->Src] >> (int)((ulong)ip->Imm & 63); ip++; break;
                case Op.RshTo64Reg: r[ip->Dst] = r[ip->Src] >> (int)(r[(int)ip->Imm] & 63); ip++; break;
                case Op.RshTo32Imm: r[ip->Dst] = (uint)r[ip->Src] >> (int)((ulong)ip->Imm & 31); ip++; break;
                case Op.RshTo32Reg: r[ip->Dst] = (uint)r[ip->Src] >> (int)(r[(int)ip->Imm] & 31); ip++; break;
                case Op.XorTo64Imm: r[ip->Dst] = r[ip->Src] ^ (ulong)ip->Imm; ip++; break;
                case Op.XorTo64Reg: r[ip->Dst] = r[ip->Src] ^ r[(int)ip->Imm]; ip++; break;
                case Op.XorTo32Imm: r[ip->Dst] = (uint)((uint)r[ip->Src] ^ (uint)(ulong)ip->Imm); ip++; break;
                case Op.XorTo32Reg: r[ip->Dst] = (uint)((uint)r[ip->Src] ^ (uint)r[(int)ip->Imm]); ip++; break;
                case Op.ArshTo64Imm: r[ip->Dst] = (ulong)((long)r[ip->Src] >> (int)((ulong)ip->Imm & 63)); ip++; break;
                case Op.ArshTo64Reg: r[ip->Dst] = (ulong)((long)r[ip->Src] >> (int)(r[(int)ip->Imm] & 63)); ip++; break;
                case Op.ArshTo32Imm: r[ip->Dst] = (uint)((int)r[ip->Src] >> (int)((ulong)ip->Imm & 31)); ip++; break;
                case Op.ArshTo32Reg: r[ip->Dst] = (uint)((int)r[ip->Src] >> (int)(r[(int)ip->Imm] & 31)); ip++; break;
                case Op.LdxIndexedB:
                    a = r[(int)(ip->Imm >> 8)] = r[ip->Src] + r[(int)ip->Imm & 0xff];
                    a += (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 1, false)) { st->FaultAddress = a; st->FaultSize = 1; st->FaultWrite = false; ip += 2; goto Fault; }
                    r[ip->Dst] = *(byte*)a; ip += 2; break;
                case Op.LdxIndexedH:
                    a = r[(int)(ip->Imm >> 8)] = r[ip->Src] + r[(int)ip->Imm & 0xff];
                    a += (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, false)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = false; ip += 2; goto Fault; }
                    r[ip->Dst] = Unsafe.ReadUnaligned<ushort>((void*)a); ip += 2; break;
                case Op.LdxIndexedW:
                    a = r[(int)(ip->Imm >> 8)] = r[ip->Src] + r[(int)ip->Imm & 0xff];
                    a += (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, false)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = false; ip += 2; goto Fault; }
                    r[ip->Dst] = Unsafe.ReadUnaligned<uint>((void*)a); ip += 2; break;
                case Op.LdxIndexedDW:
                    a = r[(int)(ip->Imm >> 8)] = r[ip->Src] + r[(int)ip->Imm & 0xff];
                    a += (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, false)) { st->FaultAddress = a; st->FaultSize = 8; st->FaultWrite = false; ip += 2; goto Fault; }
                    r[ip->Dst] = Unsafe.ReadUnaligned<ulong>((void*)a); ip += 2; break;

                case Op.LdxIndexedSwapH:
                    a = r[(int)(ip->Imm >> 8)] = r[ip->Src] + r[(int)ip->Imm & 0xff];
                    a += (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, false)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = false; ip += 2; goto Fault; }
                    r[ip->Dst] = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>((void*)a)); ip += 3; break;
                case Op.LdxIndexedSwapW:
                    a = r[(int)(ip->Imm >> 8)] = r[ip->Src] + r[(int)ip->Imm & 0xff];
                    a += (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, false)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = false; ip += 2; goto Fault; }
                    r[ip->Dst] = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>((void*)a)); ip += 3; break;
                case Op.LdxIndexedSwapDW:
                    a = r[(int)(ip->Imm >> 8)] = r[ip->Src] + r[(int)ip->Imm & 0xff];
                    a += (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, false)) { st->FaultAddress = a; st->FaultSize = 8; st->FaultWrite = false; ip += 2; goto Fault; }
                    r[ip->Dst] = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>((void*)a)); ip += 3; break;
                case Op.LdxSwapH:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, false)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>((void*)a)); ip++; break;
                case Op.LdxSwapW:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, false)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>((void*)a)); ip++; break;
                case Op.LdxSwapDW:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, false)) { st->FaultAddress = a; st->FaultSize = 8; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>((void*)a)); ip++; break;

                case Op.LdxB:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 1, false)) { st->FaultAddress = a; st->FaultSize = 1; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = *(byte*)a; break;
                case Op.LdxH:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, false)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = Unsafe.ReadUnaligned<ushort>((void*)a); break;
                case Op.LdxW:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, false)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = Unsafe.ReadUnaligned<uint>((void*)a); break;
                case Op.LdxDW:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, false)) { st->FaultAddress = a; st->FaultSize = 8; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = Unsafe.ReadUnaligned<ulong>((void*)a); break;
                case Op.LdxSB:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 1, false)) { st->FaultAddress = a; st->FaultSize = 1; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)(long)*(sbyte*)a; break;
                case Op.LdxSH:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, false)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)(long)Unsafe.ReadUnaligned<short>((void*)a); break;
                case Op.LdxSW:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, false)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)(long)Unsafe.ReadUnaligned<int>((void*)a); break;

                // ldxdw x, [b + off]; add64 x, t; stxdw [b + off], x (DecodedProgram.Fuse): the load's
                // fields; a slot that is not writable runs the load alone (its fault, or the store's, as unfused)
                case Op.LdxAddStxDWImm:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, true)) goto case Op.LdxDW;
                    Unsafe.WriteUnaligned((void*)a, r[ip->Dst] = Unsafe.ReadUnaligned<ulong>((void*)a) + (ulong)ip->Imm); ip += 2; break;
                case Op.LdxAddStxDWReg:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, true)) goto case Op.LdxDW;
                    r[ip->Dst] = Unsafe.ReadUnaligned<ulong>((void*)a); // then the add, which may read x itself
                    Unsafe.WriteUnaligned((void*)a, r[ip->Dst] += r[(int)ip->Imm]); ip += 2; break;

                // add64 d, k and the store after it (DecodedProgram.Fuse): the store runs from its own slot,
                // so a fault names it
                case Op.AddStxW:
                    r[ip->Dst] += (ulong)ip->Imm;
                    ip++;
                    if (ip->Op == Op.StxStackW) goto case Op.StxStackW;
                    goto case Op.StxW;
                case Op.AddStxDW:
                    r[ip->Dst] += (ulong)ip->Imm;
                    ip++;
                    if (ip->Op == Op.StxStackDW) goto case Op.StxStackDW;
                    goto case Op.StxDW;

                // Through r10 inside the frame (DecodedProgram.Fuse): unchecked when every frame has its 512 bytes
                case Op.LdxStackB:
                    if (!st->FullFrames) goto case Op.LdxB;
                    r[ip->Dst] = *(byte*)(r[Isa.FramePointer] + (ulong)(long)ip->Off); break;
                case Op.LdxStackH:
                    if (!st->FullFrames) goto case Op.LdxH;
                    r[ip->Dst] = Unsafe.ReadUnaligned<ushort>((void*)(r[Isa.FramePointer] + (ulong)(long)ip->Off)); break;
                case Op.LdxStackW:
                    if (!st->FullFrames) goto case Op.LdxW;
                    r[ip->Dst] = Unsafe.ReadUnaligned<uint>((void*)(r[Isa.FramePointer] + (ulong)(long)ip->Off)); break;
                case Op.LdxStackDW:
                    if (!st->FullFrames) goto case Op.LdxDW;
                    r[ip->Dst] = Unsafe.ReadUnaligned<ulong>((void*)(r[Isa.FramePointer] + (ulong)(long)ip->Off)); break;
                case Op.StxStackB:
                    if (!st->FullFrames) goto case Op.StxB;
                    *(byte*)(r[Isa.FramePointer] + (ulong)(long)ip->Off) = (byte)r[ip->Src]; break;
                case Op.StxStackH:
                    if (!st->FullFrames) goto case Op.StxH;
                    Unsafe.WriteUnaligned((void*)(r[Isa.FramePointer] + (ulong)(long)ip->Off), (ushort)r[ip->Src]); break;
                case Op.StxStackW:
                    if (!st->FullFrames) goto case Op.StxW;
                    Unsafe.WriteUnaligned((void*)(r[Isa.FramePointer] + (ulong)(long)ip->Off), (uint)r[ip->Src]); break;
                case Op.StxStackDW:
                    if (!st->FullFrames) goto case Op.StxDW;
                    Unsafe.WriteUnaligned((void*)(r[Isa.FramePointer] + (ulong)(long)ip->Off), r[ip->Src]); break;

                // Signed loads as clang writes them before v4, big-endian fields read signed, mov + swap (DecodedProgram.Fuse)
                case Op.LdxSextB:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 1, false)) { st->FaultAddress = a; st->FaultSize = 1; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)(long)*(sbyte*)a; ip += 2; break;
                case Op.LdxSextH:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, false)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)(long)Unsafe.ReadUnaligned<short>((void*)a); ip += 2; break;
                case Op.LdxSextW:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, false)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)(long)Unsafe.ReadUnaligned<int>((void*)a); ip += 2; break;
                case Op.LdxBe64ArshH:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, false)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)((long)BinaryPrimitives.ReverseEndianness((ulong)Unsafe.ReadUnaligned<ushort>((void*)a)) >> (int)ip->Imm); ip += 2; break;
                case Op.LdxBe64ArshW:
                    a = r[ip->Src] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, false)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = false; goto Fault; }
                    r[ip->Dst] = (ulong)((long)BinaryPrimitives.ReverseEndianness((ulong)Unsafe.ReadUnaligned<uint>((void*)a)) >> (int)ip->Imm); ip += 2; break;
                case Op.MovSwap16: r[ip->Dst] = BinaryPrimitives.ReverseEndianness((ushort)r[ip->Src]); ip++; break;
                case Op.MovSwap32: r[ip->Dst] = BinaryPrimitives.ReverseEndianness((uint)r[ip->Src]); ip++; break;
                case Op.MovSwap64: r[ip->Dst] = BinaryPrimitives.ReverseEndianness(r[ip->Src]); ip++; break;

                // Stores
                case Op.StB:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 1, true)) { st->FaultAddress = a; st->FaultSize = 1; st->FaultWrite = true; goto Fault; }
                    *(byte*)a = (byte)ip->Imm; break;
                case Op.StxB:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 1, true)) { st->FaultAddress = a; st->FaultSize = 1; st->FaultWrite = true; goto Fault; }
                    *(byte*)a = (byte)r[ip->Src]; break;
                case Op.StH:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, true)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = true; goto Fault; }
                    Unsafe.WriteUnaligned((void*)a, (ushort)ip->Imm); break;
                case Op.StxH:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 2, true)) { st->FaultAddress = a; st->FaultSize = 2; st->FaultWrite = true; goto Fault; }
                    Unsafe.WriteUnaligned((void*)a, (ushort)r[ip->Src]); break;
                case Op.StW:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, true)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = true; goto Fault; }
                    Unsafe.WriteUnaligned((void*)a, (uint)ip->Imm); break;
                case Op.StxW:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 4, true)) { st->FaultAddress = a; st->FaultSize = 4; st->FaultWrite = true; goto Fault; }
                    Unsafe.WriteUnaligned((void*)a, (uint)r[ip->Src]); break;
                case Op.StDW:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, true)) { st->FaultAddress = a; st->FaultSize = 8; st->FaultWrite = true; goto Fault; }
                    Unsafe.WriteUnaligned((void*)a, (ulong)ip->Imm); break;
                case Op.StxDW:
                    a = r[ip->Dst] + (ulong)(long)ip->Off;
                    if (!st->Allows(vm, a, 8, true)) { st->FaultAddress = a; st->FaultSize = 8; st->FaultWrite = true; goto Fault; }
                    Unsafe.WriteUnaligned((void*)a, r[ip->Src]); break;

                // Jumps
                case Op.Ja: goto Jump;
                case Op.Jeq64Imm: if (r[ip->Dst] == (ulong)ip->Imm) goto Jump; break;
                case Op.Jeq64Reg: if (r[ip->Dst] == r[ip->Src]) goto Jump; break;
                case Op.Jeq32Imm: if ((uint)r[ip->Dst] == (uint)ip->Imm) goto Jump; break;
                case Op.Jeq32Reg: if ((uint)r[ip->Dst] == (uint)r[ip->Src]) goto Jump; break;
                case Op.Jgt64Imm: if (r[ip->Dst] > (ulong)ip->Imm) goto Jump; break;
                case Op.Jgt64Reg: if (r[ip->Dst] > r[ip->Src]) goto Jump; break;
                case Op.Jgt32Imm: if ((uint)r[ip->Dst] > (uint)ip->Imm) goto Jump; break;
                case Op.Jgt32Reg: if ((uint)r[ip->Dst] > (uint)r[ip->Src]) goto Jump; break;
                case Op.Jge64Imm: if (r[ip->Dst] >= (ulong)ip->Imm) goto Jump; break;
                case Op.Jge64Reg: if (r[ip->Dst] >= r[ip->Src]) goto Jump; break;
                case Op.Jge32Imm: if ((uint)r[ip->Dst] >= (uint)ip->Imm) goto Jump; break;
                case Op.Jge32Reg: if ((uint)r[ip->Dst] >= (uint)r[ip->Src]) goto Jump; break;
                case Op.Jset64Imm: if ((r[ip->Dst] & (ulong)ip->Imm) != 0) goto Jump; break;
                case Op.Jset64Reg: if ((r[ip->Dst] & r[ip->Src]) != 0) goto Jump; break;
                case Op.Jset32Imm: if (((uint)r[ip->Dst] & (uint)ip->Imm) != 0) goto Jump; break;
                case Op.Jset32Reg: if (((uint)r[ip->Dst] & (uint)r[ip->Src]) != 0) goto Jump; break;
                case Op.Jne64Imm: if (r[ip->Dst] != (ulong)ip->Imm) goto Jump; break;
                case Op.Jne64Reg: if (r[ip->Dst] != r[ip->Src]) goto Jump; break;
                case Op.Jne32Imm: if ((uint)r[ip->Dst] != (uint)ip->Imm) goto Jump; break;
                case Op.Jne32Reg: if ((uint)r[ip->Dst] != (uint)r[ip->Src]) goto Jump; break;
                case Op.Jsgt64Imm: if ((long)r[ip->Dst] > ip->Imm) goto Jump; break;
                case Op.Jsgt64Reg: if ((long)r[ip->Dst] > (long)r[ip->Src]) goto Jump; break;
                case Op.Jsgt32Imm: if ((int)r[ip->Dst] > (int)ip->Imm) goto Jump; break;
                case Op.Jsgt32Reg: if ((int)r[ip->Dst] > (int)r[ip->Src]) goto Jump; break;
                case Op.Jsge64Imm: if ((long)r[ip->Dst] >= ip->Imm) goto Jump; break;
                case Op.Jsge64Reg: if ((long)r[ip->Dst] >= (long)r[ip->Src]) goto Jump; break;
                case Op.Jsge32Imm: if ((int)r[ip->Dst] >= (int)ip->Imm) goto Jump; break;
                case Op.Jsge32Reg: if ((int)r[ip->Dst] >= (int)r[ip->Src]) goto Jump; break;
                case Op.Jlt64Imm: if (r[ip->Dst] < (ulong)ip->Imm) goto Jump; break;
                case Op.Jlt64Reg: if (r[ip->Dst] < r[ip->Src]) goto Jump; break;
                case Op.Jlt32Imm: if ((uint)r[ip->Dst] < (uint)ip->Imm) goto Jump; break;
                case Op.Jlt32Reg: if ((uint)r[ip->Dst] < (uint)r[ip->Src]) goto Jump; break;
                case Op.Jle64Imm: if (r[ip->Dst] <= (ulong)ip->Imm) goto Jump; break;
                case Op.Jle64Reg: if (r[ip->Dst] <= r[ip->Src]) goto Jump; break;
                case Op.Jle32Imm: if ((uint)r[ip->Dst] <= (uint)ip->Imm) goto Jump; break;
                case Op.Jle32Reg: if ((uint)r[ip->Dst] <= (uint)r[ip->Src]) goto Jump; break;
                case Op.Jslt64Imm: if ((long)r[ip->Dst] < ip->Imm) goto Jump; break;
                case Op.Jslt64Reg: if ((long)r[ip->Dst] < (long)r[ip->Src]) goto Jump; break;
                case Op.Jslt32Imm: if ((int)r[ip->Dst] < (int)ip->Imm) goto Jump; break;
                case Op.Jslt32Reg: if ((int)r[ip->Dst] < (int)r[ip->Src]) goto Jump; break;
                case Op.Jsle64Imm: if ((long)r[ip->Dst] <= ip->Imm) goto Jump; break;
                case Op.Jsle64Reg: if ((long)r[ip->Dst] <= (long)r[ip->Src]) goto Jump; break;
                case Op.Jsle32Imm: if ((int)r[ip->Dst] <= (int)ip->Imm) goto Jump; break;
                case Op.Jsle32Reg: if ((int)r[ip->Dst] <= (int)r[ip->Src]) goto Jump; break;

                // d = s + k; jcc (DecodedProgram.Fuse, SetJ*): taken, the jump reads the fused slot's target
                case Op.SetJeq64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] == (ulong)(long)(int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJeq64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] == r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJeq32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] == (uint)ip->Imm) goto Jump; ip++; break;
                case Op.SetJeq32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] == (uint)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJgt64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] > (ulong)(long)(int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJgt64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] > r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJgt32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] > (uint)ip->Imm) goto Jump; ip++; break;
                case Op.SetJgt32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] > (uint)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJge64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] >= (ulong)(long)(int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJge64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] >= r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJge32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] >= (uint)ip->Imm) goto Jump; ip++; break;
                case Op.SetJge32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] >= (uint)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJset64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((r[ip->Dst] & (ulong)(long)(int)ip->Imm) != 0) goto Jump; ip++; break;
                case Op.SetJset64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((r[ip->Dst] & r[(int)ip->Imm]) != 0) goto Jump; ip++; break;
                case Op.SetJset32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (((uint)r[ip->Dst] & (uint)ip->Imm) != 0) goto Jump; ip++; break;
                case Op.SetJset32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (((uint)r[ip->Dst] & (uint)r[(int)ip->Imm]) != 0) goto Jump; ip++; break;
                case Op.SetJne64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] != (ulong)(long)(int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJne64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] != r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJne32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] != (uint)ip->Imm) goto Jump; ip++; break;
                case Op.SetJne32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] != (uint)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJsgt64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] > (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJsgt64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] > (long)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJsgt32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] > (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJsgt32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] > (int)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJsge64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] >= (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJsge64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] >= (long)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJsge32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] >= (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJsge32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] >= (int)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJlt64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] < (ulong)(long)(int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJlt64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] < r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJlt32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] < (uint)ip->Imm) goto Jump; ip++; break;
                case Op.SetJlt32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] < (uint)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJle64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] <= (ulong)(long)(int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJle64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if (r[ip->Dst] <= r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJle32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] <= (uint)ip->Imm) goto Jump; ip++; break;
                case Op.SetJle32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((uint)r[ip->Dst] <= (uint)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJslt64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] < (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJslt64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] < (long)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJslt32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] < (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJslt32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] < (int)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJsle64Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] <= (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJsle64Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((long)r[ip->Dst] <= (long)r[(int)ip->Imm]) goto Jump; ip++; break;
                case Op.SetJsle32Imm: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] <= (int)ip->Imm) goto Jump; ip++; break;
                case Op.SetJsle32Reg: r[(uint)ip->Src >> 4] = r[ip->Src & 15u] + (ulong)SetAddend(ip); if ((int)r[ip->Dst] <= (int)r[(int)ip->Imm]) goto Jump; ip++; break;

                default:
                    why = StopReason.Other;
                    goto Stop;
            }
            continue;
        Jump: // a taken jump; one to a loop head (back or to itself) checks whether the VM was interrupted
            DecodedInsn* before = beforeCode + ip->Off;
            if (before >= ip) { ip = before; continue; }
            ip = before;
            if (*st->InterruptWord != st->InterruptEpoch) { ip++; why = StopReason.Interrupted; goto Stop; }
        }
    Fault:
        why = StopReason.Fault;
        goto Stop;
    PacketFault:
        why = StopReason.PacketFault;
    Stop:
        if (default(TBudget).Counts) st->Budget = budget;
        st->Stop = why;
        return ip;
    }

    /// <summary>k of a fused <c>d = s + k; jcc</c> (<see cref="Op.SetJeq64Imm"/>): Imm's high half, read as
    /// one sign-extending load.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SetAddend(DecodedInsn* i) => *((int*)&i->Imm + 1);

    /// <summary>The slot number of the instruction before <paramref name="next"/> (for messages).</summary>
    private static int Slot(DecodedInsn* next, DecodedInsn* code0) => (int)(next - code0) - 1;

    /// <summary>The slot of the original program that <paramref name="slot"/> copies, when the run ran the
    /// threaded form (<paramref name="code0"/> is neither of the program's own codes); itself otherwise,
    /// and in the original part. Only the copies' accesses and jumps back reach the messages: calls,
    /// exits and illegal slots are never copied.</summary>
    private static int Original(int slot, DecodedInsn* code0, DecodedProgram program) =>
        code0 != program.FusedStart && code0 != program.CodeStart && program.InterpreterThreaded is { } t
        && (uint)slot < (uint)t.Origin.Length ? t.Origin[slot] : slot;

    internal static string PacketFaultMessage(int size, ulong address, int pc, ulong packetStart, ulong packetLength) =>
        $"out-of-bounds packet load of {Bytes(size)} at 0x{address:x} (insn #{pc}), {Where(address, size, packetStart, packetLength, "the packet")}, packet is " +
        $"[0x{packetStart:x}, 0x{packetStart + packetLength:x})";

    /// <summary>"1 byte", "4 bytes".</summary>
    internal static string Bytes(long n) => n == 1 ? "1 byte" : $"{n} bytes";

    /// <summary>Where an access lies against a region: how far before it, past its end, or at which offset.</summary>
    private static string Where(ulong address, int size, ulong start, ulong length, string name)
    {
        ulong end = start + length;
        if (address < start) return $"{Bytes((long)Math.Min(start - address, long.MaxValue))} before {name}";
        if (address >= end) return $"{Bytes((long)Math.Min(address - end, long.MaxValue))} past the end of {name} ({Bytes((long)length)})";
        return $"at offset {address - start} of {name} ({Bytes((long)length)}), {Bytes((long)(address + (ulong)size - end))} too long";
    }

    internal static string LimitMessage(ulong limit, int pc) =>
        $"instruction limit of {limit} reached at insn #{pc} (the first instruction of a block that would go past it)";

    internal static string InterruptedMessage(int pc) => $"interrupted at insn #{pc}";

    internal static string CallDepthMessage(int pc, int maxFrames) =>
        $"insn #{pc}: local call nests deeper than {maxFrames} frames or leaves too little stack for the called function's frame";

    /// <summary>The lowest byte a frame whose r10 is <paramref name="pointer"/> may reach: 512 bytes below it, never below <paramref name="bottom"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong FrameLow(ulong pointer, ulong bottom) =>
        pointer - bottom < Isa.StackFrameSize ? bottom : pointer - Isa.StackFrameSize;

    /// <summary>Zeroes <paramref name="reach"/> bytes below <paramref name="pointer"/>, never below <paramref name="bottom"/>.</summary>
    private static void ZeroBelow(ulong pointer, int reach, ulong bottom)
    {
        if (pointer - bottom >= (ulong)reach) StackMemory.Zero((byte*)(pointer - (ulong)reach), reach);
        else new Span<byte>((byte*)bottom, (int)(pointer - bottom)).Clear();
    }

    internal static string UnknownHelperMessage(int pc, ulong key) => $"insn #{pc}: call to unregistered helper {key} (0x{key:x})";

    internal static string IllegalMessage(DecodedProgram program, int pc) =>
        $"insn #{pc}: {(program.Problems.TryGetValue(pc, out var p) ? p : "undecodable instruction")}";

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static RbpfException Fault(EbpfVm vm, ref ExecutionState st, bool write, int size, ulong address, int pc)
    {
        int capacity = EbpfVm.BuiltInRegions + vm.UserRegionCount;
        RegionEntry* regions = stackalloc RegionEntry[capacity];
        int count = st.FillRegions(vm, regions, capacity);
        return new RbpfException(RbpfErrorCode.OutOfBounds, FaultMessage(write, size, address, pc, regions, count, vm.MemoryRegions), pc);
    }

    private static string RegionName(in RegionEntry region, IReadOnlyList<MemoryRegion>? names) => region.Kind switch
    {
        RegionKind.Stack => "stack",
        RegionKind.Packet => "memory",
        RegionKind.Metadata => "mbuff",
        // A map's values ("map:counts (fd 0)"), an ELF section ("elf:.rodata"), or a region the embedder added.
        _ when names != null && region.UserIndex < names.Count && names[region.UserIndex].Name != "region" => names[region.UserIndex].Name,
        _ => $"region {region.UserIndex}",
    };

    internal static string FaultMessage(bool write, int size, ulong address, int pc, RegionEntry* regions, int count,
        IReadOnlyList<MemoryRegion>? names = null)
    {
        bool misaligned = false;
        if (MemoryAccess.Allowed(regions, count, address, (ulong)size, write))
            misaligned = true; // only atomics fail inside a region: they must be aligned
        var sb = new System.Text.StringBuilder();
        sb.Append(misaligned ? "misaligned atomic " : "out-of-bounds ")
          .Append(write ? "store" : "load").Append(" of ").Append(Bytes(size)).Append(" at 0x").Append(address.ToString("x"))
          .Append(" (insn #").Append(pc).Append(')');
        // The region nearest to the access, and where the access lies against it.
        int nearest = -1;
        ulong best = ulong.MaxValue;
        for (int k = 0; k < count; k++)
        {
            if (regions[k].Length == 0) continue;
            ulong s0 = regions[k].Start, e0 = s0 + regions[k].Length;
            ulong distance = address < s0 ? s0 - address : address >= e0 ? address - e0 : 0;
            if (distance < best) { best = distance; nearest = k; }
        }
        if (!misaligned && nearest >= 0 && best < 65536) // far away, the nearest region says nothing
            sb.Append(", ").Append(Where(address, size, regions[nearest].Start, regions[nearest].Length, RegionName(regions[nearest], names)));
        sb.Append(", allowed:");
        for (int k = 0; k < count; k++)
        {
            if (regions[k].Length == 0) continue;
            sb.Append(' ').Append(RegionName(regions[k], names)).Append(" [0x").Append(regions[k].Start.ToString("x")).Append(", 0x")
              .Append((regions[k].Start + regions[k].Length).ToString("x")).Append(')')
              .Append(regions[k].Writable ? "" : " read-only").Append(',');
        }
        if (sb[^1] == ',') sb.Length--;
        return sb.ToString();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool CallHelper(EbpfVm vm, HelperEntry h, ulong* r, ref ExecutionState st, int pc, out RbpfException? error)
    {
        if (h.WithMemory == null) return CallHelper(h, r, null, 0, st.PacketStart, pc, out error);
        int capacity = EbpfVm.BuiltInRegions + vm.UserRegionCount;
        RegionEntry* regions = stackalloc RegionEntry[capacity];
        int count = st.FillRegions(vm, regions, capacity);
        return CallHelper(h, r, regions, count, st.PacketStart, pc, out error);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static bool CallHelper(HelperEntry h, ulong* r, RegionEntry* regions, int regionCount, ulong mem, int pc, out RbpfException? error)
    {
        try
        {
            if (h.Native != null) r[0] = h.Native(r[1], r[2], r[3], r[4], r[5], (void*)mem);
            else if (h.Managed != null) r[0] = h.Managed(r[1], r[2], r[3], r[4], r[5]);
            else r[0] = h.WithMemory!(new MemoryAccess(regions, regionCount), r[1], r[2], r[3], r[4], r[5]);
            if (*HelperFailure.Pending != 0 && HelperFailure.Take() is { } failure)
            {
                error = new RbpfException(RbpfErrorCode.HelperFailed, $"insn #{pc}: helper {h.Name} ({h.Key}) failed: {failure}", pc);
                return false;
            }
            error = null;
            return true;
        }
        catch (RbpfException e)
        {
            error = new RbpfException(e.Code == RbpfErrorCode.OutOfBounds ? RbpfErrorCode.OutOfBounds : RbpfErrorCode.HelperFailed,
                $"insn #{pc}: helper {h.Name} ({h.Key}) failed: {e.Message}", pc, e);
            return false;
        }
        catch (Exception e)
        {
            error = new RbpfException(RbpfErrorCode.HelperFailed,
                $"insn #{pc}: helper {h.Name} ({h.Key}) threw {e.GetType().Name}: {e.Message}", pc, e);
            return false;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Div64(ulong a, ulong b) => b == 0 ? 0 : a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mod64(ulong a, ulong b) => b == 0 ? a : a % b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Div32(uint a, uint b) => b == 0 ? 0 : a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Mod32(uint a, uint b) => b == 0 ? a : a % b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SDiv64(long a, long b) => b == 0 ? 0 : b == -1 ? unchecked(-a) : a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SMod64(long a, long b) => b == 0 ? a : b == -1 ? 0 : a % b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SDiv32(int a, int b) => b == 0 ? 0 : b == -1 ? unchecked(-a) : a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int SMod32(int a, int b) => b == 0 ? a : b == -1 ? 0 : a % b;

    private static void Atomic32(AtomicKind op, ref uint cell, ulong* r, int src)
    {
        uint v = (uint)r[src];
        switch (op)
        {
            case AtomicKind.Add: Interlocked.Add(ref Unsafe.As<uint, int>(ref cell), (int)v); break;
            case AtomicKind.Or: Interlocked.Or(ref cell, v); break;
            case AtomicKind.And: Interlocked.And(ref cell, v); break;
            case AtomicKind.Xor: XorFetch32(ref cell, v); break;
            case AtomicKind.FetchAdd: r[src] = (uint)(Interlocked.Add(ref Unsafe.As<uint, int>(ref cell), (int)v) - (int)v); break;
            case AtomicKind.FetchOr: r[src] = Interlocked.Or(ref cell, v); break;
            case AtomicKind.FetchAnd: r[src] = Interlocked.And(ref cell, v); break;
            case AtomicKind.FetchXor: r[src] = XorFetch32(ref cell, v); break;
            case AtomicKind.Xchg: r[src] = Interlocked.Exchange(ref cell, v); break;
            default: r[0] = Interlocked.CompareExchange(ref cell, v, (uint)r[0]); break;
        }
    }

    private static void Atomic64(AtomicKind op, ref ulong cell, ulong* r, int src)
    {
        ulong v = r[src];
        switch (op)
        {
            case AtomicKind.Add: Interlocked.Add(ref Unsafe.As<ulong, long>(ref cell), (long)v); break;
            case AtomicKind.Or: Interlocked.Or(ref cell, v); break;
            case AtomicKind.And: Interlocked.And(ref cell, v); break;
            case AtomicKind.Xor: XorFetch64(ref cell, v); break;
            case AtomicKind.FetchAdd: r[src] = (ulong)(Interlocked.Add(ref Unsafe.As<ulong, long>(ref cell), (long)v) - (long)v); break;
            case AtomicKind.FetchOr: r[src] = Interlocked.Or(ref cell, v); break;
            case AtomicKind.FetchAnd: r[src] = Interlocked.And(ref cell, v); break;
            case AtomicKind.FetchXor: r[src] = XorFetch64(ref cell, v); break;
            case AtomicKind.Xchg: r[src] = Interlocked.Exchange(ref cell, v); break;
            default: r[0] = Interlocked.CompareExchange(ref cell, v, r[0]); break;
        }
    }

    private static uint XorFetch32(ref uint cell, uint v)
    {
        uint old;
        do old = Volatile.Read(ref cell); while (Interlocked.CompareExchange(ref cell, old ^ v, old) != old);
        return old;
    }

    private static ulong XorFetch64(ref ulong cell, ulong v)
    {
        ulong old;
        do old = Volatile.Read(ref cell); while (Interlocked.CompareExchange(ref cell, old ^ v, old) != old);
        return old;
    }
}
