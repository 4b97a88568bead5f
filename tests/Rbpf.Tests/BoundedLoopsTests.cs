using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Loops of raw programs that go round at most once per input byte, whose heads the JIT does not
/// poll for interrupts (<see cref="BoundedLoops"/>): which heads qualify, the listing, and random
/// loops: every one said to be bounded must end within its bound in the interpreter, on every
/// input length.
/// </summary>
public class BoundedLoopsTests
{
    /// <summary>The slots left unpolled, as a list.</summary>
    private static int[] Unpolled(string text)
    {
        var program = DecodedProgram.Decode(Assembler.Assemble(text));
        var facts = InputBounds.Analyze(program.Code);
        var unpolled = facts == null ? null : BoundedLoops.Find(program.Code, program.PollPoints, facts);
        return unpolled == null ? Array.Empty<int>() : Enumerable.Range(0, unpolled.Length).Where(pc => unpolled[pc]).ToArray();
    }

    private const string ByteLoop = "jeq r2, 0, out\nmov r7, 0\nhead:\nmov r3, r1\nadd r3, r7\nldxb r4, [r3]\nadd r0, r4\nadd r7, 1\n{0}\nout:\nexit";

    [Theory]
    // i < len, i counted up by one: the head (slot 2) needs no poll, whichever way the comparison is written.
    [InlineData("jlt r7, r2, head", new[] { 2 })]
    [InlineData("jle r7, r2, head", new[] { 2 })]
    [InlineData("jgt r2, r7, head", new[] { 2 })]
    [InlineData("jge r2, r7, head", new[] { 2 })]
    [InlineData("jge r7, r2, out\nja head", new[] { 2 })]
    [InlineData("jgt r7, r2, out\nja head", new[] { 2 })]
    [InlineData("jlt r2, r7, out\nja head", new[] { 2 })]
    [InlineData("jle r2, r7, out\nja head", new[] { 2 })]
    // The wrong side of the comparison, a 32-bit comparison, a constant bound, another register compared: polled.
    [InlineData("jge r7, r2, head", new int[0])]
    [InlineData("jlt32 r7, r2, head", new int[0])]
    [InlineData("jlt r7, 1000, head", new int[0])]
    [InlineData("jlt r4, r2, head", new int[0])]
    // The index moved back by one each round and at most L at the head (the comparison keeps it so):
    // it cannot pass 0 without leaving the loop, so at most L + 1 rounds.
    [InlineData("sub r7, 2\njlt r7, r2, head", new[] { 2 })]
    // The index not moved on one path; r2 or the index overwritten; a call in the body: polled.
    [InlineData("jeq r4, 7, +1\nadd r7, 1\nsub r7, 1\njlt r7, r2, head", new int[0])]
    [InlineData("mov r2, 100\njlt r7, r2, head", new int[0])]
    [InlineData("ldxb r7, [r3]\njlt r7, r2, head", new int[0])]
    [InlineData("call 1\njlt r7, r2, head", new int[0])]
    // Two paths through the body, both moving the index on by one.
    [InlineData("jeq r4, 7, +2\nadd r5, 2\nja +1\nadd r5, 1\njlt r7, r2, head", new[] { 2 })]
    // Two paths moving it on by different steps compare different distances (i + 3, i + 2): not recognised.
    [InlineData("jeq r4, 7, +2\nadd r7, 2\nja +1\nadd r7, 1\njlt r7, r2, head", new int[0])]
    // Two jumps back comparing different distances (i + 1 and i + 2 against L): not recognised (polled).
    [InlineData("mov r5, r7\nadd r5, 1\njlt r5, r2, head\nmov r5, r7\nadd r5, 2\njlt r5, r2, head", new int[0])]
    public void FindsTheLoopsThatGoRoundAtMostOncePerInputByte(string tail, int[] expected)
    {
        Assert.Equal(expected, Unpolled(string.Format(ByteLoop, tail)));
    }

    [Theory]
    // clang's checksum loop: r3 and r4 hold the index (the same value at the head), r5 = r4 + 3 is compared.
    [InlineData("mov r0, 0\nmov r3, 0\njlt r2, 2, +13\nmov r4, 0\nmov r0, 0\nmov r3, 0\nmov r5, r1\nadd r5, r4\nldxh r5, [r5+0]\nbe16 r5\nadd r0, r5\nadd r3, 2\nmov r5, r4\nadd r5, 3\nmov r4, r3\njlt r5, r2, -10\nexit", new[] { 6 })]
    // Two heads, as clang lays out a state machine: every round passes b, which is bounded, and some pass a
    // first: neither needs a poll.
    [InlineData("jeq r2, 0, out\nmov r7, 0\nja body\na:\nadd r5, 1\nb:\nadd r7, 1\njlt r7, r2, body\nexit\nbody:\nmov r3, r1\nadd r3, r7\nldxb r4, [r3]\njeq r4, 3, a\nja b\nout:\nexit", new[] { 3, 4 })]
    // Frames of 64 bytes: off + 64 <= len, tested before going round.
    [InlineData("mov r7, 64\nhead:\nmov r3, r1\nadd r3, r7\nldxb r4, [r3-64]\nadd r0, r4\nadd r7, 64\njgt r7, r2, +1\nja head\nexit", new[] { 1 })]
    // A bounded loop inside an endless one: the inner head needs no poll only if every way back to it
    // moves the index on; here the outer loop sets it back to 0, so both heads are polled.
    [InlineData("outer:\nmov r7, 0\ninner:\nadd r7, 1\njlt r7, r2, inner\nja outer", new int[0])]
    // An endless loop around one over the input that does not set its index back: the way back to the
    // inner head through the outer loop does not test the index against the length, so both are polled.
    [InlineData("mov r7, 0\nouter:\nadd r0, 1\njeq r0, 0, +3\ninner:\nadd r7, 1\njlt r7, r2, inner\nja outer\nexit", new int[0])]
    // With the outer way back testing it too, every way back to the inner head moves the index on and
    // tests it: bounded, and so is the outer head, whose every cycle passes the inner one.
    [InlineData("mov r7, 0\nouter:\nadd r0, 1\njeq r0, 0, +4\ninner:\nadd r7, 1\njlt r7, r2, inner\njlt r7, r2, outer\nexit\nexit", new[] { 1, 3 })]
    // An inner loop of its own (bounded by a constant) inside a loop over the input: the outer body is not
    // acyclic without its head, so it is polled, and so is the inner one.
    [InlineData("mov r7, 0\nhead:\nmov r8, 0\nin:\nadd r8, 1\njlt r8, 3, in\nadd r7, 1\njlt r7, r2, head\nexit", new int[0])]
    // A loop over the input, then one bounded by a constant: only the first head goes unpolled.
    [InlineData("mov r7, 0\nhead:\nadd r7, 1\njlt r7, r2, head\nmov r8, 0\nspin:\nadd r8, 1\njlt r8, 5, spin\nexit", new[] { 1 })]
    // An index that does not move (add 0) never gets anywhere: polled.
    [InlineData("mov r7, r2\nrsh r7, 1\nhead:\nadd r0, r7\nadd r7, 0\nmov r5, r7\nadd r5, 1\njlt r5, r2, head\nexit", new int[0])]
    // A second way back that tests nothing (r6 is 0: it always goes round): polled.
    [InlineData("mov r7, 0\nmov r6, 0\nhead:\nadd r7, 1\nmov r5, r7\njlt r5, r2, head\njeq r6, 0, head\nexit", new int[0])]
    // Two paths meet before the way back, one of them past the test and one not (and processed after it): polled.
    [InlineData("mov r7, 0\nmov r6, 0\nhead:\nadd r7, 1\njeq r6, 0, side\nmov r5, r7\njgt r5, r2, out\njoin:\nja head\nside:\nadd r0, 1\nja join\nout:\nexit", new int[0])]
    // A local function's loop: r2 is not known to hold the length there.
    [InlineData("call f\nexit\nf:\nmov r7, 0\nhead:\nadd r7, 1\njlt r7, r2, head\nexit", new int[0])]
    // Counting down from L to 0: at most L at the head, one less every round: bounded.
    [InlineData("mov r7, r2\njeq r7, 0, out\nhead:\nadd r0, 1\nsub r7, 1\njne r7, 0, head\nout:\nexit", new[] { 2 })]
    [InlineData("mov r7, r2\nrsh r7, 2\njeq r7, 0, out\nhead:\nadd r0, 1\nsub r7, 1\njgt r7, 0, head\nout:\nexit", new[] { 3 })]
    // Counting down past 0 (from L to 5, L may be less; or never tested): it wraps, so polled.
    [InlineData("mov r7, r2\nhead:\nadd r0, 1\nsub r7, 1\njne r7, 5, head\nexit", new int[0])]
    [InlineData("mov r7, r2\nhead:\nsub r7, 1\nja head", new int[0])]
    // Counting down from a constant: not known to be at most L (L may be 0), so polled.
    [InlineData("mov r7, 1000\nhead:\nsub r7, 1\njne r7, 0, head\nexit", new int[0])]
    public void FindsBoundedLoopsInWholePrograms(string text, int[] expected)
    {
        Assert.Equal(expected, Unpolled(text));
    }

    /// <summary>The slots the JIT polls at, as a list.</summary>
    private static int[] Polls(string text)
    {
        var program = DecodedProgram.Decode(Assembler.Assemble(text));
        var polls = BoundedLoops.PollsFor(program, VmKind.Raw, InputBounds.Analyze(program.Code));
        return Enumerable.Range(0, polls.Length).Where(pc => polls[pc]).ToArray();
    }

    private const string Nest = "mov r3, r2\nrsh r3, 2\njlt r2, 8, out\nmov r4, 1\nouter:\nmov r7, r4\ninner:\nadd r0, 1\n{0}\nadd r4, 1\n{1}\nout:\nexit";

    [Theory]
    // An insertion sort's nest: the inner loop counts j down from i (at most L) to 0, the outer loop
    // sets j again each time: the inner head (5) is not polled, the outer one (4) is.
    [InlineData("sub r7, 1\njne r7, 0, inner", "jlt r4, r3, outer", new[] { 4 })]
    // The outer loop endless: i grows past L, and so may j: the inner head keeps its poll.
    [InlineData("sub r7, 1\njne r7, 0, inner", "ja outer", new[] { 4, 5 })]
    // The outer way back a jump straight to the inner head, at the end of a block that starts at 8: polled there.
    [InlineData("sub r7, 1\njne r7, 0, inner", "mov r7, r4\njlt r4, r3, inner", new[] { 8 })]
    // j not counted down, or counted down from something not known to be at most L: the inner head keeps its poll.
    [InlineData("add r7, 1\njne r7, 0, inner", "jlt r4, r3, outer", new[] { 4, 5 })]
    [InlineData("mov r7, -1\nsub r7, 1\njne r7, 0, inner", "jlt r4, r3, outer", new[] { 4, 5 })]
    public void InnerLoopsBoundedPerEntryPollOnTheOuterWayBack(string innerTail, string outerTail, int[] expected)
    {
        Assert.Equal(expected, Polls(string.Format(Nest, innerTail, outerTail)));
    }

    [Fact]
    public void ClangsInsertionSortPollsOncePerOuterRound()
    {
        // benchmarks/clang/kernels.o, kernel/sort (llvm-objdump -d): the inner loop's head is slot 7,
        // entered again from the outer loop's block at 23 (ja -24 at 30).
        var polls = Polls(InputBoundsTests.Sort);
        Assert.DoesNotContain(7, polls);
        Assert.Contains(23, polls);
    }

    /// <summary>
    /// Random nests of two loops (outer loops endless or bounded by a constant; inner ones counting
    /// up or down, from the outer index, the length or constants, entered at 0 or not, with paths
    /// that skip the step):
    /// running each in the interpreter, no stretch between two slots the JIT polls at may be longer
    /// than (length + 3) rounds of the whole program, on every input length, and the JIT gives the
    /// interpreter's result. Most nests get their inner head's poll moved out.
    /// </summary>
    [SkippableFact]
    public void RandomNestsNeverRunLongWithoutAPoll()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(47);
        int moved = 0;
        for (int n = 0; n < 800; n++)
        {
            string start = random.Next(6) switch
            {
                0 => "mov r7, r2", 1 => "mov r7, r3", 2 => "mov r7, 3", 3 => $"mov r7, r4\nadd r7, {random.Next(0, 3)}", _ => "mov r7, r4",
            };
            string step = random.Next(6) switch { 0 => "add r7, 1", 1 => "sub r7, 2", 2 => "", _ => "sub r7, 1" };
            string skip = random.Next(4) == 0 ? $"jeq r0, {random.Next(0, 9)}, +1\n" : "";
            string test = random.Next(5) switch
            {
                0 => "jgt r7, 0, inner", 1 => "jne r7, 1, inner", 2 => "jlt r7, r2, inner", 3 => "jgt r7, 1, inner", _ => "jne r7, 0, inner",
            };
            // Back to the outer head, or straight to the inner one with j set anew (as clang lays out a sort).
            string outer = random.Next(6) switch
            {
                0 => "ja outer", 1 => $"jlt r4, {random.Next(2, 30)}, outer", 2 => $"{start}\nja inner", 3 => $"{start}\njlt r4, r3, inner", _ => "jlt r4, r3, outer",
            };
            string guard = random.Next(3) > 0 ? "jeq r7, 0, next\n" : ""; // without it j may start at 0 and wrap
            var text = $"mov r3, r2\nrsh r3, 2\nmov r4, 0\nouter:\n{start}\n{guard}inner:\nadd r0, 1\n{skip}{step}\n{test}\nnext:\nadd r4, 1\n{outer}\nexit";
            var program = Assembler.Assemble(text);
            var decoded = DecodedProgram.Decode(program);
            var facts = InputBounds.Analyze(decoded.Code);
            var polls = BoundedLoops.PollsFor(decoded, VmKind.Raw, facts);
            if (facts != null && BoundedLoops.MovedPolls(decoded.Code, decoded.PollPoints, facts, BoundedLoops.Find(decoded.Code, decoded.PollPoints, facts)).Count > 0) moved++;
            var vm = EbpfVm.CreateRaw(program);
            vm.InstructionLimit = 20_000;
            vm.JitCompile();
            for (int len = 0; len <= 40; len += random.Next(1, 5))
            {
                var input = new byte[len];
                long sincePoll = 0, longest = 0;
                var ci = vm.TryExecute(input, Span<byte>.Empty, (pc, _) =>
                {
                    sincePoll = polls[pc] ? 0 : sincePoll + 1;
                    longest = Math.Max(longest, sincePoll);
                }, out ulong ri, out _);
                long bound = (len + 3L) * (decoded.Code.Length + 1);
                Assert.True(longest <= bound, $"{text}\non {len} bytes: {longest} instructions without a poll (bound {bound})");
                var cj = vm.TryExecuteJit(input, Span<byte>.Empty, out ulong rj, out _);
                Assert.True(ci == cj && (ci != RbpfErrorCode.Ok || ri == rj), $"{text}\non {len} bytes: interpreter {ci} {ri}, JIT {cj} {rj}");
            }
        }
        Assert.True(moved > 100, $"only {moved} nests had their inner poll moved");
    }

    [SkippableFact]
    public void ABoundedLoopHeadHasNoPollInTheListingAndOthersKeepTheirs()
    {
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT listings");
        var bounded = EbpfVm.CreateRaw(Assembler.Assemble(string.Format(ByteLoop, "jlt r7, r2, head")));
        bounded.JitCompile();
        Assert.DoesNotContain("r11d,[r12", TestUtil.MachineCode(bounded.JitDisassembly(), 2));
        Assert.Equal(6UL, bounded.ExecuteJit(new byte[] { 1, 2, 3 }));
        var polled = EbpfVm.CreateRaw(Assembler.Assemble(string.Format(ByteLoop, "jlt r7, 1000, head")));
        polled.JitCompile();
        Assert.Contains("r11d,[r12", TestUtil.MachineCode(polled.JitDisassembly(), 2));
        // Other VM kinds do not see the input in r1 and r2: polled.
        var noData = EbpfVm.CreateNoData(Assembler.Assemble(string.Format(ByteLoop, "jlt r7, r2, head").Replace("ldxb r4, [r3]", "mov r4, 1")));
        noData.JitCompile();
        Assert.Contains("r11d,[r12", TestUtil.MachineCode(noData.JitDisassembly(), 2));
    }

    /// <summary>
    /// Random loops with an index, steps forward and back, paths that skip the step, comparisons of
    /// either side with r2 or a constant, copies of the index: where the analysis leaves every head
    /// unpolled, the interpreter must finish within (length + 3) rounds of the whole program on
    /// every input length (an endless loop said to be bounded would hit that limit), and the JIT,
    /// which no longer polls there, must give the same result.
    /// </summary>
    [SkippableFact]
    public void RandomLoopsSaidToBeBoundedEndWithinTheirBound()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(31);
        int bounded = 0;
        for (int n = 0; n < 1500; n++)
        {
            var regs = new[] { 3, 4, 5, 6, 7, 8, 9 }.OrderBy(_ => random.Next()).ToArray();
            int index = regs[0], copy = regs[1], cmp = regs[2], other = regs[3];
            var lines = new List<string> { "mov r0, 0", $"mov r{other}, 0" };
            // The index from a constant, or from somewhere in the input's length (not a constant at the head even if it never moves).
            lines.Add(random.Next(3) > 0 ? $"mov r{index}, {random.Next(0, 3)}" : $"mov r{index}, r2\nrsh r{index}, {random.Next(1, 4)}");
            bool twin = random.Next(2) == 0;
            if (twin) lines.Add($"mov r{copy}, r{index}");
            lines.Add("head:");
            lines.Add($"add r0, r{index}");
            if (random.Next(4) == 0) lines.Add($"add r{other}, 1\njlt r{other}, {random.Next(1, 4)}, head"); // an inner way back
            int step = random.Next(8) switch { 0 => 0, 1 => -1, _ => random.Next(1, 4) };
            string Step(int r) => step >= 0 ? $"add r{r}, {step}" : $"sub r{r}, {-step}";
            if (random.Next(4) == 0) lines.Add($"jeq r0, {random.Next(0, 6)}, +1"); // a path that skips the step
            if (twin)
            {
                lines.Add(Step(copy));
                lines.Add($"mov r{index}, r{copy}");
            }
            else lines.Add(Step(index));
            if (random.Next(6) == 0) lines.Add($"mov r{index}, r{other}"); // the index overwritten
            int c = random.Next(-2, 4);
            lines.Add($"mov r{cmp}, r{index}");
            lines.Add(c >= 0 ? $"add r{cmp}, {c}" : $"sub r{cmp}, {-c}");
            string bound = random.Next(6) == 0 ? $"{random.Next(1, 40)}" : "r2";
            lines.Add(random.Next(9) switch
            {
                0 => $"jlt r{cmp}, {bound}, head",
                1 => $"jle r{cmp}, {bound}, head",
                2 => bound == "r2" ? $"jgt r2, r{cmp}, head" : $"jgt r{cmp}, {bound}, head",
                3 => bound == "r2" ? $"jge r2, r{cmp}, head" : $"jge r{cmp}, {bound}, head",
                4 => $"jgt r{cmp}, {bound}, out\nja head",
                5 => $"jge r{cmp}, {bound}, out\nja head",
                6 => $"jne r{cmp}, {bound}, head",
                7 => $"jslt r{cmp}, {bound}, head",
                _ => $"jlt32 r{cmp}, {bound}, head",
            });
            lines.Add("out:");
            if (random.Next(4) == 0) lines.Add($"mov r{other}, 0\nspin:\nadd r{other}, 1\njlt r{other}, {random.Next(1, 60)}, spin"); // a second loop
            lines.Add("exit");
            var text = string.Join("\n", lines);
            var program = Assembler.Assemble(text);
            var decoded = DecodedProgram.Decode(program);
            var facts = InputBounds.Analyze(decoded.Code);
            var unpolled = facts == null ? null : BoundedLoops.Find(decoded.Code, decoded.PollPoints, facts);
            bool all = Enumerable.Range(0, decoded.Code.Length).All(pc => !decoded.PollPoints[pc] || (unpolled?[pc] ?? false));
            if (all) bounded++;
            var vm = EbpfVm.CreateRaw(program);
            var jit = EbpfVm.CreateRaw(program);
            jit.InstructionLimit = (ulong)(43 * (decoded.Code.Length + 1)); // a limit change drops compiled code: set once
            jit.JitCompile();
            for (int len = 0; len <= 40; len += random.Next(1, 4))
            {
                var input = new byte[len];
                vm.InstructionLimit = (ulong)((len + 3) * (decoded.Code.Length + 1));
                var cb = vm.TryExecute(input, Span<byte>.Empty, out _, out var eb);
                if (all) Assert.True(cb == RbpfErrorCode.Ok, $"{text} on {len} bytes: {cb} ({eb?.Message}), said to be bounded");
                var ci = jit.TryExecute(input, Span<byte>.Empty, out ulong ri, out _);
                var cj = jit.TryExecuteJit(input, Span<byte>.Empty, out ulong rj, out _);
                Assert.True(ci == cj && (ci != RbpfErrorCode.Ok || ri == rj), $"{text} on {len} bytes: interpreter {ci} {ri}, JIT {cj} {rj}");
            }
        }
        Assert.True(bounded > 120, $"only {bounded} programs were bounded");
    }
}
