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
        FixedLength = X64Compiler.FixedLength(target);
        var output = X64Compiler.Compile(program, helpers, options, unwindHelper, countInstructions, target);
        Code = output.Code;
        PcOffsets = output.PcOffsets;
        _memory = ExecutableMemory.Create(Code);
        MainEntry = (delegate* unmanaged<byte*, nuint, byte*, nuint, ulong*, JitExtra*, int>)(_memory.Address + output.MainEntry);
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
    public int[] PcOffsets { get; }
    /// <summary>Bytes of the fixed metadata buffer (0 unless a fixed-mbuff VM).</summary>
    public int FixedLength { get; }

    /// <summary>Whether a fixed-mbuff run needs the caller to bring the buffer (see <see cref="X64Compiler.InlineFixedLimit"/>).</summary>
    public bool NeedsFixedBuffer => FixedLength > X64Compiler.InlineFixedLimit;

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

    /// <summary>The x86-64 code, each eBPF instruction followed by the machine instructions made for it.</summary>
    public string Disassemble()
    {
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
}
