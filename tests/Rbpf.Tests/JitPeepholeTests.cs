using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Instruction pairs the x86-64 JIT emits as one machine instruction: each form against the
/// interpreter on many register values, and the listing shows the fused form was taken.
/// </summary>
public class JitPeepholeTests
{
    private static void SkipWithoutX64() =>
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT peepholes");

    [SkippableFact]
    public void ALoopHeadNothingFallsIntoStartsASixtyFourByteLine()
    {
        SkipWithoutX64();
        // The first loop's head (3) comes after a ja: it starts a 64-byte line under every option.
        // The second's (7) is fallen into from 6: no padding runs on the way in.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("""
            mov r0, 0
            mov r1, 100
            ja +1
            add r0, r1
            sub r1, 1
            jne r1, 0, -3
            mov r2, 3
            add r0, 1
            sub r2, 1
            jne r2, 0, -3
            exit
            """));
        foreach (var options in JitTests.AllOptions)
        {
            vm.JitCompile(options);
            var listing = vm.JitDisassembly();
            var lines = listing.Split('\n');
            int at = Array.FindIndex(lines, l => l.StartsWith(";     3:", StringComparison.Ordinal));
            Assert.Equal(0, Convert.ToInt32(lines[at + 1].Trim().Split(' ')[0], 16) % 64);
            Assert.Contains("nop", TestUtil.MachineCode(listing, 2));
            Assert.DoesNotContain("nop", TestUtil.MachineCode(listing, 6));
            Assert.Equal(4953UL, vm.ExecuteJit());
        }
    }

    public static TheoryData<string> CopyThenAdd => new()
    {
        "mov r3, r1\nadd r3, 12",
        "mov r3, r1\nadd r3, -12",
        "mov r3, r1\nsub r3, 0x7fffffff",
        "mov r3, r1\nsub r3, -0x80000000", // not fused: the negation does not fit
        "mov r3, r1\nadd r3, r2",
        "mov r3, r1\nadd r3, r3",
        "mov r1, r1\nadd r1, 5",
        "mov32 r3, r1\nadd32 r3, 12",
        "mov32 r3, r1\nadd32 r3, -1",
        "mov32 r3, r1\nsub32 r3, 7",
        "mov32 r3, r1\nadd32 r3, r2",
        "mov32 r3, r1\nadd32 r3, r3",
        "mov32 r1, r1\nadd32 r1, 0x7fffffff",
        "mov r3, r10\nadd r3, -8", // a stack address
        "mov r6, r1\nadd r6, r1",
    };

    [SkippableTheory]
    [MemberData(nameof(CopyThenAdd))]
    public void CopyThenAddIsOneLeaAndComputesTheSame(string pair)
    {
        SkipWithoutX64();
        // r1 and r2 from the input, the pair, then r3 (or r1, r6) folded into r0.
        string dst = pair.Split('\n')[1].Split(' ')[1].TrimEnd(',');
        string relative = pair.Contains("r10", StringComparison.Ordinal) ? $"sub {dst}, r10\n" : ""; // stacks differ: compare offsets
        string text = $"ldxdw r2, [r1+8]\nldxdw r1, [r1]\n{pair}\n{relative}mov r0, {dst}\nexit";
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        bool fusable = !pair.Contains("-0x80000000", StringComparison.Ordinal);
        foreach (var options in new[] { new JitOptions(), new JitOptions { CheckedMemory = false } })
        {
            vm.JitCompile(options);
            // The copy is slot 2: its first machine instruction.
            var lines = vm.JitDisassembly().Split('\n');
            int at = Array.FindIndex(lines, l => l.StartsWith(";     2:", StringComparison.Ordinal));
            Assert.Equal(fusable, lines[at + 1].Contains("lea", StringComparison.Ordinal));
            var rng = new Random(pair.Length);
            var values = new List<ulong> { 0, 1, ulong.MaxValue, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, long.MaxValue };
            for (int k = 0; k < 200; k++) values.Add((ulong)rng.NextInt64() >> rng.Next(64));
            foreach (ulong a in values)
            {
                ulong b = values[rng.Next(values.Count)];
                var mem = new byte[16];
                BitConverter.TryWriteBytes(mem.AsSpan(0), a);
                BitConverter.TryWriteBytes(mem.AsSpan(8), b);
                Assert.Equal(vm.Execute(mem.ToArray()), vm.ExecuteJit(mem.ToArray()));
            }
        }
    }

    [SkippableFact]
    public void BlindedConstantsAndJumpTargetsAreNotFused()
    {
        SkipWithoutX64();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("mov r3, r1\nadd r3, 12\nmov r0, r3\nexit"));
        vm.JitCompile(new JitOptions { ConstantBlinding = true });
        Assert.DoesNotContain("lea     rdx", vm.JitDisassembly(), StringComparison.Ordinal);
        // A jump lands on the add: it must stay an instruction of its own.
        vm = EbpfVm.CreateRaw(Assembler.Assemble("mov r3, r1\njeq r2, 0, +1\nmov r3, r1\nadd r3, 12\nmov r0, r3\nexit"));
        vm.JitCompile();
        var mem = new byte[4];
        Assert.Equal(vm.Execute(mem), vm.ExecuteJit(mem));
    }

    public static TheoryData<string> Conditions => new()
    {
        "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle",
        "jeq32", "jgt32", "jge32", "jset32", "jne32", "jsgt32", "jsge32", "jlt32", "jle32", "jslt32", "jsle32",
    };

    /// <summary>
    /// A conditional jump both of whose sides end the run with a constant (through a ja, or
    /// directly) is a cmov: every condition, register and immediate forms, 32- and 64-bit constants.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(Conditions))]
    public void AVerdictOnBothSidesIsACmovAndComputesTheSame(string jump)
    {
        SkipWithoutX64();
        var rng = new Random(jump.Length * 31 + jump[1]);
        var values = new List<ulong> { 0, 1, 5, ulong.MaxValue, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0xfffffffb, long.MaxValue };
        for (int k = 0; k < 100; k++) values.Add((ulong)rng.NextInt64() >> rng.Next(64));
        foreach (string operand in new[] { "5", "-5", "r2" })
        {
            string text = $"ldxdw r2, [r1+8]\nldxdw r1, [r1]\n{jump} r1, {operand}, +1\nja +2\nmov r0, -7\nexit\nmov32 r0, -3\nexit";
            var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
            vm.JitCompile();
            Assert.Contains("cmov", TestUtil.MachineCode(vm.JitDisassembly(), 2));
            foreach (ulong a in values)
            {
                ulong b = values[rng.Next(values.Count)];
                var mem = new byte[16];
                BitConverter.TryWriteBytes(mem.AsSpan(0), a);
                BitConverter.TryWriteBytes(mem.AsSpan(8), rng.Next(4) == 0 ? a : b);
                Assert.Equal(vm.Execute(mem.ToArray()), vm.ExecuteJit(mem.ToArray()));
            }
        }
    }

    [SkippableFact]
    public void AVerdictIsNotACmovWhereAnExitMayReturnFromAFunction()
    {
        SkipWithoutX64();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("call f\nadd r0, 1\nexit\nf:\njeq r2, 3, +2\nmov r0, 10\nexit\nmov r0, 20\nexit"));
        vm.JitCompile();
        var jeq = TestUtil.MachineCode(vm.JitDisassembly(), 3);
        Assert.DoesNotContain("cmov", jeq);
        Assert.Contains("je", jeq); // the jump, as it is
        Assert.Equal(21UL, vm.ExecuteJit(new byte[3]));
        Assert.Equal(11UL, vm.ExecuteJit(new byte[4]));
    }
    /// <summary>Runs <paramref name="body"/> (r1 and r2 loaded from the input) in both engines on many values; returns the listing.</summary>
    private static string SameOnManyValues(string body, string result, JitOptions? options = null)
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble($"ldxdw r2, [r1+8]\nldxdw r1, [r1]\n{body}\nmov r0, {result}\nexit"));
        vm.JitCompile(options ?? new JitOptions());
        var rng = new Random(body.Length);
        var values = new List<ulong> { 0, 1, 2, ulong.MaxValue, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, long.MaxValue, 1UL << 63 };
        for (int k = 0; k < 200; k++) values.Add((ulong)rng.NextInt64() >> rng.Next(64));
        foreach (ulong a in values)
        {
            var mem = new byte[16];
            BitConverter.TryWriteBytes(mem.AsSpan(0), a);
            BitConverter.TryWriteBytes(mem.AsSpan(8), values[rng.Next(values.Count)]);
            Assert.True(vm.Execute(mem.ToArray()) == vm.ExecuteJit(mem.ToArray()), $"{body} with r1 = {a:x}");
        }
        return vm.JitDisassembly();
    }

    [SkippableTheory]
    [InlineData("mul r1, 3", "lea")]
    [InlineData("mul r1, 5", "lea")]
    [InlineData("mul r1, 9", "lea")]
    [InlineData("mul32 r1, 5", "lea")]
    [InlineData("mul32 r1, 9", "lea")]
    [InlineData("mul r1, 2", "shl")]
    [InlineData("mul r1, 0x40000000", "shl")]
    [InlineData("mul32 r1, 16", "shl")]
    [InlineData("mul r1, 7", "imul")]
    [InlineData("mul r1, -5", "imul")]
    [InlineData("mul r1, 1", "imul")]
    [InlineData("mul r1, 0", "imul")]
    [InlineData("mul32 r1, 3", "lea")]
    [InlineData("mul32 r1, -8", "imul")]
    public void MultiplyingBySmallConstantsIsALeaOrAShift(string mul, string expected)
    {
        SkipWithoutX64();
        var listing = SameOnManyValues(mul, "r1");
        Assert.Contains(expected, TestUtil.MachineCode(listing, 2));
        Assert.DoesNotContain(expected == "imul" ? "lea" : "imul", TestUtil.MachineCode(listing, 2));
        // Blinded constants keep the multiplication.
        Assert.Contains("imul", TestUtil.MachineCode(SameOnManyValues(mul, "r1", new JitOptions { ConstantBlinding = true }), 2));
    }

    [SkippableTheory]
    [InlineData("mul r1, 5\nadd r1, 0x52dce729", true)] // clang's hash step: h * 5 + c
    [InlineData("mul r1, 3\nadd r1, -7", true)]
    [InlineData("mul r1, 9\nsub r1, 0x7fffffff", true)]
    [InlineData("mul r1, 2\nadd r1, 1", true)]
    [InlineData("lsh r1, 1\nadd r1, -0x80000000", true)]
    [InlineData("mul32 r1, 5\nadd32 r1, 0x7fffffff", true)]
    [InlineData("mul32 r1, 9\nsub32 r1, 3", true)]
    [InlineData("lsh32 r1, 1\nadd32 r1, -1", true)]
    // Not fused: the negation does not fit, another register, widths that differ, a multiplier
    // lea has no form for, an add of a register, a shift by more than one.
    [InlineData("mul r1, 5\nsub r1, -0x80000000", false)]
    [InlineData("mul r1, 5\nadd r2, 1\nmov r1, r2", false)]
    [InlineData("mul r1, 5\nadd32 r1, 1", false)]
    [InlineData("mul32 r1, 5\nadd r1, 1", false)]
    [InlineData("mul r1, 7\nadd r1, 1", false)]
    [InlineData("mul r1, 5\nadd r1, r2", false)]
    [InlineData("lsh r1, 2\nadd r1, 1", false)]
    public void AMultiplyAndAnAddOfAConstantAreOneLea(string body, bool fused)
    {
        SkipWithoutX64();
        var listing = SameOnManyValues(body, "r1");
        // Fused: one lea under the multiply, nothing under the add.
        Assert.Equal(fused, TestUtil.MachineCode(listing, 3).Trim() == "");
        if (fused) Assert.Matches(@"^\s*\S+\s+lea\s[^\n]*$", TestUtil.MachineCode(listing, 2).Trim());
        // Blinded constants keep both.
        Assert.NotEqual("", TestUtil.MachineCode(SameOnManyValues(body, "r1", new JitOptions { ConstantBlinding = true }), 3).Trim());
    }

    [SkippableTheory]
    [InlineData("and32 r1, 1\njeq32 r1, 0, +1", false)] // clang's bool tests in a tokenizer
    [InlineData("and32 r1, 1\njne r1, 0, +1", false)]
    [InlineData("or r1, r2\njeq r1, 0, +1", false)]
    [InlineData("xor32 r1, r2\njne32 r1, 0, +1", false)]
    [InlineData("add r1, -5\njeq r1, 0, +1", false)]
    [InlineData("sub32 r1, r2\njeq r1, 0, +1", false)]
    [InlineData("and r1, 0xf0\njne r1, 0, +1", false)]
    // The test stays: 64-bit result and 32-bit test; a movzx (mask 0xff); another register; not
    // jeq or jne; a compare with a non-zero constant; a shift; a jump landing on the test.
    [InlineData("and r1, r2\njeq32 r1, 0, +1", true)]
    [InlineData("and32 r1, 0xff\njeq32 r1, 0, +1", true)]
    [InlineData("and32 r2, 1\njeq32 r1, 0, +1", true)]
    [InlineData("and32 r1, 1\njgt32 r1, 0, +1", true)]
    [InlineData("and32 r1, 1\njsgt r1, 0, +1", true)]
    [InlineData("and32 r1, 3\njeq32 r1, 1, +1", true)]
    [InlineData("lsh r1, 3\njeq r1, 0, +1", true)]
    [InlineData("jeq r2, 9, +1\nand32 r1, 1\njeq32 r1, 0, +1", true)]
    public void AZeroTestRightAfterAnAluOperationUsesItsFlags(string body, bool tested)
    {
        SkipWithoutX64();
        int jump = 1 + body.Split('\n').Length; // the slot of the jump (two loads first)
        // Jumping over an add, and over a move (a select: the compare, then the value, then a cmov).
        foreach (string skipped in new[] { "add r1, 77", "mov r1, 77", "mov32 r1, r2" })
        {
            var listing = SameOnManyValues($"{body}\n{skipped}", "r1");
            string code = TestUtil.MachineCode(listing, jump);
            Assert.Equal(tested, code.Contains("test", StringComparison.Ordinal) || code.Contains("cmp", StringComparison.Ordinal));
            // Blinded: always tested.
            string blinded = TestUtil.MachineCode(SameOnManyValues($"{body}\n{skipped}", "r1", new JitOptions { ConstantBlinding = true }), jump);
            Assert.True(blinded.Contains("test", StringComparison.Ordinal) || blinded.Contains("cmp", StringComparison.Ordinal));
        }
    }

    [SkippableTheory]
    [InlineData("add r3, 1", true)] // clang's counters on the stack
    [InlineData("add r3, r1", true)]
    [InlineData("sub r3, -0x80000000", true)]
    [InlineData("sub r3, r1", true)]
    [InlineData("or r3, 0x70", true)]
    [InlineData("and r3, -16", true)]
    [InlineData("xor r3, r1", true)]
    [InlineData("and r3, r1", true)]
    // Not fused: another register, the register itself, a multiplication.
    [InlineData("add r1, 1", false)]
    [InlineData("add r3, r3", false)]
    [InlineData("mul r3, 3", false)]
    public void ALoadOperateStoreOfAStackSlotIsOneInstruction(string op, bool fused)
    {
        SkipWithoutX64();
        // Slot 3 loads the counter, 4 updates it, 5 stores it back; r3 is not read again.
        string body = $"stxdw [r10-8], r2\nldxdw r3, [r10-8]\n{op}\nstxdw [r10-8], r3\nldxdw r4, [r10-8]\nadd r4, r1";
        var listing = SameOnManyValues(body, "r4");
        Assert.Equal(fused, TestUtil.MachineCode(listing, 4).Trim() == "" && TestUtil.MachineCode(listing, 5).Trim() == "");
        if (fused) Assert.Matches(@"^\s*\S+\s+(add|sub|or|and|xor)\s+(qword )?\[rbp-8\],[^\n]*$", TestUtil.MachineCode(listing, 3).Trim());
        // Unchecked code fuses the same; blinded constants do not.
        Assert.Equal(fused, TestUtil.MachineCode(SameOnManyValues(body, "r4", new JitOptions { CheckedMemory = false }), 4).Trim() == "");
        bool blindedFused = TestUtil.MachineCode(SameOnManyValues(body, "r4", new JitOptions { ConstantBlinding = true }), 4).Trim() == "";
        Assert.Equal(fused && op.Contains(", r", StringComparison.Ordinal), blindedFused); // a register operand has no constant to blind
    }

    [SkippableTheory]
    // The register is read after the store, the store goes elsewhere or is 32-bit, a jump lands on
    // the operation or the store (forward: no loop). The operation's slot keeps its code.
    [InlineData("ldxdw r3, [r10-8]\nadd r3, 1\nstxdw [r10-8], r3\nadd r4, r3", 6)]
    [InlineData("ldxdw r3, [r10-8]\nadd r3, 1\nstxdw [r10-16], r3\nldxdw r4, [r10-16]", 6)]
    [InlineData("ldxdw r3, [r10-8]\nadd r3, 1\nstxw [r10-8], r3\nmov r3, 0", 6)]
    [InlineData("jeq r1, 5, +1\nldxdw r3, [r10-8]\nadd r3, 1\nstxdw [r10-8], r3", 7)]
    [InlineData("jeq r1, 5, +2\nldxdw r3, [r10-8]\nadd r3, 1\nstxdw [r10-8], r3", 7)]
    public void AStackUpdateIsNotFusedWhereTheRegisterOrTheSlotSaysOtherwise(string body, int operation)
    {
        SkipWithoutX64();
        var listing = SameOnManyValues($"stxdw [r10-8], r2\nstxdw [r10-16], r1\nmov r4, 0\n{body}\nldxdw r0, [r10-8]\nadd r4, r0", "r4");
        Assert.NotEqual("", TestUtil.MachineCode(listing, operation).Trim());
    }

    [SkippableTheory]
    // clang's rotate left by 27 (t = x >> 37; x <<= 27; x |= t) and by 13 the other way round; t read afterwards.
    [InlineData("mov r3, r1\nrsh r3, 37\nlsh r1, 27\nor r1, r3", true)]
    [InlineData("mov r3, r1\nlsh r3, 13\nrsh r1, 51\nor r1, r3", true)]
    [InlineData("mov r3, r1\nrsh r3, 1\nlsh r1, 63\nor r1, r3\nxor r1, r3", true)]
    // Not rotates: shifts that do not add up to 64, the or the other way round, 32-bit shifts, two shifts the same way.
    [InlineData("mov r3, r1\nrsh r3, 37\nlsh r1, 26\nor r1, r3", false)]
    [InlineData("mov r3, r1\nrsh r3, 37\nlsh r1, 27\nor r3, r1", false)]
    [InlineData("mov r3, r1\nrsh32 r3, 5\nlsh32 r1, 27\nor r1, r3", false)]
    [InlineData("mov r3, r1\nrsh r3, 32\nrsh r1, 32\nor r1, r3", false)]
    [InlineData("mov r3, r2\nrsh r3, 37\nlsh r1, 27\nor r1, r3", false)]
    public void ClangsRotatesAreOneRolAndComputeTheSame(string body, bool rotate)
    {
        SkipWithoutX64();
        foreach (var result in new[] { "r1", "r3" })
        {
            var listing = SameOnManyValues(body, result);
            Assert.Equal(rotate, TestUtil.MachineCode(listing, 2, 5).Contains("rol", StringComparison.Ordinal));
        }
        // A jump into the middle keeps the instructions apart.
        var lines = body.Split('\n').ToList();
        lines.Insert(2, "ja +0"); // a jump to the third instruction
        var split = EbpfVm.CreateRaw(Assembler.Assemble("mov r0, 0\nmov r1, 5\njeq r0, 0, +2\n" + string.Join("\n", lines) + "\nmov r0, r1\nexit"));
        split.JitCompile();
        Assert.DoesNotContain("rol ", TestUtil.MachineCode(split.JitDisassembly(), 3, 8));
    }

    [SkippableTheory]
    // The rotate's temporary is left out when the block writes it before anything reads it ...
    [InlineData("mov r4, 5", false)]
    [InlineData("add r1, 1\nmov r4, r2", false)]
    [InlineData("mov32 r4, r2", false)]
    [InlineData("lddw r4, 0x1234567890", false)]
    [InlineData("ldxdw r4, [r10-8]", false)]
    [InlineData("stxdw [r10-8], r1\nldxw r4, [r10-8]", false)]
    // ... and kept when something may read it: an instruction, the next block, a call.
    [InlineData("add r1, r4", true)]
    [InlineData("add32 r4, 1\nmov r4, 0", true)]
    [InlineData("stxdw [r10-8], r4\nmov r4, 1", true)]
    [InlineData("mov r2, r4\nmov r4, 1", true)]
    [InlineData("ja +0\nmov r4, 5", true)]
    [InlineData("", true)]
    public void ARotatesTemporaryNothingReadsIsLeftOut(string after, bool kept)
    {
        SkipWithoutX64();
        string body = "mov r4, r1\nrsh r4, 37\nlsh r1, 27\nor r1, r4" + (after.Length > 0 ? "\n" + after : "");
        foreach (var result in new[] { "r1", "r4" })
        {
            var code = TestUtil.MachineCode(SameOnManyValues(body, result), 2, 5);
            Assert.Contains("rol", code);
            Assert.Equal(kept, code.Contains("shr", StringComparison.Ordinal));
        }
    }

    [SkippableTheory]
    // "if (c) goto L; x = v; L:" (clang's selects) is a cmov on the opposite condition: every
    // condition, 32- and 64-bit, immediate and register compares, constant and register values
    // (mov32 of a register zero-extends: r2's upper half must go), the moved register compared.
    [InlineData("jeq r1, 5, +1\nmov r2, 7")]
    [InlineData("jne r1, 5, +1\nmov r2, -7")]
    [InlineData("jgt r1, 1000, +1\nmov32 r2, -7")]
    [InlineData("jge r1, r2, +1\nmov r2, 0")]
    [InlineData("jlt32 r1, 10, +1\nmov32 r2, 0")]
    [InlineData("jle r1, -3, +1\nmov r2, r1")]
    [InlineData("jset r1, 0x80, +1\nmov32 r2, r1")]
    [InlineData("jset32 r1, r2, +1\nmov r2, r1")]
    [InlineData("jsgt r1, -1, +1\nmov32 r2, r2")]
    [InlineData("jsge32 r1, r2, +1\nmov r2, 1")]
    [InlineData("jslt r1, r2, +1\nmov r2, r1")]
    [InlineData("jsle32 r1, 0, +1\nmov32 r2, 0x80000000")]
    [InlineData("jeq32 r2, 7, +1\nmov r2, 9")]
    public void ClangsSelectsAreConditionalMoves(string body)
    {
        SkipWithoutX64();
        var code = TestUtil.MachineCode(SameOnManyValues(body, "r2"), 2, 3);
        Assert.Contains("cmov", code);
        Assert.DoesNotContain("\n  j", "\n" + code.Replace("\t", " "));
        // Blinded constants, the instruction limit and a jump to the move keep the branch.
        Assert.DoesNotContain("cmov", TestUtil.MachineCode(SameOnManyValues(body, "r2", new JitOptions { ConstantBlinding = true }), 2, 3));
        var limited = EbpfVm.CreateRaw(Assembler.Assemble($"ldxdw r2, [r1+8]\nldxdw r1, [r1]\n{body}\nmov r0, r2\nexit"));
        limited.InstructionLimit = 100;
        limited.JitCompile();
        Assert.DoesNotContain("cmov", TestUtil.MachineCode(limited.JitDisassembly(), 2, 3));
        var lines = body.Split('\n');
        var target = EbpfVm.CreateRaw(Assembler.Assemble($"ldxdw r2, [r1+8]\nldxdw r1, [r1]\njeq r1, 3, +1\n{lines[0]}\n{lines[1]}\nmov r0, r2\nexit"));
        target.JitCompile();
        Assert.DoesNotContain("cmov", TestUtil.MachineCode(target.JitDisassembly(), 3, 4));
    }

    [SkippableTheory]
    // "mov d, r1; add d, r4; ldx x, [d + off]" is one load from [rdi + r9 + off] when the load is
    // proven inside the input (the length tested first) and nothing reads the sum afterwards ...
    [InlineData("mov r5, r1\nadd r5, r4\nldxh r5, [r5+2]\nmov r0, r5", true)]
    [InlineData("mov r3, r1\nadd r3, r4\nldxb r0, [r3+1]\nmov r3, 7\nadd r0, r3", true)]
    [InlineData("mov r3, r1\nadd r3, r4\nldxsw r0, [r3+0]\nmov r3, r0\nadd r0, r3", true)]
    // ... not when the sum is read afterwards, the load is checked (no length test), or a jump lands inside.
    [InlineData("mov r3, r1\nadd r3, r4\nldxb r0, [r3+1]\nadd r0, r3", false)]
    [InlineData("mov r3, r1\nadd r3, r4\nldxb r0, [r3+1]\nja +0\nmov r3, 7", false)]
    [InlineData("mov r3, r1\nadd r3, r4\nldxb r3, [r3+1]\nmov r0, r3", false, false)]
    [InlineData("mov r3, r1\nja +0\nadd r3, r4\nldxb r0, [r3+1]\nmov r3, 1", false)]
    public void LoadsThroughASumUseTheAddressingMode(string body, bool fused, bool guarded = true)
    {
        SkipWithoutX64();
        // r4 is an index from 0 to 7 (the input's first byte, masked); the input is 16 bytes or more when guarded.
        string text = (guarded ? "jlt r2, 16, +{0}\n" : "") + "ldxb r4, [r1+0]\nand r4, 7\n" + body + "\nexit\nmov r0, 99\nexit";
        int lines = body.Split('\n').Length;
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(string.Format(text, lines + 3)));
        vm.JitCompile();
        for (int len = guarded ? 0 : 16; len <= 24; len++)
            for (int first = 0; first < 8; first++)
            {
                var mem = Enumerable.Range(0, len).Select(k => (byte)(k * 37 + 11)).ToArray();
                if (len > 0) mem[0] = (byte)first;
                Assert.Equal(vm.Execute(mem), vm.ExecuteJit(mem)); // one buffer: a result may be an address in it
            }
        int first0 = guarded ? 3 : 2;
        var code = TestUtil.MachineCode(vm.JitDisassembly(), first0, first0 + lines - 1);
        // The load itself addresses [rdi+r9...] (a lea of the sum would too: not counted).
        Assert.Equal(fused, code.Split('\n').Any(l => l.Contains("[rdi+r9", StringComparison.Ordinal) && !l.Contains(" lea ", StringComparison.Ordinal)));
    }

    [SkippableTheory]
    // clang's rotl(x * B, 31) in murmur's round, B = 0x87c37b91114253d5: t = x * (B << 31), x * B >> 33, or'ed.
    // One imul and a rol when t is dead after and both factors are known constants ...
    [InlineData("lddw r5, 0x88a129ea80000000\nlddw r6, 0x87c37b91114253d5", "mov r3, r1\nmul r3, r5\nmul r1, r6\nrsh r1, 33\nor r1, r3\nmov r3, 0", 1)]
    [InlineData("mov r5, 0x40000000\nmov r6, 0", "mov r3, r1\nmul r3, r5\nmul r1, 2\nrsh r1, 35\nor r1, r3\nmov r3, r2", 1)]
    [InlineData("mov r5, 0x40000000\nmov r6, 0", "mov r3, r1\nmul r3, 0x40000000\nmul r1, 2\nrsh r1, 35\nor r1, r3\nmov r3, r2", 1)]
    // ... else two: t read afterwards, factors that do not match the shift, a factor not constant.
    [InlineData("lddw r5, 0x88a129ea80000000\nlddw r6, 0x87c37b91114253d5", "mov r3, r1\nmul r3, r5\nmul r1, r6\nrsh r1, 33\nor r1, r3\nadd r1, r3", 2)]
    [InlineData("lddw r5, 0x88a129ea80000000\nlddw r6, 0x87c37b91114253d5", "mov r3, r1\nmul r3, r5\nmul r1, r6\nrsh r1, 32\nor r1, r3\nmov r3, 0", 2)]
    [InlineData("lddw r5, 0x88a129ea80000000\nmov r6, r2", "mov r3, r1\nmul r3, r5\nmul r1, r6\nrsh r1, 33\nor r1, r3\nmov r3, 0", 2)]
    [InlineData("lddw r5, 0x88a129ea80000000\nlddw r6, 0x87c37b91114253d5\njeq r2, 0, +1\nmov r6, 3", "mov r3, r1\nmul r3, r5\nmul r1, r6\nrsh r1, 33\nor r1, r3\nmov r3, 0", 2)]
    public void ClangsRotatedProductsMultiplyOnce(string constants, string body, int multiplications)
    {
        SkipWithoutX64();
        var listing = SameOnManyValues(constants + "\n" + body, "r1");
        int first = 2 + Assembler.Assemble(constants).Length / 8; // after the two loads and the constants
        var code = TestUtil.MachineCode(listing, first, first + 4);
        Assert.Equal(multiplications, code.Split('\n').Count(l => l.Contains(" imul ", StringComparison.Ordinal)));
        Assert.Equal(multiplications == 1, code.Contains(" rol ", StringComparison.Ordinal));
    }

    [SkippableTheory]
    // Masks of the low byte or half are zero-extending moves; other masks stay ands. Registers whose
    // byte form needs a REX prefix (r1 is rdi, r2 rsi) and the extended ones (r7 is r13) are covered.
    [InlineData("and r1, 0xff", "movzx")]
    [InlineData("and32 r1, 0xff", "movzx")]
    [InlineData("and r1, 0xffff", "movzx")]
    [InlineData("and32 r1, 0xffff", "movzx")]
    [InlineData("mov r7, r1\nand r7, 0xff\nmov r1, r7", "movzx")]
    [InlineData("mov r2, r1\nand32 r2, 0xff\nmov r1, r2", "movzx")]
    [InlineData("and r1, 0x7f", "and")]
    [InlineData("and r1, -256", "and")]
    [InlineData("and32 r1, 0xfffff", "and")]
    public void LowByteAndHalfMasksAreZeroExtendingMoves(string body, string expected)
    {
        SkipWithoutX64();
        var code = TestUtil.MachineCode(SameOnManyValues(body, "r1"), 2, 2 + body.Split('\n').Length - 1);
        Assert.Contains(expected + " ", code);
        Assert.DoesNotContain(expected == "and" ? "movzx" : "and ", code);
        Assert.DoesNotContain("movzx", TestUtil.MachineCode(SameOnManyValues(body, "r1", new JitOptions { ConstantBlinding = true }), 2, 2 + body.Split('\n').Length - 1));
    }

    [SkippableTheory]
    // Comparisons with 0 are tests (the same flags), 32- and 64-bit, every condition; with other constants, compares.
    [InlineData("jeq r1, 0, +1")]
    [InlineData("jne r1, 0, +1")]
    [InlineData("jgt r1, 0, +1")]
    [InlineData("jle r1, 0, +1")]
    [InlineData("jsgt r1, 0, +1")]
    [InlineData("jsge r1, 0, +1")]
    [InlineData("jslt r1, 0, +1")]
    [InlineData("jsle r1, 0, +1")]
    [InlineData("jge32 r1, 0, +1")]
    [InlineData("jlt32 r1, 0, +1")]
    [InlineData("jsgt32 r1, 0, +1")]
    [InlineData("jslt32 r1, 0, +1")]
    [InlineData("jeq32 r1, 0, +1")]
    public void ComparisonsWithZeroAreTestsAndJumpAlike(string jump)
    {
        SkipWithoutX64();
        var code = TestUtil.MachineCode(SameOnManyValues($"mov r3, 7\n{jump}\nmov r3, 9", "r3"), 3);
        Assert.Contains("test ", code);
        Assert.DoesNotContain("cmp ", code);
        var other = TestUtil.MachineCode(SameOnManyValues($"mov r3, 7\n{jump.Replace(", 0,", ", 1,")}\nmov r3, 9", "r3"), 3);
        Assert.Contains("cmp ", other);
    }

    /// <summary>Tests that all jump to one place (a protocol list) are compares and cmovs, with one
    /// branch, or none when the fallthrough drops (a flag) or both sides end the run (a verdict).</summary>
    [SkippableFact]
    public void ATestChainWithOneTargetIsCompareAndCmov()
    {
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT listings");
        static int Count(string machine, string mnemonic) =>
            machine.Split('\n').Count(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is { Length: > 1 } f && f[1].StartsWith(mnemonic, StringComparison.Ordinal));
        const string list = "jeq r0, 132, t\njeq r0, 6, t\njeq32 r0, 17, t\n";
        // One branch: a store into the input keeps drops branches, and the fallthrough goes on.
        var branch = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 2, drop\nstb [r1+1], 9\nldxb r0, [r1]\n" + list +
            "mov r0, 5\nexit\nt:\nldxb r0, [r1+1]\nexit\ndrop:\nmov r0, 0\nexit"));
        // A flag: the fallthrough drops, and the run goes on at t.
        var flag = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 2, drop\nldxb r0, [r1]\n" + list +
            "ja drop\nt:\nldxb r0, [r1+1]\njeq r0, 80, accept\nja drop\naccept:\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit"));
        // A verdict: both sides end with constants.
        var verdict = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 2, drop\nldxb r0, [r1]\n" + list +
            "drop:\nmov r0, 0\nexit\nt:\nmov r0, 7\nexit"));
        foreach (var vm in new[] { branch, flag, verdict }) vm.JitCompile();
        string b = TestUtil.MachineCode(branch.JitDisassembly(), 3, 5), f = TestUtil.MachineCode(flag.JitDisassembly(), 2, 5),
            v = TestUtil.MachineCode(verdict.JitDisassembly(), 2, 4);
        Assert.Equal(3, Count(b, "cmov"));
        Assert.Equal(1, Count(b, "j"));
        Assert.Equal(3, Count(f, "cmov"));
        Assert.Equal(0, Count(f, "j"));
        Assert.Equal(0, Count(v, "j"));
        foreach (byte p in new byte[] { 132, 6, 17, 5, 0, 16 })
        {
            bool listed = p is 132 or 6 or 17;
            foreach (byte second in new byte[] { 80, 81 })
            {
                var input = new byte[] { p, second };
                Assert.Equal(listed ? 9UL : 5UL, branch.Execute(input.ToArray()));
                Assert.Equal(listed ? 9UL : 5UL, branch.ExecuteJit(input.ToArray()));
                ulong expected = listed && second == 80 ? 1UL : 0UL;
                Assert.Equal(expected, flag.Execute(input));
                Assert.Equal(expected, flag.ExecuteJit(input));
                Assert.Equal(listed ? 7UL : 0UL, verdict.Execute(input));
                Assert.Equal(listed ? 7UL : 0UL, verdict.ExecuteJit(input));
            }
        }
    }

    /// <summary>A big-endian field tested for equality or bits, the register unread after the test:
    /// loaded without the byte swap and compared with the swapped constant. When the register is
    /// read again (a second test of the same field) the swap stays.</summary>
    [SkippableFact]
    public void ANetworkOrderFieldIsTestedWithoutItsSwapWhenUnreadAfter()
    {
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT listings");
        var ip = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 14, drop\nldxh r0, [r1+12]\nbe16 r0\njeq32 r0, 0x800, accept\ndrop:\nmov r0, 0\nexit\naccept:\nmov r0, 1\nexit"));
        var addr = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 4, drop\nldxw r0, [r1]\nbe32 r0\njeq32 r0, 0xc0a80101, drop\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit"));
        var bits = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 2, drop\nldxh r0, [r1]\nbe16 r0\njset r0, 0x1fff, drop\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit"));
        var twice = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 14, drop\nldxh r0, [r1+12]\nbe16 r0\njeq32 r0, 0x800, accept\njeq32 r0, 0x806, accept\ndrop:\nmov r0, 0\nexit\naccept:\nmov r0, 1\nexit"));
        foreach (var vm in new[] { ip, addr, bits, twice }) vm.JitCompile();
        string Code(EbpfVm vm) => TestUtil.MachineCode(vm.JitDisassembly(), 1, 3);
        Assert.DoesNotContain("ror", Code(ip));
        Assert.Contains("8", Code(ip).Split('\n').Single(l => l.Contains("cmp", StringComparison.Ordinal)));
        Assert.DoesNotContain("bswap", Code(addr));
        Assert.Contains("101A8C0", Code(addr), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("ror", Code(bits));
        Assert.Contains("ror", Code(twice));
        var frame = new byte[14];
        foreach (var (b12, b13) in new[] { (8, 0), (0, 8), (8, 6), (6, 8), (0, 0) })
        {
            frame[12] = (byte)b12; frame[13] = (byte)b13;
            ulong isIp = b12 == 8 && b13 == 0 ? 1UL : 0UL, isIpOrArp = b12 == 8 && b13 is 0 or 6 ? 1UL : 0UL;
            Assert.Equal(isIp, ip.Execute(frame));
            Assert.Equal(isIp, ip.ExecuteJit(frame));
            Assert.Equal(isIpOrArp, twice.Execute(frame));
            Assert.Equal(isIpOrArp, twice.ExecuteJit(frame));
        }
        foreach (var word in new byte[][] { new byte[] { 0xc0, 0xa8, 1, 1 }, new byte[] { 1, 1, 0xa8, 0xc0 }, new byte[] { 0xc0, 0xa8, 1, 2 } })
        {
            ulong expected = word[0] == 0xc0 && word[3] == 1 ? 0UL : 1UL;
            Assert.Equal(expected, addr.Execute(word));
            Assert.Equal(expected, addr.ExecuteJit(word));
        }
        // In 64 bits the constant is sign-extended, so no 32-bit field equals it: the test stays as it is.
        var wide = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 4, drop\nldxw r0, [r1]\nbe32 r0\njeq r0, 0xc0a80101, drop\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit"));
        wide.JitCompile();
        Assert.Equal(1UL, wide.Execute(new byte[] { 0xc0, 0xa8, 1, 1 }));
        Assert.Equal(1UL, wide.ExecuteJit(new byte[] { 0xc0, 0xa8, 1, 1 }));
        foreach (var field in new byte[][] { new byte[] { 0x40, 0 }, new byte[] { 0x20, 0 }, new byte[] { 0, 1 }, new byte[] { 0x1f, 0 }, new byte[] { 0xe0, 0 } })
        {
            ulong expected = ((field[0] << 8 | field[1]) & 0x1fff) != 0 ? 0UL : 1UL;
            Assert.Equal(expected, bits.Execute(field));
            Assert.Equal(expected, bits.ExecuteJit(field));
        }
    }
}
