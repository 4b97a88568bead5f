using System.Runtime.InteropServices;

namespace Rbpf.Maps;

/// <summary>Map types, with the kernel's numbers (<c>enum bpf_map_type</c>).</summary>
public enum MapType : uint
{
    /// <summary>Keys to values; a full map refuses new keys.</summary>
    Hash = 1,
    /// <summary>Values at indexes 0 to max_entries - 1 (4-byte keys); entries always exist.</summary>
    Array = 2,
    /// <summary>Programs (VMs) at indexes, for <c>bpf_tail_call</c>.</summary>
    ProgramArray = 3,
    /// <summary>A hash map with a value per CPU: one CPU here.</summary>
    PerCpuHash = 5,
    /// <summary>An array with a value per CPU: one CPU here.</summary>
    PerCpuArray = 6,
    /// <summary>A hash map that makes room for a new key by evicting the least recently used one.</summary>
    LruHash = 9,
    /// <summary>A ring buffer of records the program writes and the host reads (max_entries: its size in bytes).</summary>
    RingBuffer = 27,
}

/// <summary>
/// A map as native code sees it, at a fixed address for the map's life: the JIT's inline array
/// lookups and the native hash lookup (native/maps.c, same layout) read it. Hash maps fill in their
/// index; arrays only <see cref="Values"/> and <see cref="Stride"/>.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MapDescriptor
{
    public const int OffType = 0, OffKeySize = 4, OffValueSize = 8, OffMaxEntries = 12, OffStride = 16, OffMask = 20, OffValues = 24;
    public uint Type, KeySize, ValueSize, MaxEntries, Stride, Mask;
    public byte* Values;
    public byte* Keys;
    public uint* Hashes;
    public int* Table;
    public int* Sequence;
    public long* Clock;
    public long* LastUse;
}

/// <summary>Update flags of <c>bpf_map_update_elem</c>.</summary>
public enum MapUpdate : ulong
{
    /// <summary>Create or replace (<c>BPF_ANY</c>).</summary>
    Any = 0,
    /// <summary>Create only: an existing key is an error (<c>BPF_NOEXIST</c>).</summary>
    NoExist = 1,
    /// <summary>Replace only: a missing key is an error (<c>BPF_EXIST</c>).</summary>
    Exist = 2,
}

/// <summary>
/// A map: host and programs share it, several VMs may use one map at a time, and it outlives the
/// VMs that use it (its memory goes when nothing refers to it any more). Values live in memory the
/// map never moves or frees while it lives, so a pointer a program got from a lookup stays inside
/// the map even if the entry is deleted meanwhile (the slot is reused later, as the kernel's
/// preallocated maps do). Keys and values are byte strings of the sizes the map was created with.
/// </summary>
public abstract unsafe class BpfMap
{
    private protected BpfMap(MapType type, uint keySize, uint valueSize, uint maxEntries, uint flags, string name)
    {
        Descriptor = (MapDescriptor*)NativeMemory.AllocZeroed((nuint)sizeof(MapDescriptor));
        Descriptor->Type = (uint)type;
        Descriptor->KeySize = keySize;
        Descriptor->ValueSize = valueSize;
        Descriptor->MaxEntries = maxEntries;
        Type = type;
        KeySize = keySize;
        ValueSize = valueSize;
        MaxEntries = maxEntries;
        Flags = flags;
        Name = name;
    }

    /// <summary>What native code (the JIT's inline lookups, the native hash lookup) reads of this map; freed with it.</summary>
    internal MapDescriptor* Descriptor { get; }

    /// <summary>Frees the descriptor.</summary>
    ~BpfMap() => NativeMemory.Free(Descriptor);

    /// <summary>Largest key or value (bytes) and most entries a map may have here.</summary>
    public const uint MaxKeySize = 512, MaxValueSize = 1 << 20, MaxEntriesLimit = 1 << 24;

    /// <summary>Creates a map; <see cref="RbpfErrorCode.InvalidArgument"/> with a message for sizes the type does not allow.</summary>
    public static BpfMap Create(MapType type, uint keySize, uint valueSize, uint maxEntries, uint flags = 0, string name = "map")
    {
        static RbpfException Bad(string m) => new(RbpfErrorCode.InvalidArgument, m);
        if (maxEntries == 0) throw Bad("max_entries must be at least 1");
        switch (type)
        {
            case MapType.Array:
            case MapType.PerCpuArray:
            case MapType.ProgramArray:
                if (keySize != 4) throw Bad($"an {Describe(type)} map has 4-byte keys (u32 indexes), not {keySize}");
                break;
            case MapType.Hash:
            case MapType.PerCpuHash:
            case MapType.LruHash:
                if (keySize == 0 || keySize > MaxKeySize) throw Bad($"key size {keySize} is not between 1 and {MaxKeySize}");
                break;
            case MapType.RingBuffer:
                if (keySize != 0 || valueSize != 0) throw Bad("a ring buffer has key and value sizes 0 (max_entries is its size in bytes)");
                if (maxEntries < 4096 || (maxEntries & (maxEntries - 1)) != 0)
                    throw Bad($"a ring buffer's size (max_entries) must be a power of 2 of at least 4096 bytes, not {maxEntries}");
                if (maxEntries > 1u << 30) throw Bad("a ring buffer may have at most 1 GiB");
                return new RingBufferMap(maxEntries, flags, name);
            default:
                throw Bad($"map type {(uint)type} is not supported (hash 1, array 2, program array 3, per-CPU hash 5, per-CPU array 6, LRU hash 9, ring buffer 27)");
        }
        if (type == MapType.ProgramArray && valueSize != 4) throw Bad($"a program array has 4-byte values, not {valueSize}");
        if (valueSize == 0 || valueSize > MaxValueSize) throw Bad($"value size {valueSize} is not between 1 and {MaxValueSize}");
        if (maxEntries > MaxEntriesLimit) throw Bad($"max_entries {maxEntries} is more than {MaxEntriesLimit}");
        if ((ulong)maxEntries * ((valueSize + 7) & ~7u) > 1UL << 32) throw Bad("the map's values would take more than 4 GiB");
        return type switch
        {
            MapType.Array or MapType.PerCpuArray => new ArrayMap(type, valueSize, maxEntries, flags, name),
            MapType.ProgramArray => new ProgramArrayMap(maxEntries, flags, name),
            _ => new HashMap(type, keySize, valueSize, maxEntries, flags, name),
        };
    }

    /// <summary>The map's type.</summary>
    public MapType Type { get; }
    /// <summary>Bytes of a key.</summary>
    public uint KeySize { get; }
    /// <summary>Bytes of a value.</summary>
    public uint ValueSize { get; }
    /// <summary>Most entries (for a ring buffer: its size in bytes).</summary>
    public uint MaxEntries { get; }
    /// <summary>The creation flags (kept; none changes the behaviour here).</summary>
    public uint Flags { get; }
    /// <summary>Its name (from the ELF object that declared it, or given at creation).</summary>
    public string Name { get; }

    /// <summary>"hash", "array", ... for messages.</summary>
    public static string Describe(MapType type) => type switch
    {
        MapType.Hash => "hash", MapType.Array => "array", MapType.ProgramArray => "program array",
        MapType.PerCpuHash => "per-CPU hash", MapType.PerCpuArray => "per-CPU array", MapType.LruHash => "LRU hash",
        MapType.RingBuffer => "ring buffer", _ => $"type {(uint)type}",
    };

    /// <summary>The memory programs may touch through pointers the map hands out (values, ring records): start and length.</summary>
    internal abstract (nint Address, nuint Length) ProgramMemory { get; }

    /// <summary>Address of the value for <paramref name="key"/> (programs' lookups), or 0 when there is none.</summary>
    internal abstract nint LookupPointer(ReadOnlySpan<byte> key);

    /// <summary>Copies the value of <paramref name="key"/> into <paramref name="value"/>; false when the key is missing.</summary>
    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckKey(key);
        if (value.Length != ValueSize) throw new RbpfException(RbpfErrorCode.InvalidArgument, $"value buffer is {value.Length} bytes, the map's values {ValueSize}");
        nint p = LookupPointer(key);
        if (p == 0) return false;
        new ReadOnlySpan<byte>((void*)p, (int)ValueSize).CopyTo(value);
        return true;
    }

    /// <summary>Sets the value of <paramref name="key"/>: 0, or the kernel's negative errno
    /// (-ENOENT -2, -EEXIST -17, -E2BIG -7, -EINVAL -22) as programs see it.</summary>
    internal abstract int UpdateRaw(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags);

    /// <summary>Deletes <paramref name="key"/>: 0 or a negative errno as programs see it.</summary>
    internal abstract int DeleteRaw(ReadOnlySpan<byte> key);

    /// <summary>The key after <paramref name="key"/> (the first when it is empty or missing) into <paramref name="next"/>; false at the end.</summary>
    public abstract bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> next);

    /// <summary>Sets the value of <paramref name="key"/> with <paramref name="flags"/>; an error says why it could not.</summary>
    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdate flags = MapUpdate.Any)
    {
        CheckKey(key);
        if (value.Length != ValueSize) throw new RbpfException(RbpfErrorCode.InvalidArgument, $"value is {value.Length} bytes, the map's values {ValueSize}");
        ThrowFor(UpdateRaw(key, value, (ulong)flags), key, "update");
    }

    /// <summary>Deletes <paramref name="key"/>: <see cref="RbpfErrorCode.NotFound"/> when it is missing.</summary>
    public void Delete(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        ThrowFor(DeleteRaw(key), key, "delete");
    }

    /// <summary>Deletes <paramref name="key"/> if present; false when it was missing.</summary>
    public bool TryDelete(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        int rc = DeleteRaw(key);
        if (rc == -2) return false;
        ThrowFor(rc, key, "delete");
        return true;
    }

    /// <summary>Every key, in the map's order (a snapshot taken one step at a time: changes meanwhile may show or not).</summary>
    public IEnumerable<byte[]> Keys()
    {
        var key = System.Array.Empty<byte>();
        var next = new byte[KeySize];
        int guard = 0;
        while (TryGetNextKey(key, next) && guard++ <= MaxEntries)
        {
            yield return (byte[])next.Clone();
            key = (byte[])next.Clone();
        }
    }

    /// <summary>Entries now in the map.</summary>
    public abstract int Count { get; }

    private protected void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, $"key is {key.Length} bytes, the map's keys {KeySize}");
    }

    private void ThrowFor(int rc, ReadOnlySpan<byte> key, string what)
    {
        if (rc == 0) return;
        string k = Convert.ToHexString(key).ToLowerInvariant();
        throw rc switch
        {
            -2 => new RbpfException(RbpfErrorCode.NotFound, $"map '{Name}': {what}: no entry for key {k}"),
            -17 => new RbpfException(RbpfErrorCode.KeyExists, $"map '{Name}': {what}: key {k} exists (BPF_NOEXIST)"),
            -7 => new RbpfException(RbpfErrorCode.MapFull, Type is MapType.Array or MapType.PerCpuArray or MapType.ProgramArray
                ? $"map '{Name}': {what}: index {k} is not below max_entries {MaxEntries}"
                : $"map '{Name}': {what}: the map is full ({MaxEntries} entries)"),
            _ => new RbpfException(RbpfErrorCode.InvalidArgument, $"map '{Name}': {what}: " + (Type is MapType.Array or MapType.PerCpuArray
                ? "array entries cannot be deleted" : $"not allowed (flags or map type), errno {-rc}")),
        };
    }

    /// <summary>Native memory for values, zeroed, 64-byte aligned; freed by the map's finalizer.</summary>
    private protected static byte* AllocPool(ulong bytes)
    {
        var p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 8), 64);
        if (p == null) throw new RbpfException(RbpfErrorCode.OutOfMemory, $"cannot allocate {bytes} bytes for a map");
        NativeMemory.Clear(p, (nuint)Math.Max(bytes, 8));
        return p;
    }

    private protected static void FreePool(byte* p)
    {
        if (p != null) NativeMemory.AlignedFree(p);
    }
}
