using System.Runtime.CompilerServices;

namespace Rbpf.Maps;

/// <summary>
/// A hash map (plain, per-CPU with one CPU, or LRU). Entries are preallocated slots: a value's
/// address never changes while its key is present, and a deleted slot is reused by a later insert.
/// The index is an open-addressing table of slot numbers. Lookups take no lock: they read a
/// sequence number that writers make odd while they change the table, and look again if it moved.
/// Inserts and deletes take a lock; a replaced value is copied in place, as an array's is.
/// </summary>
internal sealed unsafe class HashMap : BpfMap
{
    private readonly byte* _values;
    private readonly uint _stride;
    private readonly byte[] _keys;
    private readonly uint[] _hashes;
    private readonly int[] _table;      // slot + 1, or 0 for empty
    private readonly int _mask;
    private readonly int[] _free;       // a stack of free slots
    private int _freeCount;
    private readonly long[]? _lastUse;  // LRU: when each slot was last looked up or updated
    private readonly long[] _clock = GC.AllocateArray<long>(1, pinned: true);
    private readonly int[] _sequenceWord = GC.AllocateArray<int>(1, pinned: true); // odd while a writer changes the table
    private ref int _sequence => ref _sequenceWord[0];
    private int _count;
    private readonly object _writer = new();

    public HashMap(MapType type, uint keySize, uint valueSize, uint maxEntries, uint flags, string name)
        : base(type, keySize, valueSize, maxEntries, flags, name)
    {
        _stride = (valueSize + 7) & ~7u;
        _values = AllocPool((ulong)_stride * maxEntries);
        // Pinned: the native lookup (MapDescriptor) reads them in place.
        _keys = GC.AllocateArray<byte>((int)((long)keySize * maxEntries), pinned: true);
        _hashes = GC.AllocateArray<uint>((int)maxEntries, pinned: true);
        int size = 8;
        while (size < maxEntries * 2L) size <<= 1;
        _table = GC.AllocateArray<int>(size, pinned: true);
        _mask = size - 1;
        _free = new int[maxEntries];
        for (int k = 0; k < maxEntries; k++) _free[k] = (int)maxEntries - 1 - k; // slot 0 first
        _freeCount = (int)maxEntries;
        if (type == MapType.LruHash) _lastUse = GC.AllocateArray<long>((int)maxEntries, pinned: true);
        var d = Descriptor;
        d->Stride = _stride;
        d->Values = _values;
        d->Mask = (uint)_mask;
        d->Keys = (byte*)Unsafe.AsPointer(ref _keys.Length == 0 ? ref Unsafe.NullRef<byte>() : ref _keys[0]);
        d->Hashes = (uint*)Unsafe.AsPointer(ref _hashes[0]);
        d->Table = (int*)Unsafe.AsPointer(ref _table[0]);
        d->Sequence = (int*)Unsafe.AsPointer(ref _sequenceWord[0]);
        d->Clock = (long*)Unsafe.AsPointer(ref _clock[0]);
        d->LastUse = _lastUse == null ? null : (long*)Unsafe.AsPointer(ref _lastUse[0]);
    }

    ~HashMap() => FreePool(_values);

    internal override (nint Address, nuint Length) ProgramMemory => ((nint)_values, (nuint)((ulong)_stride * MaxEntries));

    public override int Count => Volatile.Read(ref _count);

    private static uint Hash(ReadOnlySpan<byte> key)
    {
        // FNV-1a over 8-byte words, then a finaliser that spreads the bits.
        ulong h = 0xcbf29ce484222325;
        int i = 0;
        for (; i + 8 <= key.Length; i += 8) h = (h ^ Unsafe.ReadUnaligned<ulong>(ref Unsafe.AsRef(in key[i]))) * 0x100000001b3;
        for (; i < key.Length; i++) h = (h ^ key[i]) * 0x100000001b3;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccd;
        h ^= h >> 33;
        return (uint)h;
    }

    private bool KeyAt(int slot, ReadOnlySpan<byte> key) => key.SequenceEqual(_keys.AsSpan(slot * (int)KeySize, (int)KeySize));

    /// <summary>The slot holding <paramref name="key"/>, or -1 (callers handle concurrent changes).</summary>
    private int Find(ReadOnlySpan<byte> key, uint hash)
    {
        int i = (int)hash & _mask;
        for (int probes = 0; probes <= _mask; probes++)
        {
            int e = Volatile.Read(ref _table[i]);
            if (e == 0) return -1;
            int slot = e - 1;
            if ((uint)slot < MaxEntries && _hashes[slot] == hash && KeyAt(slot, key)) return slot;
            i = (i + 1) & _mask;
        }
        return -1;
    }

    /// <summary>The slot of <paramref name="key"/> without a lock, consistent with some moment.</summary>
    private int FindStable(ReadOnlySpan<byte> key, uint hash)
    {
        var spin = new SpinWait();
        while (true)
        {
            int before = Volatile.Read(ref _sequence);
            if ((before & 1) == 0)
            {
                int slot = Find(key, hash);
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref _sequence) == before) return slot;
            }
            spin.SpinOnce(-1);
        }
    }

    internal override nint LookupPointer(ReadOnlySpan<byte> key)
    {
        int slot = FindStable(key, Hash(key));
        if (slot < 0) return 0;
        if (_lastUse != null) _lastUse[slot] = ++_clock[0]; // racy on purpose: an approximate age is enough
        return (nint)(_values + (ulong)slot * _stride);
    }

    internal override int UpdateRaw(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if (flags > (ulong)MapUpdate.Exist) return -22;
        uint hash = Hash(key);
        // Replacing a present value needs no lock: it is copied in place.
        if (flags != (ulong)MapUpdate.NoExist)
        {
            int present = FindStable(key, hash);
            if (present >= 0)
            {
                value[..(int)ValueSize].CopyTo(new Span<byte>(_values + (ulong)present * _stride, (int)ValueSize));
                if (_lastUse != null) _lastUse[present] = ++_clock[0];
                return 0;
            }
        }
        lock (_writer)
        {
            int slot = Find(key, hash);
            if (slot >= 0)
            {
                if (flags == (ulong)MapUpdate.NoExist) return -17;
                value[..(int)ValueSize].CopyTo(new Span<byte>(_values + (ulong)slot * _stride, (int)ValueSize));
                return 0;
            }
            if (flags == (ulong)MapUpdate.Exist) return -2;
            if (_freeCount == 0)
            {
                if (_lastUse == null) return -7;
                RemoveLocked(Oldest());
            }
            slot = _free[--_freeCount];
            Volatile.Write(ref _sequence, Volatile.Read(ref _sequence) + 1); // odd: readers wait
            key.CopyTo(_keys.AsSpan(slot * (int)KeySize, (int)KeySize));
            _hashes[slot] = hash;
            var dst = new Span<byte>(_values + (ulong)slot * _stride, (int)_stride);
            dst.Clear();
            value[..(int)ValueSize].CopyTo(dst);
            int i = (int)hash & _mask;
            while (_table[i] != 0) i = (i + 1) & _mask;
            Volatile.Write(ref _table[i], slot + 1);
            if (_lastUse != null) _lastUse[slot] = ++_clock[0];
            _count++;
            Volatile.Write(ref _sequence, Volatile.Read(ref _sequence) + 1);
            return 0;
        }
    }

    /// <summary>The least recently used slot (LRU maps, full).</summary>
    private int Oldest()
    {
        int best = 0;
        for (int s = 1; s < _lastUse!.Length; s++)
            if (_lastUse[s] < _lastUse[best]) best = s;
        return best;
    }

    internal override int DeleteRaw(ReadOnlySpan<byte> key)
    {
        uint hash = Hash(key);
        lock (_writer)
        {
            int slot = Find(key, hash);
            if (slot < 0) return -2;
            RemoveLocked(slot);
            return 0;
        }
    }

    /// <summary>Takes <paramref name="slot"/> out of the table (backward-shift deletion: no tombstones) and frees it.</summary>
    private void RemoveLocked(int slot)
    {
        int i = (int)_hashes[slot] & _mask;
        while (_table[i] != slot + 1) i = (i + 1) & _mask;
        Volatile.Write(ref _sequence, Volatile.Read(ref _sequence) + 1);
        int hole = i;
        int j = i;
        while (true)
        {
            j = (j + 1) & _mask;
            int e = _table[j];
            if (e == 0) break;
            int home = (int)_hashes[e - 1] & _mask;
            // Move e into the hole unless its home lies cyclically in (hole, j].
            bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
            if (stays) continue;
            _table[hole] = e;
            hole = j;
        }
        _table[hole] = 0;
        _free[_freeCount++] = slot;
        if (_lastUse != null) _lastUse[slot] = long.MaxValue; // never the oldest while free
        _count--;
        Volatile.Write(ref _sequence, Volatile.Read(ref _sequence) + 1);
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> next)
    {
        lock (_writer)
        {
            int from = 0;
            if (key.Length == KeySize)
            {
                uint hash = Hash(key);
                int slot = Find(key, hash);
                if (slot >= 0)
                {
                    int i = (int)hash & _mask;
                    while (_table[i] != slot + 1) i = (i + 1) & _mask;
                    from = i + 1;
                }
            }
            for (int i = from; i <= _mask; i++)
            {
                int e = _table[i];
                if (e == 0) continue;
                _keys.AsSpan((e - 1) * (int)KeySize, (int)KeySize).CopyTo(next);
                return true;
            }
            return false;
        }
    }
}
