using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Rbpf.Maps;

namespace Rbpf.Native;

/// <summary>Map handles: a table of their own (tagged, so a VM handle is never taken for a map), one handle per map.</summary>
internal static class MapHandles
{
    internal struct Kind : IHandleKind
    {
        public static ulong Tag => 1UL << 48;
        public static string Noun => "map";
    }

    public static nint Add(BpfMap map) => HandleTable<Kind>.Add(map);

    /// <summary>The live map behind <paramref name="handle"/>, or null. Only maps are added, so the cast needs no check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BpfMap? TryGet(nint handle) => Unsafe.As<BpfMap?>(HandleTable<Kind>.TryGet(handle));

    /// <summary>The live map behind <paramref name="handle"/>; an <see cref="RbpfException"/> saying why not otherwise.</summary>
    public static BpfMap Get(nint handle) => TryGet(handle) ?? Unsafe.As<BpfMap>(HandleTable<Kind>.Refuse(handle));

    public static void Remove(nint handle) => HandleTable<Kind>.Remove(handle);

    private static readonly Dictionary<BpfMap, nint> s_handles = new(ReferenceEqualityComparer.Instance);

    /// <summary>The map's handle, made on first use (a handle keeps its map alive until destroyed).</summary>
    public static nint HandleOf(BpfMap map)
    {
        lock (s_handles)
        {
            if (s_handles.TryGetValue(map, out var h) && MapHandles.TryGet(h) == map) return h;
            h = MapHandles.Add(map);
            s_handles[map] = h;
            return h;
        }
    }

    public static void Release(nint handle)
    {
        lock (s_handles)
        {
            var map = MapHandles.Get(handle);
            MapHandles.Remove(handle);
            s_handles.Remove(map);
        }
    }
}

/// <summary>The map functions of the C ABI (include/rbpf.h).</summary>
internal static unsafe class MapExports
{
    private static RbpfException Bad(string message) => new(RbpfErrorCode.InvalidArgument, message);

    private static int Fail(Exception e) => LastError.From(e);

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_create")]
    public static int Create(uint type, uint keySize, uint valueSize, uint maxEntries, uint flags, nint* outMap)
    {
        try
        {
            if (outMap == null) throw Bad("out (the rbpf_map ** for the new map) is NULL");
            *outMap = 0;
            var map = BpfMap.Create((MapType)type, keySize, valueSize, maxEntries, flags, "map");
            *outMap = MapHandles.HandleOf(map);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    private static ReadOnlySpan<byte> Key(BpfMap map, byte* key)
    {
        NoRingBuffer(map);
        if (key == null && map.KeySize != 0) throw Bad("key is NULL");
        return new ReadOnlySpan<byte>(key, (int)map.KeySize);
    }

    /// <summary>Ring buffers have no keys: the keyed calls refuse them rather than report a missing key.</summary>
    private static void NoRingBuffer(BpfMap map)
    {
        if (map is RingBufferMap) throw Bad($"map '{map.Name}' is a ring buffer: it has no keys (read its records with rbpf_map_ringbuf_consume)");
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_lookup")]
    public static int Lookup(nint handle, byte* key, byte* value)
    {
        try
        {
            var map = MapHandles.Get(handle);
            var k = Key(map, key);
            if (value == null) throw Bad("value is NULL");
            if (!map.TryLookup(k, new Span<byte>(value, (int)map.ValueSize)))
                return LastError.Set(RbpfErrorCode.NotFound, $"map '{map.Name}': no entry for key {Convert.ToHexString(k).ToLowerInvariant()}");
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_update")]
    public static int Update(nint handle, byte* key, byte* value, ulong flags)
    {
        try
        {
            var map = MapHandles.Get(handle);
            var k = Key(map, key);
            if (value == null) throw Bad("value is NULL");
            if (flags > (ulong)MapUpdate.Exist) throw Bad($"unknown update flags {flags} (RBPF_ANY 0, RBPF_NOEXIST 1, RBPF_EXIST 2)");
            if (map is ProgramArrayMap) throw Bad($"map '{map.Name}' is a program array: put VMs in it with rbpf_map_set_program");
            map.Update(k, new ReadOnlySpan<byte>(value, (int)map.ValueSize), (MapUpdate)flags);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_delete")]
    public static int Delete(nint handle, byte* key)
    {
        try
        {
            var map = MapHandles.Get(handle);
            map.Delete(Key(map, key));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_next_key")]
    public static int NextKey(nint handle, byte* key, byte* nextKey)
    {
        try
        {
            var map = MapHandles.Get(handle);
            NoRingBuffer(map);
            if (nextKey == null) throw Bad("next_key is NULL");
            var k = key == null ? ReadOnlySpan<byte>.Empty : new ReadOnlySpan<byte>(key, (int)map.KeySize);
            if (!map.TryGetNextKey(k, new Span<byte>(nextKey, (int)map.KeySize)))
                return LastError.Set(RbpfErrorCode.NotFound, $"map '{map.Name}': no more keys");
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>Layout of rbpf_map_info.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Info
    {
        public uint Type, KeySize, ValueSize, MaxEntries, Flags, Entries;
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_get_info")]
    public static int GetInfo(nint handle, Info* info)
    {
        try
        {
            var map = MapHandles.Get(handle);
            if (info == null) throw Bad("info is NULL");
            *info = new Info
            {
                Type = (uint)map.Type, KeySize = map.KeySize, ValueSize = map.ValueSize, MaxEntries = map.MaxEntries,
                Flags = map.Flags, Entries = (uint)map.Count,
            };
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_set_program")]
    public static int SetProgram(nint handle, uint index, nint vm)
    {
        try
        {
            var map = MapHandles.Get(handle);
            if (map is not ProgramArrayMap programs) throw Bad($"map '{map.Name}' is not a program array");
            programs.SetProgram(index, vm == 0 ? null : VmHandles.Get(vm));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_ringbuf_consume")]
    public static long RingbufConsume(nint handle, delegate* unmanaged<void*, void*, nuint, int> callback, void* context)
    {
        try
        {
            var map = MapHandles.Get(handle);
            if (map is not RingBufferMap ring) throw Bad($"map '{map.Name}' is not a ring buffer");
            if (callback == null) throw Bad("callback is NULL");
            return ring.Consume((p, n) => callback(context, (void*)p, (nuint)n));
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_map_destroy")]
    public static void Destroy(nint handle)
    {
        try { MapHandles.Release(handle); }
        catch (Exception e) { Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_bind_map")]
    public static int BindMap(nint vm, uint fd, nint handle)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (handle == 0)
            {
                if (!v.UnbindMap(fd)) throw new RbpfException(RbpfErrorCode.NotFound, $"no map is bound to fd {fd}");
            }
            else v.BindMap(fd, MapHandles.Get(handle));
            FastCalls.Publish(vm); // a VM with a program array runs tail calls through the managed path
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_get_map")]
    public static int GetMap(nint vm, byte* name, nint* outMap)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (outMap == null) throw Bad("out is NULL");
            *outMap = 0;
            string? n = Utf8.Read(name) ?? throw Bad("name is NULL");
            var map = v.GetMap(n) ?? throw new RbpfException(RbpfErrorCode.NotFound,
                v.ElfMaps.Count == 0 ? $"no map named '{n}': the VM's ELF object declares no maps"
                    : $"no map named '{n}' (the ELF object declares: {string.Join(", ", v.ElfMaps.Keys)})");
            *outMap = MapHandles.HandleOf(map);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_map_names")]
    public static int MapNames(nint vm, byte** outNames)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (outNames == null) throw Bad("out_names is NULL");
            *outNames = Utf8.Alloc(string.Concat(v.ElfMaps.Keys.Select(k => k + "\n")));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }
}
