using System.Text;
using Rbpf.Cbpf;
using Rbpf.Programs;

namespace Rbpf.Fuzz;

/// <summary>
/// One fuzz target per input a user controls. Each takes arbitrary bytes; an RbpfException is the
/// expected way to refuse them, anything else (another exception, a crash, a hang) is a bug.
/// Where two engines or a round trip must agree, the target checks that and throws
/// <see cref="DisagreementException"/> when they do not.
/// </summary>
public static class Targets
{
    /// <summary>A result that must not happen: two engines disagreeing, a round trip changing bytes.</summary>
    public sealed class DisagreementException(string message) : Exception(message);

    public static readonly string[] Names = { "asm", "disasm", "elf", "exec", "cbpf", "capture", "kernel", "machine" };

    public static void Run(string name, ReadOnlySpan<byte> data)
    {
        switch (name)
        {
            case "asm": Assemble(data); break;
            case "disasm": Disassemble(data); break;
            case "elf": Elf(data); break;
            case "exec": Execute(data); break;
            case "cbpf": Classic(data); break;
            case "capture": Captures(data); break;
            case "kernel": Kernel(data); break;
            case "machine": Machine(data); break;
            default: throw new ArgumentException($"unknown target '{name}' ({string.Join(", ", Names)})");
        }
    }

    /// <summary>Assembly text in every syntax: assembles or refuses; what assembles disassembles back to the same bytes.</summary>
    public static void Assemble(ReadOnlySpan<byte> data)
    {
        byte[] prog;
        try { prog = Assembler.Assemble(Encoding.UTF8.GetString(data)); }
        catch (RbpfException) { return; }
        foreach (var syntax in new[] { AsmSyntax.Rbpf, AsmSyntax.Llvm })
        {
            var back = Assembler.Assemble(Disassembler.Disassemble(prog, syntax, labels: true));
            if (!back.AsSpan().SequenceEqual(prog)) throw new DisagreementException($"{syntax} disassembly did not assemble back to the same bytes");
        }
    }

    /// <summary>Any bytes as a program: the disassembly (both syntaxes, labels or not) assembles back to them.</summary>
    public static void Disassemble(ReadOnlySpan<byte> data)
    {
        var prog = data[..(data.Length & ~7)].ToArray();
        foreach (var syntax in new[] { AsmSyntax.Rbpf, AsmSyntax.Llvm })
            foreach (bool labels in new[] { false, true })
            {
                var back = Assembler.Assemble(Disassembler.Disassemble(prog, syntax, labels));
                if (!back.AsSpan().SequenceEqual(prog)) throw new DisagreementException($"{syntax} (labels {labels}) did not round-trip");
            }
    }

    /// <summary>An ELF object (with maps and BTF): loads or refuses; what loads runs in both engines with a limit.</summary>
    public static void Elf(ReadOnlySpan<byte> data)
    {
        EbpfVm vm;
        try { vm = EbpfVm.CreateFromElf(VmKind.Raw, data); }
        catch (RbpfException) { return; }
        // Loaded is as far as a map of millions of entries goes: the state kept between the runs walks
        // every entry (15 million took 25 s a run, which the fuzzer reports as a hang).
        if (vm.MapsByFd.Values.Any(m => m.MaxEntries > 1 << 16)) return;
        // Both engines on this one VM, so its global data and map values sit at the same addresses
        // for both (a program may compute with them); what the first run changed is put back first.
        CompareEngines(vm, new byte[64], state: new ProgramState(vm));
    }

    /// <summary>What a program can change from one run to the next: its global data and its maps'
    /// entries. Taken before the first run, put back before the second.</summary>
    private sealed unsafe class ProgramState
    {
        private readonly List<byte[]> _data = new();
        private readonly List<(Maps.BpfMap Map, List<(byte[] Key, byte[] Value)> Entries)> _maps = new();

        public ProgramState(EbpfVm vm)
        {
            foreach (var r in vm.Elf?.DataRegions ?? [])
                _data.Add(new ReadOnlySpan<byte>((void*)r.Address, (int)r.Length).ToArray());
            foreach (var map in vm.MapsByFd.Values.Distinct())
            {
                if (map is Maps.ProgramArrayMap) continue;
                if (map is Maps.RingBufferMap ring) { ring.Reset(); continue; }
                _maps.Add((map, Entries(map)));
            }
        }

        private static List<(byte[], byte[])> Entries(Maps.BpfMap map)
        {
            var entries = new List<(byte[], byte[])>();
            var key = new byte[map.KeySize];
            bool first = true;
            while (entries.Count <= map.MaxEntries && map.TryGetNextKey(first ? ReadOnlySpan<byte>.Empty : key, key))
            {
                first = false;
                var value = new byte[map.ValueSize];
                if (map.TryLookup(key, value)) entries.Add(((byte[])key.Clone(), value));
            }
            return entries;
        }

        /// <summary>Whether two states hold the same bytes (map entries compared as sets: a hash map's order may differ).</summary>
        public bool SameAs(ProgramState other) =>
            _data.Count == other._data.Count && _data.Zip(other._data).All(p => p.First.AsSpan().SequenceEqual(p.Second))
            && _maps.Count == other._maps.Count
            && _maps.Zip(other._maps).All(p => Canonical(p.First.Entries).SequenceEqual(Canonical(p.Second.Entries)));

        private static IEnumerable<string> Canonical(List<(byte[] Key, byte[] Value)> entries) =>
            entries.Select(e => Convert.ToHexString(e.Key) + ":" + Convert.ToHexString(e.Value)).Order(StringComparer.Ordinal);

        public void Restore(EbpfVm vm)
        {
            var regions = vm.Elf?.DataRegions ?? [];
            for (int k = 0; k < regions.Count && k < _data.Count; k++)
                _data[k].CopyTo(new Span<byte>((void*)regions[k].Address, (int)regions[k].Length));
            foreach (var (map, entries) in _maps)
            {
                if (map.Type is not (Maps.MapType.Array or Maps.MapType.PerCpuArray))
                    foreach (var (key, _) in Entries(map)) map.TryDelete(key);
                foreach (var (key, value) in entries) map.Update(key, value);
            }
            foreach (var map in vm.MapsByFd.Values.Distinct())
                if (map is Maps.RingBufferMap ring) ring.Reset(); // records and positions as before the first run
        }
    }

    /// <summary>Bytecode, verified or not: both engines give the same outcome.</summary>
    public static void Execute(ReadOnlySpan<byte> data)
    {
        if (data.Length < 9) return;
        bool verify = (data[0] & 1) != 0;
        var prog = data[1..].ToArray();
        prog = prog[..(prog.Length & ~7)];
        var vm = new EbpfVm(VmKind.Raw);
        if (!verify) vm.SetVerifier(null);
        try { vm.SetProgram(prog); }
        catch (RbpfException) { return; }
        CompareEngines(vm, new byte[32]);
    }

    /// <summary>Runs <paramref name="vm"/>'s program in the interpreter, then in the JIT (with
    /// <paramref name="state"/> put back in between, when the program keeps any), and demands the same outcome.</summary>
    private static unsafe void CompareEngines(EbpfVm vm, byte[] input, ProgramState? state = null)
    {
        vm.InstructionLimit = 5000;
        if (!vm.HasHelper(1)) vm.RegisterHelper(1, (a, b, _, _, _) => a ^ b);
        // The helpers whose results change from call to call, made steady (bpf_ktime_get_ns, bpf_get_prandom_u32).
        vm.RegisterHelper(5, (_, _, _, _, _) => 1_000_000);
        vm.RegisterHelper(7, (_, _, _, _, _) => 0x2545f491);
        // One pinned input buffer and stack for both runs (reset in between), so that results made
        // from their addresses agree; one pair per call, since tests run the targets on several
        // threads at once.
        var memory = GC.AllocateArray<byte>(256, pinned: true);
        var stack = GC.AllocateArray<byte>(Isa.StackSize, pinned: true);
        RbpfErrorCode Run(bool jit, out ulong r0, out RbpfException? error, out byte[] after)
        {
            Array.Clear(memory);
            Array.Clear(stack);
            input.CopyTo(memory, 0);
            RbpfErrorCode code;
            fixed (byte* m = memory)
            fixed (byte* st = stack)
                code = jit
                    ? vm.TryExecuteJit(m, (nuint)input.Length, null, 0, st, (nuint)stack.Length, out r0, out error)
                    : vm.TryExecute(m, (nuint)input.Length, null, 0, st, (nuint)stack.Length, out r0, out error);
            after = memory[..input.Length];
            return code;
        }
        // With the limit first; a program that ends within it runs again without one, as the JIT
        // compiles differently when it counts nothing (blocks may then change shape).
        for (int round = 0; round < 2; round++)
        {
            if (round == 1)
            {
                vm.InstructionLimit = 0;
                state?.Restore(vm);
            }
            var codeI = Run(false, out ulong rI, out var eI, out var memI);
            var stateI = state == null ? null : new ProgramState(vm);
            state?.Restore(vm);
            try { vm.JitCompile(); }
            catch (RbpfException e) when (e.Code == RbpfErrorCode.Unsupported) { return; }
            var codeJ = Run(true, out ulong rJ, out var eJ, out var memJ);
            string limit = round == 0 ? "with a limit" : "without a limit";
            if (codeI != codeJ) throw new DisagreementException($"{limit}: interpreter {codeI} ({eI?.Message}), JIT {codeJ} ({eJ?.Message})");
            if (codeI == RbpfErrorCode.Ok && (rI != rJ || !memI.AsSpan().SequenceEqual(memJ)))
                throw new DisagreementException($"{limit}: interpreter r0 0x{rI:x}, JIT 0x{rJ:x}");
            if (codeI == RbpfErrorCode.Ok && stateI != null && !stateI.SameAs(new ProgramState(vm)))
                throw new DisagreementException($"{limit}: the engines left different global data or map entries");
            if (codeI is RbpfErrorCode.InstructionLimit or RbpfErrorCode.Interrupted) return; // it may not end without one
        }
    }

    /// <summary>
    /// A state machine, which the JIT threads (docs/engine.md, state machines): a loop over the input
    /// whose head tests a state register against each state's constant, and per state the fuzzer's
    /// bytecode followed by the next state. Byte 0 chooses the number of states and the register,
    /// byte 1 the input's length; then per state a length byte (in instructions), its bytecode and a
    /// byte choosing the way on (a constant, a select on the input byte, the same state, the byte
    /// itself, 32- or 64-bit). Run in both engines, with and without an instruction limit (the JIT
    /// threads only without one).
    /// </summary>
    public static void Machine(ReadOnlySpan<byte> data)
    {
        if (BuildMachine(data) is not var (prog, input)) return;
        var vm = new EbpfVm(VmKind.Raw);
        try { vm.SetProgram(prog); }
        catch (RbpfException) { return; }
        CompareEngines(vm, input);
    }

    /// <summary>The program and input of <see cref="Machine"/>, or null when the bytes make no program.</summary>
    public static (byte[] Program, byte[] Input)? BuildMachine(ReadOnlySpan<byte> data)
    {
        if (data.Length < 3) return null;
        int states = 3 + data[0] % 6;
        string x = $"r{6 + (data[0] >> 3) % 4}";
        var input = new byte[data[1] % 96];
        for (int k = 0; k < input.Length; k++) input[k] = (byte)(k * 29 + data[1]);
        int at = 2;
        var sb = new StringBuilder();
        sb.Append($"mov {x}, 0\nmov r5, 0\nmov r0, 0\nhead:\njge r5, r2, out\nmov r3, r1\nadd r3, r5\nldxb r4, [r3]\nadd r5, 1\n");
        for (int k = 0; k < states; k++) sb.Append($"jeq{(k % 2 == 0 ? "" : "32")} {x}, {k - 1}, s{k}\n");
        sb.Append("ja head\n");
        for (int k = 0; k < states; k++)
        {
            sb.Append($"s{k}:\n");
            int count = at < data.Length ? data[at++] % 6 : 0;
            int bytes = Math.Min(count * 8, data.Length - at);
            bytes &= ~7;
            if (bytes > 0)
            {
                sb.Append(Disassembler.Disassemble(data.Slice(at, bytes)));
                at += bytes;
            }
            byte way = at < data.Length ? data[at++] : (byte)0;
            string mov = (way & 8) != 0 ? "mov32" : "mov";
            int next = (way >> 4) % states - 1, other = (way >> 5) % states - 1;
            sb.Append((way & 7) switch
            {
                0 or 1 => $"{mov} {x}, {next}\nja head\n",
                2 => $"{mov} {x}, {next}\njlt r4, {way}, head\n{mov} {x}, {other}\nja head\n",
                3 => $"jeq r4, {way}, +2\n{mov} {x}, {next}\nja head\n{mov} {x}, {other}\nja head\n",
                4 => $"mov {x}, r4\nand {x}, 3\nja head\n",
                _ => "ja head\n",
            });
        }
        sb.Append($"out:\nlsh {x}, 56\nxor r0, {x}\nexit\n");
        try { return (Assembler.Assemble(sb.ToString()), input); }
        catch (RbpfException) { return null; } // a jump in the fuzzer's bytecode that leaves the program
    }

    /// <summary>A classic program (8-byte instructions): validates or refuses; what validates runs the same in both engines.</summary>
    public static void Classic(ReadOnlySpan<byte> data)
    {
        if (data.Length < 16) return;
        int packetLength = data[0];
        var code = data[1..];
        byte[] prog;
        try { prog = ClassicBpf.Translate(code[..(code.Length & ~7)]); }
        catch (RbpfException) { return; }
        var vm = EbpfVm.CreateRaw(prog);
        var packet = new byte[packetLength];
        for (int k = 0; k < packet.Length; k++) packet[k] = (byte)(k * 37 + 11);
        CompareEngines(vm, packet);
    }

    /// <summary>A pcap or pcapng file: reads or refuses.</summary>
    public static void Captures(ReadOnlySpan<byte> data)
    {
        try
        {
            var (link, packets) = Capture.Read(data);
            var back = Capture.Read(Capture.WritePcap(packets, link)).Packets;
            if (back.Count != packets.Count) throw new DisagreementException("a written capture read back with another packet count");
        }
        catch (RbpfException) { }
    }

    /// <summary>A kernel program (XDP, tc, socket) as bytecode: the context rewriter accepts or refuses; accepted ones run in both engines.</summary>
    public static void Kernel(ReadOnlySpan<byte> data)
    {
        if (data.Length < 9) return;
        var type = (data[0] % 3) switch { 0 => ProgramType.Xdp, 1 => ProgramType.SchedCls, _ => ProgramType.SocketFilter };
        var prog = data[1..].ToArray();
        prog = prog[..(prog.Length & ~7)];
        var vm = EbpfVm.ForProgramType(type);
        try { vm.SetProgram(prog); }
        catch (RbpfException) { return; }
        vm.InstructionLimit = 5000;
        // One pinned frame buffer for the four runs, so that results derived from its address agree;
        // one per call, since tests run this target on several threads at once (a shared static
        // buffer let one thread's program write the frame another was reading).
        var f = GC.AllocateArray<byte>(64, pinned: true);
        ulong Run(bool jit)
        {
            Array.Clear(f);
            try
            {
                return type == ProgramType.Xdp
                    ? (jit ? vm.ExecuteXdpJit(f) : vm.ExecuteXdp(f)).Result
                    : vm.ExecuteSkb(f, jit: jit).Result;
            }
            catch (RbpfException e) { return 0xdead_0000UL | (uint)(-(int)e.Code); }
        }
        // A result made from r10 is a stack address, which differs between the engines (each has
        // its stack where its own frames put it): each engine runs at two stack depths, and such a
        // result must move with the stack by the same amount in both.
        // The context sits in the caller's frame too, and a program may compute with its address in
        // any way (shift by it, loop on it): the .NET runtime recompiling a caller between the runs
        // (tiered compilation) moves it by a few bytes. A disagreement is therefore checked twice
        // more; a real one persists, one made by such a move does not.
        vm.JitCompile();
        for (int attempt = 1; ; attempt++)
        {
            ulong interp = Deeper(0, () => Run(false)), interpDeeper = Deeper(4096, () => Run(false));
            ulong jitted = Deeper(0, () => Run(true)), jittedDeeper = Deeper(4096, () => Run(true));
            if (interp == interpDeeper ? interp == jitted : interp - interpDeeper == jitted - jittedDeeper) return;
            // A result made from r10 in another way than adding to it (a shift by it, a mask of its low
            // bits) differs between the engines, whose frames sit at different addresses, even where a
            // move of 4 KiB leaves it as it was; the engines cannot be compared on it.
            if (!MovesWithTheStack(() => Run(false), interp)) return;
            if (attempt == 3)
                throw new DisagreementException($"interpreter 0x{interp:x} (0x{interpDeeper:x} 4 KiB deeper), JIT 0x{jitted:x} (0x{jittedDeeper:x})");
        }
    }

    /// <summary>Whether <paramref name="run"/>'s result (<paramref name="here"/> where it is) does not
    /// depend on where the stack is, or moves with it in step: the same change for each 16 bytes the
    /// stack moves, over moves of 16 bytes to 16 KiB.</summary>
    private static bool MovesWithTheStack(Func<ulong> run, ulong here)
    {
        ulong step = Deeper(16, run) - here;
        for (int bytes = 32; bytes <= 16384; bytes *= 2)
            if (Deeper(bytes, run) - here != step * (ulong)(bytes / 16)) return false;
        return true;
    }

    /// <summary>Runs <paramref name="run"/> with <paramref name="bytes"/> more of this thread's stack in use.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static unsafe ulong Deeper(int bytes, Func<ulong> run)
    {
        byte* pad = stackalloc byte[bytes + 16];
        pad[0] = 1;
        ulong r = run();
        GC.KeepAlive((nint)pad);
        return r;
    }
}
