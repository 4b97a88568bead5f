using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Programs as long as the engine takes (<see cref="Isa.MaxInstructions"/>, rbpf's 1,000,000 slots)
/// through the interpreter and the JIT, the limit itself, and the JIT's loop analyses kept in
/// proportion to a program's length on thousands of loops in a row (they grew with its square).
/// </summary>
public class LargeProgramTests
{
    private static void Put(byte[] p, int pc, byte op, int dst, int src, short off, int imm) =>
        new Instruction(op, dst, src, off, imm).WriteTo(p.AsSpan(8 * pc));

    /// <summary><paramref name="slots"/> slots: <c>add r0, 1</c> up to an exit (r0 ends at slots - 1).</summary>
    internal static byte[] Adds(int slots)
    {
        var p = new byte[8 * slots];
        for (int pc = 0; pc < slots - 1; pc++) Put(p, pc, 0x07, 0, 0, 0, 1);
        Put(p, slots - 1, Isa.Exit, 0, 0, 0, 0);
        return p;
    }

    /// <summary>
    /// <paramref name="slots"/> slots: a gotol over the first <paramref name="skipped"/> slots of
    /// eight-slot blocks (arithmetic, an input load, a conditional jump, a stack store and load),
    /// then the blocks that run, additions to fill, exit. The expected r0 is worked out alongside.
    /// </summary>
    private static byte[] Blocks(int slots, int skipped, byte[] input, out ulong expected)
    {
        var p = new byte[8 * slots];
        Put(p, 0, 0xb7, 0, 0, 0, 0);                 // mov r0, 0
        Put(p, 1, Isa.Ja32, 0, 0, 0, skipped);       // gotol +skipped
        ulong r0 = 0;
        int pc = 2, k = 0;
        for (; pc + 8 < slots - 1; k++)
        {
            bool runs = pc >= 2 + skipped;
            Put(p, pc++, 0x07, 0, 0, 0, k + 1);                   // add r0, k+1
            Put(p, pc++, 0x71, 3, 1, (short)(k & 31), 0);        // ldxb r3, [r1+k%32]
            Put(p, pc++, 0xaf, 0, 3, 0, 0);                      // xor r0, r3
            Put(p, pc++, 0x67, 0, 0, 0, 3);                      // lsh r0, 3
            Put(p, pc++, 0x25, 3, 0, 1, 100);                    // jgt r3, 100, +1
            Put(p, pc++, 0x0f, 0, 3, 0, 0);                      // add r0, r3
            Put(p, pc++, 0x63, 10, 0, -8, 0);                    // stxw [r10-8], r0
            Put(p, pc++, 0x61, 4, 10, -8, 0);                    // ldxw r4, [r10-8]
            if (runs)
            {
                ulong r3 = input[k & 31];
                r0 = ((r0 + (ulong)(k + 1)) ^ r3) << 3;
                if (r3 <= 100) r0 += r3;
            }
        }
        Assert.True(2 + skipped <= pc, "the gotol lands inside the blocks or on the filler");
        for (; pc < slots - 1; pc++)
        {
            Put(p, pc, 0x07, 0, 0, 0, 1); // add r0, 1
            r0++;
        }
        Put(p, pc, Isa.Exit, 0, 0, 0, 0);
        expected = r0;
        return p;
    }

    [Fact]
    public void TheLongestProgramRunsInBothEnginesWithAFarJump()
    {
        var input = new byte[32];
        for (int i = 0; i < input.Length; i++) input[i] = (byte)(i * 37 + 11);
        // The gotol skips 600,000 slots (blocks of eight: 75,000 of them), far past a 16-bit offset.
        var program = Blocks(Isa.MaxInstructions, 600_000, input, out ulong expected);
        Assert.Equal(1_000_000, Isa.MaxInstructions); // rbpf's PROG_MAX_INSNS
        var vm = EbpfVm.CreateRaw(program);
        Assert.Equal(expected, vm.Execute(input));
        vm.JitCompile();
        Assert.Equal(RbpfErrorCode.Ok, vm.TryExecuteJit(input, Span<byte>.Empty, out ulong jitted, out var error));
        Assert.Null(error);
        Assert.Equal(expected, jitted);
    }

    [Fact]
    public void OneSlotMoreIsRefusedWithTheLimitNamed()
    {
        var e = Assert.Throws<RbpfException>(() => EbpfVm.CreateRaw(Adds(Isa.MaxInstructions + 1)));
        Assert.Equal(RbpfErrorCode.InvalidProgram, e.Code);
        Assert.Contains("1000001 instructions", e.Message);
        Assert.Contains("1000000", e.Message);
    }

    /// <summary>
    /// <paramref name="loops"/> loops in a row, each bounded by the input (r3 counts up to r2, then r0
    /// adds it): the input analysis, then the loop search, as the JIT runs them.
    /// </summary>
    private static byte[] LoopsInARow(int loops)
    {
        var p = new byte[8 * (4 + 4 * loops)];
        int pc = 0;
        Put(p, pc++, 0xb7, 0, 0, 0, 0);                          // mov r0, 0
        Put(p, pc++, 0x55, 2, 0, 1, 0);                          // jne r2, 0, +1
        Put(p, pc++, Isa.Ja32, 0, 0, 0, 4 * loops);              // gotol exit
        for (int k = 0; k < loops; k++)
        {
            Put(p, pc++, 0xb7, 3, 0, 0, 0);                      // mov r3, 0
            Put(p, pc++, 0x07, 3, 0, 0, 1);                      // head: add r3, 1
            Put(p, pc++, 0xad, 3, 2, -2, 0);                     // jlt r3, r2, head
            Put(p, pc++, 0x0f, 0, 3, 0, 0);                      // add r0, r3
        }
        Put(p, pc, Isa.Exit, 0, 0, 0, 0);
        return p;
    }

    [Fact]
    public void TheLoopAnalysesOfThousandsOfLoopsInARowStayLinear()
    {
        const int loops = 4_000; // 16,004 slots
        var program = DecodedProgram.Decode(LoopsInARow(loops));
        int slots = program.Code.Length;
        var facts = InputBounds.Analyze(program.Code);
        Assert.NotNull(facts); // finished within its budget
        // Each loop settles before the code after it is visited, and bounds that keep moving are
        // dropped after four widenings: about 8 steps per slot (a stack of pending slots, which
        // followed each loop's first rounds on to the end, took 116; widening a power of two at a
        // time to the end, 33).
        Assert.True(facts!.Steps <= 12L * slots, $"{facts.Steps} steps for {slots} slots");
        var polls = BoundedLoops.PollsFor(program, VmKind.Raw, facts, out long visits);
        // Every head is bounded by the input: no poll is left in any loop.
        int heads = Enumerable.Range(0, slots).Count(pc => program.PollPoints[pc]);
        Assert.Equal(loops, heads);
        Assert.DoesNotContain(true, polls);
        // Each head's search stays inside its loop (before, it walked every slot after the head: some
        // 2,000 visits per slot of this program).
        Assert.True(visits <= 4L * slots, $"{visits} visits for {slots} slots");
    }

    [Fact]
    public void ThousandsOfLoopsInARowCompileAndAgree()
    {
        var vm = EbpfVm.CreateRaw(LoopsInARow(4_000));
        var input = new byte[5];
        Assert.Equal(4_000UL * 5, vm.Execute(input));
        vm.JitCompile();
        Assert.Equal(RbpfErrorCode.Ok, vm.TryExecuteJit(input, Span<byte>.Empty, out ulong jitted, out var error));
        Assert.Null(error);
        Assert.Equal(4_000UL * 5, jitted);
    }

    /// <summary><paramref name="calls"/> times <c>call local f</c>, exit; f: <c>add r0, 1</c>, exit (r0 ends at the count of calls).</summary>
    private static byte[] LocalCalls(int calls)
    {
        var p = new byte[8 * (calls + 3)];
        for (int pc = 0; pc < calls; pc++) Put(p, pc, Isa.Call, 0, 1, 0, calls - pc);
        Put(p, calls, Isa.Exit, 0, 0, 0, 0);
        Put(p, calls + 1, 0x07, 0, 0, 0, 1);
        Put(p, calls + 2, Isa.Exit, 0, 0, 0, 0);
        return p;
    }

    /// <summary>
    /// 1,000 legacy packet loads (a classic filter's shape) and 1,000 helper calls, each with an
    /// out-of-line path: a compile queues those paths as data, in a queue the thread keeps, so what
    /// a compile after the first allocates per site is its share of the code and the slot tables
    /// (about 4 bytes with x86-64, 86 with AArch64, whose code is copied out of the assembler), not
    /// closures (128 and 327 bytes a site before 2026-12-01).
    /// </summary>
    [SkippableFact]
    public void OutOfLinePathsAreQueuedAsData()
    {
        const int sites = 1000;
        var p = new byte[8 * (2 * sites + 2)];
        Put(p, 0, 0xbf, 6, 1, 0, 0); // mov r6, r1 (the context legacy loads read)
        for (int k = 0; k < sites; k++)
        {
            Put(p, 1 + 2 * k, 0x28, 0, 0, 0, k & 63); // ldabsh k % 64
            Put(p, 2 + 2 * k, Isa.Call, 0, 0, 0, 1);   // call 1
        }
        Put(p, 2 * sites + 1, Isa.Exit, 0, 0, 0, 0);
        var vm = EbpfVm.CreateRaw(p);
        vm.RegisterHelper(1, (a, b, c, d, e) => a + 1, "inc");
        long PerSite(Action compile)
        {
            compile(); // the first compile of such a program on this thread: nothing kept from before
            long before = GC.GetAllocatedBytesForCurrentThread();
            compile();
            return (GC.GetAllocatedBytesForCurrentThread() - before) / (2 * sites);
        }
        long arm64 = PerSite(() => vm.CompileArm64(new JitOptions(), listing: false));
        Assert.True(arm64 < 120, $"AArch64: {arm64} bytes allocated per site");
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT");
        long x64 = PerSite(() => vm.JitCompile());
        Assert.True(x64 < 40, $"x86-64: {x64} bytes allocated per site");
        var packet = new byte[128];
        packet[1] = 7; // the last load reads halfword 3999 % 64 = 31 at 62
        Assert.Equal(vm.Execute(packet), vm.ExecuteJit(packet));
    }

    /// <summary>
    /// A lean program (<c>mov r0, r2; exit</c>: no memory, no calls) is compiled with its argument
    /// checks' slow path out of line. x86-64 queued that path, and the NULL-input one, as closures
    /// (a delegate per check): 2,584 bytes allocated by a compile on this runtime; as data, 2,144
    /// (the compiler, the program and its code's owner are most of the rest).
    /// </summary>
    [SkippableFact]
    public void ALeanEntryQueuesItsSlowPathsAsData()
    {
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT");
        var p = new byte[16];
        Put(p, 0, 0xbf, 0, 2, 0, 0); // mov r0, r2
        Put(p, 1, Isa.Exit, 0, 0, 0, 0);
        var vm = EbpfVm.CreateRaw(p);
        vm.JitCompile(); // the first compile on this thread sets up what the thread keeps
        long before = GC.GetAllocatedBytesForCurrentThread();
        vm.JitCompile();
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(bytes < 2400, $"{bytes} bytes allocated by a compile");
        Assert.Equal(5UL, vm.ExecuteJit(new byte[5]));
        unsafe { Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecuteJit(null, 3, null, 0, out _, out _)); } // NULL input with a length
    }

    /// <summary>
    /// The same for the AArch64 compiler (on any host): 200,000 call sites allocated about 1,650 bytes
    /// each, since the code (over 1 MiB) was first compiled with short branches, which could not reach
    /// the out-of-line code, and then again with far ones, its buffers doubling each time. Code
    /// estimated at 4 MiB or more is compiled with far branches at once, in buffers sized up front
    /// (about 920 bytes a call site), and its out-of-line code is queued as data, not closures, in a
    /// list sized up front too (about 720).
    /// </summary>
    [Fact]
    public void ManyLocalCallsCompileForAArch64OnceWithoutDoublingTheirBuffers()
    {
        const int calls = 200_000;
        var vm = EbpfVm.CreateRaw(LocalCalls(calls));
        vm.CompileArm64(new JitOptions(), listing: false); // the first compile of such a program on this thread: nothing kept from before
        long before = GC.GetAllocatedBytesForCurrentThread();
        var output = vm.CompileArm64(new JitOptions(), listing: false);
        long perCall = (GC.GetAllocatedBytesForCurrentThread() - before) / calls;
        Assert.True(output.Code.Length > 4 << 20, $"only {output.Code.Length} bytes of code");
        Assert.True(perCall < 850, $"{perCall} bytes allocated per call site");
    }

    /// <summary>
    /// A program that is mostly local calls compiles without its buffers doubling their way up: 200,000
    /// call sites allocated about 980 bytes each to compile (the code buffer and the branch table grown
    /// from a kilobyte, each smaller copy left behind), now about 560 (one buffer each, sized from the
    /// program). Skipped where the JIT emits AArch64 code, whose buffers still grow.
    /// </summary>
    [SkippableFact]
    public void ManyLocalCallsCompileWithoutDoublingTheirBuffers()
    {
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT");
        const int calls = 200_000;
        var vm = EbpfVm.CreateRaw(LocalCalls(calls));
        vm.JitCompile(); // the first compile of such a program on this thread: nothing kept from before
        long before = GC.GetAllocatedBytesForCurrentThread();
        vm.JitCompile();
        long perCall = (GC.GetAllocatedBytesForCurrentThread() - before) / calls;
        Assert.True(perCall < 700, $"{perCall} bytes allocated per call site");
        Assert.Equal((ulong)calls, vm.ExecuteJit(Array.Empty<byte>()));
    }
}
