using System.Text;
using Iced.Intel;

namespace Rbpf.Jit;

/// <summary>
/// A JIT-compiled program: its executable memory and where each eBPF slot's code starts. The memory
/// is released only when no execution is running it, so disposing while another thread executes
/// is safe.
/// </summary>
internal sealed unsafe class JitProgram : IDisposable
{
    private readonly ExecutableMemory _memory;
    private int _active;
    private int _disposed;

    public JitProgram(DecodedProgram program, HelperTable helpers, JitOptions options, long unwindHelper, bool countInstructions)
    {
        Program = program;
        Options = options;
        CountsInstructions = countInstructions;
        var output = X64Compiler.Compile(program, helpers, options, unwindHelper, countInstructions);
        Code = output.Code;
        PcOffsets = output.PcOffsets;
        // Only programs that call managed helpers (or callx) need the per-thread helper table.
        UsesManagedHelpers = program.Code.Any(i => i.Op == Op.CallX ||
            (i.Op == Op.Call && i.Off >= 0 && helpers.BySlot(i.Off).Native == null));
        _memory = ExecutableMemory.Create(Code);
    }

    public DecodedProgram Program { get; }
    public JitOptions Options { get; }
    public byte[] Code { get; }
    public int[] PcOffsets { get; }
    public bool UsesManagedHelpers { get; }
    public bool CountsInstructions { get; }

    /// <summary>The eBPF slot whose code contains the call that returns to <paramref name="returnAddress"/>.</summary>
    public int PcAt(ulong returnAddress)
    {
        long offset = (long)(returnAddress - (ulong)_memory.Address) - 1;
        int best = 0;
        for (int pc = 0; pc < PcOffsets.Length; pc++)
            if (PcOffsets[pc] >= 0 && PcOffsets[pc] <= offset) best = pc;
        return best;
    }

    /// <summary>Runs the code; false when the program was disposed meanwhile.</summary>
    public bool TryRun(JitContext* ctx, out int status)
    {
        Interlocked.Increment(ref _active);
        try
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                status = 0;
                return false;
            }
            status = ((delegate* unmanaged<JitContext*, int>)_memory.Address)(ctx);
            return true;
        }
        finally
        {
            if (Interlocked.Decrement(ref _active) == 0 && Volatile.Read(ref _disposed) != 0) Release();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (Volatile.Read(ref _active) == 0) Release();
    }

    private readonly object _releaseGate = new();

    private void Release()
    {
        lock (_releaseGate)
        {
            if (Volatile.Read(ref _active) == 0) _memory.Dispose();
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
