using System.Buffers.Binary;
using System.Text;

namespace Rbpf.Maps;

/// <summary>A map an ELF object declares: what the loader creates and binds to fd <see cref="Index"/>.</summary>
/// <param name="Index">Its place in <see cref="ElfProgram.Maps"/>, and the fd its loads use.</param>
/// <param name="Name">The variable's name (<c>port_counts</c>).</param>
/// <param name="Type">The map type.</param>
/// <param name="KeySize">Bytes of a key.</param>
/// <param name="ValueSize">Bytes of a value.</param>
/// <param name="MaxEntries">Most entries.</param>
/// <param name="Flags">Creation flags.</param>
public readonly record struct ElfMapDefinition(int Index, string Name, MapType Type, uint KeySize, uint ValueSize, uint MaxEntries, uint Flags);

/// <summary>
/// Reads map declarations from an ELF object: the BTF-described <c>.maps</c> section that libbpf's
/// <c>bpf_helpers.h</c> macros produce (<c>__uint(type, ...)</c> is a pointer to an array whose
/// length is the value, <c>__type(key, ...)</c> a pointer to the key's type), and the legacy
/// <c>maps</c> section of <c>struct bpf_map_def</c> records. Every malformed input is an
/// <see cref="RbpfErrorCode.ElfError"/> with a message.
/// </summary>
internal static class ElfMaps
{
    private static RbpfException Bad(string message) => new(RbpfErrorCode.ElfError, "ELF: " + message);

    /// <summary>The legacy section: one 20-byte (or longer) bpf_map_def at each symbol.</summary>
    public static List<(string Name, ulong Offset, ElfMapDefinition Def)> FromLegacy(ReadOnlySpan<byte> section,
        IEnumerable<(string Name, ulong Offset)> symbols, int firstIndex)
    {
        var maps = new List<(string, ulong, ElfMapDefinition)>();
        foreach (var (name, offset) in symbols.OrderBy(s => s.Offset))
        {
            if (offset > (ulong)section.Length || (ulong)section.Length - offset < 20)
                throw Bad($"map '{name}' in section 'maps' at offset {offset} runs past the section's end ({section.Length} bytes)");
            var d = section[(int)offset..];
            var def = new ElfMapDefinition(firstIndex + maps.Count, name, (MapType)BinaryPrimitives.ReadUInt32LittleEndian(d),
                BinaryPrimitives.ReadUInt32LittleEndian(d[4..]), BinaryPrimitives.ReadUInt32LittleEndian(d[8..]),
                BinaryPrimitives.ReadUInt32LittleEndian(d[12..]), BinaryPrimitives.ReadUInt32LittleEndian(d[16..]));
            maps.Add((name, offset, def));
        }
        return maps;
    }

    private static uint Fits(ulong size, string what) => size <= uint.MaxValue ? (uint)size : throw Bad($"{what}: its type is too large");

    private const int KindInt = 1, KindPtr = 2, KindArray = 3, KindStruct = 4, KindUnion = 5, KindEnum = 6, KindFwd = 7,
        KindTypedef = 8, KindVolatile = 9, KindConst = 10, KindRestrict = 11, KindFunc = 12, KindFuncProto = 13, KindVar = 14,
        KindDatasec = 15, KindFloat = 16, KindDeclTag = 17, KindTypeTag = 18, KindEnum64 = 19;

    private readonly record struct BtfType(int Kind, string Name, uint SizeOrType, int Vlen, int Offset);

    /// <summary>The <c>.maps</c> section's maps, described by the object's <c>.BTF</c> section.</summary>
    public static List<(string Name, ulong Offset, ElfMapDefinition Def)> FromBtf(ReadOnlySpan<byte> btf, int firstIndex)
    {
        if (btf.Length < 24) throw Bad(".BTF is shorter than its header");
        if (BinaryPrimitives.ReadUInt16LittleEndian(btf) != 0xeb9f) throw Bad(".BTF has a bad magic number (or is big-endian)");
        uint hdrLen = BinaryPrimitives.ReadUInt32LittleEndian(btf[4..]);
        uint typeOff = BinaryPrimitives.ReadUInt32LittleEndian(btf[8..]), typeLen = BinaryPrimitives.ReadUInt32LittleEndian(btf[12..]);
        uint strOff = BinaryPrimitives.ReadUInt32LittleEndian(btf[16..]), strLen = BinaryPrimitives.ReadUInt32LittleEndian(btf[20..]);
        if (hdrLen < 24 || hdrLen > (uint)btf.Length) throw Bad($".BTF header length {hdrLen} is wrong");
        var body = btf[(int)hdrLen..];
        if ((ulong)typeOff + typeLen > (ulong)body.Length || (ulong)strOff + strLen > (ulong)body.Length)
            throw Bad(".BTF type or string section runs past the section's end");
        var types = body.Slice((int)typeOff, (int)typeLen).ToArray();
        var strings = body.Slice((int)strOff, (int)strLen).ToArray();

        string Str(uint off)
        {
            if (off >= (uint)strings.Length) throw Bad($".BTF string offset {off} is outside its strings");
            int end = strings.AsSpan((int)off).IndexOf((byte)0);
            if (end < 0) throw Bad(".BTF string is not terminated");
            return Encoding.UTF8.GetString(strings, (int)off, end);
        }

        // Every type, by id (id 0 is void).
        var all = new List<BtfType> { default };
        int pos = 0;
        while (pos < types.Length)
        {
            if (types.Length - pos < 12) throw Bad(".BTF type record is cut short");
            uint nameOff = BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(pos));
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(pos + 4));
            uint sizeOrType = BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(pos + 8));
            int kind = (int)((info >> 24) & 0x1f), vlen = (int)(info & 0xffff);
            int extra = kind switch
            {
                KindInt => 4, KindArray => 12, KindStruct or KindUnion => 12 * vlen, KindEnum => 8 * vlen,
                KindFuncProto => 8 * vlen, KindVar => 4, KindDatasec => 12 * vlen, KindDeclTag => 4, KindEnum64 => 12 * vlen,
                KindPtr or KindFwd or KindTypedef or KindVolatile or KindConst or KindRestrict or KindFunc or KindFloat or KindTypeTag => 0,
                _ => throw Bad($".BTF type {all.Count} has unknown kind {kind}"),
            };
            if (types.Length - pos - 12 < extra) throw Bad($".BTF type {all.Count} is cut short");
            all.Add(new BtfType(kind, nameOff == 0 ? "" : Str(nameOff), sizeOrType, vlen, pos + 12));
            pos += 12 + extra;
            if (all.Count > 1_000_000) throw Bad(".BTF has too many types");
        }

        BtfType Get(uint id, string what) =>
            id > 0 && id < (uint)all.Count ? all[(int)id] : throw Bad($".BTF: {what} refers to type {id}, which does not exist");

        uint Skip(uint id, string what)
        {
            for (int hops = 0; hops < 64; hops++)
            {
                var t = Get(id, what);
                if (t.Kind is not (KindTypedef or KindVolatile or KindConst or KindRestrict or KindTypeTag)) return id;
                id = t.SizeOrType;
            }
            throw Bad($".BTF: {what}: too many typedefs and qualifiers");
        }

        ulong SizeOf(uint id, string what, int depth = 0)
        {
            if (depth > 32) throw Bad($".BTF: {what}: types nest too deeply");
            var t = Get(Skip(id, what), what);
            return t.Kind switch
            {
                KindInt or KindStruct or KindUnion or KindEnum or KindFloat or KindEnum64 => t.SizeOrType,
                KindPtr => 8,
                KindArray => BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(t.Offset + 8)) * SizeOf(BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(t.Offset)), what, depth + 1),
                _ => throw Bad($".BTF: {what} has a type of kind {t.Kind}, which has no size"),
            };
        }

        var maps = new List<(string, ulong, ElfMapDefinition)>();
        foreach (var sec in all)
        {
            if (sec.Kind != KindDatasec || sec.Name != ".maps") continue;
            for (int k = 0; k < sec.Vlen; k++)
            {
                var info = types.AsSpan(sec.Offset + 12 * k, 12);
                uint varId = BinaryPrimitives.ReadUInt32LittleEndian(info);
                uint offset = BinaryPrimitives.ReadUInt32LittleEndian(info[4..]);
                var v = Get(varId, ".maps entry");
                if (v.Kind != KindVar) throw Bad($".BTF: .maps entry {k} is not a variable");
                string name = v.Name;
                var def = Get(Skip(v.SizeOrType, $"map '{name}'"), $"map '{name}'");
                if (def.Kind != KindStruct) throw Bad($"map '{name}': its BTF type is not a struct (declare it with libbpf's __uint and __type)");
                uint type = 0, keySize = 0, valueSize = 0, maxEntries = 0, flags = 0;
                for (int m = 0; m < def.Vlen; m++)
                {
                    var member = types.AsSpan(def.Offset + 12 * m, 12);
                    string field = Str(BinaryPrimitives.ReadUInt32LittleEndian(member));
                    string what = $"map '{name}' field '{field}'";
                    var ptr = Get(Skip(BinaryPrimitives.ReadUInt32LittleEndian(member[4..]), what), what);
                    if (ptr.Kind != KindPtr) throw Bad($"{what} is not a pointer (declare it with __uint or __type)");
                    uint target = Skip(ptr.SizeOrType, what);
                    uint Count()
                    {
                        var arr = Get(target, what);
                        if (arr.Kind != KindArray) throw Bad($"{what} is not __uint(...) (a pointer to an array)");
                        return BinaryPrimitives.ReadUInt32LittleEndian(types.AsSpan(arr.Offset + 8));
                    }
                    switch (field)
                    {
                        case "type": type = Count(); break;
                        case "max_entries": maxEntries = Count(); break;
                        case "map_flags": flags = Count(); break;
                        case "key_size": keySize = Count(); break;
                        case "value_size": valueSize = Count(); break;
                        case "key": keySize = Fits(SizeOf(target, what), what); break;
                        case "value": valueSize = Fits(SizeOf(target, what), what); break;
                        case "pinning" or "numa_node" or "map_extra": break;
                        default: throw Bad($"{what} is not supported here (type, key, value, key_size, value_size, max_entries, map_flags)");
                    }
                }
                maps.Add((name, offset, new ElfMapDefinition(firstIndex + maps.Count, name, (MapType)type, keySize, valueSize, maxEntries, flags)));
            }
        }
        return maps;
    }
}
