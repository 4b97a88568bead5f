using System.Text;
using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Jump threading of state machines in the JIT (<see cref="JumpThreading"/>): which programs are
/// threaded, that threaded code gives what the interpreter and unthreaded code give (clang's lexer
/// on many texts, random state machines), and that errors, interrupts and the instruction limit
/// behave as in unthreaded code.
/// </summary>
public class JumpThreadingTests
{
    private static readonly JitOptions Unthreaded = new() { ThreadJumps = false };

    private static byte[] Lexer => File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "elf", "ini_lexer.o"));

    /// <summary>tests/elf/ini_lexer.c, in C#.</summary>
    private static ulong LexIni(byte[] mem)
    {
        ulong sections = 0, keys = 0, values = 0, quoted = 0, escapes = 0, comments = 0, bad = 0;
        int state = 0; // LINE, SECTION, KEY, AFTER_KEY, VALUE, QUOTED, ESCAPED, COMMENT, BAD
        foreach (byte c in mem)
        {
            bool name = (byte)((c | 0x20) - 'a') < 26 || (byte)(c - '0') < 10 || c == '_' || c == '.';
            bool space = c == ' ' || c == '\t';
            switch (state)
            {
                case 0:
                    if (c == '[') { state = 1; sections++; }
                    else if (c == ';' || c == '#') { state = 7; comments++; }
                    else if (name) { state = 2; keys++; }
                    else if (!space && c != '\n') { state = 8; bad++; }
                    break;
                case 1:
                    if (c == ']') state = 7;
                    else if (c == '\n') { state = 0; bad++; }
                    break;
                case 2:
                    if (c == '=') state = 4;
                    else if (space) state = 3;
                    else if (!name) { state = c == '\n' ? 0 : 8; bad++; }
                    break;
                case 3:
                    if (c == '=') state = 4;
                    else if (!space) { state = c == '\n' ? 0 : 8; bad++; }
                    break;
                case 4:
                    if (c == '"') { state = 5; quoted++; }
                    else if (c == '\n') state = 0;
                    else if (!space) { values++; state = 7; }
                    break;
                case 5:
                    if (c == '\\') state = 6;
                    else if (c == '"') { state = 7; values++; }
                    else if (c == '\n') { state = 0; bad++; }
                    break;
                case 6:
                    escapes++;
                    state = 5;
                    break;
                default:
                    if (c == '\n') state = 0;
                    break;
            }
        }
        return sections | keys << 8 | values << 16 | quoted << 24 | escapes << 32 | comments << 40 | bad << 48 | (ulong)state << 56;
    }

    /// <summary>INI-like texts: fixed ones, then random lines from pieces (and random bytes).</summary>
    private static IEnumerable<byte[]> Texts()
    {
        yield return [];
        yield return "[main]\nkey = \"a\\\"b\"\n; c\nx=1\nbad!\n  y = 22\n[unterminated\n"u8.ToArray();
        yield return "# only a comment"u8.ToArray();
        string[] pieces = ["[core]", "name", " = ", "=", "\"quoted \\\" text\"", "\"open", "value", "; note", "# hash", "\n", "\t", " ", "!", "9x", "_a.b", "\\", "]"];
        var random = new Random(20261201);
        for (int t = 0; t < 60; t++)
        {
            var sb = new StringBuilder();
            int count = random.Next(1, 120);
            for (int k = 0; k < count; k++) sb.Append(pieces[random.Next(pieces.Length)]);
            yield return Encoding.ASCII.GetBytes(sb.ToString());
        }
        for (int t = 0; t < 10; t++)
        {
            var bytes = new byte[random.Next(1, 300)];
            random.NextBytes(bytes);
            yield return bytes;
        }
    }

    [Fact]
    public void ClangsLexerIsThreadedAndGivesWhatTheInterpreterGives()
    {
        var interpreted = EbpfVm.CreateFromElf(VmKind.Raw, Lexer);
        foreach (var text in Texts()) Assert.Equal(LexIni(text), interpreted.Execute(text.ToArray()));
        // The interpreter runs it threaded too (and observed runs, slot by slot, unthreaded).
        var (forInterpreter, origin) = interpreted.Decoded!.InterpreterThreaded!.Value;
        Assert.True(forInterpreter.Code.Length > interpreted.Decoded.Code.Length + 100, $"{forInterpreter.Code.Length} slots");
        Assert.Equal(forInterpreter.Code.Length, origin.Length);
        foreach (var text in Texts().Take(3))
        {
            Assert.Equal(RbpfErrorCode.Ok, interpreted.TryExecute(text.ToArray(), Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
            Assert.Equal(LexIni(text), observed);
        }
        if (!EbpfVm.IsJitSupported) return;
        var threaded = EbpfVm.CreateFromElf(VmKind.Raw, Lexer);
        threaded.JitCompile();
        var jit = threaded.JitForDirectCalls!;
        // The copies come after the program's own slots, which keep their numbers.
        Assert.True(jit.Compiled.Code.Length > jit.Program.Code.Length + 100, $"{jit.Compiled.Code.Length} slots");
        var plain = EbpfVm.CreateFromElf(VmKind.Raw, Lexer);
        plain.JitCompile(Unthreaded);
        Assert.Same(plain.JitForDirectCalls!.Program, plain.JitForDirectCalls.Compiled);
        foreach (var text in Texts())
        {
            ulong expected = LexIni(text);
            Assert.Equal(expected, threaded.ExecuteJit(text.ToArray()));
            Assert.Equal(expected, plain.ExecuteJit(text.ToArray()));
        }
    }

    [Fact]
    public void TheListingShowsTheCopiesAndTheSlotsTheyCopy()
    {
        if (!EbpfVm.IsJitSupported) return;
        var vm = EbpfVm.CreateFromElf(VmKind.Raw, Lexer);
        string listing = vm.JitListing(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.Arm64
            ? JitArchitecture.Arm64 : JitArchitecture.X64);
        int own = vm.Program!.Value.Length / 8;
        // "; 230: [57] mov64 r4, r1": a slot past the program's own, the slot it copies, that slot's text.
        var copies = System.Text.RegularExpressions.Regex.Matches(listing, @"^; +(\d+): \[(\d+)\] (.+)$", System.Text.RegularExpressions.RegexOptions.Multiline);
        Assert.True(copies.Count > 50, listing);
        var lines = Disassembler.DisassembleLines(vm.Program!.Value.ToArray()).ToDictionary(l => l.Slot, l => l.Text);
        foreach (System.Text.RegularExpressions.Match m in copies)
        {
            Assert.True(int.Parse(m.Groups[1].Value) > own);
            string text = m.Groups[3].Value;
            if (text.StartsWith("ja to ", StringComparison.Ordinal)) continue; // a jump the layout adds
            Assert.StartsWith(lines[int.Parse(m.Groups[2].Value)], text);
        }
    }

    // A state machine over the input: state 0 adds the byte and goes to 1, 1 goes to 2 or (on a
    // zero byte) back to 0, 2 reads byte 100 of the input and goes to 0.
    private const string ThreeStates = """
        mov r6, 0
        mov r7, 0
        mov r0, 0
        head:
        jge r7, r2, out
        mov r3, r1
        add r3, r7
        ldxb r4, [r3]
        add r7, 1
        jeq r6, 0, s0
        jeq r6, 1, s1
        jeq r6, 2, s2
        ja head
        s0:
        add r0, r4
        mov r6, 1
        ja head
        s1:
        mov r6, 2
        jne r4, 0, head
        mov r6, 0
        ja head
        s2:
        ldxb r5, [r1+100]
        add r0, r5
        mov r6, 0
        ja head
        out:
        exit
        """;

    [Fact]
    public void AFaultInACopyNamesTheSlotItCopies()
    {
        if (!EbpfVm.IsJitSupported) return;
        var prog = Assembler.Assemble(ThreeStates);
        var vm = EbpfVm.CreateRaw(prog);
        vm.JitCompile();
        Assert.True(vm.JitForDirectCalls!.Compiled.Code.Length > vm.JitForDirectCalls.Program.Code.Length);
        var input = new byte[] { 5, 7, 9, 11 }; // state 2 at the third byte: byte 100 is past the end
        var codeI = vm.TryExecute(input.ToArray(), Span<byte>.Empty, out _, out var errI);
        var codeJ = vm.TryExecuteJit(input.ToArray(), Span<byte>.Empty, out _, out var errJ);
        Assert.Equal(RbpfErrorCode.OutOfBounds, codeI);
        Assert.Equal(codeI, codeJ);
        int load = prog.Length / 8 - 5; // ldxb r5, [r1+100]
        Assert.Equal(load, errI!.InstructionIndex);
        Assert.Equal(load, errJ!.InstructionIndex);
        Assert.Equal(JitAgreement.Shape(errI.Message), JitAgreement.Shape(errJ.Message));
        Assert.Contains($"insn #{load}", errJ.Message);
        // The interpreter ran the threaded copy too; an observed (unthreaded) run says the same.
        Assert.NotNull(vm.Decoded!.InterpreterThreaded);
        Assert.Equal(RbpfErrorCode.OutOfBounds, vm.TryExecute(input.ToArray(), Span<byte>.Empty, (_, _) => { }, out _, out var errO));
        Assert.Equal(load, errO!.InstructionIndex);
        Assert.Equal(JitAgreement.Shape(errI.Message), JitAgreement.Shape(errO.Message));
        // Long enough: both engines agree on the sum.
        var longer = Enumerable.Range(1, 120).Select(k => (byte)(k % 5)).ToArray();
        Assert.Equal(vm.Execute(longer.ToArray()), vm.ExecuteJit(longer.ToArray()));
    }

    // Never ends: three states that follow each other in a ring; r0 counts the rounds.
    private const string Ring = """
        mov r6, 0
        mov r0, 0
        head:
        jeq r6, 0, s0
        jeq r6, 1, s1
        jeq r6, 2, s2
        ja head
        s0:
        mov r6, 1
        ja head
        s1:
        mov r6, 2
        ja head
        s2:
        add r0, 1
        mov r6, 0
        ja head
        """;

    [Fact]
    public void AThreadedLoopStillStopsWhenInterrupted()
    {
        if (!EbpfVm.IsJitSupported) return;
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(Ring + "\nexit"));
        vm.JitCompile();
        var jit = vm.JitForDirectCalls!;
        Assert.True(jit.Compiled.Code.Length > jit.Program.Code.Length);
        // The copies of the polled head poll too (every copy starts where its block does).
        Assert.True(jit.Compiled.ThreadedPolls!.Skip(jit.Program.Code.Length).Count(p => p) >= 3);
        RbpfException? error = null;
        var runner = new Thread(() =>
        {
            try { vm.ExecuteJit([]); }
            catch (RbpfException e) { error = e; }
        }) { IsBackground = true }; // if it never stops, it must not keep the test process alive
        runner.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew(); // monotonic: the wall clock may jump
        while (!runner.Join(20) && clock.Elapsed < TimeSpan.FromSeconds(30)) vm.Interrupt();
        Assert.False(runner.IsAlive, "the threaded loop did not stop");
        Assert.Equal(RbpfErrorCode.Interrupted, error!.Code);
        Assert.Equal("interrupted at insn #2", error.Message); // the head, as unthreaded code says
    }

    [Fact]
    public void AThreadedLoopStillStopsTheInterpreterWhenInterrupted()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(Ring + "\nexit"));
        Assert.NotNull(vm.Decoded!.InterpreterThreaded);
        RbpfException? error = null;
        var runner = new Thread(() =>
        {
            try { vm.Execute([]); }
            catch (RbpfException e) { error = e; }
        }) { IsBackground = true };
        runner.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew(); // monotonic: the wall clock may jump
        while (!runner.Join(20) && clock.Elapsed < TimeSpan.FromSeconds(30)) vm.Interrupt();
        Assert.False(runner.IsAlive, "the threaded loop did not stop");
        Assert.Equal(RbpfErrorCode.Interrupted, error!.Code);
        Assert.Equal("interrupted at insn #2", error.Message); // the head, not the copy the run was in
    }

    [Fact]
    public void CountedRunsAreNotThreaded()
    {
        if (!EbpfVm.IsJitSupported) return;
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(Ring + "\nexit"));
        vm.InstructionLimit = 1000;
        vm.JitCompile();
        Assert.Same(vm.JitForDirectCalls!.Program, vm.JitForDirectCalls.Compiled);
        var codeI = vm.TryExecute([], [], out _, out var errI);
        var codeJ = vm.TryExecuteJit([], [], out _, out var errJ);
        Assert.Equal(RbpfErrorCode.InstructionLimit, codeI);
        Assert.Equal(codeI, codeJ);
        Assert.Equal(errI!.Message, errJ!.Message);
    }

    [Fact]
    public void TheMachineFuzzTargetsSeedsAreThreaded()
    {
        // fuzz/run.sh machine starts from these: programs the JIT threads, or the campaign would test nothing new.
        foreach (var (name, data) in Rbpf.Fuzz.Seeds.For("machine", TestPaths.RepoRoot))
        {
            var (prog, _) = Rbpf.Fuzz.Targets.BuildMachine(data) ?? throw new Xunit.Sdk.XunitException($"{name} makes no program");
            Assert.True(JumpThreading.Apply(DecodedProgram.Decode(prog), VmKind.Raw) != null, name + "\n" + Disassembler.Disassemble(prog));
        }
    }

    [Fact]
    public void ADataRegisterComparedWithManyConstantsIsNotTakenForTheState()
    {
        // r4 (a byte) is compared with five constants but only ever given 0: no state register.
        var program = DecodedProgram.Decode(Assembler.Assemble("""
            mov r4, 0
            mov r0, 0
            ldxb r4, [r1]
            jeq r4, 10, +4
            jeq r4, 32, +3
            jeq r4, 9, +2
            jeq r4, 44, +1
            jeq r4, 59, +0
            mov r4, 0
            exit
            """));
        Assert.Null(JumpThreading.Apply(program, VmKind.Raw));
        Assert.NotNull(JumpThreading.Apply(DecodedProgram.Decode(Assembler.Assemble(Ring + "\nexit")), VmKind.NoData));
    }

    /// <summary>A random state machine over the input bytes: a compare tree on the state at the loop
    /// head, and per state some arithmetic and the next state (a constant, a select on the byte, the
    /// same state, or a value from the data). State values may be negative; each move and each
    /// compare is 32- or 64-bit at random, so decided compares meet sign and zero extension.</summary>
    private static string RandomMachine(Random random)
    {
        int states = random.Next(3, 7);
        var values = Enumerable.Range(0, states).Select(k => random.Next(4) == 0 ? -1 - k : k).ToArray();
        string s = $"r{random.Next(6, 10)}"; // the state
        string Mov(int k) => $"{(random.Next(2) == 0 ? "mov" : "mov32")} {s}, {values[k]}";
        string J(string op) => op + (random.Next(2) == 0 ? "" : "32");
        var sb = new StringBuilder();
        sb.AppendLine(Mov(random.Next(states)));
        sb.AppendLine("mov r5, 0\nmov r0, 0\nhead:\njge r5, r2, out\nmov r3, r1\nadd r3, r5\nldxb r4, [r3]\nadd r5, 1");
        // The tree: optionally a range split, a parity test or a signed split, then equality tests in random order.
        var order = Enumerable.Range(0, states).OrderBy(_ => random.Next()).ToList();
        switch (random.Next(4))
        {
            case 0:
                sb.AppendLine($"{J("jsgt")} {s}, {random.Next(-3, 4)}, +0");
                break;
            case 1:
                sb.AppendLine($"{J("jset")} {s}, 1, +0");
                break;
        }
        foreach (int k in order)
            sb.AppendLine(random.Next(4) == 0 ? $"{J("jne")} {s}, {values[k]}, +1\nja s{k}" : $"{J("jeq")} {s}, {values[k]}, s{k}");
        sb.AppendLine("ja head");
        for (int k = 0; k < states; k++)
        {
            sb.AppendLine($"s{k}:");
            for (int a = random.Next(0, 3); a > 0; a--)
                sb.AppendLine(random.Next(4) switch
                {
                    0 => "add r0, r4",
                    1 => $"xor r0, {random.Next(1, 1000)}",
                    2 => "stxdw [r10-8], r0\nldxw r0, [r10-8]",
                    _ => "mul r0, 3",
                });
            int next = random.Next(states), other = random.Next(states);
            switch (random.Next(5))
            {
                case 0: sb.AppendLine($"{Mov(next)}\nja head"); break;
                case 1: sb.AppendLine($"{Mov(next)}\njlt r4, {random.Next(256)}, head\n{Mov(other)}\nja head"); break;
                case 2: sb.AppendLine($"jeq r4, {random.Next(256)}, +2\n{Mov(next)}\nja head\n{Mov(other)}\nja head"); break;
                case 3: sb.AppendLine("ja head"); break; // stays
                default: sb.AppendLine($"mov {s}, r4\nand {s}, {(1 << random.Next(1, 4)) - 1}\nja head"); break; // from the data
            }
        }
        sb.AppendLine($"out:\nlsh {s}, 56\nxor r0, {s}\nexit");
        return sb.ToString();
    }

    [Fact]
    public void RandomStateMachinesGiveTheSameResultsThreadedOrNot()
    {
        if (!EbpfVm.IsJitSupported) return;
        // RBPF_THREADING_PROGRAMS=20000 (and RBPF_THREADING_SEED) run a longer campaign on demand.
        int programs = int.TryParse(Environment.GetEnvironmentVariable("RBPF_THREADING_PROGRAMS"), out int n) ? n : 150;
        var random = new Random(int.TryParse(Environment.GetEnvironmentVariable("RBPF_THREADING_SEED"), out int seed) ? seed : 1201);
        int threaded = 0;
        var options = new[] { JitOptions.Default, Unthreaded, new JitOptions { ConstantBlinding = true } };
        for (int p = 0; p < programs; p++)
        {
            string text = RandomMachine(random);
            if (Environment.GetEnvironmentVariable("RBPF_THREADING_LAST") is { } last) File.WriteAllText(last, $"{p}\n{text}");
            var prog = Assembler.Assemble(text);
            if (JumpThreading.Apply(DecodedProgram.Decode(prog), VmKind.Raw) != null) threaded++;
            for (int t = 0; t < 4; t++)
            {
                var mem = new byte[random.Next(0, 80)];
                random.NextBytes(mem);
                var (_, disagreements) = JitAgreement.Compare(prog, mem, options);
                Assert.True(disagreements.Count == 0, string.Join("\n", disagreements) + "\n" + text);
            }
        }
        Assert.True(threaded >= programs * 2 / 3, $"only {threaded} of {programs} threaded");
    }
}
