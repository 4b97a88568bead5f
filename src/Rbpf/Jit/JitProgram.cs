using System.Runtime.InteropServices;
using System.Text;
using Iced.Intel;

namespace Rbpf.Jit;

/// <summary>
/// A JIT-compiled program: its executable memory, where each eBPF slot's code starts, and the
/// <see cref="JitLink"/> its code points at. Runs need no bookkeeping: whoever runs the code holds a
/// reference to this object (a managed caller on its stack, the VM for C callers), and the memory is
/// released by finalization once nothing does. So disposing, or replacing the code, while another
/// thread still runs it is safe, and a run costs no atomic operation.
/// </summary>
internal sealed unsafe class JitProgram : IDisposable
{
    private readonly ExecutableMemory _memory;
    private readonly JitLink* _link;
    /// <summary>The VM's bound maps when this was compiled, by fd (descriptors), for inline lookups; null when none.</summary>
    private readonly Maps.MapDescriptor** _mapTable;
    /// <summary>The bound maps' program memory as (start, length) pairs, for the inline part of out-of-line checks; null when none.</summary>
    private readonly ulong* _mapRegions;
    private GCHandle _self;
    /// <summary>On AArch64, what the code was compiled with (the blinding seed too), to list it again with text.</summary>
    private readonly (JitOptions Options, long Unwind, bool Count, JitTarget Target, int Seed)? _arm64;

    public JitProgram(EbpfVm owner, DecodedProgram program, HelperTable helpers, JitOptions options, long unwindHelper,
        bool countInstructions, VmKind kind, int dataOffset, int dataEndOffset, ulong instructionLimit, StackLayout layout)
    {
        Owner = owner;
        Layout = layout;
        Program = program;
        Helpers = helpers;
        _link = (JitLink*)NativeMemory.AllocZeroed((nuint)sizeof(JitLink));
        _self = GCHandle.Alloc(this, GCHandleType.Weak);
        _link->Program = GCHandle.ToIntPtr(_self);
        SetInstructionLimit(instructionLimit);
        (nint mapTable, int mapTableLength) = owner.BuildMapTable();
        _mapTable = (Maps.MapDescriptor**)mapTable;
        (nint mapRegions, int mapRegionCount) = owner.BuildMapRegions();
        _mapRegions = (ulong*)mapRegions;
        var target = new JitTarget(kind, dataOffset, dataEndOffset, (nint)_link, layout.MaxFrames, layout.FullFrames,
            (nint)owner.InterruptWord, (nint)_mapTable, mapTableLength, (nint)_mapRegions, mapRegionCount, owner.KernelPacketLoads);
        FixedLength = target.FixedLength;
        int mainEntry;
        if (ExecutableMemory.IsArm64)
        {
            _arm64 = (options, unwindHelper, countInstructions, target, Random.Shared.Next());
            var output = Arm64.A64Compiler.Compile(program, helpers, options, unwindHelper, countInstructions, target, _arm64.Value.Seed);
            Code = output.Code;
            PcOffsets = output.PcOffsets;
            mainEntry = output.MainEntry;
        }
        else
        {
            var output = X64Compiler.Compile(program, helpers, options, unwindHelper, countInstructions, target);
            Code = output.Code;
            PcOffsets = output.PcOffsets;
            mainEntry = output.MainEntry;
        }
        _memory = ExecutableMemory.Create(Code);
        MainEntry = (delegate* unmanaged<byte*, nuint, byte*, nuint, ulong*, JitExtra*, int>)(_memory.Address + mainEntry);
        DirectEntry = (nint)_memory.Address;
    }

    ~JitProgram()
    {
        if (_self.IsAllocated) _self.Free();
        NativeMemory.Free(_link);
        NativeMemory.Free(_mapTable);
        NativeMemory.Free(_mapRegions);
    }

    /// <summary>The VM this code was compiled for (its regions and bounds-check callback apply).</summary>
    public EbpfVm Owner { get; }

    /// <summary>The stack layout the code was compiled for.</summary>
    public StackLayout Layout { get; }
    public DecodedProgram Program { get; }
    public HelperTable Helpers { get; }
    public byte[] Code { get; }

    /// <summary>The code as it sits in executable memory (tests read it back: it must be <see cref="Code"/>).</summary>
    internal byte[] ExecutableBytes() => new ReadOnlySpan<byte>(_memory.Address, _memory.Length).ToArray();
    public int[] PcOffsets { get; }
    /// <summary>Bytes of the fixed metadata buffer (0 unless a fixed-mbuff VM).</summary>
    public int FixedLength { get; }

    /// <summary>Whether a fixed-mbuff run needs the caller to bring the buffer (see <see cref="JitTarget.InlineFixedLimit"/>).</summary>
    public bool NeedsFixedBuffer => FixedLength > JitTarget.InlineFixedLimit;

    /// <summary>Entry taking a <see cref="JitExtra"/> (or null) after the five arguments of <see cref="DirectEntry"/>.</summary>
    public delegate* unmanaged<byte*, nuint, byte*, nuint, ulong*, JitExtra*, int> MainEntry { get; }

    /// <summary><c>int run(void *mem, size_t mem_len, void *mbuff, size_t mbuff_len, uint64_t *result)</c>, for C.</summary>
    public nint DirectEntry { get; }

    /// <summary>Follows the VM's instruction limit (code counts only if compiled with a limit).</summary>
    public void SetInstructionLimit(ulong limit) =>
        _link->Budget = limit == 0 || limit > long.MaxValue ? long.MaxValue : (long)limit;

    /// <summary>Runs the code: 0, or an error code with the error in <see cref="JitRuntime.TakeFailure"/>.</summary>
    public int Run(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength, ulong* result, JitExtra* extra)
    {
        int status = MainEntry(mem, memLength, mbuff, mbuffLength, result, extra);
        GC.KeepAlive(this); // the code and its link live as long as this object
        return status;
    }

    private static long s_disposedBytes;

    /// <summary>
    /// Nothing to free at once (see the class remarks), but the code's pages are outside the GC's
    /// view: after many megabytes of disposed code, ask for a collection so finalizers release them.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Add(ref s_disposedBytes, Code.Length + 4096) > 16L << 20)
        {
            Interlocked.Exchange(ref s_disposedBytes, 0);
            GC.Collect();
        }
    }

    /// <summary>The machine code, each eBPF instruction followed by the machine instructions made for it.</summary>
    public string Disassemble()
    {
        if (_arm64 is { } a) return DisassembleArm64(a.Options, a.Unwind, a.Count, a.Target, a.Seed);
        var lines = Rbpf.Disassembler.DisassembleLines(Program.Bytes).ToDictionary(l => l.Slot, l => l.Text);
        var starts = new SortedDictionary<int, int>(); // code offset -> pc
        for (int pc = 0; pc < PcOffsets.Length; pc++)
            if (PcOffsets[pc] >= 0 && !starts.ContainsKey(PcOffsets[pc])) starts[PcOffsets[pc]] = pc;
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(Code));
        decoder.IP = 0;
        var formatter = new NasmFormatter();
        formatter.Options.FirstOperandCharIndex = 8;
        var output = new StringOutput();
        var sb = new StringBuilder();
        int lastPc = PcOffsets.Length - 1; // the trailing slot catches execution falling off the end
        sb.Append("; prologue\n");
        while (decoder.IP < (ulong)Code.Length)
        {
            int offset = (int)decoder.IP;
            // Several slots can start at one offset (a tail slot emits nothing); show them all.
            foreach (var kv in starts.Where(kv => kv.Key == offset))
            {
                int pc = kv.Value;
                if (pc == lastPc) sb.Append("; exits and out-of-line checks\n");
                else
                {
                    for (int p = pc; p < PcOffsets.Length && PcOffsets[p] == offset && p != lastPc; p++)
                        if (lines.TryGetValue(p, out var text)) sb.Append($"; {p,5}: {text}\n");
                }
            }
            decoder.Decode(out var instr);
            formatter.Format(instr, output);
            sb.Append($"  {offset:x6}  {output.ToStringAndReset()}\n");
        }
        return sb.ToString();
    }

    /// <summary>
    /// The AArch64 listing: the program compiled again with the same options and blinding seed,
    /// this time keeping each instruction's text (checked to give the very bytes that run).
    /// </summary>
    private string DisassembleArm64(JitOptions options, long unwind, bool count, JitTarget target, int seed)
    {
        var output = Arm64.A64Compiler.Compile(Program, Helpers, options, unwind, count, target, seed, listing: true);
        if (!output.Code.AsSpan().SequenceEqual(Code))
            throw new RbpfException(RbpfErrorCode.Internal, "the AArch64 listing does not match the compiled code");
        return FormatListing(Program, PcOffsets, Code.Length, output.Assembler.Text(relative: false), Rbpf.Disassembler.DisassembleLines(Program.Bytes));
    }

    /// <summary>An AArch64 listing with each eBPF instruction before its code (shared with the tests).</summary>
    internal static string FormatListing(DecodedProgram program, int[] pcOffsets, int codeLength, string[] text,
        IEnumerable<Rbpf.Disassembler.Line> source)
    {
        var lines = source.ToDictionary(l => l.Slot, l => l.Text);
        var sb = new StringBuilder();
        int lastPc = pcOffsets.Length - 1;
        var starts = new Dictionary<int, List<int>>();
        for (int pc = 0; pc < pcOffsets.Length; pc++)
            if (pcOffsets[pc] >= 0)
            {
                if (!starts.TryGetValue(pcOffsets[pc], out var l)) starts[pcOffsets[pc]] = l = new List<int>();
                l.Add(pc);
            }
        sb.Append("; prologue\n");
        for (int k = 0; k < text.Length; k++)
        {
            if (starts.TryGetValue(4 * k, out var pcs))
                foreach (int pc in pcs)
                {
                    if (pc == lastPc) sb.Append("; exits and out-of-line checks\n");
                    else if (lines.TryGetValue(pc, out var t)) sb.Append($"; {pc,5}: {t}\n");
                }
            sb.Append($"  {4 * k:x6}  {text[k]}\n");
        }
        return sb.ToString();
    }
}
