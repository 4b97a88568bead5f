using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Moves a loop leaves partly dead (read only once it exits) run on the edge out of the loop in
/// the x86-64 JIT: the listing shows where they went, and the compiled code agrees with the
/// interpreter on hand-written and random loops.
/// </summary>
public class JitSinkingTests
{
    private static void SkipWithoutX64() =>
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT");

    /// <summary>The loop analyses (loop heads, sinking) run only for programs with a jump back; the
    /// decoder tells which (a jump to itself and one outside the program count as backward).</summary>
    [Theory]
    [InlineData("jeq r1, 0, +1\nmov r0, 1\nexit", false)]
    [InlineData("ja +0\nexit", false)]
    [InlineData("mov r0, 0\nadd r0, 1\njlt r0, 9, -2\nexit", true)]
    [InlineData("ja -1\nexit", true)]
    public void TheDecoderTellsWhetherAJumpGoesBack(string text, bool back)
    {
        Assert.Equal(back, DecodedProgram.Decode(Assembler.Assemble(text)).HasBackwardJumps);
    }

    [SkippableFact]
    public void ClangsInsertionSortLoopRunsNoMoveForItsExit()
    {
        SkipWithoutX64();
        // benchmarks/clang/kernels.o, kernel/sort: in the inner loop (7-14), r8 = r7 (8) is read
        // only when 9 leaves the loop for 15, and r8 = 0 (12) only when 14 falls out of it.
        var elf = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "benchmarks", "clang", "kernels.o"));
        var vm = EbpfVm.CreateRaw(ElfLoader.Load(elf, "sort").Bytecode);
        var rng = new Random(5);
        // Every option set, then with an instruction limit (counted per block: nothing moves).
        foreach (var (options, limit) in JitTests.AllOptions.Select(o => (o, 0UL)).Append((new JitOptions(), 10_000_000UL)))
        {
            vm.InstructionLimit = limit;
            vm.JitCompile(options);
            var listing = vm.JitDisassembly();
            bool sinks = limit == 0 && !options.ConstantBlinding;
            Assert.Equal(sinks, TestUtil.MachineCode(listing, 8).Trim() == "");
            Assert.Equal(sinks, TestUtil.MachineCode(listing, 12).Trim() == "");
            for (int n = 0; n < 20; n++)
            {
                var mem = new byte[rng.Next(0, 40) * 4];
                rng.NextBytes(mem);
                var copy = mem.ToArray();
                Assert.Equal(vm.Execute(copy), vm.ExecuteJit(mem));
                Assert.Equal(copy, mem); // sorted alike
            }
        }
    }

    [SkippableTheory]
    // r3 = r1 read after the loop; the loop writes r3 first: sunk to the fallthrough of the back edge.
    [InlineData("mov r3, r1\nsub r2, 1\njne r2, 0, loop", true)]
    [InlineData("mov32 r3, 7\nsub r2, 1\njne r2, 0, loop", true)]
    // Read inside the loop before it is written: not dead on the way round.
    [InlineData("add r0, r3\nmov r3, r1\nsub r2, 1\njne r2, 0, loop", false, "add r0, r3")]
    // The source changes between the move and the jump; the destination is read on the way.
    [InlineData("mov r3, r1\nadd r1, 1\nsub r2, 1\njne r2, 0, loop", false)]
    [InlineData("mov r3, r1\nadd r0, r3\nsub r2, 1\njne r2, 0, loop", false)]
    // The jump reads it.
    [InlineData("mov r3, r2\nsub r2, 1\njne r3, 1, loop", false)]
    // A load between: may fault.
    [InlineData("mov r3, r1\nldxb r4, [r10-1]\nsub r2, 1\njne r2, 0, loop", false)]
    public void AMoveReadOnlyAfterTheLoopRunsOnTheWayOut(string tail, bool sunk, string head = "mov r4, r0")
    {
        SkipWithoutX64();
        // r1 and r2 from the input; r2 counts the loop down (at least 1); r3 folded in after it.
        string text = $"ldxdw r1, [r1]\nmov r2, r1\nand r2, 7\nadd r2, 1\nmov r0, 0\nmov r3, 0\nstb [r10-1], 3\nloop:\n{head}\nmov r3, 5\nadd r0, r2\n{tail}\nlsh r0, 8\nadd r0, r3\nexit";
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        vm.JitCompile();
        var listing = vm.JitDisassembly();
        int move = 10 + tail.Split('\n').ToList().FindIndex(l => l.StartsWith("mov", StringComparison.Ordinal));
        Assert.Equal(sunk, TestUtil.MachineCode(listing, move).Trim() == "");
        foreach (ulong x in new ulong[] { 0, 1, 6, 7, 0xdeadbeef, ulong.MaxValue })
        {
            var mem = BitConverter.GetBytes(x);
            Assert.Equal(vm.Execute(mem.ToArray()), vm.ExecuteJit(mem.ToArray()));
        }
    }

    [SkippableFact]
    public void AMoveReadOnlyWhereAForwardJumpLeavesTheLoopRunsOnThatEdge()
    {
        SkipWithoutX64();
        // r4 = r2 (slot 6) is read only after the early exit at 7; round the loop it is written
        // again (9) before anything reads it. The move goes to the exit edge, out of line.
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("""
            ldxdw r1, [r1]
            mov r2, 40
            mov r0, 0
            mov r4, 0
            loop:
            add r0, r1
            rsh r1, 1
            mov r4, r2
            jeq r1, 0, out
            sub r2, 1
            mov r4, 0
            jne r2, 0, loop
            out:
            lsh r0, 8
            add r0, r4
            exit
            """));
        vm.JitCompile();
        Assert.Equal("", TestUtil.MachineCode(vm.JitDisassembly(), 6).Trim());
        foreach (ulong x in new ulong[] { 0, 1, 2, 0xff, 1UL << 45, ulong.MaxValue })
        {
            var mem = BitConverter.GetBytes(x);
            Assert.Equal(vm.Execute(mem.ToArray()), vm.ExecuteJit(mem.ToArray()));
        }
    }

    /// <summary>
    /// Random loops of register arithmetic and moves, an early exit and a counted back edge, with
    /// registers folded into r0 at the end: the JIT agrees with the interpreter under every
    /// option set, and some moves are sunk.
    /// </summary>
    [SkippableFact]
    public void RandomLoopsAgreeWithTheInterpreter()
    {
        SkipWithoutX64();
        var rng = new Random(61);
        int sunkPrograms = 0;
        string[] ops = { "add", "sub", "xor", "or", "and", "mul", "lsh", "rsh" };
        for (int n = 0; n < 300; n++)
        {
            string Op()
            {
                int d = rng.Next(0, 7), s = rng.Next(0, 7);
                return rng.Next(5) switch
                {
                    0 or 1 => $"mov{(rng.Next(3) == 0 ? "32" : "")} r{d}, {(rng.Next(2) == 0 ? $"r{s}" : rng.Next(-5, 100).ToString())}",
                    2 => $"{ops[rng.Next(ops.Length)]} r{d}, {(ops[0] == "lsh" ? 3 : rng.Next(1, 9))}",
                    _ => $"{ops[rng.Next(3)]} r{d}, r{s}",
                };
            }
            var body = new List<string>();
            for (int k = rng.Next(1, 6); k > 0; k--) body.Add(Op());
            string exitTest = $"j{new[] { "eq", "ne", "gt", "lt", "sgt" }[rng.Next(5)]} r{rng.Next(0, 7)}, {rng.Next(0, 20)}, out";
            var after = new List<string>();
            for (int k = rng.Next(0, 4); k > 0; k--) after.Add(Op());
            string text = "ldxdw r1, [r1]\nmov r2, r1\nrsh r2, 7\nmov r3, r1\nmov r4, 1\nmov r5, 2\nmov r6, 3\nmov r0, 0\nmov r7, 12\nloop:\n"
                + string.Join("\n", body) + "\n" + exitTest + "\n" + string.Join("\n", after) + (after.Count > 0 ? "\n" : "")
                + "sub r7, 1\njne r7, 0, loop\nout:\nadd r0, r1\nadd r0, r2\nxor r0, r3\nadd r0, r4\nxor r0, r5\nadd r0, r6\nexit";
            var prog = Assembler.Assemble(text);
            var vm = EbpfVm.CreateRaw(prog);
            foreach (ulong x in new ulong[] { 0, 5, 0x1234_5678_9abc_def0, ulong.MaxValue })
            {
                var mem = BitConverter.GetBytes(x);
                ulong expected = vm.Execute(mem.ToArray());
                foreach (var options in JitTests.AllOptions)
                {
                    vm.JitCompile(options);
                    Assert.True(expected == vm.ExecuteJit(mem.ToArray()), $"{options}\n{text}\nr1 = {x:x}");
                }
            }
            vm.JitCompile();
            var listing = vm.JitDisassembly();
            int first = 9, count = Instruction.ReadAll(prog).Length;
            for (int pc = first; pc < count; pc++)
                if (Instruction.ReadAll(prog)[pc].Opcode is 0xbf or 0xbc or 0xb7 or 0xb4 && TestUtil.MachineCode(listing, pc).Trim() == "")
                {
                    sunkPrograms++;
                    break;
                }
        }
        Assert.True(sunkPrograms >= 20, $"only {sunkPrograms} programs had a sunk move");
    }
}
