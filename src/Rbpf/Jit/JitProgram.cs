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
    /// <summary>Owns the native parts above and frees them when collected. A small object of its own,
    /// with no reference to managed data: a finalizable JitProgram would keep its VM, program and
    /// code arrays alive (and promoted) until the finalizer ran; this way only these few words wait.</summary>
    private readonly NativeParts _native = new();

    private sealed class NativeParts
    {
        public ExecutableMemory? Memory;
        public JitLink* Link;
        public Maps.MapDescriptor** MapTable;
        public ulong* MapRegions;
        public GCHandle Self;

        ~NativeParts()
        {
            Memory?.Dispose(); // null when the constructor failed before it
            if (Self.IsAllocated) Self.Free();
            NativeMemory.Free(Link);
            NativeMemory.Free(MapTable);
            NativeMemory.Free(MapRegions);
        }
    }
    /// <summary>On AArch64, what the code was compiled with (the blinding seed too), to list it again with text.</summary>
    private readonly Arm64Inputs? _arm64;
    /// <summary>An object of its own, made on AArch64 only (inline, the target would grow every program).</summary>
    private sealed record Arm64Inputs(JitOptions Options, long Unwind, bool Count, JitTarget Target, int Seed);

    public JitProgram(EbpfVm owner, DecodedProgram program, HelperTable helpers, JitOptions options, long unwindHelper,
        bool countInstructions, VmKind kind, int dataOffset, int dataEndOffset, ulong instructionLimit, StackLayout layout,
        bool batchEntry = false)
    {
        _inputs = (options, unwindHelper, countInstructions, kind, dataOffset, dataEndOffset, instructionLimit);
        Owner = owner;
        Layout = layout;
        Program = program;
        Helpers = helpers;
        _native.Link = _link = (JitLink*)NativeMemory.AllocZeroed((nuint)sizeof(JitLink));
        _native.Self = _self = GCHandle.Alloc(this, GCHandleType.Weak);
        _link->Program = GCHandle.ToIntPtr(_self);
        SetInstructionLimit(instructionLimit);
        (nint mapTable, int mapTableLength) = owner.BuildMapTable();
        _native.MapTable = _mapTable = (Maps.MapDescriptor**)mapTable;
        (nint mapRegions, int mapRegionCount) = owner.BuildMapRegions();
        _native.MapRegions = _mapRegions = (ulong*)mapRegions;
        var target = new JitTarget(kind, dataOffset, dataEndOffset, (nint)_link, layout.MaxFrames, layout.FullFrames,
            (nint)owner.InterruptWord, (nint)_mapTable, mapTableLength, (nint)_mapRegions, mapRegionCount, owner.KernelPacketLoads);
        FixedLength = target.FixedLength;
        (program, _origin) = JumpThreading.ForCompiling(program, kind, options, countInstructions); // state machines threaded
        Compiled = program;
        int mainEntry, batchEntryOffset = -1;
        if (ExecutableMemory.IsArm64)
        {
            _arm64 = new Arm64Inputs(options, unwindHelper, countInstructions, target, Random.Shared.Next());
            byte[] code;
            (code, PcOffsets, mainEntry, _) = Arm64.A64Compiler.Compile(program, helpers, options, unwindHelper, countInstructions, target, _arm64.Seed);
            _native.Memory = _memory = ExecutableMemory.Create(code);
        }
        else
        {
            SupportsBatch = X64Compiler.SupportsBatch(options, target);
            // The code is in this thread's assembler until it compiles again: straight into executable memory.
            var output = X64Compiler.Compile(program, helpers, options, unwindHelper, countInstructions, target, batchEntry);
            PcOffsets = output.PcOffsets;
            mainEntry = output.MainEntry;
            batchEntryOffset = output.BatchEntry;
            _native.Memory = _memory = ExecutableMemory.Create(output.Code);
        }
        MainEntry = (delegate* unmanaged<byte*, nuint, byte*, nuint, ulong*, JitExtra*, int>)(_memory.Address + mainEntry);
        DirectEntry = (nint)_memory.Address;
        if (batchEntryOffset >= 0) BatchEntry = (delegate* unmanaged<JitBatch*, int>)(_memory.Address + batchEntryOffset);
    }

    /// <summary>The VM this code was compiled for (its regions and bounds-check callback apply).</summary>
    public EbpfVm Owner { get; }

    /// <summary>The stack layout the code was compiled for.</summary>
    public StackLayout Layout { get; }
    public DecodedProgram Program { get; }

    /// <summary>What the code was compiled from: <see cref="Program"/>, or its threaded form (<see cref="JumpThreading"/>).</summary>
    internal DecodedProgram Compiled { get; }

    /// <summary>For each slot of <see cref="Compiled"/>, the slot of <see cref="Program"/> it comes from; null: the same.</summary>
    private readonly int[]? _origin;

    /// <summary>The slot of <see cref="Program"/> that a slot of the compiled code stands for (error messages).</summary>
    internal int OriginalSlot(int pc) => _origin is { } o && (uint)pc < (uint)o.Length ? o[pc] : pc;
    public HelperTable Helpers { get; }

    /// <summary>A copy of the machine code, read back from its executable memory (no other copy is kept).</summary>
    public byte[] Code => ExecutableBytes();

    /// <summary>Bytes of machine code.</summary>
    public int CodeLength => _memory.Length;

    /// <summary>The code as it sits in executable memory.</summary>
    internal byte[] ExecutableBytes()
    {
        var bytes = new ReadOnlySpan<byte>(_memory.Address, _memory.Length).ToArray();
        GC.KeepAlive(this); // the memory lives as long as this object
        return bytes;
    }
    public int[] PcOffsets { get; }
    /// <summary>Bytes of the fixed metadata buffer (0 unless a fixed-mbuff VM).</summary>
    public int FixedLength { get; }

    /// <summary>Whether a fixed-mbuff run needs the caller to bring the buffer (see <see cref="JitTarget.InlineFixedLimit"/>).</summary>
    public bool NeedsFixedBuffer => FixedLength > JitTarget.InlineFixedLimit;

    /// <summary>Entry taking a <see cref="JitExtra"/> (or null) after the five arguments of <see cref="DirectEntry"/>.</summary>
    public delegate* unmanaged<byte*, nuint, byte*, nuint, ulong*, JitExtra*, int> MainEntry { get; }

    /// <summary><c>int run(void *mem, size_t mem_len, void *mbuff, size_t mbuff_len, uint64_t *result)</c>, for C.</summary>
    public nint DirectEntry { get; }

    /// <summary><c>int batch(JitBatch *)</c>, or null when the code has no batch entry: code compiled for
    /// single runs (a VM compiles a twin with one, <see cref="WithBatchEntry"/>, when it first runs a
    /// batch), AArch64, the Microsoft convention, a fixed buffer the caller brings.</summary>
    public delegate* unmanaged<JitBatch*, int> BatchEntry { get; }

    /// <summary>For a twin with a batch entry: the program it was compiled from.</summary>
    public JitProgram? Source { get; set; }

    /// <summary>Whether this program can be compiled with a batch entry (<see cref="X64Compiler.SupportsBatch"/>).</summary>
    public bool SupportsBatch { get; }

    private readonly (JitOptions Options, long Unwind, bool Count, VmKind Kind, int DataOffset, int DataEndOffset, ulong Limit) _inputs;

    /// <summary>The same program compiled again with the same options, now with a batch entry.</summary>
    public JitProgram WithBatchEntry()
    {
        var i = _inputs;
        return new JitProgram(Owner, Program, Helpers, i.Options, i.Unwind, i.Count, i.Kind, i.DataOffset, i.DataEndOffset, i.Limit, Layout,
            batchEntry: true);
    }

    /// <summary>Runs the code once per input of <paramref name="batch"/> in one call (see <see cref="JitBatch"/>).</summary>
    public int RunBatch(JitBatch* batch)
    {
        int status = BatchEntry(batch);
        GC.KeepAlive(this);
        return status;
    }

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
    /// Nothing to free at once (see the class remarks). Code in the arena costs about what the
    /// managed objects around it do, so the collections those objects cause release it in step.
    /// Code on pages of its own costs a page and a mapping at least, outside the GC's view: after
    /// many megabytes of it, ask for a collection so finalizers release them.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Add(ref s_disposedBytes, _memory.OwnPages) > 16L << 20)
        {
            Interlocked.Exchange(ref s_disposedBytes, 0);
            GC.Collect();
        }
    }

    /// <summary>The machine code, each eBPF instruction followed by the machine instructions made for it.</summary>
    public string Disassemble() => _arm64 is { } a
        ? DisassembleArm64(a.Options, a.Unwind, a.Count, a.Target, a.Seed)
        : FormatListing(Program.Bytes, PcOffsets, DecodeX64(Code), Compiled, _origin);

    /// <summary>Each x86-64 instruction of <paramref name="code"/>: its offset and its text (Iced, NASM syntax).</summary>
    private static IEnumerable<(int Offset, string Text)> DecodeX64(byte[] code)
    {
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
        decoder.IP = 0;
        var formatter = new NasmFormatter();
        formatter.Options.FirstOperandCharIndex = 8;
        var output = new StringOutput();
        while (decoder.IP < (ulong)code.Length)
        {
            int offset = (int)decoder.IP;
            decoder.Decode(out var instr);
            formatter.Format(instr, output);
            yield return (offset, output.ToStringAndReset());
        }
    }

    /// <summary>
    /// The AArch64 listing: the program compiled again with the same options and blinding seed,
    /// this time keeping each instruction's text (checked to give the very bytes that run).
    /// </summary>
    private string DisassembleArm64(JitOptions options, long unwind, bool count, JitTarget target, int seed)
    {
        var output = Arm64.A64Compiler.Compile(Compiled, Helpers, options, unwind, count, target, seed, listing: true);
        if (!output.Code.AsSpan().SequenceEqual(Code))
            throw new RbpfException(RbpfErrorCode.Internal, "the AArch64 listing does not match the compiled code");
        return FormatListing(Program.Bytes, PcOffsets, output.Assembler.Lines(), Compiled, _origin);
    }

    /// <summary>
    /// A listing of either backend's code: each machine instruction (its offset and text) under the
    /// eBPF instructions whose code starts there. Several slots can start at one offset (a slot may
    /// emit nothing); the trailing slot marks where the exits and out-of-line code begin.
    /// </summary>
    /// <para>Slots past the program's own are the copies jump threading made: each is listed as the slot
    /// it copies (its jumps with their new targets), and the jumps it adds as such.</para>
    internal static string FormatListing(byte[] program, int[] pcOffsets, IEnumerable<(int Offset, string Text)> machine,
        DecodedProgram? compiled = null, int[]? origin = null)
    {
        var lines = Rbpf.Disassembler.DisassembleLines(program).ToDictionary(l => l.Slot, l => l.Text);
        var starts = new Dictionary<int, List<int>>(); // code offset -> the slots starting there, in order
        for (int pc = 0; pc < pcOffsets.Length; pc++)
            if (pcOffsets[pc] >= 0)
            {
                if (!starts.TryGetValue(pcOffsets[pc], out var at)) starts[pcOffsets[pc]] = at = new List<int>();
                at.Add(pc);
            }
        int lastPc = pcOffsets.Length - 1; // the trailing slot catches execution falling off the end
        var sb = new StringBuilder("; prologue\n");
        foreach (var (offset, text) in machine)
        {
            if (starts.TryGetValue(offset, out var pcs))
                foreach (int pc in pcs)
                {
                    if (pc == lastPc) sb.Append("; exits and out-of-line checks\n");
                    else if (origin != null && compiled != null && pc >= program.Length / Isa.InstructionSize + 1)
                    {
                        var insn = compiled.Code[pc];
                        string what = insn.Op == Op.Ja ? $"ja to {insn.Off}"
                            : lines.TryGetValue(origin[pc], out var copied) ? copied + (JumpThreading.IsConditional(insn.Op) ? $" (to {insn.Off})" : "") : "";
                        sb.Append($"; {pc,5}: [{origin[pc]}] {what}\n");
                    }
                    else if (lines.TryGetValue(pc, out var source)) sb.Append($"; {pc,5}: {source}\n");
                }
            sb.Append($"  {offset:x6}  {text}\n");
        }
        return sb.ToString();
    }
}
