using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>
/// The managed functions generated code calls: the slow path of memory checks, managed helpers,
/// and the failure of a run. They find the program and its VM through the context's
/// <see cref="JitLink"/>, and never let an exception escape into generated code.
/// </summary>
internal static unsafe class JitRuntime
{
    /// <summary>Which argument of an entry was bad (<see cref="BadArgument"/>).</summary>
    public const int BadResult = 1, BadMem = 2, BadMbuff = 3, NoFixedBuffer = 4, UnusedMem = 5, UnusedMbuff = 6;

    /// <summary>The status an entry hands <see cref="FailFn"/> for a bad argument: the argument is in
    /// the status itself, so the failure path is one move and a jump. The caller sees
    /// <see cref="RbpfErrorCode.InvalidArgument"/>.</summary>
    public static int BadArgument(int which) => ArgumentStatus - which;

    private const int ArgumentStatus = -0x100;

    [ThreadStatic] private static RbpfException? t_helperError;
    [ThreadStatic] private static RbpfException? t_failure;

    public static readonly nint CheckAccessFn = (nint)(delegate* unmanaged<JitContext*, ulong, int, int, int>)&CheckAccess;
    public static readonly nint HelperTrampolineFn = (nint)(delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, JitContext*, ulong>)&CallHelper;
    public static readonly nint CallXTrampolineFn = (nint)(delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, JitContext*, ulong>)&CallX;
    public static readonly nint FailFn = (nint)(delegate* unmanaged<JitContext*, int, int>)&Fail;
    /// <summary>Where a lean entry's bad arguments go (<see cref="LeanFail"/>), for a raw VM and for a VM without data.</summary>
    public static readonly nint LeanFailFn = (nint)(delegate* unmanaged<JitLink*, byte*, nuint, byte*, nuint, ulong*, int>)&LeanFail;
    public static readonly nint LeanFailNoDataFn = (nint)(delegate* unmanaged<JitLink*, byte*, nuint, byte*, nuint, ulong*, int>)&LeanFailNoData;

    /// <summary>
    /// Called with every failed run's error on the thread that ran it (the native library records it
    /// as the thread's last error, so callers of the bare function pointer can read it).
    /// </summary>
    public static Action<RbpfException>? FailureSink;

    /// <summary>The error of this thread's last failed run, once.</summary>
    public static RbpfException? TakeFailure()
    {
        var e = t_failure;
        t_failure = null;
        return e;
    }

    private static JitProgram ProgramOf(JitContext* ctx) =>
        (JitProgram)GCHandle.FromIntPtr(ctx->Link->Program).Target!;

    /// <summary>The allowed regions of the run, as the interpreter lists them (stack, memory, mbuff, the VM's own).</summary>
    private static int FillRegions(JitContext* ctx, JitProgram jit, RegionEntry* regions, int capacity) =>
        jit.Owner.FillRegions(regions, capacity, ctx->StackStart, ctx->StackTop - ctx->StackStart,
            ctx->PacketStart, ctx->PacketLength, ctx->MetaStart, ctx->MetaLength);

    [UnmanagedCallersOnly]
    private static int CheckAccess(JitContext* ctx, ulong address, int size, int flags)
    {
        bool write = (flags & 1) != 0;
        bool atomic = (flags & 2) != 0;
        try
        {
            var jit = ProgramOf(ctx);
            int capacity = EbpfVm.BuiltInRegions + jit.Owner.UserRegionCount;
            RegionEntry* regions = stackalloc RegionEntry[capacity];
            int count = FillRegions(ctx, jit, regions, capacity);
            if ((!atomic || (address & (ulong)(size - 1)) == 0) &&
                MemoryAccess.Allowed(regions, count, address, (ulong)size, write, jit.Owner.ExtraCheck, jit.Owner.ExtraCheckContext))
                return 1;
        }
        catch (Exception ex)
        {
            t_helperError ??= new RbpfException(RbpfErrorCode.Internal, $"memory check failed: {ex.Message}", -1, ex);
        }
        ctx->FaultAddress = address;
        ctx->FaultSize = size;
        ctx->FaultKind = write ? 1 : 0;
        return 0;
    }

    public static readonly nint TakeHelperFailureFn = (nint)(delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, JitContext*, ulong>)&TakeHelperFailure;

    /// <summary>After a native helper when some thread reported a failure: fails the run if it was this one.</summary>
    [UnmanagedCallersOnly]
    private static ulong TakeHelperFailure(ulong a, ulong b, ulong c, ulong d, ulong e, JitContext* ctx)
    {
        try
        {
            if (HelperFailure.Take() is { } failure)
            {
                var h = ProgramOf(ctx).Helpers.BySlot(ctx->HelperSlot);
                Report(ctx, new RbpfException(RbpfErrorCode.HelperFailed,
                    $"insn #{ctx->FaultPc}: helper {h.Name} ({h.Key}) failed: {failure}", ctx->FaultPc));
            }
        }
        catch (Exception ex)
        {
            Report(ctx, new RbpfException(RbpfErrorCode.Internal, $"insn #{ctx->FaultPc}: helper failure check failed: {ex.Message}", ctx->FaultPc, ex));
        }
        return 0;
    }

    [UnmanagedCallersOnly]
    private static ulong CallHelper(ulong a, ulong b, ulong c, ulong d, ulong e, JitContext* ctx)
    {
        try
        {
            var jit = ProgramOf(ctx);
            return Invoke(jit, jit.Helpers.BySlot(ctx->HelperSlot), a, b, c, d, e, ctx);
        }
        catch (Exception ex)
        {
            Report(ctx, new RbpfException(RbpfErrorCode.Internal, $"insn #{ctx->FaultPc}: helper call failed: {ex.Message}", ctx->FaultPc, ex));
            return 0;
        }
    }

    [UnmanagedCallersOnly]
    private static ulong CallX(ulong a, ulong b, ulong c, ulong d, ulong e, JitContext* ctx)
    {
        try
        {
            var jit = ProgramOf(ctx);
            ulong key = ctx->CallXKey;
            var h = key <= uint.MaxValue ? jit.Helpers.Find((uint)key) : null;
            if (h == null)
            {
                Report(ctx, new RbpfException(RbpfErrorCode.UnknownHelper, Interpreter.UnknownHelperMessage(ctx->FaultPc, key), ctx->FaultPc));
                return 0;
            }
            return Invoke(jit, h, a, b, c, d, e, ctx);
        }
        catch (Exception ex)
        {
            Report(ctx, new RbpfException(RbpfErrorCode.Internal, $"insn #{ctx->FaultPc}: helper call failed: {ex.Message}", ctx->FaultPc, ex));
            return 0;
        }
    }

    private static ulong Invoke(JitProgram jit, HelperEntry h, ulong a, ulong b, ulong c, ulong d, ulong e, JitContext* ctx)
    {
        ulong* r = stackalloc ulong[6];
        r[1] = a; r[2] = b; r[3] = c; r[4] = d; r[5] = e;
        int capacity = EbpfVm.BuiltInRegions + jit.Owner.UserRegionCount;
        RegionEntry* regions = stackalloc RegionEntry[capacity];
        int count = FillRegions(ctx, jit, regions, capacity);
        if (!Interpreter.CallHelper(h, r, regions, count, ctx->PacketStart, ctx->FaultPc, out var error))
        {
            Report(ctx, error!);
            return 0;
        }
        return r[0];
    }

    private static void Report(JitContext* ctx, RbpfException error)
    {
        t_helperError ??= error;
        ctx->Status = (int)error.Code;
    }

    /// <summary>A run failed with <paramref name="status"/>: turn the context into the error the interpreter would report.</summary>
    [UnmanagedCallersOnly]
    private static int Fail(JitContext* ctx, int status) => FailWith(ctx, status);

    [UnmanagedCallersOnly]
    private static int LeanFail(JitLink* link, byte* mem, nuint memLen, byte* mbuff, nuint mbuffLen, ulong* result) =>
        FailLean(link, mem, memLen, mbuff, mbuffLen, result, noData: false);

    [UnmanagedCallersOnly]
    private static int LeanFailNoData(JitLink* link, byte* mem, nuint memLen, byte* mbuff, nuint mbuffLen, ulong* result) =>
        FailLean(link, mem, memLen, mbuff, mbuffLen, result, noData: true);

    /// <summary>
    /// A lean entry (no context of its own) was called with a bad argument: the entry's arguments and
    /// its program's link. The first bad one in the order the full entry checks them (result, metadata
    /// buffer, memory) is reported, through a context made here, as <see cref="Fail"/> reports it.
    /// </summary>
    private static int FailLean(JitLink* link, byte* mem, nuint memLen, byte* mbuff, nuint mbuffLen, ulong* result, bool noData)
    {
        var ctx = default(JitContext);
        ctx.Link = link;
        ctx.ResultPtr = result;
        ctx.PacketLength = memLen; // for the message
        int which =
            (nuint)result <= X64Compiler.BatchMarker ? BadResult // NULL, or the batch marker a lean entry never takes
            : mbuff == null && mbuffLen != 0 ? BadMbuff
            : mbuffLen != 0 ? UnusedMbuff // raw VMs and VMs without data take no metadata buffer
            : mem == null && memLen != 0 ? BadMem
            : noData && memLen != 0 ? UnusedMem
            : BadResult; // not reached: the entry's checks came here for one of the above
        return FailWith(&ctx, BadArgument(which));
    }

    private static int FailWith(JitContext* ctx, int status)
    {
        int badArgument = ArgumentStatus - status;
        if (badArgument is >= BadResult and <= UnusedMbuff) status = (int)RbpfErrorCode.InvalidArgument;
        else badArgument = 0;
        RbpfException error;
        try
        {
            error = Describe(ctx, status, badArgument);
        }
        catch (Exception ex)
        {
            error = new RbpfException((RbpfErrorCode)status, $"JIT-compiled program failed with {(RbpfErrorCode)status}", -1, ex);
        }
        t_failure = error;
        try { FailureSink?.Invoke(error); } catch (Exception) { /* the sink only records */ }
        return status;
    }

    private static RbpfException Describe(JitContext* ctx, int status, int badArgument)
    {
        var code = (RbpfErrorCode)status;
        var helperError = t_helperError;
        t_helperError = null;
        if (helperError != null && helperError.Code == code) return helperError; // a helper's own error
        if (badArgument != 0)
            return new RbpfException(code, badArgument switch
            {
                BadResult => "result is NULL",
                BadMem => $"mem is NULL but mem_len is {ctx->PacketLength}",
                BadMbuff => "mbuff is NULL but its length is not 0",
                UnusedMem => EbpfVm.UnusedInput(VmKind.NoData, mbuff: false).Message,
                UnusedMbuff => EbpfVm.UnusedInput(ProgramOf(ctx).Owner.Kind, mbuff: true).Message,
                _ => "this VM's fixed metadata buffer is too large for the bare function: run it through the VM",
            });
        var jit = ProgramOf(ctx);
        int pc = jit.OriginalSlot(ctx->FaultPc); // a threaded copy's slot is named by the slot it copies
        string message;
        if (code == RbpfErrorCode.OutOfBounds && ctx->FaultKind != 2)
        {
            int capacity = EbpfVm.BuiltInRegions + jit.Owner.UserRegionCount;
            RegionEntry* regions = stackalloc RegionEntry[capacity];
            int count = FillRegions(ctx, jit, regions, capacity);
            message = Interpreter.FaultMessage(ctx->FaultKind == 1, ctx->FaultSize, ctx->FaultAddress, pc, regions, count, jit.Owner.MemoryRegions);
        }
        else
        {
            message = code switch
            {
                RbpfErrorCode.OutOfBounds =>
                    Interpreter.PacketFaultMessage(ctx->FaultSize, ctx->FaultAddress, pc, ctx->PacketStart, ctx->PacketLength),
                RbpfErrorCode.InstructionLimit => Interpreter.LimitMessage((ulong)ctx->Link->Budget, pc),
                RbpfErrorCode.Interrupted => Interpreter.InterruptedMessage(pc),
                RbpfErrorCode.CallDepthExceeded => Interpreter.CallDepthMessage(pc, jit.Layout.MaxFrames),
                RbpfErrorCode.UnknownHelper => Interpreter.UnknownHelperMessage(pc, (uint)jit.Program.Code[pc].Imm),
                RbpfErrorCode.IllegalInstruction => Interpreter.IllegalMessage(jit.Program, pc),
                _ => $"insn #{pc}: JIT-compiled program failed with {code}",
            };
        }
        return new RbpfException(code, message, pc);
    }
}
