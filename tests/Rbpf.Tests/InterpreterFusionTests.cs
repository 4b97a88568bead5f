using System.Runtime.CompilerServices;

namespace Rbpf.Tests;

/// <summary>
/// The interpreter runs a mov and the ALU operation after it (<c>mov d, s; op d, x</c>), and
/// clang's address arithmetic with a load through it, as one fused instruction when no jump lands
/// inside: same results, faults named by the load's own slot, and observed runs still see every
/// instruction.
/// </summary>
public class InterpreterFusionTests
{
    /// <summary>Runs a raw VM's program on random inputs of <paramref name="length"/> bytes: the fused
    /// interpreter, every JIT mode and an observed (unfused) run must all give <paramref name="expected"/>'s value.</summary>
    private static void AgreesOnRandomInputs(byte[] program, int length, int seed, int rounds, Func<byte[], ulong> expected)
    {
        var vm = EbpfVm.CreateRaw(program);
        var random = new Random(seed);
        for (int round = 0; round < rounds; round++)
        {
            var mem = new byte[length];
            random.NextBytes(mem);
            ulong want = expected(mem);
            Assert.Equal(want, TestUtil.Exec(vm, mem));
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(mem, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
            Assert.Equal(want, observed);
        }
    }

    // A loop over 16-bit words as clang writes it: r5 = r1 + r4; load [r5]; r5 = r4 + 3.
    private const string Checksum = """
        mov r0, 0
        mov r4, 0
        jlt r2, 2, end
        loop:
        mov r5, r1
        add r5, r4
        ldxh r5, [r5+0]
        add r0, r5
        add r4, 2
        mov r5, r4
        add r5, 2
        jle r5, r2, loop
        end:
        exit
        """;

    [Fact]
    public void AddressArithmeticIsFusedWhereNoJumpLandsInside()
    {
        var program = DecodedProgram.Decode(Assembler.Assemble(Checksum));
        Assert.Equal(Op.LdxIndexedH, program.Fused[3].Op);
        Assert.Equal(Op.AddTo64Imm, program.Fused[8].Op);
        Assert.Equal(Op.Mov64Reg, program.Code[3].Op); // the JIT's and the observers' code is unfused
        // A jump onto the add: the pair is not fused.
        var landing = DecodedProgram.Decode(Assembler.Assemble("mov r3, r1\njeq r2, 0, +1\nmov r3, r1\nadd r3, 4\nmov r0, r3\nexit"));
        Assert.Equal(Op.Mov64Reg, landing.Fused[2].Op);
        // d = s + d reads the moved value: not fused (and d = d + t is).
        var doubled = DecodedProgram.Decode(Assembler.Assemble("mov r3, r1\nadd r3, r3\nmov r4, r4\nadd r4, r2\nmov r0, r3\nexit"));
        Assert.Equal(Op.Mov64Reg, doubled.Fused[0].Op);
        Assert.Equal(Op.AddTo64Reg, doubled.Fused[2].Op);
    }

    [Fact]
    public void FusedRunsComputeAsTheJitAndAsObservedRuns()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(Checksum));
        var random = new Random(3);
        for (int len = 0; len < 40; len++)
        {
            var mem = new byte[len];
            random.NextBytes(mem);
            ulong expected = 0;
            for (int k = 0; k + 2 <= len; k += 2) expected += BitConverter.ToUInt16(mem, k);
            Assert.Equal(expected, TestUtil.Exec(vm, mem)); // the interpreter and every JIT mode
            var seen = new List<int>();
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(mem, Span<byte>.Empty, (pc, _) => seen.Add(pc), out ulong observed, out _));
            Assert.Equal(expected, observed);
            if (len >= 2) Assert.Contains(4, seen); // the add inside the fused sequence, observed on its own
        }
        var doubled = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, 5\nmov r2, 7\nmov r3, r1\nadd r3, r3\nmov r4, r4\nadd r4, r2\nmov r0, r3\nlsh r0, 8\nor r0, r4\nexit"));
        Assert.Equal(10UL << 8 | 7, TestUtil.Exec(doubled));
    }

    [Fact]
    public void EveryThreeOperandFusionComputesAsTheInstructionsItStandsFor()
    {
        // mov d, s; op d, x for each fused operation, width, mov and operand kind, on random values:
        // the fused run, the observed (unfused) run, every JIT mode and a C# reference agree.
        string[] ops = { "add", "sub", "mul", "or", "and", "lsh", "rsh", "xor", "arsh" };
        var random = new Random(11);
        foreach (var op in ops)
        foreach (int width in new[] { 64, 32 })
        foreach (var mov in new[] { "mov64", "mov32" })
        foreach (bool register in new[] { false, true })
        for (int round = 0; round < 4; round++)
        {
            ulong s = (ulong)random.NextInt64() << 1 ^ (ulong)random.Next(), t = (ulong)random.NextInt64() << 1 ^ (ulong)random.Next();
            int imm = random.Next(int.MinValue, int.MaxValue);
            if (op is "lsh" or "rsh" or "arsh") imm &= width - 1; // the verifier takes only shifts within the width
            string text = $"lddw r1, 0x{s:x}\nlddw r2, 0x{t:x}\nlddw r3, 0x5555aaaa5555aaaa\n{mov} r3, r1\n" +
                $"{op}{width} r3, {(register ? "r2" : imm.ToString())}\nmov r0, r3\nexit";
            var bytes = Assembler.Assemble(text);
            bool fuses = !(mov == "mov32" && width == 64); // mov32's zero extension matters to a 64-bit op
            Assert.True(fuses == (DecodedProgram.Decode(bytes).Fused[6].Op >= Op.AddTo64Imm), text);
            ulong x = register ? t : (ulong)(long)imm, a = mov == "mov32" ? (uint)s : s;
            ulong expected = width == 64 ? Reference64(op, a, x) : Reference32(op, (uint)a, (uint)x);
            var vm = EbpfVm.CreateNoData(bytes);
            Assert.True(expected == TestUtil.Exec(vm), text); // the interpreter (fused) and every JIT mode
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
            Assert.True(expected == observed, text);
        }

        static ulong Reference64(string op, ulong a, ulong x) => op switch
        {
            "add" => a + x, "sub" => a - x, "mul" => a * x, "or" => a | x, "and" => a & x, "xor" => a ^ x,
            "lsh" => a << (int)(x & 63), "rsh" => a >> (int)(x & 63), _ => (ulong)((long)a >> (int)(x & 63)),
        };
        static ulong Reference32(string op, uint a, uint x) => op switch
        {
            "add" => a + x, "sub" => a - x, "mul" => a * x, "or" => a | x, "and" => a & x, "xor" => a ^ x,
            "lsh" => a << (int)(x & 31), "rsh" => a >> (int)(x & 31), _ => (uint)((int)a >> (int)(x & 31)),
        };
    }

    [Theory]
    [InlineData("ldxh", "be16", true)]
    [InlineData("ldxw", "be32", true)]
    [InlineData("ldxdw", "be64", true)]
    [InlineData("ldxh", "be32", false)] // another width: not the load's bytes reversed
    [InlineData("ldxw", "le32", false)] // no swap on this host (a zero extension)
    public void ALoadAndTheByteSwapOfItsWidthRunAsOne(string load, string swap, bool fuses)
    {
        // Plain (r3 = [r1 + 2]) and through clang's address arithmetic (r5 = r1 + r6; r4 = [r5 + 1]).
        var bytes = Assembler.Assemble($"mov r6, 5\n{load} r3, [r1+2]\n{swap} r3\nmov r5, r1\nadd r5, r6\n{load} r4, [r5+1]\n{swap} r4\nxor r3, r4\nmov r0, r3\nexit");
        var program = DecodedProgram.Decode(bytes);
        Assert.Equal(fuses, program.Fused[1].Op is Op.LdxSwapH or Op.LdxSwapW or Op.LdxSwapDW);
        Assert.Equal(fuses, program.Fused[3].Op is Op.LdxIndexedSwapH or Op.LdxIndexedSwapW or Op.LdxIndexedSwapDW);
        int width = load switch { "ldxh" => 2, "ldxw" => 4, _ => 8 };
        AgreesOnRandomInputs(bytes, 16, 5, 8, mem =>
        {
            ulong Load(int at) => width switch
            {
                2 => BitConverter.ToUInt16(mem, at),
                4 => BitConverter.ToUInt32(mem, at),
                _ => BitConverter.ToUInt64(mem, at),
            };
            ulong Swap(ulong x) => swap switch
            {
                "be16" => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)x),
                "be32" => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)x),
                "be64" => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(x),
                _ => (uint)x,
            };
            return Swap(Load(2)) ^ Swap(Load(6));
        });
    }

    [Theory]
    [InlineData("ldxh r0, [r1+3]\nbe16 r0\nexit", 0)]
    [InlineData("mov r3, r1\nadd r3, r2\nldxw r0, [r3-2]\nbe32 r0\nexit", 2)]
    public void AFaultInALoadFusedWithItsSwapNamesTheLoad(string text, int load)
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        Assert.True(DecodedProgram.Decode(Assembler.Assemble(text)).Fused[0].Op is Op.LdxSwapH or Op.LdxIndexedSwapW);
        var input = GC.AllocateArray<byte>(4, pinned: true); // one address for both engines' messages
        Assert.Equal(RbpfErrorCode.OutOfBounds, vm.TryExecute(input, Span<byte>.Empty, out _, out var error));
        Assert.Contains($"(insn #{load})", error!.Message);
        Assert.Equal(load, error.InstructionIndex);
        vm.JitCompile();
        Assert.Equal(RbpfErrorCode.OutOfBounds, vm.TryExecuteJit(input, Span<byte>.Empty, out _, out var jitError));
        static string Access(string message) => message[..message.IndexOf(", allowed", StringComparison.Ordinal)];
        Assert.Equal(Access(error.Message), Access(jitError!.Message));
    }

    [Fact]
    public void AnInstructionThatSetsARegisterAndTheJumpAfterItRunAsOne()
    {
        // mov64 t, s; mov64 t, k; mov32 t, k; add64 t, k; sub64 t, k, each before each conditional
        // jump (64/32 bits, immediate/register) that reads t as its first operand (jcc r3, x) or its
        // second (jcc r1, r4). The result shows both the branch taken and the register set.
        string[] kinds = { "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle" };
        string[] sets = { "mov", "movimm", "mov32imm", "add", "sub" };
        var random = new Random(17);
        foreach (var set in sets)
        foreach (var kind in kinds)
        foreach (int width in new[] { 64, 32 })
        foreach (bool register in new[] { false, true })
        foreach (bool second in register ? new[] { false, true } : new[] { false })
        for (int round = 0; round < 4; round++)
        {
            ulong Random64() => (ulong)random.NextInt64() << 1 ^ (ulong)random.Next(2);
            ulong a = Random64(), b = Random64(), c3 = Random64(), c4 = Random64();
            int k = set == "sub" && round == 3 ? int.MinValue : random.Next(int.MinValue, int.MaxValue);
            string t = second ? "r4" : "r3";
            ulong before = second ? c4 : c3;
            ulong v = set switch
            {
                "mov" => second ? b : a,
                "movimm" => (ulong)(long)k,
                "mov32imm" => (uint)k,
                "add" => before + (ulong)(long)k,
                _ => before - (ulong)(long)k,
            };
            string first = set switch
            {
                "mov" => second ? "mov r4, r2" : "mov r3, r1",
                "movimm" => $"mov {t}, {k}",
                "mov32imm" => $"mov32 {t}, {k}",
                "add" => $"add {t}, {k}",
                _ => $"sub {t}, {k}",
            };
            // The other operand: equal to t's new value, one off, or random.
            ulong other = round < 3 ? v + (ulong)(round - 1) : Random64();
            int imm = (int)other;
            if (second) a = other;
            else if (register) b = set == "mov" ? a + (ulong)(round - 1) : other;
            string jump = width == 64 ? kind : kind + "32";
            string test = second ? $"{first}\n{jump} r1, r4, +4" : $"{first}\n{jump} r3, {(register ? "r2" : imm.ToString())}, +4";
            string text = $"lddw r1, 0x{a:x}\nlddw r2, 0x{b:x}\nlddw r3, 0x{c3:x}\nlddw r4, 0x{c4:x}\n{test}\n" +
                "mov r0, r3\nxor r0, r4\nlsh r0, 1\nexit\nmov r0, r3\nxor r0, r4\nlsh r0, 1\nor r0, 1\nexit";
            var bytes = Assembler.Assemble(text);
            bool fuses = set switch { "mov32imm" => k >= 0, "sub" => k != int.MinValue, _ => true };
            Assert.True(fuses == DecodedProgram.Decode(bytes).Fused[8].Op is >= Op.SetJeq64Imm and <= Op.SetJsle32Reg, text);
            if (set == "mov") v = second ? b : a; // the register case above may have changed what mov copies
            ulong lhs = second ? a : v, rhs = second ? v : register ? b : (ulong)(long)imm;
            bool taken = width == 64 ? Holds(kind, lhs, rhs, (long)lhs, (long)rhs) : Holds(kind, (uint)lhs, (uint)rhs, (int)lhs, (int)rhs);
            ulong r3 = second ? c3 : v, r4 = second ? v : c4;
            ulong expected = (r3 ^ r4) << 1 | (taken ? 1UL : 0);
            var vm = EbpfVm.CreateNoData(bytes);
            Assert.True(expected == TestUtil.Exec(vm), text); // the interpreter (fused) and every JIT mode
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
            Assert.True(expected == observed, text);
        }

        static bool Holds(string kind, ulong u, ulong v, long s, long t) => kind switch
        {
            "jeq" => u == v, "jgt" => u > v, "jge" => u >= v, "jset" => (u & v) != 0, "jne" => u != v,
            "jsgt" => s > t, "jsge" => s >= t, "jlt" => u < v, "jle" => u <= v, "jslt" => s < t, _ => s <= t,
        };
    }

    [Theory]
    [InlineData("mov r1, 0\nloop:\nadd r1, 1\nmov r2, r1\njne r2, 0, loop\nexit", 2)] // mov + jne
    [InlineData("mov r1, 0\nloop:\nadd r1, 1\njne r1, 0, loop\nexit", 1)] // add + jne, the whole loop
    public void AFusedSetAndJumpClosesALoopThatStillStopsOnInterrupt(string text, int fused)
    {
        // The loop's way back is fused; endless (r1 wraps only after 2^64 rounds) until interrupted.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(text));
        Assert.Equal(Op.SetJne64Imm, vm.Decoded!.Fused[fused].Op);
        RbpfException? error = null;
        var runner = new Thread(() =>
        {
            try { vm.Execute([]); }
            catch (RbpfException e) { error = e; }
        });
        runner.Start();
        while (!runner.Join(20)) vm.Interrupt(); // an interrupt before the run begins is lost
        Assert.Equal(RbpfErrorCode.Interrupted, error!.Code);
        Assert.Equal("interrupted at insn #1", error.Message); // the loop's head, as unfused
    }

    [Theory]
    [InlineData("add r3, 7", 1)]
    [InlineData("add r3, -5", 1)]
    [InlineData("add r3, r2", 1)]
    [InlineData("add r3, r3", 1)] // the add reads the loaded value twice
    [InlineData("add32 r3, 7", 0)] // a 32-bit add: not fused
    public void ACounterInMemoryIsLoadedAddedAndStoredAsOne(string add, int fuses)
    {
        // A stack slot (clang's spilled counter) and an input word, each counted up twice.
        string text = "ldxdw r4, [r1+0]\nstxdw [r10-16], r4\nldxdw r2, [r1+8]\n" +
            $"ldxdw r3, [r10-16]\n{add}\nstxdw [r10-16], r3\nldxdw r3, [r10-16]\n{add}\nstxdw [r10-16], r3\nmov r5, r3\n" +
            $"ldxdw r3, [r1+16]\n{add}\nstxdw [r1+16], r3\n" +
            "ldxdw r0, [r10-16]\nlsh r0, 1\nxor r0, r3\nxor r0, r5\nexit";
        var bytes = Assembler.Assemble(text);
        var program = DecodedProgram.Decode(bytes);
        foreach (int at in new[] { 3, 6, 10 })
            Assert.Equal(fuses == 1, program.Fused[at].Op is Op.LdxAddStxDWImm or Op.LdxAddStxDWReg);
        var vm = EbpfVm.CreateRaw(bytes);
        var random = new Random(23);
        for (int round = 0; round < 6; round++)
        {
            var mem = GC.AllocateArray<byte>(24, pinned: true);
            random.NextBytes(mem);
            ulong counter = BitConverter.ToUInt64(mem, 0), t = BitConverter.ToUInt64(mem, 8), word = BitConverter.ToUInt64(mem, 16);
            var copy = mem.ToArray();
            ulong result = TestUtil.Exec(vm, mem); // every JIT mode, the same memory afterwards
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(copy, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
            Assert.Equal(result, observed); // unfused
            Assert.Equal(copy, mem);
            ulong Step(ulong x) => add switch
            {
                "add r3, 7" => x + 7, "add r3, -5" => x - 5, "add r3, r2" => x + t, "add r3, r3" => x * 2, _ => (uint)x + 7u, // add32: zero-extended
            };
            ulong twice = Step(Step(counter)), once = Step(word);
            Assert.Equal(once, BitConverter.ToUInt64(mem, 16));
            Assert.Equal((twice << 1) ^ once ^ twice, result);
        }
    }

    [Fact]
    public void AFusedCounterFaultsWhereTheUnfusedInstructionsDo()
    {
        // Outside the input: the load faults (slot 0). A read-only cell: the load and add run, the
        // store faults (slot 4, after the lddw's two).
        var outside = EbpfVm.CreateRaw(Assembler.Assemble("ldxdw r3, [r1+8]\nadd r3, 1\nstxdw [r1+8], r3\nexit"));
        Assert.Equal(Op.LdxAddStxDWImm, outside.Decoded!.Fused[0].Op);
        var error = TestUtil.Fails(outside, new byte[12]);
        Assert.Equal(RbpfErrorCode.OutOfBounds, error.Code);
        Assert.Equal(0, error.InstructionIndex);
        var cell = GC.AllocateArray<ulong>(1, pinned: true);
        cell[0] = 41;
        unsafe
        {
            nint address = (nint)Unsafe.AsPointer(ref cell[0]);
            var readOnly = EbpfVm.CreateNoData(Assembler.Assemble($"lddw r1, 0x{address:x}\nldxdw r3, [r1+0]\nadd r3, 1\nstxdw [r1+0], r3\nexit"));
            readOnly.AddMemoryRegion(new MemoryRegion(address, 8, Writable: false, "cell"));
            Assert.Equal(Op.LdxAddStxDWImm, readOnly.Decoded!.Fused[2].Op);
            error = TestUtil.Fails(readOnly);
            Assert.Equal(RbpfErrorCode.OutOfBounds, error.Code);
            Assert.Equal(4, error.InstructionIndex);
            Assert.Contains("store", error.Message);
        }
        Assert.Equal(41UL, cell[0]);
    }

    [Fact]
    public void AFaultInAFusedLoadNamesTheLoad()
    {
        // r3 = r1 + r2 points just past the input: the load at slot 2 faults, after r3 is set.
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("mov r3, r1\nadd r3, r2\nldxb r0, [r3+0]\nexit"));
        var input = GC.AllocateArray<byte>(4, pinned: true); // one address for both engines' messages
        Assert.Equal(RbpfErrorCode.OutOfBounds, vm.TryExecute(input, Span<byte>.Empty, out _, out var error));
        Assert.Contains("(insn #2)", error!.Message);
        Assert.Equal(2, error.InstructionIndex);
        vm.JitCompile();
        Assert.Equal(RbpfErrorCode.OutOfBounds, vm.TryExecuteJit(input, Span<byte>.Empty, out _, out var jitError));
        static string Access(string message) => message[..message.IndexOf(", allowed", StringComparison.Ordinal)]; // the stacks differ
        Assert.Equal(Access(error.Message), Access(jitError!.Message));
    }

    [Fact]
    public void StackAccessesThroughR10InsideTheFrameRunAsTheyDoUnfused()
    {
        // Every width stored and loaded back at the frame's two ends (-512 and -size) and between;
        // an offset past the frame (-520) is not fused: the plain, checked load, which faults.
        var bytes = Assembler.Assemble(
            "lddw r1, 0x8877665544332211\nstxb [r10-512], r1\nstxh [r10-2], r1\nstxw [r10-260], r1\nstxdw [r10-8], r1\n" +
            "ldxb r2, [r10-512]\nldxh r3, [r10-2]\nldxw r4, [r10-260]\nldxdw r5, [r10-8]\nldxdw r6, [r10-16]\n" +
            "mov r0, r2\nadd r0, r3\nadd r0, r4\nadd r0, r5\nadd r0, r6\nexit");
        var program = DecodedProgram.Decode(bytes);
        Op[] expected = { Op.StxStackB, Op.StxStackH, Op.StxStackW, Op.StxStackDW, Op.LdxStackB, Op.LdxStackH, Op.LdxStackW, Op.LdxStackDW, Op.LdxStackDW };
        for (int k = 0; k < expected.Length; k++) Assert.Equal(expected[k], program.Fused[2 + k].Op);
        var vm = EbpfVm.CreateNoData(bytes);
        ulong want = 0x11UL + 0x8877 + 0x44332211 + 0x8877665544332211; // [r10-2] under the dw; [r10-16] never written: zero
        Assert.Equal(want, TestUtil.Exec(vm));
        Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
        Assert.Equal(want, observed);
        Assert.Equal(Op.LdxDW, DecodedProgram.Decode(Assembler.Assemble("ldxdw r0, [r10-520]\nexit")).Fused[0].Op);
        var outside = TestUtil.Fails(EbpfVm.CreateNoData(Assembler.Assemble("ldxdw r0, [r10-520]\nexit")));
        Assert.Equal(RbpfErrorCode.OutOfBounds, outside.Code);
    }

    [Theory]
    [InlineData("ldxdw r0, [r10-400]\nexit")]
    [InlineData("mov r1, 7\nstxb [r10-400], r1\nmov r0, 0\nexit")]
    public unsafe void AStackAccessOutsideASmallerLayoutsStackIsStillChecked(string text)
    {
        // uBPF's layout on a 300-byte stack: r10-400 is below the stack, though inside 512 bytes.
        var vm = new EbpfVm(VmKind.NoData) { StackLayout = new StackLayout(_ => 256, maxFrames: 9, alignTop: false, minimumStack: 0) };
        vm.SetProgram(Assembler.Assemble(text));
        Assert.True(vm.Decoded!.Fused[text.StartsWith("mov") ? 1 : 0].Op is Op.LdxStackDW or Op.StxStackB);
        var stack = new byte[300];
        fixed (byte* s = stack)
        {
            Assert.Equal(RbpfErrorCode.OutOfBounds, vm.TryExecute(null, 0, null, 0, s, 300, out _, out var error));
            Assert.Contains("out-of-bounds", error!.Message);
            if (EbpfVm.IsJitSupported)
            {
                vm.JitCompile();
                Assert.Equal(RbpfErrorCode.OutOfBounds, vm.TryExecuteJit(null, 0, null, 0, s, 300, out _, out _));
            }
        }
        Assert.All(stack, b => Assert.Equal(0, b)); // nothing written
    }

    [Theory]
    [InlineData("ldxb", 56, 56, true)]
    [InlineData("ldxh", 48, 48, true)]
    [InlineData("ldxw", 32, 32, true)]
    [InlineData("ldxb", 48, 48, false)] // not the load's width: an ordinary load and shifts
    [InlineData("ldxh", 48, 40, false)] // shifts that differ
    public void ASignExtendingLoadAsClangWritesItRunsAsOne(string load, int left, int right, bool fuses)
    {
        var bytes = Assembler.Assemble($"{load} r3, [r1+3]\nlsh r3, {left}\narsh r3, {right}\nmov r0, r3\nexit");
        Assert.Equal(fuses, DecodedProgram.Decode(bytes).Fused[0].Op is Op.LdxSextB or Op.LdxSextH or Op.LdxSextW);
        AgreesOnRandomInputs(bytes, 8, 29, 16, mem =>
        {
            ulong loaded = load switch { "ldxb" => mem[3], "ldxh" => BitConverter.ToUInt16(mem, 3), _ => BitConverter.ToUInt32(mem, 3) };
            return (ulong)((long)(loaded << left) >> right);
        });
    }

    [Theory]
    [InlineData("ldxh", 48)]
    [InlineData("ldxh", 52)]
    [InlineData("ldxw", 32)]
    [InlineData("ldxw", 52)]
    [InlineData("ldxw", 63)]
    public void ABigEndianFieldReadSignedRunsAsOne(string load, int shift)
    {
        // clang's (int16_t)ntohs(x) and signed bit fields: the load, be64, an arithmetic shift.
        var bytes = Assembler.Assemble($"{load} r3, [r1+1]\nbe64 r3\narsh r3, {shift}\nmov r0, r3\nexit");
        Assert.True(DecodedProgram.Decode(bytes).Fused[0].Op is Op.LdxBe64ArshH or Op.LdxBe64ArshW);
        AgreesOnRandomInputs(bytes, 8, 31, 16, mem =>
        {
            ulong loaded = load == "ldxh" ? BitConverter.ToUInt16(mem, 1) : BitConverter.ToUInt32(mem, 1);
            return (ulong)((long)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(loaded) >> shift);
        });
    }

    [Theory]
    [InlineData("be16", "r4")]
    [InlineData("be32", "r4")]
    [InlineData("be64", "r4")]
    [InlineData("be16", "r3")] // the register itself
    public void AMoveAndAByteSwapRunAsOne(string swap, string source)
    {
        var bytes = Assembler.Assemble($"lddw r3, 0x1122334455667788\nlddw r4, 0x99aabbccddeeff01\nmov r3, {source}\n{swap} r3\nmov r0, r3\nadd r0, r4\nexit");
        Assert.True(DecodedProgram.Decode(bytes).Fused[4].Op is Op.MovSwap16 or Op.MovSwap32 or Op.MovSwap64);
        ulong s = source == "r4" ? 0x99aabbccddeeff01 : 0x1122334455667788;
        ulong swapped = swap switch
        {
            "be16" => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)s),
            "be32" => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)s),
            _ => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(s),
        };
        var vm = EbpfVm.CreateNoData(bytes);
        Assert.Equal(swapped + 0x99aabbccddeeff01, TestUtil.Exec(vm));
        Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
        Assert.Equal(swapped + 0x99aabbccddeeff01, observed);
    }

    /// <summary>clang's insertion sort moves an element up while it counts the index down:
    /// <c>add64 r7, -1; stxw [r6+0], r9</c>, one dispatch for the two.</summary>
    [Theory]
    [InlineData("add r8, -1", "stxw [r6+0], r9", Op.AddStxW)]
    [InlineData("add r8, -1", "stxdw [r6+0], r9", Op.AddStxDW)]
    [InlineData("add r8, -1", "stxw [r6+0], r8", Op.AddStxW)] // stores the register just added to
    [InlineData("add r7, -1", "stxdw [r7+0], r9", Op.AddStxDW)] // through the register just added to
    [InlineData("add r8, 7", "stxdw [r10-8], r8", Op.AddStxDW)] // to the stack (clang's spilled counters)
    [InlineData("add r8, -1", "stxw [r10-4], r9", Op.AddStxW)]
    internal void AnAddAndTheStoreAfterItRunAsOne(string add, string store, Op op)
    {
        // r6 and r7 point into the input (r7 one byte on); the result mixes what the store left in
        // the input and on the stack with r8.
        string text = $"""
            mov r6, r1
            add r6, 8
            mov r7, r1
            add r7, 9
            mov r8, 41
            lddw r9, 0x1122334455667788
            {add}
            {store}
            ldxdw r0, [r1+8]
            ldxdw r2, [r10-8]
            xor r0, r2
            add r0, r8
            exit
            """;
        var bytes = Assembler.Assemble(text);
        Assert.Equal(op, DecodedProgram.Decode(bytes).Fused[7].Op);
        ulong r8 = add == "add r8, -1" ? 40UL : add == "add r8, 7" ? 48UL : 41UL;
        AgreesOnRandomInputs(bytes, 24, 37, 8, mem =>
        {
            var input = mem.ToArray();
            var stack = new byte[8];
            ulong value = store.EndsWith("r8") ? r8 : 0x1122334455667788;
            var target = store.Contains("r10") ? stack : input;
            int at = store.Contains("r10") ? (store.Contains("-4") ? 4 : 0) : 8;
            if (store.StartsWith("stxdw")) BitConverter.TryWriteBytes(target.AsSpan(at), value);
            else BitConverter.TryWriteBytes(target.AsSpan(at), (uint)value);
            return (BitConverter.ToUInt64(input, 8) ^ BitConverter.ToUInt64(stack, 0)) + r8;
        });
    }

    [Fact]
    public void AFusedAddAndStoreFaultsAtTheStore()
    {
        // The store is outside the input: the fault names its slot, as in every engine, with the add done.
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("mov r0, 0\nadd r0, 3\nstxw [r1+6], r0\nexit"));
        Assert.Equal(Op.AddStxW, vm.Decoded!.Fused[1].Op);
        var error = TestUtil.Fails(vm, new byte[8]);
        Assert.Equal(RbpfErrorCode.OutOfBounds, error.Code);
        Assert.Equal(2, error.InstructionIndex);
    }

    [Theory]
    [InlineData("ldxh r0, [r1+3]\nlsh r0, 48\narsh r0, 48\nexit")]
    [InlineData("ldxw r0, [r1+1]\nbe64 r0\narsh r0, 40\nexit")]
    public void AFaultInAFusedSignedLoadNamesTheLoad(string text)
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        Assert.True(vm.Decoded!.Fused[0].Op is Op.LdxSextH or Op.LdxBe64ArshW);
        var error = TestUtil.Fails(vm, new byte[4]); // same code, slot and message in every engine
        Assert.Equal(RbpfErrorCode.OutOfBounds, error.Code);
        Assert.Equal(0, error.InstructionIndex);
    }

    [Fact]
    public void LocalCallsAndHelpersAfterFusedCodeKeepTheirLinks()
    {
        // The fused copy follows what loading writes into calls: helper slots and frame sizes.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("stdw [r10-8], 42\nmov r1, r10\nadd r1, -8\ncall local f\nmov r2, r0\nmov r1, r0\nadd r1, 1\ncall 9\nexit\nf:\nldxdw r0, [r1]\nexit"));
        vm.RegisterHelper(9, (a, b, _, _, _) => a * 100 + b, "combine");
        Assert.Equal(43UL * 100 + 42, TestUtil.Exec(vm));
    }
}
