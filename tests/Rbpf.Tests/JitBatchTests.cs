using Rbpf.Jit;
using Rbpf.Maps;

namespace Rbpf.Tests;

/// <summary>
/// The JIT's batch entry (<see cref="EbpfVm.RunJitBatch"/>, behind <c>rbpf_vm_execute_batch</c>,
/// <c>rbpf_vm_count_verdicts</c> and <c>rbpf_vm_execute_packed</c> with RBPF_BATCH_JIT): every run
/// of a batch must be what a call of its own gives, in results, errors and state.
/// </summary>
public unsafe class JitBatchTests
{
    private static void SkipWithoutJit() => Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");

    /// <summary>Runs <paramref name="inputs"/> as one batch: results (or counts), the error, how many ran.</summary>
    private static (ulong[] Results, RbpfException? Error, int Done) Batch(EbpfVm vm, byte[][] inputs, bool packed = false, int ncounts = 0)
    {
        var handles = inputs.Select(i => System.Runtime.InteropServices.GCHandle.Alloc(i, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
        byte[] all = inputs.SelectMany(i => i).ToArray();
        var results = new ulong[Math.Max(1, ncounts > 0 ? ncounts : inputs.Length)];
        var buffers = new ulong[2 * inputs.Length + 2];
        var lengths = new nuint[inputs.Length + 1];
        for (int k = 0; k < inputs.Length; k++)
        {
            buffers[2 * k] = inputs[k].Length == 0 ? 0 : (ulong)handles[k].AddrOfPinnedObject();
            buffers[2 * k + 1] = (ulong)inputs[k].Length;
            lengths[k] = (nuint)inputs[k].Length;
        }
        try
        {
            fixed (ulong* b = buffers)
            fixed (nuint* l = lengths)
            fixed (byte* p = all)
            fixed (ulong* r = results)
            {
                var batch = new JitBatch
                {
                    Buffers = packed ? null : b, Packed = packed ? p : null, Lengths = packed ? l : null, Count = (nuint)inputs.Length,
                    Results = ncounts > 0 ? null : r, Counts = ncounts > 0 ? r : null, NCounts = (nuint)ncounts,
                };
                var error = vm.RunJitBatch(&batch);
                return (results, error, (int)batch.Done);
            }
        }
        finally
        {
            foreach (var h in handles) h.Free();
        }
    }

    /// <summary>Each input run alone through the JIT: its result, or its error code.</summary>
    private static (ulong Result, RbpfErrorCode Code)[] OneByOne(EbpfVm vm, byte[][] inputs) =>
        inputs.Select(i => vm.TryExecuteJit(i, Span<byte>.Empty, out ulong r, out var e) == RbpfErrorCode.Ok ? (r, RbpfErrorCode.Ok) : (0UL, e!.Code)).ToArray();

    /// <summary>Checks a batch against single runs: equal results up to the first failure, which must be the batch's.</summary>
    private static void AssertLikeSingleRuns(EbpfVm vm, byte[][] inputs, bool packed)
    {
        var single = OneByOne(vm, inputs);
        var (results, error, done) = Batch(vm, inputs, packed);
        int firstFailure = Array.FindIndex(single, s => s.Code != RbpfErrorCode.Ok);
        Assert.Equal(firstFailure < 0 ? inputs.Length : firstFailure, done);
        Assert.Equal(firstFailure < 0 ? RbpfErrorCode.Ok : single[firstFailure].Code, error?.Code ?? RbpfErrorCode.Ok);
        for (int k = 0; k < done; k++) Assert.Equal(single[k].Result, results[k]);
    }

    private static byte[][] RandomInputs(Random random, int count, int maxLength, int minLength = 0) =>
        Enumerable.Range(0, count).Select(_ =>
        {
            var b = new byte[random.Next(minLength, maxLength + 1)];
            random.NextBytes(b);
            return b;
        }).ToArray();

    /// <summary>A loop over the input (checked loads, an interrupt poll at its head), a fixed-offset read that fails on short inputs, a stack read.</summary>
    private const string SumLoop = "mov r0, 0\nloop:\njeq r2, 0, end\nldxb r3, [r1]\nadd r0, r3\nlsh r0, 1\nadd r1, 1\nsub r2, 1\nja loop\nend:\nexit";

    public static TheoryData<string> Programs => new()
    {
        SumLoop,
        "ldxw r0, [r1+4]\nbe32 r0\nexit",
        "ldxh r0, [r1+12]\nbe16 r0\njeq r0, 0x800, +2\nmov r0, 0\nexit\nmov r0, 1\nexit",
        // What a run leaves on the stack is never seen by the next one: frames start zeroed.
        "ldxdw r0, [r10-8]\nstxdw [r10-8], r2\nexit",
        // Programs with nothing to check, no stack or calls (the single runs' lean entry), classic filters' shape:
        // a guarded verdict, and drops as a flag with a protocol list.
        "jlt r2, 14, drop\nldxh r0, [r1+12]\nbe16 r0\njeq r0, 0x800, +2\ndrop:\nmov r0, 0\nexit\nmov r0, 1\nexit",
        "jlt r2, 24, drop\nldxb r0, [r1+23]\njeq r0, 6, t\njeq r0, 17, t\nja drop\nt:\nldxh r0, [r1+20]\njset r0, 0x1fff, drop\nmov r0, 0x40000\nexit\ndrop:\nmov r0, 0\nexit",
        "mov r6, r2\nmul r6, 3\nmov r9, r6\nmov r0, r9\nexit",
        // Local calls (a frame of their own), and all of r6-r9 named.
        "mov r6, r1\nmov r7, r2\nmov r8, 3\nmov r9, 4\ncall sub\nadd r0, r8\nadd r0, r9\nexit\nsub:\nldxdw r0, [r10-16]\nstxdw [r10-16], r7\nadd r0, r7\nexit",
    };

    [SkippableTheory]
    [MemberData(nameof(Programs))]
    public void EachRunOfABatchIsASingleRun(string text)
    {
        SkipWithoutJit();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        var random = new Random(text.Length);
        foreach (var options in JitTests.AllOptions)
        {
            vm.JitCompile(options);
            Assert.Equal(!ExecutableMemory.IsArm64 && !OperatingSystem.IsWindows() && options.Abi != JitAbi.Win64Emulated, vm.JitRunsBatchesInCode);
            for (int round = 0; round < 20; round++)
            {
                // Unchecked code reads wherever it is told: give it inputs its reads fit in.
                var inputs = RandomInputs(random, random.Next(1, 30), 24, options.CheckedMemory ? 0 : 16);
                AssertLikeSingleRuns(vm, inputs, packed: round % 2 == 1);
            }
            Assert.Null(Batch(vm, Array.Empty<byte[]>()).Error);
        }
    }

    [SkippableFact]
    public void CountsAreClampedToTheLastSlot()
    {
        SkipWithoutJit();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("mov r0, r2\nexit"));
        vm.JitCompile();
        var inputs = new[] { 0, 1, 1, 2, 5, 9, 1, 0 }.Select(n => new byte[n]).ToArray();
        foreach (bool packed in new[] { false, true })
        {
            var (counts, error, done) = Batch(vm, inputs, packed, ncounts: 3);
            Assert.Null(error);
            Assert.Equal(8, done);
            Assert.Equal(new ulong[] { 2, 3, 3 }, counts); // lengths 2, 5 and 9 all counted in the last slot
        }
    }

    [SkippableFact]
    public void AFailureStopsTheBatchAtItsIndex()
    {
        SkipWithoutJit();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxdw r0, [r1]\nexit"));
        vm.JitCompile();
        var inputs = new[] { new byte[8], new byte[9], new byte[3], new byte[8] };
        inputs[1][0] = 7;
        var (results, error, done) = Batch(vm, inputs);
        Assert.Equal(2, done);
        Assert.Equal(RbpfErrorCode.OutOfBounds, error!.Code);
        Assert.Equal(new ulong[] { 0, 7 }, results[..2]);
        // A NULL input with a length is the caller's error, at its index.
        fixed (byte* one = new byte[8])
        {
            var buffers = new ulong[] { (ulong)one, 8, 0, 4 };
            var r = new ulong[2];
            fixed (ulong* b = buffers)
            fixed (ulong* pr = r)
            {
                var batch = new JitBatch { Buffers = b, Count = 2, Results = pr };
                var e = vm.RunJitBatch(&batch);
                Assert.Equal(RbpfErrorCode.InvalidArgument, e!.Code);
                Assert.Contains("mem is NULL", e.Message);
                Assert.Equal(1, (int)batch.Done);
            }
        }
    }

    [SkippableFact]
    public void TheInstructionLimitIsPerRun()
    {
        SkipWithoutJit();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(SumLoop)); // the loop: about 7 instructions per byte
        vm.InstructionLimit = 200;
        vm.JitCompile();
        var inputs = Enumerable.Range(0, 50).Select(_ => new byte[20]).ToArray(); // each run about 145: all fit, their sum does not
        var (_, error, done) = Batch(vm, inputs);
        Assert.Null(error);
        Assert.Equal(50, done);
        inputs[30] = new byte[40];
        (_, error, done) = Batch(vm, inputs);
        Assert.Equal(RbpfErrorCode.InstructionLimit, error!.Code);
        Assert.Equal(30, done);
        // A new limit reaches the code compiled for batches too.
        vm.InstructionLimit = 100;
        (_, error, done) = Batch(vm, inputs);
        Assert.Equal(RbpfErrorCode.InstructionLimit, error!.Code);
        Assert.Equal(0, done);
    }

    [SkippableFact]
    public void RecompilingReplacesTheCodeBatchesRun()
    {
        SkipWithoutJit();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1]\nexit"));
        vm.JitCompile();
        var inputs = new[] { new byte[] { 5 }, new byte[] { 6 } };
        Assert.Equal(new ulong[] { 5, 6 }, Batch(vm, inputs).Results);
        vm.SetProgram(Assembler.Assemble("ldxb r0, [r1]\nadd r0, 10\nexit"));
        Assert.Equal(RbpfErrorCode.NoProgram, Batch(vm, inputs).Error!.Code); // loading discards the compiled code
        vm.JitCompile();
        Assert.Equal(new ulong[] { 15, 16 }, Batch(vm, inputs).Results);
        vm.JitCompile(new JitOptions { CheckedMemory = false });
        Assert.Equal(new ulong[] { 15, 16 }, Batch(vm, inputs).Results);
    }

    [SkippableFact]
    public void AnInterruptBetweenRunsStopsTheBatch()
    {
        SkipWithoutJit();
        // No loop, so no poll inside the program: only the batch's own poll between runs can stop it.
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r1, [r1]\ncall 77\nmov r0, 1\nexit"));
        vm.RegisterHelper(77, (a, _, _, _, _) => { if (a == 1) vm.Interrupt(); return 0; }, "interrupt_on_1");
        vm.JitCompile();
        var inputs = new[] { new byte[] { 0 }, new byte[] { 0 }, new byte[] { 1 }, new byte[] { 0 }, new byte[] { 0 } };
        var (_, error, done) = Batch(vm, inputs);
        Assert.Equal(RbpfErrorCode.Interrupted, error!.Code);
        Assert.Equal(vm.JitRunsBatchesInCode ? 3 : 5, done); // one call per run: each run starts afresh (nothing polls)
        // The next batch starts afresh.
        inputs[2][0] = 0;
        Assert.Null(Batch(vm, inputs).Error);
    }

    [SkippableFact]
    public void TailCallsInABatchAreFollowed()
    {
        SkipWithoutJit();
        var programs = (ProgramArrayMap)BpfMap.Create(MapType.ProgramArray, 4, 4, 4, name: "jmp");
        var caller = EbpfVm.CreateRaw(Assembler.Assemble("mov r6, r1\nldxb r3, [r6]\nlddw r2, map 0\nmov r1, r6\ncall bpf_tail_call\nmov r0, 7\nexit"));
        var target = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1+1]\nadd r0, 40\nexit"));
        caller.BindMap(0, programs);
        programs.SetProgram(2, target);
        caller.JitCompile();
        target.JitCompile();
        var inputs = new[] { new byte[] { 2, 2 }, new byte[] { 3, 2 }, new byte[] { 2, 5 }, new byte[] { 2, 1 }, new byte[] { 9, 9 } };
        foreach (bool packed in new[] { false, true })
        {
            var (results, error, done) = Batch(caller, inputs, packed);
            Assert.Null(error);
            Assert.Equal(5, done);
            Assert.Equal(new ulong[] { 42, 7, 45, 41, 7 }, results);
        }
    }

    [SkippableFact]
    public void EveryKindRunsBatches()
    {
        SkipWithoutJit();
        var random = new Random(5);
        var program = Assembler.Assemble("mov r0, r2\njlt r2, 2, +1\nldxh r0, [r1]\nexit");
        var kinds = new[]
        {
            EbpfVm.CreateMbuff(program),                 // no metadata buffer: r1 and r2 describe the packet
            EbpfVm.CreateFixedMbuff(Assembler.Assemble("ldxdw r2, [r1+8]\nldxdw r1, [r1]\nmov r0, r2\nsub r0, r1\nexit"), 0, 8),
            EbpfVm.CreateRaw(program),
        };
        foreach (var vm in kinds)
        {
            vm.JitCompile();
            for (int round = 0; round < 10; round++) AssertLikeSingleRuns(vm, RandomInputs(random, 12, 6), packed: round % 2 == 0);
        }
        // A fixed buffer too large for the frame: the caller brings it for each run (one call per run).
        var large = EbpfVm.CreateFixedMbuff(Assembler.Assemble("ldxdw r2, [r1+2048]\nldxdw r1, [r1+1024]\nmov r0, r2\nsub r0, r1\nexit"), 1024, 2048);
        large.JitCompile();
        Assert.False(large.JitRunsBatchesInCode);
        AssertLikeSingleRuns(large, RandomInputs(random, 12, 6), packed: false);
        // No data: only empty inputs.
        var none = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 3\nexit"));
        none.JitCompile();
        var (results, error, done) = Batch(none, new[] { Array.Empty<byte>(), Array.Empty<byte>(), new byte[1] });
        Assert.Equal(2, done);
        Assert.Equal(RbpfErrorCode.InvalidArgument, error!.Code);
        Assert.Equal(3UL, results[1]);
    }

    /// <summary>A batch of a program without checks of its own stops at an input with bad arguments
    /// and reports it as a single run would, the inputs before it stored; it goes on past it.</summary>
    [SkippableFact]
    public void ABatchReportsABadInputAtItsIndexAndGoesOnPastIt()
    {
        SkipWithoutJit();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 2, +2\nldxb r0, [r1+1]\nexit\nmov r0, 9\nexit"));
        vm.JitCompile();
        fixed (byte* one = new byte[] { 1, 2 })
        fixed (byte* two = new byte[] { 3, 4 })
        {
            var buffers = new ulong[] { (ulong)one, 2, 0, 0, (ulong)two, 1, 0, 4, (ulong)two, 2 };
            var r = new ulong[5];
            fixed (ulong* b = buffers)
            fixed (ulong* pr = r)
            {
                var batch = new JitBatch { Buffers = b, Count = 5, Results = pr };
                var e = vm.RunJitBatch(&batch);
                Assert.Equal(RbpfErrorCode.InvalidArgument, e!.Code);
                Assert.Contains("mem is NULL", e.Message);
                Assert.Equal(3, (int)batch.Done);
                Assert.Equal(new ulong[] { 2, 9, 9, 0, 0 }, r); // NULL with length 0 is an empty input
                batch.Done = 4; // past the bad one, the batch goes on
                Assert.Null(vm.RunJitBatch(&batch));
                Assert.Equal(4UL, r[4]);
            }
        }
    }
}
