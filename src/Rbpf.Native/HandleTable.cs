namespace Rbpf.Native;

/// <summary>
/// Maps opaque C handles to VMs. A handle is (generation &lt;&lt; 24 | slot + 1), never a pointer, so a
/// forged, stale or NULL handle is only a number that fails the lookup: it is never dereferenced.
/// A destroyed slot's generation moves on, so a second destroy or any later use is refused.
/// </summary>
internal static class HandleTable
{
    private const int SlotBits = 24;
    private const int MaxSlots = 1 << SlotBits;

    private sealed class Entry
    {
        public EbpfVm? Vm;
        public uint Generation = 1;
    }

    private static readonly object Gate = new();
    private static Entry[] _entries = new Entry[64];
    private static readonly Stack<int> FreeSlots = new();
    private static int _used;

    public static nint Add(EbpfVm vm)
    {
        lock (Gate)
        {
            int slot;
            if (FreeSlots.Count > 0) slot = FreeSlots.Pop();
            else
            {
                if (_used == MaxSlots - 1) throw new RbpfException(RbpfErrorCode.OutOfMemory, "too many VMs are alive");
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
            return (nint)(((ulong)e.Generation << SlotBits) | (uint)(slot + 1));
        }
    }

    public static EbpfVm Get(nint handle)
    {
        if (handle == 0) throw new RbpfException(RbpfErrorCode.InvalidHandle, "VM handle is NULL");
        var (slot, generation) = Split(handle);
        var entries = Volatile.Read(ref _entries);
        if (slot < 0 || slot >= entries.Length || entries[slot] is not { } e)
            throw new RbpfException(RbpfErrorCode.InvalidHandle, $"0x{handle:x} is not a VM handle");
        var vm = Volatile.Read(ref e.Vm);
        if (vm == null || e.Generation != generation)
            throw new RbpfException(RbpfErrorCode.InvalidHandle, $"VM handle 0x{handle:x} was destroyed or is not a VM handle");
        return vm;
    }

    public static void Remove(nint handle)
    {
        if (handle == 0) throw new RbpfException(RbpfErrorCode.InvalidHandle, "VM handle is NULL");
        var (slot, generation) = Split(handle);
        lock (Gate)
        {
            if (slot < 0 || slot >= _used || _entries[slot] is not { } e || e.Vm == null || e.Generation != generation)
                throw new RbpfException(RbpfErrorCode.InvalidHandle, $"VM handle 0x{handle:x} was already destroyed or is not a VM handle");
            e.Vm = null;
            e.Generation = e.Generation == (uint.MaxValue >> SlotBits) ? 1 : e.Generation + 1;
            FreeSlots.Push(slot);
        }
    }

    private static (int Slot, uint Generation) Split(nint handle)
    {
        ulong h = (ulong)handle;
        return ((int)(h & (MaxSlots - 1)) - 1, (uint)(h >> SlotBits));
    }
}
