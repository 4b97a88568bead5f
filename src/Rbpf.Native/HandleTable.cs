namespace Rbpf.Native;

/// <summary>
/// Maps opaque C handles to VMs. A handle is (generation &lt;&lt; 24 | slot + 1), never a pointer, so a
/// forged, stale or NULL handle is only a number that fails the lookup: it is never dereferenced.
/// A destroyed slot's generation moves on, so a second destroy or any later use is refused.
/// </summary>
internal sealed class HandleTable<T> where T : class
{
    /// <summary>The VMs of the rbpf API.</summary>
    public static readonly HandleTable<EbpfVm> Vms = new(0);

    // Each table marks its handles with its own tag, so a handle of one API is never taken for a
    // live object of the other.
    private readonly ulong _tag;
    private readonly string _noun;

    public HandleTable(ulong tag, string noun = "VM")
    {
        _tag = tag;
        _noun = noun;
    }

    private const int SlotBits = 24;
    /// <summary>Tags live in bits 48-55; generations stay below them.</summary>
    public const ulong TagMask = 0xffUL << 48;
    private const int MaxSlots = 1 << SlotBits;

    private sealed class Entry
    {
        public T? Vm;
        public uint Generation = 1;
    }

    private readonly object _gate = new();
    private Entry[] _entries = new Entry[64];
    private readonly Stack<int> _freeSlots = new();
    private int _used;

    public nint Add(T vm)
    {
        lock (_gate)
        {
            int slot;
            if (_freeSlots.Count > 0) slot = _freeSlots.Pop();
            else
            {
                if (_used == MaxSlots - 1) throw new RbpfException(RbpfErrorCode.OutOfMemory, $"too many {_noun} handles are alive");
                slot = _used++;
                if (slot == _entries.Length)
                {
                    var bigger = new Entry[_entries.Length * 2];
                    Array.Copy(_entries, bigger, _entries.Length);
                    Volatile.Write(ref _entries, bigger);
                }
            }
            var e = _entries[slot] ??= new Entry();
            Volatile.Write(ref e.Vm, vm);
            return (nint)(_tag | ((ulong)e.Generation << SlotBits) | (uint)(slot + 1));
        }
    }

    /// <summary>The live object behind <paramref name="handle"/>, or null (the hot path: no exception, no message).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public T? TryGet(nint handle)
    {
        ulong h = (ulong)handle;
        if ((h & TagMask) != _tag) return null;
        uint slot = (uint)(h & (MaxSlots - 1)) - 1; // 0 (NULL or no slot) wraps to a huge index
        var entries = Volatile.Read(ref _entries);
        if (slot >= (uint)entries.Length) return null;
        var e = entries[slot];
        if (e == null || e.Generation != (uint)((h & ~TagMask) >> SlotBits)) return null;
        return Volatile.Read(ref e.Vm);
    }

    /// <summary>The live object behind <paramref name="handle"/>; an <see cref="RbpfException"/> saying why not otherwise.</summary>
    public T Get(nint handle) => TryGet(handle) ?? Refuse(handle);

    /// <summary>Why <see cref="TryGet"/> found nothing, as an exception (apart, so that <see cref="Get"/> stays a lookup).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private T Refuse(nint handle)
    {
        if (handle == 0) throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{_noun} handle is NULL");
        var (slot, generation) = Split(handle);
        var entries = Volatile.Read(ref _entries);
        if (slot < 0 || slot >= entries.Length || entries[slot] is not { } e)
            throw new RbpfException(RbpfErrorCode.InvalidHandle, $"0x{handle:x} is not a {_noun} handle");
        var vm = Volatile.Read(ref e.Vm);
        if (vm == null || e.Generation != generation)
            throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{_noun} handle 0x{handle:x} was destroyed or is not a {_noun} handle");
        return vm;
    }

    public void Remove(nint handle)
    {
        if (handle == 0) throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{_noun} handle is NULL");
        var (slot, generation) = Split(handle);
        lock (_gate)
        {
            if (slot < 0 || slot >= _used || _entries[slot] is not { } e || e.Vm == null || e.Generation != generation)
                throw new RbpfException(RbpfErrorCode.InvalidHandle, $"{_noun} handle 0x{handle:x} was already destroyed or is not a {_noun} handle");
            e.Vm = null;
            e.Generation = e.Generation == (uint.MaxValue >> SlotBits) ? 1 : e.Generation + 1; // < 2^8: below the tag
            _freeSlots.Push(slot);
        }
    }

    private (int Slot, uint Generation) Split(nint handle)
    {
        ulong h = (ulong)handle;
        if ((h & TagMask) != _tag) return (-1, 0);
        h &= ~TagMask;
        return ((int)(h & (MaxSlots - 1)) - 1, (uint)(h >> SlotBits));
    }
}
