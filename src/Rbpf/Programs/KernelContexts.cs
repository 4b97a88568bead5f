using System.Runtime.CompilerServices;

namespace Rbpf.Programs;

/// <summary>Where an XDP frame sits in the buffer given to <see cref="EbpfVm.ExecuteXdp"/>, and the interfaces it came from.</summary>
public sealed record XdpOptions
{
    /// <summary>Bytes before the frame: room for <c>bpf_xdp_adjust_head</c> to grow it (the kernel gives 256).</summary>
    public int Headroom { get; init; }
    /// <summary>The frame's length; null: the rest of the buffer, which then leaves no tailroom.</summary>
    public int? Length { get; init; }
    /// <summary><c>xdp_md.ingress_ifindex</c>.</summary>
    public uint IngressIfindex { get; init; } = 1;
    /// <summary><c>xdp_md.rx_queue_index</c>.</summary>
    public uint RxQueueIndex { get; init; }
    /// <summary><c>xdp_md.egress_ifindex</c>.</summary>
    public uint EgressIfindex { get; init; }
}

/// <summary>An XDP run's outcome: the verdict, and where the frame is now in the buffer.</summary>
/// <param name="Action">The program's verdict.</param>
/// <param name="Result">r0 as the program returned it.</param>
/// <param name="Offset">The frame's start in the buffer (moved by <c>bpf_xdp_adjust_head</c>).</param>
/// <param name="Length">Its length (changed by the adjust helpers).</param>
public readonly record struct XdpResult(XdpAction Action, ulong Result, int Offset, int Length);

/// <summary>The kernel program types' contexts: their fields, the rewriting of accesses to them, their helpers and runs.</summary>
internal static unsafe class KernelContexts
{
    // The engine's XDP context (what r1 points at): real pointers, then the scalars, then the
    // buffer's bounds for the adjust helpers (no field of xdp_md maps to them).
    private const int OffData = 0, OffDataEnd = 8, OffDataMeta = 16, OffIngress = 24, OffRxQueue = 28, OffEgress = 32,
        OffBufferStart = 40, OffBufferEnd = 48, XdpContextSize = 56;
    private const int EthHeaderLength = 14, MaxMetaLength = 32;

    /// <summary><c>struct xdp_md</c> (linux/bpf.h): its u32 fields, and where each is kept.</summary>
    public static readonly ContextField[] XdpFields =
    {
        new("data", 0, 4, OffData, IsPointer: true, Writable: false),
        new("data_end", 4, 4, OffDataEnd, IsPointer: true, Writable: false),
        new("data_meta", 8, 4, OffDataMeta, IsPointer: true, Writable: false),
        new("ingress_ifindex", 12, 4, OffIngress, IsPointer: false, Writable: false),
        new("rx_queue_index", 16, 4, OffRxQueue, IsPointer: false, Writable: false),
        new("egress_ifindex", 20, 4, OffEgress, IsPointer: false, Writable: false),
    };

    public static void Rewrite(ProgramType type, Instruction[] insns)
    {
        switch (type)
        {
            case ProgramType.Xdp: ContextRewriter.Rewrite(insns, XdpFields, "XDP", "xdp_md"); break;
            default: throw new RbpfException(RbpfErrorCode.Unsupported, $"program type {type} is not supported yet");
        }
    }

    public const uint AdjustHeadId = 44, AdjustMetaId = 54, AdjustTailId = 65;
    private const ulong EINVAL = unchecked((ulong)-22L);

    /// <summary>bpf_xdp_adjust_head, _meta and _tail, for every id the VM does not have yet.</summary>
    public static void RegisterXdpHelpers(EbpfVm vm)
    {
        if (!vm.HasHelper(AdjustHeadId)) vm.RegisterHelper(AdjustHeadId, (m, r1, r2, _, _, _) => Adjust(m, r1, (int)r2, head: true), "bpf_xdp_adjust_head");
        if (!vm.HasHelper(AdjustTailId)) vm.RegisterHelper(AdjustTailId, (m, r1, r2, _, _, _) => Adjust(m, r1, (int)r2, head: false), "bpf_xdp_adjust_tail");
        if (!vm.HasHelper(AdjustMetaId)) vm.RegisterHelper(AdjustMetaId, (m, r1, r2, _, _, _) => AdjustMeta(m, r1, (int)r2), "bpf_xdp_adjust_meta");
    }

    private static Span<byte> Context(MemoryAccess m, ulong ctx)
    {
        if (!m.IsAllowed(ctx, XdpContextSize, write: true))
            throw new RbpfException(RbpfErrorCode.HelperFailed, $"0x{ctx:x} is not the XDP context (pass the r1 the program started with)");
        return m.GetSpan(ctx, XdpContextSize, write: true);
    }

    private static ref ulong U64(Span<byte> ctx, int off) => ref Unsafe.As<byte, ulong>(ref ctx[off]);

    private static ulong Adjust(MemoryAccess m, ulong ctxAddress, int delta, bool head)
    {
        var ctx = Context(m, ctxAddress);
        ulong data = U64(ctx, OffData), end = U64(ctx, OffDataEnd), meta = U64(ctx, OffDataMeta);
        ulong start = U64(ctx, OffBufferStart), limit = U64(ctx, OffBufferEnd);
        if (head)
        {
            ulong moved = data + (ulong)(long)delta;
            // Within the buffer, leaving at least an Ethernet header; the metadata goes if it no longer fits.
            if (moved < start || moved > end || end - moved < EthHeaderLength) return EINVAL;
            U64(ctx, OffData) = moved;
            if (meta > moved || meta == data) U64(ctx, OffDataMeta) = moved;
        }
        else
        {
            ulong moved = end + (ulong)(long)delta;
            if (moved > limit || moved < data || moved - data < EthHeaderLength) return EINVAL;
            U64(ctx, OffDataEnd) = moved;
        }
        return 0;
    }

    private static ulong AdjustMeta(MemoryAccess m, ulong ctxAddress, int delta)
    {
        var ctx = Context(m, ctxAddress);
        ulong data = U64(ctx, OffData), meta = U64(ctx, OffDataMeta) + (ulong)(long)delta;
        ulong start = U64(ctx, OffBufferStart);
        if (meta < start || meta > data || data - meta > MaxMetaLength || (data - meta) % 4 != 0) return EINVAL;
        U64(ctx, OffDataMeta) = meta;
        return 0;
    }

    public static XdpResult RunXdp(EbpfVm vm, Span<byte> buffer, XdpOptions options, bool jit)
    {
        if (vm.ProgramType != ProgramType.Xdp) throw new RbpfException(RbpfErrorCode.InvalidArgument, "the VM's program type is not XDP");
        int length = options.Length ?? buffer.Length - options.Headroom;
        if (options.Headroom < 0 || length < 0 || options.Headroom > buffer.Length || length > buffer.Length - options.Headroom)
            throw new RbpfException(RbpfErrorCode.InvalidArgument,
                $"a frame of {length} bytes after {options.Headroom} bytes of headroom does not fit a buffer of {buffer.Length}");
        byte* ctx = stackalloc byte[XdpContextSize];
        var c = new Span<byte>(ctx, XdpContextSize);
        c.Clear();
        fixed (byte* b = buffer)
        {
            ulong data = (ulong)b + (ulong)options.Headroom;
            U64(c, OffData) = data;
            U64(c, OffDataEnd) = data + (ulong)length;
            U64(c, OffDataMeta) = data;
            Unsafe.As<byte, uint>(ref c[OffIngress]) = options.IngressIfindex;
            Unsafe.As<byte, uint>(ref c[OffRxQueue]) = options.RxQueueIndex;
            Unsafe.As<byte, uint>(ref c[OffEgress]) = options.EgressIfindex;
            U64(c, OffBufferStart) = (ulong)b;
            U64(c, OffBufferEnd) = (ulong)b + (ulong)buffer.Length;
            // The whole buffer is the packet region (the kernel keeps programs inside [data, data_end)
            // statically; here headroom and tailroom are reachable, never memory outside the buffer).
            var code = jit
                ? vm.TryExecuteJit(b, (nuint)buffer.Length, ctx, XdpContextSize, out ulong r0, out var error)
                : vm.TryExecute(b, (nuint)buffer.Length, ctx, XdpContextSize, out r0, out error);
            if (code != RbpfErrorCode.Ok) throw error!;
            ulong start = U64(c, OffData), end = U64(c, OffDataEnd);
            return new XdpResult((XdpAction)(uint)r0, r0, (int)(start - (ulong)b), (int)(end - start));
        }
    }
}
