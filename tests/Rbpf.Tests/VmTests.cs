using System.Runtime.InteropServices;

namespace Rbpf.Tests;

/// <summary>The VM: kinds, memory checks, limits, helpers, verifier hooks, threads.</summary>
public class VmTests
{
    [Fact]
    public void OutOfBoundsLoadNamesInstructionAddressAndSize()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("mov r0, 0\nldxw r0, [r1+3]\nexit"));
        var e = TestUtil.Fails(vm, new byte[6]);
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        Assert.Equal(1, e.InstructionIndex);
        Assert.Contains("load of 4 bytes", e.Message);
        Assert.Contains("insn #1", e.Message);
        Assert.Contains("memory [0x", e.Message);
        Assert.Contains("stack [0x", e.Message);
    }

    [Theory]
    [InlineData("ldxdw r0, [r10]\nexit")]            // just above the stack
    [InlineData("ldxdw r0, [r10-520]\nexit")]        // below the only frame in use
    [InlineData("stdw [r10+0], 1\nexit")]
    [InlineData("mov r1, 0\nldxb r0, [r1]\nexit")]   // NULL
    [InlineData("lddw r1, 0xffffffffffffffff\nldxdw r0, [r1]\nexit")] // wraps around
    [InlineData("mov r0, 0\nstxdw [r0], r0\nexit")]
    public void BadAccessesFailWithoutCrashing(string asm)
    {
        var e = TestUtil.Fails(EbpfVm.CreateNoData(Assembler.Assemble(asm)));
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
    }

    [Fact]
    public void StackBytesAreZeroAtStart()
    {
        Assert.Equal(0UL, TestUtil.Run("ldxdw r0, [r10-512]\nldxdw r1, [r10-8]\nor r0, r1\nexit"));
    }

    [Fact]
    public void RawKindPassesLengthInR2()
    {
        Assert.Equal(5UL, TestUtil.RunRaw("mov r0, r2\nexit", new byte[5]));
    }

    [Fact]
    public void MbuffKindWithoutBufferPassesPacket()
    {
        var vm = EbpfVm.CreateMbuff(Assembler.Assemble("ldxb r0, [r1+1]\nadd r0, r2\nexit"));
        Assert.Equal(0x20UL + 3, TestUtil.Exec(vm, new byte[] { 0x10, 0x20, 0x30 }));
    }

    [Fact]
    public void FixedMbuffRejectsOverlappingOffsets()
    {
        var e = Assert.Throws<RbpfException>(() => EbpfVm.CreateFixedMbuff(Assembler.Assemble("exit"), 8, 12));
        Assert.Equal(RbpfErrorCode.InvalidArgument, e.Code);
        e = Assert.Throws<RbpfException>(() => EbpfVm.CreateFixedMbuff(Assembler.Assemble("exit"), -1, 12));
        Assert.Equal(RbpfErrorCode.InvalidArgument, e.Code);
    }

    [Fact]
    public void FixedMbuffWithLargeOffsetsStillWorks()
    {
        var vm = EbpfVm.CreateFixedMbuff(Assembler.Assemble("ldxdw r2, [r1+4000]\nldxdw r3, [r1+4096]\nsub r3, r2\nmov r0, r3\nexit"), 4000, 4096);
        Assert.Equal(9UL, TestUtil.Exec(vm, new byte[9]));
    }

    [Fact]
    public void InstructionLimitStopsRunawayLoops()
    {
        // A loop the verifier cannot prove endless (it tests r0), which never ends.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit"));
        vm.InstructionLimit = 1000;
        var e = TestUtil.Fails(vm);
        Assert.Equal(RbpfErrorCode.InstructionLimit, e.Code);
        Assert.Contains("1000", e.Message);
    }

    [Fact]
    public void InstructionLimitCountsExactly()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 1\nmov r0, 2\nexit"));
        vm.InstructionLimit = 3;
        Assert.Equal(2UL, TestUtil.Exec(vm));
        vm.InstructionLimit = 2;
        Assert.Equal(RbpfErrorCode.InstructionLimit, TestUtil.Fails(vm).Code);
    }

    // The interpreter runs ALU, jumps, loads and stores in an inner loop and hands calls, exits and
    // atomics to an outer one: the count, the trace and the slot in messages must not notice.
    private const string MixedProgram = """
        mov r6, 3
        stxdw [r10-8], r6
        loop:
        call local f
        lock add [r10-8], r0
        sub r6, 1
        jne r6, 0, loop
        mov r1, 1
        call 99
        ldxdw r0, [r10-8]
        exit
        f:
        mov r0, r6
        exit
        """;

    private static EbpfVm MixedVm()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(MixedProgram));
        vm.RegisterHelper(99, (a, _, _, _, _) => a + 1, "plus_one");
        return vm;
    }

    [Fact]
    public void TraceAndCountAgreeAcrossCallsExitsAndAtomics()
    {
        var vm = MixedVm();
        var trace = new List<int>();
        Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, (pc, _) => trace.Add(pc), out ulong result, out _));
        Assert.Equal(3UL + 3 + 2 + 1, result);
        // Two setup slots, three rounds of (call, mov, exit, lock add, sub, jne), then the tail.
        var round = new[] { 2, 10, 11, 3, 4, 5 };
        var expected = new List<int> { 0, 1 };
        for (int k = 0; k < 3; k++) expected.AddRange(round);
        expected.AddRange(new[] { 6, 7, 8, 9 });
        Assert.Equal(expected, trace);

        // The limit is charged a basic block at a time as the block begins. MixedProgram's blocks
        // (first slot: length): setup 0-1, the loop head 2 (call local), 3-5 (after the call, to the
        // jne), 6-7 (to call 99), 8-9 (after it), f 10-11. A limit of exactly the trace's length is
        // enough; a smaller one stops at the first block that would go past it, named by its first
        // slot, in the interpreter and the JIT alike.
        var blocks = new Dictionary<int, int> { [0] = 2, [2] = 1, [3] = 3, [6] = 2, [8] = 2, [10] = 2 };
        vm.InstructionLimit = (ulong)trace.Count;
        Assert.Equal(result, vm.Execute());
        vm.JitCompile();
        Assert.Equal(result, vm.ExecuteJit());
        vm.InstructionLimit = (ulong)trace.Count - 1;
        Assert.Equal(RbpfErrorCode.InstructionLimit, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, out _, out _));
        for (int limit = 1; limit < trace.Count; limit++)
        {
            int p = 0;
            while (!(blocks.TryGetValue(trace[p], out int length) && p + length > limit)) p++;
            vm.InstructionLimit = (ulong)limit;
            Assert.Equal(RbpfErrorCode.InstructionLimit, vm.TryExecute(Span<byte>.Empty, Span<byte>.Empty, out _, out var e));
            Assert.Equal(trace[p], e!.InstructionIndex);
            Assert.Contains($"insn #{trace[p]}", e.Message);
            var j = Assert.Throws<RbpfException>(() => vm.ExecuteJit());
            Assert.Equal(RbpfErrorCode.InstructionLimit, j.Code);
            Assert.Equal(e.Message, j.Message);
        }
    }

    [Fact]
    public void FaultsNameTheirSlotOnBothSidesOfTheInnerLoop()
    {
        // A load (inner loop) and an atomic (outer loop) out of bounds, each after calls.
        var load = EbpfVm.CreateNoData(Assembler.Assemble("call local f\nmov r1, 8\nldxw r0, [r1]\nexit\nf:\nexit"));
        var e = TestUtil.Fails(load);
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        Assert.Equal(2, e.InstructionIndex);
        var atomic = EbpfVm.CreateNoData(Assembler.Assemble("call local f\nmov r1, 8\nlock add [r1], r0\nexit\nf:\nexit"));
        e = TestUtil.Fails(atomic);
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        Assert.Equal(2, e.InstructionIndex);
        Assert.Contains("insn #2", e.Message);
    }

    [Fact]
    public void DeepRecursionFailsWithCallDepth()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("f:\ncall local f\nexit"));
        var e = TestUtil.Fails(vm);
        Assert.Equal(RbpfErrorCode.CallDepthExceeded, e.Code);
    }

    [Fact]
    public void SevenNestedCallsAreAllowed()
    {
        // The entry frame plus seven calls fills all eight frames.
        string asm = "mov r0, 0\ncall local f1\nexit\n";
        for (int k = 1; k <= 7; k++)
            asm += $"f{k}:\nadd r0, 1\n" + (k < 7 ? $"call local f{k + 1}\n" : "stdw [r10-512], 1\n") + "exit\n";
        Assert.Equal(7UL, TestUtil.Run(asm));
    }

    [Fact]
    public void ManagedHelperGetsArgumentsAndReturnsR0()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, 1\nmov r2, 2\nmov r3, 3\nmov r4, 4\nmov r5, 5\ncall 77\nexit"));
        vm.RegisterHelper(77, (a, b, c, d, e) => a * 10000 + b * 1000 + c * 100 + d * 10 + e);
        Assert.Equal(12345UL, TestUtil.Exec(vm));
    }

    [Fact]
    public void HelperRegisteredAfterLoadIsLinked()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("call 9\nexit"));
        var e = TestUtil.Fails(vm);
        Assert.Equal(RbpfErrorCode.UnknownHelper, e.Code);
        Assert.Contains("9", e.Message);
        vm.RegisterHelper(9, (_, _, _, _, _) => 99);
        Assert.Equal(99UL, TestUtil.Exec(vm));
        vm.RegisterHelper(9, (_, _, _, _, _) => 98); // replacing works too
        Assert.Equal(98UL, TestUtil.Exec(vm));
    }

    [Fact]
    public void HelperThatThrowsBecomesAnError()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("call 1\nexit"));
        vm.RegisterHelper(1, (_, _, _, _, _) => throw new InvalidOperationException("boom"));
        var e = TestUtil.Fails(vm);
        Assert.Equal(RbpfErrorCode.HelperFailed, e.Code);
        Assert.Contains("boom", e.Message);
    }

    [Fact]
    public void CallxCallsTheHelperInItsRegister()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, 4\nmov r2, 6\ncallx r2\nexit"));
        vm.RegisterHelper(6, (a, _, _, _, _) => a + 1);
        Assert.Equal(5UL, TestUtil.Exec(vm));
    }

    [Fact]
    public void UnwindHelperStopsOnZero()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, 0\ncall 5\nmov r0, 2\nexit"));
        vm.RegisterHelper(5, (a, _, _, _, _) => a);
        Assert.Equal(2UL, TestUtil.Exec(vm));
        vm.UnwindHelper = 5;
        Assert.Equal(0UL, TestUtil.Exec(vm));
    }

    [Fact]
    public void StandardHelpersWork()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble($@"
            mov r6, r1
            mov r1, 1
            mov r2, 2
            mov r3, 3
            mov r4, 4
            mov r5, 5
            call 0x{StandardHelpers.GatherBytesId:x}
            mov r7, r0
            mov r1, 1000001
            call 0x{StandardHelpers.SqrtiId:x}
            mov r8, r0
            mov r1, r6
            mov r2, 3
            call 0x{StandardHelpers.MemfrobId:x}
            mov r1, r6
            mov r2, r6
            add r2, 4
            call 0x{StandardHelpers.StrcmpId:x}
            exit"));
        vm.RegisterStandardHelpers();
        byte[] mem = { (byte)('a' ^ 42), (byte)('b' ^ 42), 0 ^ 42, 0, (byte)'a', (byte)'c', 0, 0 };
        Assert.Equal((ulong)('c' - 'b'), TestUtil.Exec(vm, mem));
        Assert.Equal(new byte[] { (byte)'a', (byte)'b', 0, 0 }, mem[..4]);
        Assert.Equal(0x0102030405UL, StandardHelpers.GatherBytes(1, 2, 3, 4, 5));
        Assert.Equal(1000UL, StandardHelpers.Sqrti(1000001, 0, 0, 0, 0));
        Assert.Equal(uint.MaxValue, StandardHelpers.Sqrti(ulong.MaxValue, 0, 0, 0, 0));
        ulong r = StandardHelpers.Rand(10, 20, 0, 0, 0);
        Assert.InRange(r, 10UL, 20UL);
    }

    [Fact]
    public void TracePrintkWritesArgumentsAndReturnsLength()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r3, 0x11\nmov r4, 0x22\nmov r5, 0x33\ncall 6\nexit"));
        vm.RegisterStandardHelpers();
        var old = StandardHelpers.TraceOutput;
        var sw = new StringWriter();
        StandardHelpers.TraceOutput = sw;
        try
        {
            ulong n = vm.Execute();
            Assert.Equal("bpf_trace_printf: 0x11, 0x22, 0x33" + Environment.NewLine, sw.ToString());
            Assert.Equal(35UL, n); // rbpf's count: the 34 characters and the newline
        }
        finally { StandardHelpers.TraceOutput = old; }
    }

    /// <summary>Assembly that puts <paramref name="text"/> and a NUL on the stack, calls helper 6 with it
    /// and r3-r5 as given, and returns what it returned.</summary>
    private static string PrintkProgram(string text, string args)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text + "\0");
        int size = (bytes.Length + 7) & ~7;
        Array.Resize(ref bytes, size);
        var sb = new System.Text.StringBuilder();
        for (int k = 0; k < size; k += 8)
            sb.Append($"lddw r1, 0x{BitConverter.ToUInt64(bytes, k):x}\nstxdw [r10-{size - k}], r1\n");
        sb.Append($"mov r1, r10\nadd r1, -{size}\nmov r2, {bytes.Length}\n{args}\ncall bpf_trace_printk\nexit");
        return sb.ToString();
    }

    [Theory]
    [InlineData("hello\n", "", "hello\n")]
    [InlineData("x=%d y=%u z=%x\n", "mov r3, -5\nmov r4, -1\nmov r5, 255", "x=-5 y=4294967295 z=ff\n")]
    [InlineData("%ld %llx %lu", "mov r3, -5\nlddw r4, 0x1122334455667788\nmov r5, 7", "-5 1122334455667788 7")]
    [InlineData("[%5d|%-5d|%05d]", "mov r3, 42\nmov r4, 42\nmov r5, -42", "[   42|42   |-0042]")]
    [InlineData("%#x %X %c%%", "mov r3, 255\nmov r4, 171\nmov r5, 65", "0xff AB A%")]
    [InlineData("%+d % d %i", "mov r3, 7\nmov r4, 7\nmov r5, -7", "+7  7 -7")]
    [InlineData("%px", "lddw r3, 0xffff888003c1e000", "ffff888003c1e000")]
    [InlineData("%pI4 %pi4", "mov r3, r10\nadd r3, -48\nmov r4, r3\nstw [r3], 0x0401a8c0", "192.168.1.4 192.168.001.004")]
    public void TracePrintkFormatsLikeTheKernel(string format, string args, string expected)
    {
        foreach (bool jit in new[] { false, true })
        {
            var vm = EbpfVm.CreateNoData(Assembler.Assemble(PrintkProgram(format, args)));
            vm.RegisterStandardHelpers();
            var old = StandardHelpers.TraceOutput;
            var sw = new StringWriter();
            StandardHelpers.TraceOutput = sw;
            try
            {
                if (jit) vm.JitCompile();
                ulong n = jit ? vm.ExecuteJit() : vm.Execute();
                Assert.Equal(expected.EndsWith('\n') ? expected : expected + "\n", sw.ToString());
                Assert.Equal((ulong)System.Text.Encoding.UTF8.GetByteCount(expected), n); // the kernel's count: what was formatted
            }
            finally { StandardHelpers.TraceOutput = old; }
        }
    }

    [Theory]
    [InlineData("%d %d %d %d")] // a fourth conversion
    [InlineData("%o")]          // not one the kernel supports
    [InlineData("%pB")]
    [InlineData("50%")]
    public void TracePrintkRefusesWhatTheKernelRefuses(string format)
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(PrintkProgram(format, "mov r3, 1")));
        vm.RegisterStandardHelpers();
        var old = StandardHelpers.TraceOutput;
        var sw = new StringWriter();
        StandardHelpers.TraceOutput = sw;
        try
        {
            Assert.Equal(unchecked((ulong)-22L), vm.Execute());
            Assert.Equal("", sw.ToString());
        }
        finally { StandardHelpers.TraceOutput = old; }
    }

    [Fact]
    public void TracePrintkStringsAreCheckedAndIPv4Reads4Bytes()
    {
        // %s of a string on the stack, then of a pointer outside the program's memory (prints nothing).
        string prog = PrintkProgram("<%s><%s>", "mov r3, r10\nadd r3, -64\nstw [r3], 0x006b6f\nmov r4, 8");
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(prog));
        vm.RegisterStandardHelpers();
        var old = StandardHelpers.TraceOutput;
        var sw = new StringWriter();
        StandardHelpers.TraceOutput = sw;
        try
        {
            Assert.Equal(6UL, vm.Execute());
            Assert.Equal("<ok><>\n", sw.ToString());
        }
        finally { StandardHelpers.TraceOutput = old; }
    }

    [Fact]
    public void MemoryHelpersAreBoundsChecked()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble($"mov r2, 100\ncall 0x{StandardHelpers.MemfrobId:x}\nexit"));
        vm.RegisterStandardHelpers();
        var e = TestUtil.Fails(vm, new byte[10]);
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        var strcmp = EbpfVm.CreateRaw(Assembler.Assemble($"mov r2, r1\ncall 0x{StandardHelpers.StrcmpId:x}\nexit"));
        strcmp.RegisterStandardHelpers();
        Assert.Equal(RbpfErrorCode.OutOfBounds, TestUtil.Fails(strcmp, new byte[] { 1, 2, 3 }).Code); // no NUL
        Assert.Equal(0UL, TestUtil.Exec(strcmp, new byte[] { 1, 2, 0 }));
    }

    [Fact]
    public unsafe void ExtraRegionsAreReachableAndReadOnlyIsEnforced()
    {
        byte[] table = { 9, 8, 7, 6 };
        fixed (byte* t = table)
        {
            string asm = $"lddw r1, 0x{(ulong)t:x}\nldxb r0, [r1+2]\nexit";
            var vm = EbpfVm.CreateNoData(Assembler.Assemble(asm));
            Assert.Equal(RbpfErrorCode.OutOfBounds, TestUtil.Fails(vm).Code);
            vm.AddMemoryRegion(new MemoryRegion((nint)t, 4, Writable: false, "table"));
            Assert.Equal(7UL, TestUtil.Exec(vm));
            var writer = EbpfVm.CreateNoData(Assembler.Assemble($"lddw r1, 0x{(ulong)t:x}\nstb [r1], 1\nexit"));
            writer.AddMemoryRegion(new MemoryRegion((nint)t, 4, Writable: false));
            var e = TestUtil.Fails(writer);
            Assert.Contains("read-only", e.Message);
            writer.ClearMemoryRegions();
            writer.AddMemoryRegion(new MemoryRegion((nint)t, 4, Writable: true));
            writer.Execute();
            Assert.Equal(1, table[0]);
        }
    }

    [Fact]
    public void MisalignedAtomicIsRejected()
    {
        var e = TestUtil.Fails(EbpfVm.CreateNoData(Assembler.Assemble("mov r1, 1\nlock add [r10-15], r1\nexit")));
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        Assert.Contains("misaligned", e.Message);
    }

    [Fact]
    public void VerifierCanBeReplacedDisabledAndRechecksTheProgram()
    {
        byte[] prog = Assembler.Assemble("mov r0, 1\nexit");
        var vm = EbpfVm.CreateNoData(prog);
        var e = Assert.Throws<RbpfException>(() => vm.SetVerifier(p => throw new RbpfException(RbpfErrorCode.InvalidProgram, "nope")));
        Assert.Equal("nope", e.Message);
        Assert.Equal(1UL, vm.Execute()); // the old verifier and program stay
        int calls = 0;
        vm.SetVerifier(p => { calls++; if (p.Length > 16) throw new InvalidOperationException("too long"); });
        Assert.Equal(1, calls);
        var e2 = Assert.Throws<RbpfException>(() => vm.SetProgram(Assembler.Assemble("mov r0, 1\nmov r0, 2\nexit")));
        Assert.Equal(RbpfErrorCode.InvalidProgram, e2.Code);
        Assert.Contains("too long", e2.Message);
    }

    [Fact]
    public void WithoutVerifierBadInstructionsFailAtRunTime()
    {
        var vm = new EbpfVm(VmKind.NoData);
        vm.SetVerifier(null);
        vm.SetProgram(new byte[] { 0xff, 0, 0, 0, 0, 0, 0, 0 });
        var e = TestUtil.Fails(vm);
        Assert.Equal(RbpfErrorCode.IllegalInstruction, e.Code);
        Assert.Contains("unknown opcode 0xff", e.Message);
        vm.SetProgram(Assembler.Assemble("mov r0, 1")); // falls off the end
        Assert.Contains("fell off the end", TestUtil.Fails(vm).Message);
        vm.SetProgram(new byte[] { 0xb7, 0x0a, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0 }); // mov r10, 1
        Assert.Contains("r10 is read-only", TestUtil.Fails(vm).Message);
    }

    [Fact]
    public void NoProgramIsAnError()
    {
        var vm = new EbpfVm(VmKind.Raw);
        Assert.Null(vm.Program);
        Assert.Equal(RbpfErrorCode.NoProgram, TestUtil.Fails(vm).Code);
        vm.SetProgram(Assembler.Assemble("exit"));
        Assert.Equal(Assembler.Assemble("exit"), vm.Program!.Value.ToArray());
    }

    [Fact]
    public void ConcurrentExecutionsOfOneVmAreIndependent()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(@"
            ldxdw r2, [r1]
            stxdw [r10-8], r2
            mov r0, 0
            mov r3, 0
        loop:
            ldxdw r4, [r10-8]
            add r0, r4
            add r3, 1
            jlt r3, 1000, loop
            exit"));
        var results = new ulong[8];
        Parallel.For(0, 8, t =>
        {
            for (int rep = 0; rep < 200; rep++)
            {
                byte[] mem = BitConverter.GetBytes((ulong)(t + 1));
                results[t] = vm.Execute(mem);
                Assert.Equal((ulong)(t + 1) * 1000, results[t]);
            }
        });
    }
}

public unsafe class EmbedderHookTests
{
    private static ulong _allowedStart, _allowedEnd;

    [System.Runtime.InteropServices.UnmanagedCallersOnly]
    private static byte AllowWindow(void* context, ulong address, ulong size) =>
        address >= _allowedStart && address + size <= _allowedEnd && context == (void*)0x1234 ? (byte)1 : (byte)0;

    [Fact]
    public void BoundsCheckCallbackAllowsMoreMemoryInEveryEngine()
    {
        var window = new byte[16];
        fixed (byte* w = window)
        {
            _allowedStart = (ulong)w;
            _allowedEnd = (ulong)w + 16;
            var vm = EbpfVm.CreateNoData(Assembler.Assemble($"lddw r1, 0x{(ulong)w:x}\nstb [r1+3], 0x5a\nldxb r0, [r1+3]\nexit"));
            Assert.Equal(RbpfErrorCode.OutOfBounds, TestUtil.Fails(vm).Code);
            vm.SetBoundsCheckCallback(&AllowWindow, (void*)0x1234);
            Assert.Equal(0x5aUL, TestUtil.Exec(vm));
            Assert.Equal(0x5a, window[3]);
            var outside = EbpfVm.CreateNoData(Assembler.Assemble($"lddw r1, 0x{(ulong)w:x}\nldxb r0, [r1+16]\nexit"));
            outside.SetBoundsCheckCallback(&AllowWindow, (void*)0x1234);
            Assert.Equal(RbpfErrorCode.OutOfBounds, TestUtil.Fails(outside).Code);
        }
    }

    [Fact]
    public void ElfDataRelocatorReplacesTheCopies()
    {
        var elf = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "elf", "counters.o"));
        var names = new List<string>();
        ulong target = 0;
        var vm = new EbpfVm(VmKind.Raw);
        vm.LoadElf(elf, null, (data, name, offset, size) =>
        {
            names.Add(name);
            Assert.Equal(8UL, size);
            return 0x1000 + offset;
        });
        Assert.Contains("runs", names);
        Assert.Contains("bytes_seen", names);
        var lddw = Instruction.ReadAll(vm.Program!.Value.Span).First(i => i.Opcode == Isa.Lddw);
        target = (uint)lddw.Imm;
        Assert.Equal(0x1000UL, target);
        vm.UnloadProgram();
        Assert.Null(vm.Program);
        Assert.Equal(RbpfErrorCode.NoProgram, TestUtil.Fails(vm).Code);
    }
}

public unsafe class CallerStackTests
{
    [Fact]
    public void ProgramsRunOnTheCallersStackInEveryEngine()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("stdw [r10-8], 0x77\nmov r0, r10\nexit"));
        var stack = new byte[1024 + 16];
        fixed (byte* raw = stack)
        {
            byte* s = (byte*)(((ulong)raw + 15) & ~15UL);
            foreach (bool jit in EbpfVm.IsJitSupported ? new[] { false, true } : new[] { false })
            {
                new Span<byte>(s, 1024).Clear();
                if (jit) vm.JitCompile();
                var code = jit
                    ? vm.TryExecuteJit(null, 0, null, 0, s, 1024, out ulong r0, out var error)
                    : vm.TryExecute(null, 0, null, 0, s, 1024, out r0, out error);
                Assert.Equal(RbpfErrorCode.Ok, code);
                Assert.Equal((ulong)(s + 1024), r0);
                Assert.Equal(0x77, s[1024 - 8]);
                Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecute(null, 0, null, 0, s, 100, out _, out _));
            }
            // Two frames fit in 1024 bytes: a call into a third one fails.
            var deep = EbpfVm.CreateNoData(Assembler.Assemble("call local f\nexit\nf:\ncall local g\nexit\ng:\nmov r0, 1\nexit"));
            Assert.Equal(RbpfErrorCode.CallDepthExceeded, deep.TryExecute(null, 0, null, 0, s, 1024, out _, out _));
            var shallow = EbpfVm.CreateNoData(Assembler.Assemble("call local f\nexit\nf:\nmov r0, 1\nexit"));
            Assert.Equal(RbpfErrorCode.Ok, shallow.TryExecute(null, 0, null, 0, s, 1024, out ulong one, out _));
            Assert.Equal(1UL, one);
            if (EbpfVm.IsJitSupported)
            {
                deep.JitCompile();
                Assert.Equal(RbpfErrorCode.CallDepthExceeded, deep.TryExecuteJit(null, 0, null, 0, s, 1024, out _, out _));
                Assert.Equal(RbpfErrorCode.Ok, deep.TryExecuteJit(null, 0, null, 0, null, 0, out _, out _));
            }
        }
    }
}

/// <summary>
/// Frames are zeroed only as far as a program can read them (<see cref="DecodedProgram.StackReach"/>),
/// so what the host left on the stack must stay out of reach in every case.
/// </summary>
public unsafe class StackReachTests
{
    [Theory]
    [InlineData("mov r0, 1\nexit", 0)]
    [InlineData("ldxdw r0, [r10-8]\nexit", 64)]
    [InlineData("stb [r10-100], 1\nldxb r0, [r10-100]\nexit", 128)]
    [InlineData("call local f\nexit\nf:\nldxw r0, [r10-4]\nexit", 64)]
    [InlineData("ldxdw r0, [r10-512]\nexit", 512)]
    [InlineData("mov r1, r10\nexit", 512)]                    // r10 copied: anything below it is in reach
    [InlineData("stxdw [r10-8], r10\nexit", 512)]             // r10 stored
    [InlineData("ldxdw r0, [r10-516]\nexit", 512)]            // outside the frame
    [InlineData("ldxdw r0, [r10-4]\nexit", 512)]              // straddles the frame's top
    [InlineData("ldxb r0, [r10+0]\nexit", 512)]               // above the frame
    [InlineData("jeq r10, 0, +0\nmov r0, 0\nexit", 512)]      // any other use counts as a copy
    public void CountsOnlyWhatTheProgramCanRead(string asm, int reach)
    {
        Assert.Equal(reach, DecodedProgram.Decode(Assembler.Assemble(asm)).StackReach);
    }

    [Theory]
    [InlineData("ldxdw r0, [r10-8]\nexit")]
    [InlineData("ldxdw r0, [r10-64]\nldxdw r1, [r10-8]\nor r0, r1\nexit")]
    [InlineData("mov r1, r10\nldxdw r0, [r1-512]\nldxdw r2, [r1-264]\nor r0, r2\nexit")]
    [InlineData("call local f\nexit\nf:\nldxdw r0, [r10-64]\nexit")]
    [InlineData("call local f\nexit\nf:\nmov r1, r10\nldxdw r0, [r1-500]\nexit")]
    [InlineData("stdw [r10-8], 0\nldxdw r0, [r10-8]\nexit")]
    public void HostBytesLeftOnTheStackNeverReachTheProgram(string asm)
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(asm));
        var stack = new byte[Isa.StackSize + 16];
        fixed (byte* raw = stack)
        {
            byte* s = (byte*)(((ulong)raw + 15) & ~15UL);
            foreach (bool jit in EbpfVm.IsJitSupported ? new[] { false, true } : new[] { false })
            {
                new Span<byte>(s, Isa.StackSize).Fill(0xaa);
                if (jit) vm.JitCompile();
                var code = jit
                    ? vm.TryExecuteJit(null, 0, null, 0, s, Isa.StackSize, out ulong r0, out var error)
                    : vm.TryExecute(null, 0, null, 0, s, Isa.StackSize, out r0, out error);
                Assert.True(code == RbpfErrorCode.Ok, error?.Message);
                Assert.Equal(0UL, r0);
            }
        }
    }

    [Fact]
    public void OutOfBoundsMessagesSayWhereTheAccessFell()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxw r0, [r1+2]\nexit"));
        var e = Assert.Throws<RbpfException>(() => vm.Execute(new byte[5]));
        Assert.Contains("load of 4 bytes", e.Message);
        Assert.Contains("at offset 2 of memory (5 bytes), 1 byte too long", e.Message);
        var past = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1+8]\nexit"));
        Assert.Contains("load of 1 byte at", Assert.Throws<RbpfException>(() => past.Execute(new byte[5])).Message);
        Assert.Contains("3 bytes past the end of memory (5 bytes)", Assert.Throws<RbpfException>(() => past.Execute(new byte[5])).Message);
        var before = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1-2]\nexit"));
        Assert.Contains("2 bytes before memory", Assert.Throws<RbpfException>(() => before.Execute(new byte[5])).Message);
    }

    [Fact]
    public void AHelperThatReportsAFailureEndsItsRunAtOnce()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r6, 1000\nl:\ncall 7\nsub r6, 1\njne r6, 0, l\nexit"));
        int calls = 0;
        vm.RegisterHelper(7, (_, _, _, _, _) =>
        {
            if (calls++ == 0) HelperFailure.Report("quota exceeded");
            return 0;
        });
        var e = Assert.Throws<RbpfException>(() => vm.Execute());
        Assert.Equal(RbpfErrorCode.HelperFailed, e.Code);
        Assert.Equal(1, calls);
        Assert.Contains("insn #1: helper", e.Message);
        Assert.Contains("quota exceeded", e.Message);
        Assert.Equal(0UL, vm.Execute()); // taken with the run: the next one is clean (calls 2-1001 succeed)
        if (!EbpfVm.IsJitSupported) return;
        vm.JitCompile();
        calls = 0;
        Assert.Equal(RbpfErrorCode.HelperFailed, Assert.Throws<RbpfException>(() => vm.ExecuteJit()).Code);
        Assert.Equal(1, calls);
    }
}
