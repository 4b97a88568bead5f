using System.Buffers.Binary;

namespace Rbpf.Maps;

/// <summary>An array map (and a per-CPU one, with one CPU): values at indexes 0 to max_entries - 1, all present, zero at first.</summary>
internal sealed unsafe class ArrayMap : BpfMap
{
    private readonly byte* _values;
    private readonly uint _stride;

    public ArrayMap(MapType type, uint valueSize, uint maxEntries, uint flags, string name)
        : base(type, 4, valueSize, maxEntries, flags, name)
    {
        _stride = (valueSize + 7) & ~7u;
        _values = AllocPool((ulong)_stride * maxEntries);
        Descriptor->Stride = _stride;
        Descriptor->Values = _values;
    }

    ~ArrayMap() => FreePool(_values);

    internal override (nint Address, nuint Length) ProgramMemory => ((nint)_values, (nuint)((ulong)_stride * MaxEntries));

    /// <summary>The value at <paramref name="index"/> (no check).</summary>
    internal byte* At(uint index) => _values + (ulong)index * _stride;

    internal override nint LookupPointer(ReadOnlySpan<byte> key)
    {
        uint index = BinaryPrimitives.ReadUInt32LittleEndian(key);
        return index < MaxEntries ? (nint)At(index) : 0;
    }

    internal override int UpdateRaw(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if (flags > (ulong)MapUpdate.Exist) return -22;
        uint index = BinaryPrimitives.ReadUInt32LittleEndian(key);
        if (index >= MaxEntries) return -7;
        if (flags == (ulong)MapUpdate.NoExist) return -17; // every entry of an array exists
        value[..(int)ValueSize].CopyTo(new Span<byte>(At(index), (int)ValueSize));
        return 0;
    }

    internal override int DeleteRaw(ReadOnlySpan<byte> key) => -22;

    /// <inheritdoc/>
    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => NextIndex(key, next, MaxEntries);

    /// <summary>
    /// The index after <paramref name="key"/> for maps indexed 0 to <paramref name="count"/> - 1, as
    /// the kernel does it: no key, or one past the end, starts over at 0; the last index ends it.
    /// </summary>
    internal static bool NextIndex(ReadOnlySpan<byte> key, Span<byte> next, uint count)
    {
        uint n = key.Length == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(key) : uint.MaxValue;
        uint following = n >= count ? 0 : n + 1;
        if (following >= count) return false;
        BinaryPrimitives.WriteUInt32LittleEndian(next, following);
        return true;
    }

    /// <inheritdoc/>
    public override int Count => (int)MaxEntries;
}

/// <summary>
/// A program array: VMs at indexes, which <c>bpf_tail_call(ctx, map, index)</c> jumps to. The
/// target runs on the same input and its result is the run's; a missing index (or a chain past 33
/// tail calls) makes the call fall through to the next instruction, as in the kernel. A target must
/// be a VM of the caller's kind; it runs JIT-compiled when the caller does and it is compiled.
/// </summary>
public sealed class ProgramArrayMap : BpfMap
{
    private readonly EbpfVm?[] _programs;

    internal ProgramArrayMap(uint maxEntries, uint flags, string name) : base(MapType.ProgramArray, 4, 4, maxEntries, flags, name)
    {
        _programs = new EbpfVm?[maxEntries];
    }

    internal override (nint Address, nuint Length) ProgramMemory => (0, 0);

    /// <summary>The VM at <paramref name="index"/>, or null.</summary>
    public EbpfVm? ProgramAt(uint index) => index < MaxEntries ? Volatile.Read(ref _programs[index]) : null;

    /// <summary>Puts <paramref name="vm"/> (null: nothing) at <paramref name="index"/>.</summary>
    public void SetProgram(uint index, EbpfVm? vm)
    {
        if (index >= MaxEntries)
            throw new RbpfException(RbpfErrorCode.MapFull, $"map '{Name}': index {index} is not below max_entries {MaxEntries}");
        Volatile.Write(ref _programs[index], vm);
    }

    // Programs cannot read a program array's values; the host sets VMs, not numbers.
    internal override nint LookupPointer(ReadOnlySpan<byte> key) => 0;

    internal override int UpdateRaw(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags) => -22;

    internal override int DeleteRaw(ReadOnlySpan<byte> key)
    {
        uint index = BinaryPrimitives.ReadUInt32LittleEndian(key);
        if (index >= MaxEntries) return -22;
        return Interlocked.Exchange(ref _programs[index], null) == null ? -2 : 0;
    }

    /// <inheritdoc/>
    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => ArrayMap.NextIndex(key, next, MaxEntries);

    /// <inheritdoc/>
    public override int Count => _programs.Count(p => p != null);
}
