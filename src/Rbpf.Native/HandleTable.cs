using System.Runtime.CompilerServices;
using Rbpf.Maps;

namespace Rbpf.Native;

/// <summary>What tells one table's handles from another's.</summary>
internal interface IHandleKind
{
    /// <summary>The tag in bits 48-55 of every handle of this kind, so that a handle of one kind is
    /// never taken for a live object of another.</summary>
    static abstract ulong Tag { get; }
    /// <summary>What the messages call an object of this kind.</summary>
    static abstract string Noun { get; }
}

/// <summary>
/// Maps opaque C handles to objects of one kind (<see cref="VmHandles"/>, <see cref="MapHandles"/>).
/// A handle is (tag | generation &lt;&lt; 24 | slot + 1), never a pointer, so a forged, stale or NULL
/// handle is only a number that fails the lookup: it is never dereferenced. A destroyed slot's
/// generation moves on, so a second destroy or any later use is refused.
/// </summary>
/// <remarks>
/// The table is static, one per kind (a struct, so the code is made for each kind and reads its
/// statics directly), and its slots are structs: a lookup reads the array from the kind's statics
/// and the object from the slot, with no table object or slot object between. Each of those was one
/// more dependent load on the way from the handle to the program: taking out the slot object alone
/// saved <c>rbpf_vm_execute</c> about 2 ns a call (docs/performance.md, "Per-call overhead").
/// </remarks>
internal static class HandleTable<TKind> where TKind : struct, IHandleKind
{
    private const int SlotBits = 24;
    /// <summary>Tags live in bits 48-55; generations stay below them.</summary>
    public const ulong TagMask = 0xffUL << 48;
    private const int MaxSlots = 1 << SlotBits;

    /// <summary>A slot: generation 0 until first used, then 1 and on (below 2^8, under the tag).</summary>
    private struct Entry
    {
        public object? Item;
        public uint Generation;
    }

    // The only static a lookup reads. It has no initializer, so the type needs no class constructor
    // and a lookup no check that it ran; null until the first handle is made.
    private static Entry[]? s_entries;

    /// <summary>What only the writers use, apart so that it may have a class constructor.</summary>
    private static class Writers
    {
        public static readonly object Gate = new();
        public static readonly Stack<int> FreeSlots = new();
        public static int Used;
    }

    public static nint Add(object item)
    {
        lock (Writers.Gate)
        {
            int slot;
            if (Writers.FreeSlots.Count > 0) slot = Writers.FreeSlots.Pop();
            else
            {
                if (Writers.Used == MaxSlots - 1) throw new RbpfException(RbpfErrorCode.OutOfMemory, $"too many {TKind.Noun} handles are alive");
                slot = Writers.Used++;
                var entries = s_entries ?? [];
                if (slot == entries.Length)
                {
                    // Readers that took the old array see it as it was; every write is under the gate.
                    var bigger = new Entry[Math.Max(64, entries.Length * 2)];
                    Array.Copy(entries, bigger, entries.Length);
                    Volatile.Write(ref s_entries, bigger);
                }
            }
            ref var e = ref s_entries![slot];
            if (e.Generation == 0) e.Generation = 1;
            Volatile.Write(ref e.Item, item);
            return (nint)(TKind.Tag | ((ulong)e.Generation << SlotBits) | (uint)(slot + 1));
        }
    }

    /// <summary>The live object behind <paramref name="handle"/>, or null (the hot path: no exception, no message).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static object? TryGet(nint handle)
    {
        ulong h = (ulong)handle;
        if ((h & TagMask) != TKind.Tag) return null;
        uint slot = (uint)(h & (MaxSlots - 1)) - 1; // 0 (NULL or no slot) wraps to a huge index
        var entries = Volatile.Read(ref s_entries);
        if (entries == null || slot >= (uint)entries.Length) return null;
        ref var e = ref entries[slot];
        if (e.Generation != (uint)((h & ~TagMask) >> SlotBits)) return null;
        return Volatile.Read(ref e.Item);
    }

    /// <summary>Why <see cref="TryGet"/> found nothing, as an exception (apart, so that a lookup stays small).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static object Refuse(nint handle)
    {
        if (handle == 0) throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{TKind.Noun} handle is NULL");
        var (slot, generation) = Split(handle);
        var entries = Volatile.Read(ref s_entries) ?? [];
        if (slot < 0 || slot >= entries.Length || entries[slot].Generation == 0)
            throw new RbpfException(RbpfErrorCode.InvalidHandle, $"0x{handle:x} is not a {TKind.Noun} handle");
        var item = Volatile.Read(ref entries[slot].Item);
        if (item == null || entries[slot].Generation != generation)
            throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{TKind.Noun} handle 0x{handle:x} was destroyed or is not a {TKind.Noun} handle");
        return item;
    }

    public static void Remove(nint handle)
    {
        if (handle == 0) throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{TKind.Noun} handle is NULL");
        var (slot, generation) = Split(handle);
        lock (Writers.Gate)
        {
            var entries = s_entries;
            if (entries == null || slot < 0 || slot >= Writers.Used || entries[slot].Item == null || entries[slot].Generation != generation)
                throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{TKind.Noun} handle 0x{handle:x} was already destroyed or is not a {TKind.Noun} handle");
            ref var e = ref entries[slot];
            e.Item = null;
            e.Generation = e.Generation == (uint.MaxValue >> SlotBits) ? 1 : e.Generation + 1; // < 2^8: below the tag
            Writers.FreeSlots.Push(slot);
        }
    }

    private static (int Slot, uint Generation) Split(nint handle)
    {
        ulong h = (ulong)handle;
        if ((h & TagMask) != TKind.Tag) return (-1, 0);
        h &= ~TagMask;
        return ((int)(h & (MaxSlots - 1)) - 1, (uint)(h >> SlotBits));
    }
}

/// <summary>The VMs of the rbpf API (tag 0).</summary>
internal static class VmHandles
{
    internal struct Kind : IHandleKind
    {
        public static ulong Tag => 0;
        public static string Noun => "VM";
    }

    public const ulong TagMask = HandleTable<Kind>.TagMask;

    public static nint Add(EbpfVm vm) => HandleTable<Kind>.Add(vm);

    /// <summary>The live VM behind <paramref name="handle"/>, or null. Only VMs are added, so the cast needs no check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static EbpfVm? TryGet(nint handle) => Unsafe.As<EbpfVm?>(HandleTable<Kind>.TryGet(handle));

    /// <summary>The live VM behind <paramref name="handle"/>; an <see cref="RbpfException"/> saying why not otherwise.</summary>
    public static EbpfVm Get(nint handle) => TryGet(handle) ?? Unsafe.As<EbpfVm>(HandleTable<Kind>.Refuse(handle));

    public static void Remove(nint handle) => HandleTable<Kind>.Remove(handle);
}
