using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>
/// The managed functions generated code calls: the slow path of memory checks and managed helpers.
/// They never let an exception escape into generated code: failures go into the context.
/// </summary>
internal static unsafe class JitRuntime
{
    [ThreadStatic] private static HelperTable? t_helpers;
    [ThreadStatic] private static RbpfException? t_error;

    public static readonly nint CheckAccessFn = (nint)(delegate* unmanaged<JitContext*, ulong, int, int, ulong, int>)&CheckAccess;
    public static readonly nint HelperTrampolineFn = (nint)(delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, JitContext*, ulong>)&CallHelper;
    public static readonly nint CallXTrampolineFn = (nint)(delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, JitContext*, ulong>)&CallX;

    /// <summary>Sets the helpers of the execution about to start on this thread; returns the previous ones.</summary>
    public static HelperTable? Enter(HelperTable helpers)
    {
        var previous = t_helpers;
        t_helpers = helpers;
        t_error = null;
        return previous;
    }

    public static RbpfException? Leave(HelperTable? previous)
    {
        t_helpers = previous;
        var e = t_error;
        t_error = null;
        return e;
    }

    /// <summary>Makes regions[0] the stack frames entered so far.</summary>
    public static void SyncStackRegion(JitContext* ctx)
    {
        ctx->Regions[0].Start = ctx->StackStart;
        ctx->Regions[0].Length = ctx->StackTop - ctx->StackStart;
    }

    [UnmanagedCallersOnly]
    private static int CheckAccess(JitContext* ctx, ulong address, int size, int flags, ulong returnAddress)
    {
        bool write = (flags & 1) != 0;
        bool atomic = (flags & 2) != 0;
        SyncStackRegion(ctx);
        if ((!atomic || (address & (ulong)(size - 1)) == 0) &&
            MemoryAccess.Allowed(ctx->Regions, ctx->RegionCount, address, (ulong)size, write, ctx->ExtraCheck, ctx->ExtraCheckContext))
            return 1;
        ctx->FaultAddress = address;
        ctx->FaultSize = size;
        ctx->FaultKind = write ? 1 : 0;
        ctx->FaultReturn = returnAddress;
        return 0;
    }

    [UnmanagedCallersOnly]
    private static ulong CallHelper(ulong a, ulong b, ulong c, ulong d, ulong e, JitContext* ctx)
    {
        try
        {
            var helpers = t_helpers!;
            return Invoke(helpers.BySlot(ctx->HelperSlot), a, b, c, d, e, ctx);
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
            ulong key = ctx->CallXKey;
            var h = key <= uint.MaxValue ? t_helpers!.Find((uint)key) : null;
            if (h == null)
            {
                Report(ctx, new RbpfException(RbpfErrorCode.UnknownHelper, Interpreter.UnknownHelperMessage(ctx->FaultPc, key), ctx->FaultPc));
                return 0;
            }
            return Invoke(h, a, b, c, d, e, ctx);
        }
        catch (Exception ex)
        {
            Report(ctx, new RbpfException(RbpfErrorCode.Internal, $"insn #{ctx->FaultPc}: helper call failed: {ex.Message}", ctx->FaultPc, ex));
            return 0;
        }
    }

    private static ulong Invoke(HelperEntry h, ulong a, ulong b, ulong c, ulong d, ulong e, JitContext* ctx)
    {
        ulong* r = stackalloc ulong[6];
        r[1] = a; r[2] = b; r[3] = c; r[4] = d; r[5] = e;
        SyncStackRegion(ctx);
        if (!Interpreter.CallHelper(h, r, ctx->Regions, ctx->RegionCount, ctx->FaultPc, out var error))
        {
            Report(ctx, error!);
            return 0;
        }
        return r[0];
    }

    private static void Report(JitContext* ctx, RbpfException error)
    {
        t_error ??= error;
        ctx->Status = (int)error.Code;
    }
}
