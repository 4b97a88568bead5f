using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Rbpf.Maps;

/// <summary>
/// A typed view of a <see cref="BpfMap"/> whose keys and values are plain structs or numbers of
/// the map's sizes (<c>Map&lt;ushort, ulong&gt;</c> over a map of 2-byte keys and 8-byte values).
/// </summary>
/// <example><code>
/// var counts = new Map&lt;ushort, ulong&gt;(vm.GetMap("port_counts")!);
/// foreach (var (port, n) in counts) Console.WriteLine($"{port}: {n}");
/// </code></example>
public sealed class Map<TKey, TValue> : IEnumerable<KeyValuePair<TKey, TValue>>
    where TKey : unmanaged where TValue : unmanaged
{
    /// <summary>Wraps <paramref name="map"/>; its key and value sizes must be those of the types.</summary>
    public Map(BpfMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        if (map.KeySize != Unsafe.SizeOf<TKey>() || map.ValueSize != Unsafe.SizeOf<TValue>())
            throw new RbpfException(RbpfErrorCode.InvalidArgument,
                $"map '{map.Name}' has {map.KeySize}-byte keys and {map.ValueSize}-byte values, not {Unsafe.SizeOf<TKey>()} and {Unsafe.SizeOf<TValue>()}");
        Raw = map;
    }

    /// <summary>The map underneath.</summary>
    public BpfMap Raw { get; }

    private static ReadOnlySpan<byte> Bytes<T>(in T v) where T : unmanaged => MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in v));

    /// <summary>The value of <paramref name="key"/>, if present.</summary>
    public bool TryGetValue(TKey key, out TValue value)
    {
        value = default;
        return Raw.TryLookup(Bytes(key), MemoryMarshal.AsBytes(new Span<TValue>(ref value)));
    }

    /// <summary>Gets (or <see cref="RbpfErrorCode.NotFound"/>) and sets (create or replace) a value.</summary>
    public TValue this[TKey key]
    {
        get => TryGetValue(key, out var v) ? v : throw new RbpfException(RbpfErrorCode.NotFound, $"map '{Raw.Name}': no entry for key {key}");
        set => Raw.Update(Bytes(key), Bytes(value));
    }

    /// <summary>Sets a value with the kernel's update flags.</summary>
    public void Update(TKey key, TValue value, MapUpdate flags) => Raw.Update(Bytes(key), Bytes(value), flags);

    /// <summary>Deletes <paramref name="key"/>; false when it was missing.</summary>
    public bool Remove(TKey key) => Raw.TryDelete(Bytes(key));

    /// <summary>Every entry (looked up one by one as the keys are walked).</summary>
    public IEnumerator<KeyValuePair<TKey, TValue>> GetEnumerator()
    {
        foreach (var k in Raw.Keys())
        {
            var key = MemoryMarshal.Read<TKey>(k);
            if (TryGetValue(key, out var v)) yield return new(key, v);
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
