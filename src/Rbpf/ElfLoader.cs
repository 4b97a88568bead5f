using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Rbpf;

/// <summary>A global-data section of a loaded ELF object, copied into memory the program may use.</summary>
/// <param name="Name">Section name (.data, .rodata, .bss, ...).</param>
/// <param name="Address">Where the copy lives.</param>
/// <param name="Length">Its size in bytes.</param>
/// <param name="Writable">Whether the program may store to it (.data, .bss).</param>
public readonly record struct ElfDataRegion(string Name, nint Address, nuint Length, bool Writable);

/// <summary>
/// Resolves an <c>lddw</c> of a global symbol instead of the loader (uBPF's data relocation
/// callback): gets the symbol's section, name, offset in the section and size, returns the value to load.
/// </summary>
public delegate ulong DataRelocator(ReadOnlySpan<byte> sectionData, string symbolName, ulong symbolOffset, ulong symbolSize);

/// <summary>A program linked from an ELF object: bytecode ready to load, and its global data.</summary>
public sealed class ElfProgram : IDisposable
{
    private readonly List<nint> _blocks;

    internal ElfProgram(byte[] bytecode, string section, List<ElfDataRegion> data, List<nint> blocks, List<Maps.ElfMapDefinition> maps)
    {
        Maps = maps;
        Bytecode = bytecode;
        Section = section;
        DataRegions = data;
        _blocks = blocks;
    }

    /// <summary>The linked bytecode: the chosen section, then the other code sections it may call.</summary>
    public byte[] Bytecode { get; }

    /// <summary>The section the program came from.</summary>
    public string Section { get; }

    /// <summary>The maps the object declares, in fd order: the bytecode loads map <c>k</c> with
    /// <c>lddw rN, map k</c> (source 1), and <see cref="EbpfVm.LoadElf"/> creates and binds them.</summary>
    public IReadOnlyList<Maps.ElfMapDefinition> Maps { get; }

    /// <summary>The global-data regions the bytecode's 64-bit immediates point into.</summary>
    public IReadOnlyList<ElfDataRegion> DataRegions { get; }

    /// <summary>Frees the data regions (the VM that uses them must not run afterwards).</summary>
    public void Dispose()
    {
        lock (_blocks)
        {
            foreach (var b in _blocks) unsafe { NativeMemory.AlignedFree((void*)b); }
            _blocks.Clear();
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the data regions when the program is collected.</summary>
    ~ElfProgram() => Dispose();
}

/// <summary>
/// Loads eBPF programs from relocatable ELF objects as <c>clang -O2 -target bpf -c</c> writes them
/// (64-bit, little-endian, EM_BPF). A small reader of our own: the format needs only headers,
/// sections, symbols and REL relocations, and owning the code lets every malformed input get a
/// precise error instead of an exception from deep inside a general-purpose library.
/// </summary>
/// <remarks>
/// The program is the section named <c>sectionOrFunction</c>, or the section holding the function
/// of that name, or by default the first executable section other than <c>.text</c> (where clang
/// puts non-inlined static functions), else <c>.text</c>. The executable sections it reaches through
/// relocations are appended so bpf-to-bpf calls (R_BPF_64_32) can reach them; sections it never
/// reaches (other programs of the same object) are left out. Loads of global data (R_BPF_64_64 against
/// .rodata, .data, .bss and the like) point into copies of those sections. Calls to undefined
/// functions resolve to helpers registered by name.
/// </remarks>
public static class ElfLoader
{
    private const int EM_BPF = 247;
    private const uint SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHT_RELA = 4, SHT_NOBITS = 8, SHT_REL = 9;
    private const ulong SHF_WRITE = 1, SHF_ALLOC = 2, SHF_EXECINSTR = 4;
    private const uint R_BPF_NONE = 0, R_BPF_64_64 = 1, R_BPF_64_ABS64 = 2, R_BPF_64_ABS32 = 3, R_BPF_64_NODYLD32 = 4, R_BPF_64_32 = 10;
    private const int STT_FUNC = 2, STT_SECTION = 3;
    private const ushort SHN_UNDEF = 0;

    private sealed record Section(int Index, string Name, uint Type, ulong Flags, ulong Offset, ulong Size, uint Link, uint Info, ulong EntSize);

    private sealed record Symbol(string Name, int Type, ushort SectionIndex, ulong Value, ulong Size);

    private static RbpfException Bad(string message) => new(RbpfErrorCode.ElfError, "ELF: " + message);

    /// <summary>A section without bytes in the file (.bss) takes no more than this: its size is only a
    /// number in the header, and a damaged or hostile object must not make the loader allocate gigabytes.</summary>
    public const ulong MaxNoBitsSize = 64UL << 20;

    private static void CheckNoBits(Section s)
    {
        if (s.Size > MaxNoBitsSize)
            throw Bad($"section '{s.Name}' claims {s.Size} bytes of zeroes (SHT_NOBITS); more than {MaxNoBitsSize >> 20} MiB is refused");
    }

    private static byte[] Zeroes(Section s)
    {
        CheckNoBits(s);
        return new byte[s.Size];
    }

    /// <summary>Loads and links a program; <paramref name="helperByName"/> resolves calls to undefined functions.</summary>
    public static ElfProgram Load(ReadOnlySpan<byte> elf, string? sectionOrFunction = null, Func<string, uint?>? helperByName = null,
        DataRelocator? relocateData = null)
    {
        byte[] file = elf.ToArray();
        var sections = ReadSections(file);
        var symtabSection = sections.FirstOrDefault(s => s.Type == SHT_SYMTAB);
        var symbols = symtabSection != null ? ReadSymbols(file, sections, symtabSection) : new List<Symbol>();

        var code = sections.Where(s => s.Type == SHT_PROGBITS && (s.Flags & SHF_EXECINSTR) != 0 && s.Size > 0).ToList();
        if (code.Count == 0) throw Bad("no code section (no executable PROGBITS section with content)");
        foreach (var c in code)
            if (c.Size % 8 != 0) throw Bad($"code section '{c.Name}' is {c.Size} bytes, not a multiple of 8");

        // Choose the program and its entry.
        Section main;
        ulong entry = 0;
        if (sectionOrFunction == null)
            main = code.FirstOrDefault(s => s.Name != ".text") ?? code[0];
        else if (code.FirstOrDefault(s => s.Name == sectionOrFunction) is { } named)
            main = named;
        else if (symbols.FirstOrDefault(s => s.Name == sectionOrFunction && s.Type == STT_FUNC) is { } fn
                 && code.FirstOrDefault(s => s.Index == fn.SectionIndex) is { } holder)
        {
            main = holder;
            entry = fn.Value;
            if (entry % 8 != 0 || entry >= holder.Size) throw Bad($"function '{sectionOrFunction}' has a bad offset {entry}");
        }
        else
            throw Bad($"no code section or function named '{sectionOrFunction}' (sections: {string.Join(", ", code.Select(c => c.Name))})");

        // Layout: [ja to the entry when it is not first], the main section, then the other code sections
        // it reaches through relocations (calls, function addresses), in the file's order.
        var order = new List<Section> { main };
        var reached = Reached(file, sections, symbols, main, code);
        order.AddRange(code.Where(c => c != main && reached.Contains(c.Index)));
        int prefix = entry != 0 ? 1 : 0;
        var start = new Dictionary<int, int>();
        int slots = prefix;
        foreach (var s in order)
        {
            start[s.Index] = slots;
            slots += (int)(s.Size / 8);
        }
        if (slots > Isa.MaxInstructions) throw Bad($"the linked program has {slots} instructions, more than {Isa.MaxInstructions}");
        byte[] program = new byte[slots * 8];
        if (prefix == 1)
            new Instruction(Isa.Ja32, 0, 0, 0, (int)(entry / 8)).WriteTo(program);
        foreach (var s in order)
            file.AsSpan((int)s.Offset, (int)s.Size).CopyTo(program.AsSpan(start[s.Index] * 8));

        // Maps: the BTF-described .maps section (libbpf's macros) and the legacy maps section.
        var mapSections = new Dictionary<int, List<(string Name, ulong Offset, Maps.ElfMapDefinition Def)>>();
        var mapList = new List<Maps.ElfMapDefinition>();
        foreach (var s in sections.Where(s => s.Name is ".maps" or "maps" && s.Type is SHT_PROGBITS or SHT_NOBITS))
        {
            List<(string, ulong, Maps.ElfMapDefinition)> found;
            if (s.Name == ".maps")
            {
                var btf = sections.FirstOrDefault(b => b.Name == ".BTF" && b.Type == SHT_PROGBITS)
                    ?? throw Bad("the object declares maps in '.maps' but has no .BTF section describing them: compile with -g");
                found = Maps.ElfMaps.FromBtf(file.AsSpan((int)btf.Offset, (int)btf.Size), mapList.Count);
                // Where each map lives comes from the symbol table (clang leaves the BTF offsets for the loader to fill in).
                for (int m = 0; m < found.Count; m++)
                    if (symbols.FirstOrDefault(y => y.SectionIndex == s.Index && y.Name == found[m].Item1) is { } placed)
                        found[m] = (found[m].Item1, placed.Value, found[m].Item3);
            }
            else
            {
                var bytes = s.Type == SHT_NOBITS ? Zeroes(s) : file.AsSpan((int)s.Offset, (int)s.Size).ToArray();
                found = Maps.ElfMaps.FromLegacy(bytes, symbols.Where(y => y.SectionIndex == s.Index && y.Type != STT_SECTION && y.Name.Length > 0)
                    .Select(y => (y.Name, y.Value)), mapList.Count);
            }
            mapSections[s.Index] = found;
            mapList.AddRange(found.Select(f => f.Item3));
        }

        // Global data: every allocated, non-executable section, copied into memory we own.
        var blocks = new List<nint>();
        var data = new List<ElfDataRegion>();
        var dataAddress = new Dictionary<int, nint>();
        try
        {
            foreach (var s in sections.Where(s => (s.Flags & SHF_ALLOC) != 0 && (s.Flags & SHF_EXECINSTR) == 0
                                                  && (s.Type == SHT_PROGBITS || s.Type == SHT_NOBITS) && s.Size > 0
                                                  && !mapSections.ContainsKey(s.Index)))
            {
                if (s.Type == SHT_NOBITS) CheckNoBits(s);
                nint block;
                unsafe
                {
                    block = (nint)NativeMemory.AlignedAlloc((nuint)s.Size, 16);
                    var span = new Span<byte>((void*)block, (int)s.Size);
                    if (s.Type == SHT_NOBITS) span.Clear();
                    else file.AsSpan((int)s.Offset, (int)s.Size).CopyTo(span);
                }
                blocks.Add(block);
                dataAddress[s.Index] = block;
                data.Add(new ElfDataRegion(s.Name, block, (nuint)s.Size, (s.Flags & SHF_WRITE) != 0));
            }

            // Relocations of the sections we use.
            foreach (var rel in sections.Where(s => s.Type is SHT_REL or SHT_RELA))
            {
                if (rel.Info >= sections.Count) throw Bad($"relocation section '{rel.Name}' applies to section {rel.Info}, which does not exist");
                var target = sections[(int)rel.Info];
                bool isCode = start.ContainsKey(target.Index);
                bool isData = dataAddress.ContainsKey(target.Index);
                if (!isCode && !isData) continue; // debug info, the maps sections and the like
                if (rel.Type == SHT_RELA) throw Bad($"RELA relocations ('{rel.Name}') are not used by eBPF objects");
                if (symtabSection == null || rel.Link != symtabSection.Index) throw Bad($"relocation section '{rel.Name}' does not use the symbol table");
                if (rel.EntSize != 16) throw Bad($"relocation section '{rel.Name}' has entries of {rel.EntSize} bytes, not 16");
                for (ulong k = 0; k < rel.Size / 16; k++)
                {
                    var e = file.AsSpan((int)(rel.Offset + k * 16), 16);
                    ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(e);
                    ulong info = BinaryPrimitives.ReadUInt64LittleEndian(e[8..]);
                    uint type = (uint)info;
                    ulong symIndex = info >> 32;
                    if (symIndex >= (ulong)symbols.Count) throw Bad($"relocation {k} of '{rel.Name}' names symbol {symIndex}, beyond the {symbols.Count} symbols");
                    var sym = symbols[(int)symIndex];
                    if (isCode)
                        RelocateCode(file, program, start[target.Index] * 8, target, offset, type, sym, k, rel, sections, start, dataAddress,
                            helperByName, relocateData, mapSections);
                    else
                        unsafe { RelocateData((byte*)dataAddress[target.Index], target, offset, type, sym, k, rel, dataAddress); }
                }
            }
        }
        catch
        {
            unsafe { foreach (var b in blocks) NativeMemory.AlignedFree((void*)b); }
            throw;
        }
        return new ElfProgram(program, main.Name, data, blocks, mapList);
    }

    /// <summary>
    /// The code sections <paramref name="main"/> reaches: those a relocation of a reached section names a
    /// symbol in, transitively (code in one section can reach another only through a relocation).
    /// Sections no path reaches are left out of the program, so a program of one function in an object of
    /// many is verified and compiled alone. Malformed relocation sections are passed over here; the
    /// relocation pass reports them for the sections it links.
    /// </summary>
    private static HashSet<int> Reached(byte[] file, List<Section> sections, List<Symbol> symbols, Section main, List<Section> code)
    {
        var isCode = code.Select(c => c.Index).ToHashSet();
        var reached = new HashSet<int> { main.Index };
        var pending = new Stack<int>();
        pending.Push(main.Index);
        while (pending.Count > 0)
        {
            int from = pending.Pop();
            foreach (var rel in sections)
            {
                if (rel.Type != SHT_REL || rel.Info != from || rel.EntSize != 16) continue;
                for (ulong k = 0; k < rel.Size / 16; k++)
                {
                    ulong symIndex = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan((int)(rel.Offset + k * 16) + 8)) >> 32;
                    if (symIndex >= (ulong)symbols.Count) continue;
                    int to = symbols[(int)symIndex].SectionIndex;
                    if (isCode.Contains(to) && reached.Add(to)) pending.Push(to);
                }
            }
        }
        return reached;
    }

    private static void RelocateCode(byte[] file, byte[] program, int sectionBase, Section target, ulong offset, uint type, Symbol sym,
        ulong k, Section rel, List<Section> sections, Dictionary<int, int> start, Dictionary<int, nint> dataAddress,
        Func<string, uint?>? helperByName, DataRelocator? relocateData,
        Dictionary<int, List<(string Name, ulong Offset, Maps.ElfMapDefinition Def)>> mapSections)
    {
        string where = $"relocation {k} of '{rel.Name}' (offset {offset}, symbol '{sym.Name}')";
        if (offset % 8 != 0 || offset + 8 > target.Size) throw Bad($"{where}: offset is outside '{target.Name}' or not at an instruction");
        int at = sectionBase + (int)offset;
        var insn = Instruction.Read(program, at / 8);
        switch (type)
        {
            case R_BPF_NONE:
                return;
            case R_BPF_64_64:
            {
                if (insn.Opcode != Isa.Lddw || offset + 16 > target.Size) throw Bad($"{where}: R_BPF_64_64 must apply to an lddw");
                if (mapSections.TryGetValue(sym.SectionIndex, out var declared))
                {
                    // A map: the lddw loads its fd (source 1), the map's index among the object's maps.
                    ulong at8 = sym.Value + (uint)insn.Imm;
                    var map = declared.FirstOrDefault(d => d.Offset == at8);
                    if (map.Name == null) throw Bad($"{where}: no map starts at offset {at8} of '{sections[sym.SectionIndex].Name}'");
                    new Instruction(Isa.Lddw, insn.Dst, Isa.PseudoMapFd, 0, map.Def.Index).WriteTo(program.AsSpan(at));
                    var hi = Instruction.Read(program, at / 8 + 1);
                    new Instruction(hi.Opcode, hi.Dst, hi.Src, hi.Offset, 0).WriteTo(program.AsSpan(at + 8));
                    return;
                }
                if (relocateData != null && sym.SectionIndex != SHN_UNDEF && sym.SectionIndex < sections.Count)
                {
                    var symSection = sections[sym.SectionIndex];
                    var bytes = symSection.Type == SHT_NOBITS ? Zeroes(symSection) : file.AsSpan((int)symSection.Offset, (int)symSection.Size).ToArray();
                    PatchLddw(program, at, insn.Dst, relocateData(bytes, sym.Name, sym.Value, sym.Size));
                    return;
                }
                if (sym.SectionIndex == SHN_UNDEF || !dataAddress.TryGetValue(sym.SectionIndex, out var block))
                {
                    string what = sym.SectionIndex < sections.Count && sym.SectionIndex != SHN_UNDEF ? $"section '{sections[sym.SectionIndex].Name}'" : "no loaded section";
                    throw Bad($"{where}: the symbol is in {what}, not in global data (maps are not supported)");
                }
                var dataSection = sections[sym.SectionIndex];
                ulong addend = (uint)insn.Imm;
                if (sym.Value + addend > dataSection.Size) throw Bad($"{where}: points past the end of '{dataSection.Name}'");
                PatchLddw(program, at, insn.Dst, (ulong)block + sym.Value + addend);
                return;
            }
            case R_BPF_64_32:
            {
                if (insn.Opcode != Isa.Call) throw Bad($"{where}: R_BPF_64_32 must apply to a call");
                if (sym.SectionIndex == SHN_UNDEF)
                {
                    uint? key = helperByName?.Invoke(sym.Name);
                    if (key == null) throw Bad($"{where}: call to undefined function '{sym.Name}': register a helper under that name first");
                    new Instruction(Isa.Call, 0, 0, 0, (int)key.Value).WriteTo(program.AsSpan(at));
                    return;
                }
                if (!start.TryGetValue(sym.SectionIndex, out int targetStart))
                    throw Bad($"{where}: calls into a section that holds no code");
                long byteTarget = (long)sym.Value + ((long)insn.Imm + 1) * 8;
                var targetSection = sections[sym.SectionIndex];
                if (byteTarget < 0 || byteTarget % 8 != 0 || (ulong)byteTarget >= targetSection.Size)
                    throw Bad($"{where}: call target {byteTarget} is outside '{targetSection.Name}'");
                int targetSlot = targetStart + (int)(byteTarget / 8);
                new Instruction(Isa.Call, 0, Isa.PseudoCallLocal, 0, targetSlot - (at / 8 + 1)).WriteTo(program.AsSpan(at));
                return;
            }
            case R_BPF_64_ABS64:
            case R_BPF_64_ABS32:
            case R_BPF_64_NODYLD32:
                throw Bad($"{where}: relocation type {type} does not apply to code");
            default:
                throw Bad($"{where}: unknown relocation type {type}");
        }
    }

    /// <summary>Makes the lddw at byte <paramref name="at"/> load <paramref name="value"/> (plain source, its second slot kept).</summary>
    private static void PatchLddw(byte[] program, int at, int dst, ulong value)
    {
        var hi = Instruction.Read(program, at / 8 + 1);
        new Instruction(Isa.Lddw, dst, 0, 0, (int)(uint)value).WriteTo(program.AsSpan(at));
        new Instruction(hi.Opcode, hi.Dst, hi.Src, hi.Offset, (int)(uint)(value >> 32)).WriteTo(program.AsSpan(at + 8));
    }

    private static unsafe void RelocateData(byte* block, Section target, ulong offset, uint type, Symbol sym, ulong k, Section rel,
        Dictionary<int, nint> dataAddress)
    {
        string where = $"relocation {k} of '{rel.Name}' (offset {offset}, symbol '{sym.Name}')";
        int width = type switch { R_BPF_64_ABS64 => 8, R_BPF_64_ABS32 or R_BPF_64_NODYLD32 => 4, R_BPF_NONE => 0, _ => -1 };
        if (width < 0) throw Bad($"{where}: relocation type {type} does not apply to data");
        if (width == 0) return;
        if (offset + (ulong)width > target.Size) throw Bad($"{where}: offset is outside '{target.Name}'");
        if (!dataAddress.TryGetValue(sym.SectionIndex, out var symBlock)) throw Bad($"{where}: the symbol is not in global data");
        if (width == 8)
        {
            ulong addend = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(block + offset, 8));
            BinaryPrimitives.WriteUInt64LittleEndian(new Span<byte>(block + offset, 8), (ulong)symBlock + sym.Value + addend);
        }
        else
        {
            throw Bad($"{where}: 32-bit absolute addresses of global data cannot hold a 64-bit host address");
        }
    }

    private static List<Section> ReadSections(byte[] f)
    {
        if (f.Length < 64) throw Bad($"file is {f.Length} bytes, shorter than an ELF header (64)");
        if (f[0] != 0x7f || f[1] != 'E' || f[2] != 'L' || f[3] != 'F') throw Bad("not an ELF file (bad magic)");
        if (f[4] != 2) throw Bad($"class {f[4]} is not ELFCLASS64");
        if (f[5] != 1) throw Bad($"data encoding {f[5]} is not little-endian");
        if (f[6] != 1) throw Bad($"identification version {f[6]} is not 1");
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(16));
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(18));
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(20));
        if (machine != EM_BPF) throw Bad($"machine {machine} is not EM_BPF ({EM_BPF})");
        if (type != 1 && type != 2) throw Bad($"type {type} is neither relocatable (1) nor executable (2)");
        if (version != 1) throw Bad($"version {version} is not 1");
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(f.AsSpan(40));
        ushort shentsize = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(58));
        ushort shnum = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(60));
        ushort shstrndx = BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(62));
        if (shnum == 0) throw Bad("no section headers");
        if (shentsize != 64) throw Bad($"section header size {shentsize} is not 64");
        if (shoff > (ulong)f.Length || (ulong)shnum * 64 > (ulong)f.Length - shoff) throw Bad($"section headers at {shoff} ({shnum} of them) run past the end of the file");
        if (shstrndx >= shnum) throw Bad($"section name table index {shstrndx} is not below {shnum}");
        if (shstrndx == 0) throw Bad("the section name table index is 0, the null section");
        var raw = new List<(uint Name, uint Type, ulong Flags, ulong Offset, ulong Size, uint Link, uint Info, ulong EntSize)>();
        for (int i = 0; i < shnum; i++)
        {
            var h = f.AsSpan((int)shoff + i * 64, 64);
            var entry = (BinaryPrimitives.ReadUInt32LittleEndian(h), BinaryPrimitives.ReadUInt32LittleEndian(h[4..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[8..]), BinaryPrimitives.ReadUInt64LittleEndian(h[24..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[32..]), BinaryPrimitives.ReadUInt32LittleEndian(h[40..]),
                BinaryPrimitives.ReadUInt32LittleEndian(h[44..]), BinaryPrimitives.ReadUInt64LittleEndian(h[56..]));
            if (entry.Item2 != SHT_NOBITS && i != 0 && (entry.Item4 > (ulong)f.Length || entry.Item5 > (ulong)f.Length - entry.Item4))
                throw Bad($"section {i} (offset {entry.Item4}, size {entry.Item5}) runs past the end of the file ({f.Length} bytes)");
            raw.Add(entry);
        }
        var names = raw[shstrndx];
        if (names.Type != SHT_STRTAB) throw Bad($"section name table (section {shstrndx}) is not a string table");
        var sections = new List<Section>();
        for (int i = 0; i < raw.Count; i++)
        {
            var r = raw[i];
            if (i == 0)
            {
                // Section 0 is the null section whatever its header says (SHN_UNDEF): never data,
                // symbols or names, so a forged header there is not read.
                sections.Add(new Section(0, "", 0, 0, 0, 0, 0, 0, 0));
                continue;
            }
            string name = ReadString(f, names.Offset, names.Size, r.Name, $"name of section {i}");
            sections.Add(new Section(i, name, r.Type, r.Flags, r.Offset, r.Size, r.Link, r.Info, r.EntSize));
        }
        return sections;
    }

    private static List<Symbol> ReadSymbols(byte[] f, List<Section> sections, Section symtab)
    {
        if (symtab.EntSize != 24) throw Bad($"symbol table entries are {symtab.EntSize} bytes, not 24");
        if (symtab.Link >= sections.Count || sections[(int)symtab.Link].Type != SHT_STRTAB) throw Bad("symbol table's string table is missing");
        var strtab = sections[(int)symtab.Link];
        var symbols = new List<Symbol>();
        for (ulong k = 0; k < symtab.Size / 24; k++)
        {
            var s = f.AsSpan((int)(symtab.Offset + k * 24), 24);
            uint nameIndex = BinaryPrimitives.ReadUInt32LittleEndian(s);
            byte info = s[4];
            ushort shndx = BinaryPrimitives.ReadUInt16LittleEndian(s[6..]);
            ulong value = BinaryPrimitives.ReadUInt64LittleEndian(s[8..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(s[16..]);
            int type = info & 0xf;
            if (shndx != SHN_UNDEF && shndx < 0xff00 && shndx >= sections.Count)
                throw Bad($"symbol {k} is in section {shndx}, which does not exist");
            string name = ReadString(f, strtab.Offset, strtab.Size, nameIndex, $"name of symbol {k}");
            if (type == STT_SECTION && name.Length == 0 && shndx < sections.Count) name = sections[shndx].Name;
            symbols.Add(new Symbol(name, type, shndx, value, size));
        }
        return symbols;
    }

    private static string ReadString(byte[] f, ulong tableOffset, ulong tableSize, uint index, string what)
    {
        if (index >= tableSize) throw Bad($"{what}: string index {index} is outside its table ({tableSize} bytes)");
        int startAt = (int)(tableOffset + index);
        int end = Array.IndexOf(f, (byte)0, startAt, (int)(tableSize - index));
        if (end < 0) throw Bad($"{what}: string at {index} is not terminated inside its table");
        return Encoding.UTF8.GetString(f, startAt, end - startAt);
    }
}
