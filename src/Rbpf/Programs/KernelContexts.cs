using System.Runtime.CompilerServices;

namespace Rbpf.Programs;

/// <summary>Where an XDP frame sits in the buffer given to <see cref="EbpfVm.ExecuteXdp(Span{byte}, XdpOptions?)"/>, and the interfaces it came from.</summary>
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

/// <summary>The packet's metadata for a tc program or socket filter (what the kernel keeps in its sk_buff).</summary>
public sealed record SkbOptions
{
    /// <summary><c>__sk_buff.protocol</c> (host order, e.g. 0x0800); null: the frame's EtherType.</summary>
    public uint? Protocol { get; init; }
    /// <summary><c>pkt_type</c> (0: to this host).</summary>
    public uint PacketType { get; init; }
    /// <summary><c>mark</c>.</summary>
    public uint Mark { get; init; }
    /// <summary><c>priority</c>.</summary>
    public uint Priority { get; init; }
    /// <summary><c>queue_mapping</c>.</summary>
    public uint QueueMapping { get; init; }
    /// <summary><c>ifindex</c>.</summary>
    public uint Ifindex { get; init; } = 1;
    /// <summary><c>ingress_ifindex</c>.</summary>
    public uint IngressIfindex { get; init; } = 1;
    /// <summary><c>tc_index</c>.</summary>
    public uint TcIndex { get; init; }
    /// <summary><c>tc_classid</c>.</summary>
    public uint TcClassid { get; init; }
    /// <summary><c>hash</c>.</summary>
    public uint Hash { get; init; }
    /// <summary>A VLAN tag taken off the frame (<c>vlan_present</c>, <c>vlan_tci</c>), or null.</summary>
    public uint? VlanTci { get; init; }
    /// <summary><c>cb[5]</c>.</summary>
    public uint[] Cb { get; init; } = new uint[5];
}

/// <summary>A tc or socket filter run's outcome: r0 (a TC_ACT_* code, or for a socket filter the bytes to keep) and the fields it may set.</summary>
public readonly record struct SkbResult(ulong Result, uint Mark, uint Priority, uint TcClassid, uint TcIndex, uint QueueMapping, uint[] Cb);

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
            case ProgramType.SchedCls: case ProgramType.SchedAct: ContextRewriter.Rewrite(insns, SkbFields(tc: true), "tc", "__sk_buff"); break;
            case ProgramType.SocketFilter: ContextRewriter.Rewrite(insns, SkbFields(tc: false), "socket filter", "__sk_buff"); break;
            default: throw new RbpfException(RbpfErrorCode.Unsupported, $"program type {type} is not supported yet");
        }
    }

    // The engine's __sk_buff: the kernel's layout (192 bytes) for the scalar fields, then the real
    // pointers that data, data_end and data_meta become, then the frame's bounds.
    public const int SkbSize = 192, OffSkbData = 192, OffSkbDataEnd = 200, OffSkbDataMeta = 208, SkbContextSize = 216;

    /// <summary>The fields of <c>struct __sk_buff</c> a tc program (<paramref name="tc"/>) or a socket filter may use.</summary>
    public static ContextField[] SkbFields(bool tc)
    {
        var f = new List<ContextField>
        {
            new("len", 0, 4, 0, false, false), new("pkt_type", 4, 4, 4, false, false),
            new("mark", 8, 4, 8, false, tc), new("queue_mapping", 12, 4, 12, false, tc),
            new("protocol", 16, 4, 16, false, false), new("vlan_present", 20, 4, 20, false, false),
            new("vlan_tci", 24, 4, 24, false, false), new("vlan_proto", 28, 4, 28, false, false),
            new("priority", 32, 4, 32, false, tc), new("ingress_ifindex", 36, 4, 36, false, false),
            new("ifindex", 40, 4, 40, false, false), new("tc_index", 44, 4, 44, false, tc),
        };
        for (int k = 0; k < 5; k++) f.Add(new($"cb[{k}]", 48 + 4 * k, 4, 48 + 4 * k, false, true));
        f.Add(new("hash", 68, 4, 68, false, false));
        f.Add(new("tc_classid", 72, 4, 72, false, tc));
        if (tc)
        {
            // Socket filters read the packet with LD_ABS and bpf_skb_load_bytes, never directly.
            f.Add(new("data", 76, 4, OffSkbData, true, false));
            f.Add(new("data_end", 80, 4, OffSkbDataEnd, true, false));
            f.Add(new("data_meta", 140, 4, OffSkbDataMeta, true, false));
        }
        f.Add(new("napi_id", 84, 4, 84, false, false));
        f.Add(new("wire_len", 160, 4, 160, false, false));
        f.Add(new("gso_segs", 164, 4, 164, false, false));
        f.Add(new("gso_size", 176, 4, 176, false, false));
        return f.ToArray();
    }

    public const uint SkbLoadBytesId = 26, L3CsumReplaceId = 10, L4CsumReplaceId = 11;
    private const ulong EFAULT = unchecked((ulong)-14L);

    /// <summary>The packet (data, data_end) of the __sk_buff context at <paramref name="ctx"/>.</summary>
    private static (ulong Data, ulong End) SkbPacket(MemoryAccess m, ulong ctx)
    {
        if (!m.IsAllowed(ctx, SkbContextSize, write: false))
            throw new RbpfException(RbpfErrorCode.HelperFailed, $"0x{ctx:x} is not the __sk_buff context (pass the r1 the program started with)");
        var c = m.GetSpan(ctx, SkbContextSize, write: false);
        return (Unsafe.As<byte, ulong>(ref c[OffSkbData]), Unsafe.As<byte, ulong>(ref c[OffSkbDataEnd]));
    }

    private static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)sum;
    }

    /// <summary>
    /// bpf_l3_csum_replace and bpf_l4_csum_replace: updates the 16-bit checksum at <paramref name="offset"/>
    /// of the packet for a field that went from <paramref name="from"/> to <paramref name="to"/> (2 or 4
    /// bytes, as the program read them from the packet; size 0: <paramref name="to"/> is a bpf_csum_diff
    /// result), incrementally (RFC 1624). l4: BPF_F_MARK_MANGLED_0 leaves a zero (UDP: no checksum)
    /// alone and never writes 0; BPF_F_PSEUDO_HDR is accepted (there is no skb->csum to keep here).
    /// </summary>
    private static ulong CsumReplace(MemoryAccess m, ulong ctx, ulong offset, ulong from, ulong to, ulong flags, bool l4)
    {
        const ulong SizeMask = 0xf, PseudoHeader = 0x10, MarkMangled0 = 0x20, MarkEnforce = 0x40;
        ulong allowed = l4 ? SizeMask | PseudoHeader | MarkMangled0 | MarkEnforce : SizeMask;
        if ((flags & ~allowed) != 0) return EINVAL;
        var (data, end) = SkbPacket(m, ctx);
        if (offset > 0xffff || data + offset + 2 > end) return EFAULT;
        // The context is memory the program can write: its pointers are checked like any address.
        if (!m.IsAllowed(data + offset, 2, write: true)) return EFAULT;
        ref ushort field = ref Unsafe.AsRef<ushort>((void*)(data + offset));
        bool mangled0 = l4 && (flags & MarkMangled0) != 0;
        if (mangled0 && field == 0) return 0;
        ulong sum = (ushort)~field;
        switch (flags & SizeMask)
        {
            case 0:
                if (from != 0) return EINVAL;
                sum += (uint)to;
                break;
            case 2:
                sum += (ushort)~(ushort)from + (ulong)(ushort)to;
                break;
            case 4:
                sum += (ushort)~(ushort)from + (ulong)(ushort)~(ushort)(from >> 16) + (ushort)to + (ulong)(ushort)(to >> 16);
                break;
            default:
                return EINVAL;
        }
        ushort result = (ushort)~Fold(sum);
        if (mangled0 && result == 0) result = 0xffff;
        field = result;
        return 0;
    }

    /// <summary>bpf_skb_load_bytes(skb, offset, to, len): copies packet bytes, -EFAULT (-14) outside the packet.</summary>
    public static void RegisterSkbHelpers(EbpfVm vm)
    {
        if (vm.ProgramType is ProgramType.SchedCls or ProgramType.SchedAct)
        {
            if (!vm.HasHelper(L3CsumReplaceId))
                vm.RegisterHelper(L3CsumReplaceId, (m, r1, r2, r3, r4, r5) => CsumReplace(m, r1, r2, r3, r4, r5, l4: false), "bpf_l3_csum_replace");
            if (!vm.HasHelper(L4CsumReplaceId))
                vm.RegisterHelper(L4CsumReplaceId, (m, r1, r2, r3, r4, r5) => CsumReplace(m, r1, r2, r3, r4, r5, l4: true), "bpf_l4_csum_replace");
        }
        if (vm.HasHelper(SkbLoadBytesId)) return;
        vm.RegisterHelper(SkbLoadBytesId, (m, r1, r2, r3, r4, _) =>
        {
            if (!m.IsAllowed(r1, SkbContextSize, write: false))
                throw new RbpfException(RbpfErrorCode.HelperFailed, $"0x{r1:x} is not the __sk_buff context (pass the r1 the program started with)");
            var ctx = m.GetSpan(r1, SkbContextSize, write: false);
            ulong data = Unsafe.As<byte, ulong>(ref ctx[OffSkbData]), end = Unsafe.As<byte, ulong>(ref ctx[OffSkbDataEnd]);
            uint offset = (uint)r2, length = (uint)r4;
            if (length == 0 || length > 0xffff || (ulong)offset + length > end - data) return unchecked((ulong)-14L);
            // The context is memory the program can write: its pointers are checked like any address.
            if (!m.IsAllowed(data + offset, length, write: false)) return unchecked((ulong)-14L);
            new ReadOnlySpan<byte>((void*)(data + offset), (int)length).CopyTo(m.GetSpan(r3, (int)length, write: true));
            return 0;
        }, "bpf_skb_load_bytes");
    }

    public static SkbResult RunSkb(EbpfVm vm, Span<byte> frame, SkbOptions options, bool jit, InstructionObserver? observer = null)
    {
        if (vm.ProgramType is not (ProgramType.SchedCls or ProgramType.SchedAct or ProgramType.SocketFilter))
            throw new RbpfException(RbpfErrorCode.InvalidArgument, "the VM's program type is not tc or socket filter");
        byte* ctx = stackalloc byte[SkbContextSize];
        var c = new Span<byte>(ctx, SkbContextSize);
        c.Clear();
        void W(int off, uint v) => *(uint*)(ctx + off) = v;
        fixed (byte* b = frame)
        {
            W(0, (uint)frame.Length);
            W(4, options.PacketType);
            W(8, options.Mark);
            W(12, options.QueueMapping);
            // protocol: the EtherType in network byte order, as the kernel keeps skb->protocol.
            uint proto = options.Protocol ?? (frame.Length >= 14 ? (uint)(frame[12] << 8 | frame[13]) : 0);
            W(16, (uint)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)proto));
            W(20, options.VlanTci.HasValue ? 1u : 0u);
            W(24, options.VlanTci ?? 0);
            W(28, options.VlanTci.HasValue ? 0x0081u : 0); // htons(ETH_P_8021Q)
            W(32, options.Priority);
            W(36, options.IngressIfindex);
            W(40, options.Ifindex);
            W(44, options.TcIndex);
            for (int k = 0; k < 5; k++) W(48 + 4 * k, k < options.Cb.Length ? options.Cb[k] : 0);
            W(68, options.Hash);
            W(72, options.TcClassid);
            W(160, (uint)frame.Length);
            W(164, 1);
            U64(c, OffSkbData) = (ulong)b;
            U64(c, OffSkbDataEnd) = (ulong)b + (ulong)frame.Length;
            U64(c, OffSkbDataMeta) = (ulong)b;
            ulong r0 = Run(vm, frame, b, ctx, SkbContextSize, jit, observer);
            uint R(int off) => *(uint*)(ctx + off);
            return new SkbResult(r0, R(8), R(32), R(72), R(44), R(12), new[] { R(48), R(52), R(56), R(60), R(64) });
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

    /// <summary>Runs the program on <paramref name="packet"/> (pinned at <paramref name="b"/>) with its
    /// context at <paramref name="ctx"/>: traced, JIT-compiled or interpreted; r0, or the run's error thrown.</summary>
    private static ulong Run(EbpfVm vm, Span<byte> packet, byte* b, byte* ctx, int ctxSize, bool jit, InstructionObserver? observer)
    {
        var code = observer != null
            ? vm.TryExecute(packet, new Span<byte>(ctx, ctxSize), observer, out ulong r0, out var error)
            : jit
            ? vm.TryExecuteJit(b, (nuint)packet.Length, ctx, (nuint)ctxSize, out r0, out error)
            : vm.TryExecute(b, (nuint)packet.Length, ctx, (nuint)ctxSize, out r0, out error);
        if (code != RbpfErrorCode.Ok) throw error!;
        return r0;
    }

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
            // The context is memory the program can write: the frame must stay in memory it may use.
            if (!m.IsAllowed(moved, end - moved, write: true)) return EINVAL;
            U64(ctx, OffData) = moved;
            if (meta > moved || meta == data) U64(ctx, OffDataMeta) = moved;
        }
        else
        {
            ulong moved = end + (ulong)(long)delta;
            if (moved > limit || moved < data || moved - data < EthHeaderLength) return EINVAL;
            if (!m.IsAllowed(data, moved - data, write: true)) return EINVAL;
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
        if (data != meta && !m.IsAllowed(meta, data - meta, write: true)) return EINVAL;
        U64(ctx, OffDataMeta) = meta;
        return 0;
    }

    public static XdpResult RunXdp(EbpfVm vm, Span<byte> buffer, XdpOptions options, bool jit, InstructionObserver? observer = null)
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
            ulong r0 = Run(vm, buffer, b, ctx, XdpContextSize, jit, observer);
            ulong start = U64(c, OffData), end = U64(c, OffDataEnd);
            return new XdpResult((XdpAction)(uint)r0, r0, (int)(start - (ulong)b), (int)(end - start));
        }
    }
}
