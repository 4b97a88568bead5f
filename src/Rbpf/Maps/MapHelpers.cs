using System.Buffers.Binary;

namespace Rbpf.Maps;

/// <summary>
/// The kernel's map helpers, with its ids, for the maps bound to one VM. A program names a map by
/// loading its file descriptor with <c>lddw rN, fd</c> and source 1 (BPF_PSEUDO_MAP_FD), which the
/// engine turns into <see cref="Tag"/> | fd: not an address, so a program that dereferences it
/// faults, and a helper given anything else fails the run.
/// </summary>
internal static class MapHelpers
{
    public const ulong Tag = 0xffff_b9f0_0000_0000, TagMask = 0xffff_ffff_0000_0000;
    public const uint LookupId = 1, UpdateId = 2, DeleteId = 3, PrandomId = 7, ProcessorId = 8, TailCallId = 12,
        CsumDiffId = 28, RingbufOutputId = 130, RingbufReserveId = 131, RingbufSubmitId = 132, RingbufDiscardId = 133,
        RingbufQueryId = 134;

    /// <summary>
    /// The native hash-map lookup, <c>void *lookup(const MapDescriptor *, const void *key)</c>
    /// (native/maps.c), when the native library provides it (it sets this as it starts); 0 when the
    /// engine runs alone, and then compiled code calls the managed helper for hash maps.
    /// </summary>
    internal static nint NativeHashLookup;

    /// <summary><c>long update(const MapDescriptor *, const void *key, const void *value)</c>: 0 when it
    /// replaced a present value, 1 when the key is missing (native/maps.c); 0 when there is none.</summary>
    internal static nint NativeUpdatePresent;

    private const ulong ENOENT = unchecked((ulong)-2L), EINVAL = unchecked((ulong)-22L), EAGAIN = unchecked((ulong)-11L);

    /// <summary>Registers every map helper <paramref name="vm"/> does not have yet.</summary>
    public static void RegisterMissing(EbpfVm vm)
    {
        void Add(uint id, MemoryHelper h)
        {
            if (!vm.HasHelper(id)) vm.RegisterHelper(id, h, KernelHelpers.NameOf(id));
        }
        if (!vm.HasHelper(LookupId))
        {
            vm.RegisterHelper(LookupId, (m, r1, r2, _, _, _) => (ulong)MapOf(vm, r1).LookupPointer(Key(m, MapOf(vm, r1), r2)),
                KernelHelpers.NameOf(LookupId));
            vm.Helpers.Find(LookupId)!.IsMapLookup = true;
        }
        if (!vm.HasHelper(UpdateId))
        {
            vm.RegisterHelper(UpdateId, (m, r1, r2, r3, r4, _) =>
            {
                var map = MapOf(vm, r1);
                if (map is ProgramArrayMap or RingBufferMap) return EINVAL;
                return (ulong)(long)map.UpdateRaw(Key(m, map, r2), m.GetSpan(r3, (int)map.ValueSize, write: false), r4);
            }, KernelHelpers.NameOf(UpdateId));
            vm.Helpers.Find(UpdateId)!.IsMapUpdate = true;
        }
        Add(DeleteId, (m, r1, r2, _, _, _) => { var map = MapOf(vm, r1); return (ulong)(long)map.DeleteRaw(Key(m, map, r2)); });
        Add(PrandomId, (_, _, _, _, _, _) => (uint)Random.Shared.Next() ^ ((uint)Random.Shared.Next() << 1));
        Add(ProcessorId, (_, _, _, _, _, _) => 0);
        Add(TailCallId, (_, _, r2, r3, _, _) => TailCall(vm, r2, r3));
        Add(CsumDiffId, (m, r1, r2, r3, r4, r5) => CsumDiff(m, r1, r2, r3, r4, (uint)r5));
        Add(RingbufOutputId, (m, r1, r2, r3, _, _) =>
        {
            var rb = RingOf(vm, r1);
            if (r3 > int.MaxValue) return EINVAL;
            return rb.Output(m.GetSpan(r2, (int)r3, write: false)) ? 0 : EAGAIN;
        });
        Add(RingbufReserveId, (_, r1, r2, _, _, _) => (ulong)RingOf(vm, r1).Reserve(r2));
        Add(RingbufSubmitId, (_, r1, _, _, _, _) => Commit(vm, r1, discard: false));
        Add(RingbufDiscardId, (_, r1, _, _, _, _) => Commit(vm, r1, discard: true));
        Add(RingbufQueryId, (_, r1, r2, _, _, _) => RingOf(vm, r1).Query(r2));
    }

    private static BpfMap MapOf(EbpfVm vm, ulong r1)
    {
        if ((r1 & TagMask) == Tag && vm.MapByFd((uint)r1) is { } map) return map;
        throw new RbpfException(RbpfErrorCode.HelperFailed, $"0x{r1:x} is not a map bound to this VM (load it with lddw and source 1: lddw rN, fd)");
    }

    private static RingBufferMap RingOf(EbpfVm vm, ulong r1) => MapOf(vm, r1) as RingBufferMap
        ?? throw new RbpfException(RbpfErrorCode.HelperFailed, $"map '{MapOf(vm, r1).Name}' is not a ring buffer");

    private static ReadOnlySpan<byte> Key(MemoryAccess m, BpfMap map, ulong address) =>
        map.KeySize == 0 ? ReadOnlySpan<byte>.Empty : m.GetSpan(address, (int)map.KeySize, write: false);

    private static ulong Commit(EbpfVm vm, ulong data, bool discard)
    {
        foreach (var map in vm.BoundMaps)
            if (map is RingBufferMap rb && rb.Holds(data))
            {
                if (!rb.Commit(data, discard))
                    throw new RbpfException(RbpfErrorCode.HelperFailed, $"0x{data:x} is not a record reserved in ring buffer '{rb.Name}' (or it was submitted already)");
                return 0;
            }
        throw new RbpfException(RbpfErrorCode.HelperFailed, $"0x{data:x} is not in a ring buffer bound to this VM");
    }

    /// <summary>bpf_csum_diff: the one's-complement sum of <c>to</c> minus <c>from</c> (both multiples of 4 bytes) added to <paramref name="seed"/>.</summary>
    private static ulong CsumDiff(MemoryAccess m, ulong from, ulong fromSize, ulong to, ulong toSize, uint seed)
    {
        if (fromSize % 4 != 0 || toSize % 4 != 0 || fromSize > 512 || toSize > 512) return EINVAL;
        ulong sum = seed;
        if (fromSize > 0)
        {
            var f = m.GetSpan(from, (int)fromSize, write: false);
            for (int i = 0; i < f.Length; i += 4) sum += ~BinaryPrimitives.ReadUInt32LittleEndian(f[i..]);
        }
        if (toSize > 0)
        {
            var t = m.GetSpan(to, (int)toSize, write: false);
            for (int i = 0; i < t.Length; i += 4) sum += BinaryPrimitives.ReadUInt32LittleEndian(t[i..]);
        }
        while (sum >> 32 != 0) sum = (sum & 0xffff_ffff) + (sum >> 32);
        return sum;
    }

    private static ulong TailCall(EbpfVm vm, ulong mapRef, ulong index)
    {
        if (MapOf(vm, mapRef) is not ProgramArrayMap programs)
            throw new RbpfException(RbpfErrorCode.HelperFailed, $"map '{MapOf(vm, mapRef).Name}' is not a program array");
        var target = programs.ProgramAt((uint)index);
        if (target == null || TailCalls.Depth >= TailCalls.MaxChain) return ENOENT; // falls through, as in the kernel
        if (target.Kind != vm.Kind)
            throw new RbpfException(RbpfErrorCode.HelperFailed, $"tail call target at index {(uint)index} of '{programs.Name}' is a {target.Kind} VM, this one {vm.Kind}");
        TailCalls.Pending = target;
        throw new TailCallException();
    }
}

/// <summary>Ends the calling run so that the run of the tail call's target takes its place.</summary>
internal sealed class TailCallException : RbpfException
{
    public TailCallException() : base(RbpfErrorCode.HelperFailed, "tail call") { }
}

/// <summary>The tail call a helper asked for on this thread, and how deep the chain is.</summary>
internal static class TailCalls
{
    /// <summary>The kernel's MAX_TAIL_CALL_CNT.</summary>
    public const int MaxChain = 33;

    [ThreadStatic] public static EbpfVm? Pending;
    [ThreadStatic] public static int Depth;

    /// <summary>
    /// After a run that ended in <paramref name="error"/>: when that was a tail call, runs the
    /// chain of targets with the same input (each in the JIT when <paramref name="jit"/> and
    /// compiled, else interpreted), and returns the last run's outcome.
    /// </summary>
    public static unsafe RbpfException? Follow(RbpfException? error, bool jit, byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* userStack, nuint userStackLength, ref ulong result)
    {
        // Only an error a tail call made: a target left pending by a run nobody followed (a bare
        // JIT function's) is replaced by the next tail call before it could be taken.
        if (error == null || error.Code != RbpfErrorCode.HelperFailed || error.InnerException is not TailCallException || Pending == null)
            return error;
        int outer = Depth;
        try
        {
            while (error != null && error.InnerException is TailCallException && Pending is { } next)
            {
                Pending = null;
                Depth++;
                var observer = default(NoObserver);
                error = jit && next.IsJitCompiled
                    ? next.RunJitOnce(mem, memLength, mbuff, mbuffLength, userStack, userStackLength, out result)
                    : next.RunInterpreterOnce(mem, memLength, mbuff, mbuffLength, userStack, userStackLength, ref observer, ref result);
            }
            return error;
        }
        finally
        {
            Pending = null;
            Depth = outer;
        }
    }
}
