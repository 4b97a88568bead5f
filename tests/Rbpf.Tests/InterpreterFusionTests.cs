namespace Rbpf.Tests;

/// <summary>
/// The interpreter runs a mov and the ALU operation after it (<c>mov d, s; op d, x</c>), and
/// clang's address arithmetic with a load through it, as one fused instruction when no jump lands
/// inside: same results, faults named by the load's own slot, and observed runs still see every
/// instruction.
/// </summary>
public class InterpreterFusionTests
{
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
        var vm = EbpfVm.CreateRaw(bytes);
        var random = new Random(5);
        int width = load switch { "ldxh" => 2, "ldxw" => 4, _ => 8 };
        for (int round = 0; round < 8; round++)
        {
            var mem = new byte[16];
            random.NextBytes(mem);
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
            ulong expected = Swap(Load(2)) ^ Swap(Load(6));
            Assert.Equal(expected, TestUtil.Exec(vm, mem)); // the interpreter (fused) and every JIT mode
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(mem, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
            Assert.Equal(expected, observed);
        }
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
    public void AMoveAndTheConditionalJumpAfterItRunAsOne()
    {
        // mov64 then each conditional jump, 64/32 bits, immediate/register; the jump reads the moved
        // register as its first operand (mov r3, r1; jcc r3, x) or as its second (mov r4, r2; jcc r1, r4).
        string[] kinds = { "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle" };
        var random = new Random(17);
        foreach (var kind in kinds)
        foreach (int width in new[] { 64, 32 })
        foreach (bool register in new[] { false, true })
        foreach (bool secondOperand in register ? new[] { false, true } : new[] { false })
        for (int round = 0; round < 6; round++)
        {
            ulong a = (ulong)random.NextInt64() << 1 ^ (ulong)random.Next(2);
            int imm = round switch { 0 => (int)a, 1 => (int)a + 1, 2 => (int)a - 1, _ => random.Next(int.MinValue, int.MaxValue) };
            ulong b = round switch { 0 => a, 1 => a + 1, 2 => a - 1, 3 => a ^ 0xffffffff00000000, _ => (ulong)random.NextInt64() };
            string jump = width == 64 ? kind : kind + "32";
            string test = secondOperand ? $"mov r4, r2\n{jump} r1, r4, +2" : $"mov r3, r1\n{jump} r3, {(register ? "r2" : imm.ToString())}, +2";
            string text = $"lddw r1, 0x{a:x}\nlddw r2, 0x{b:x}\n{test}\nmov r0, 1\nexit\nmov r0, 2\nexit";
            var bytes = Assembler.Assemble(text);
            Assert.True(DecodedProgram.Decode(bytes).Fused[4].Op >= Op.MovJeq64Imm, text);
            ulong x = register ? b : (ulong)(long)imm;
            bool taken = width == 64 ? Holds(kind, a, x, (long)a, (long)x) : Holds(kind, (uint)a, (uint)x, (int)a, (int)x);
            var vm = EbpfVm.CreateNoData(bytes);
            Assert.True((taken ? 2UL : 1UL) == TestUtil.Exec(vm), text); // the interpreter (fused) and every JIT mode
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, (_, _) => { }, out ulong observed, out _));
            Assert.True((taken ? 2UL : 1UL) == observed, text);
        }

        static bool Holds(string kind, ulong u, ulong v, long s, long t) => kind switch
        {
            "jeq" => u == v, "jgt" => u > v, "jge" => u >= v, "jset" => (u & v) != 0, "jne" => u != v,
            "jsgt" => s > t, "jsge" => s >= t, "jlt" => u < v, "jle" => u <= v, "jslt" => s < t, _ => s <= t,
        };
    }

    [Fact]
    public void AFusedMoveAndJumpClosesALoopThatStillStopsOnInterrupt()
    {
        // The loop's way back is a fused mov + jne; endless (r1 wraps only after 2^64 rounds) until interrupted.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, 0\nloop:\nadd r1, 1\nmov r2, r1\njne r2, 0, loop\nexit"));
        Assert.Equal(Op.MovJne64Imm, vm.Decoded!.Fused[2].Op);
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
    public void LocalCallsAndHelpersAfterFusedCodeKeepTheirLinks()
    {
        // The fused copy follows what loading writes into calls: helper slots and frame sizes.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("stdw [r10-8], 42\nmov r1, r10\nadd r1, -8\ncall local f\nmov r2, r0\nmov r1, r0\nadd r1, 1\ncall 9\nexit\nf:\nldxdw r0, [r1]\nexit"));
        vm.RegisterHelper(9, (a, b, _, _, _) => a * 100 + b, "combine");
        Assert.Equal(43UL * 100 + 42, TestUtil.Exec(vm));
    }
}
