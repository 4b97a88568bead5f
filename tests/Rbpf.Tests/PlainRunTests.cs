namespace Rbpf.Tests;

/// <summary>
/// The interpreter has a lean path for the common run (<c>Interpreter.RunPlain</c>: no observer, no
/// instruction limit, the VM's own stack, no local calls, whole frames, any kind but a fixed
/// metadata buffer) beside its general one (<c>Interpreter.Run</c>). Both must give the same result
/// and the same error for the same program and input, through everything a run can meet: the
/// arguments of each kind, stack reads before writes, helper calls, faults, input errors, the end.
/// </summary>
public unsafe class PlainRunTests
{
    private readonly record struct Outcome(RbpfErrorCode Code, ulong Result, string? Message);

    /// <summary>The lean path, checked to be the one taken.</summary>
    private static Outcome Plain(EbpfVm vm, byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength)
    {
        Assert.True(Interpreter.RunsPlain(vm, vm.Decoded!), "the VM should run on the lean path");
        Assert.Equal(0UL, vm.InstructionLimit);
        var code = vm.TryExecute(mem, memLength, mbuff, mbuffLength, out ulong result, out var error);
        return new Outcome(code, result, error?.Message);
    }

    /// <summary>The general path, three ways in: observed, counted, and on a stack of the caller's.</summary>
    private static List<(string How, Outcome Outcome)> General(EbpfVm vm, byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength)
    {
        var outcomes = new List<(string, Outcome)>();
        RbpfErrorCode code;
        RbpfException? error;
        ulong result;
        if (mem != null || memLength == 0) // the span API cannot pass a pointer with a length of 0 that is not NULL
        {
            code = vm.TryExecute(new Span<byte>(mem, (int)memLength), new Span<byte>(mbuff, (int)mbuffLength), (_, _) => { },
                out result, out error);
            outcomes.Add(("observed", new Outcome(code, result, error?.Message)));
        }
        vm.InstructionLimit = 1_000_000;
        code = vm.TryExecute(mem, memLength, mbuff, mbuffLength, out result, out error);
        vm.InstructionLimit = 0;
        outcomes.Add(("counted", new Outcome(code, result, error?.Message)));
        var stack = new byte[1024];
        fixed (byte* s = stack)
        {
            code = vm.TryExecute(mem, memLength, mbuff, mbuffLength, s, (nuint)stack.Length, out result, out error);
        }
        outcomes.Add(("caller's stack", new Outcome(code, result, error?.Message)));
        return outcomes;
    }

    /// <summary>A fault's message up to the list of allowed regions, which names the run's own stack
    /// (at another address on each path).</summary>
    private static string? WithoutRegions(string? message) =>
        message == null ? null : message.Contains(", allowed:") ? message[..message.IndexOf(", allowed:", StringComparison.Ordinal)] : message;

    private static Outcome Agree(EbpfVm vm, byte[]? mem, byte[]? mbuff)
    {
        fixed (byte* m = mem)
        fixed (byte* b = mbuff)
        {
            return Agree(vm, m, (nuint)(mem?.Length ?? 0), b, (nuint)(mbuff?.Length ?? 0));
        }
    }

    private static Outcome Agree(EbpfVm vm, byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength)
    {
        var plain = Plain(vm, mem, memLength, mbuff, mbuffLength);
        foreach (var (how, outcome) in General(vm, mem, memLength, mbuff, mbuffLength))
        {
            Assert.True(plain.Code == outcome.Code, $"{how}: {outcome.Code} ({outcome.Message}), the lean path {plain.Code} ({plain.Message})");
            Assert.True(plain.Result == outcome.Result, $"{how}: 0x{outcome.Result:x}, the lean path 0x{plain.Result:x}");
            Assert.Equal(WithoutRegions(outcome.Message), WithoutRegions(plain.Message));
        }
        return plain;
    }

    // r1, r2 and the first byte behind r1, in one value.
    private const string ReadArguments = """
        mov r0, r2
        lsh r0, 8
        jeq r1, 0, done
        jeq r2, 0, done
        ldxb r3, [r1]
        or r0, r3
        done:
        exit
        """;

    [Fact]
    public void RawKindGivesThePacketAndItsLength()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(ReadArguments));
        var outcome = Agree(vm, new byte[] { 0x5a, 1, 2 }, null);
        Assert.Equal(RbpfErrorCode.Ok, outcome.Code);
        Assert.Equal((3UL << 8) | 0x5a, outcome.Result);
        Assert.Equal(0UL, Agree(vm, null, null).Result);
    }

    [Fact]
    public void MbuffKindGivesTheMetadataOrThePacketWithoutIt()
    {
        var vm = EbpfVm.CreateMbuff(Assembler.Assemble(ReadArguments));
        Assert.Equal((2UL << 8) | 0x77, Agree(vm, new byte[] { 0x11, 0, 0, 0 }, new byte[] { 0x77, 0 }).Result);
        // As rbpf: no metadata buffer, so r1 and r2 are the packet.
        Assert.Equal((4UL << 8) | 0x11, Agree(vm, new byte[] { 0x11, 0, 0, 0 }, null).Result);
    }

    [Fact]
    public void NoDataKindGivesZeroEvenForAPointerWithoutLength()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(ReadArguments));
        byte cell = 9;
        var outcome = Agree(vm, &cell, 0, null, 0);
        Assert.Equal(RbpfErrorCode.Ok, outcome.Code);
        Assert.Equal(0UL, outcome.Result);
    }

    [Fact]
    public void InputErrorsAreTheSame()
    {
        var noData = EbpfVm.CreateNoData(Assembler.Assemble(ReadArguments));
        var raw = EbpfVm.CreateRaw(Assembler.Assemble(ReadArguments));
        Assert.Equal(RbpfErrorCode.InvalidArgument, Agree(noData, new byte[4], null).Code);
        Assert.Equal(RbpfErrorCode.InvalidArgument, Agree(raw, new byte[4], new byte[4]).Code);
        Assert.Equal(RbpfErrorCode.InvalidArgument, Agree(raw, null, 4, null, 0).Code);
        Assert.Equal(RbpfErrorCode.InvalidArgument, Agree(raw, null, 0, null, 4).Code);
    }

    [Fact]
    public void TheStackReadsZeroBeforeItIsWritten()
    {
        // Garbage left on the host stack by an earlier run must not show through.
        var dirty = EbpfVm.CreateNoData(Assembler.Assemble("""
            lddw r1, 0x0123456789abcdef
            stxdw [r10-8], r1
            stxdw [r10-256], r1
            stxdw [r10-512], r1
            mov r0, 0
            exit
            """));
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("""
            ldxdw r0, [r10-8]
            ldxdw r1, [r10-256]
            or r0, r1
            ldxdw r1, [r10-512]
            or r0, r1
            add r0, 1
            exit
            """));
        Assert.Equal(0UL, Agree(dirty, null, null).Result);
        Assert.Equal(1UL, Agree(vm, null, null).Result);
    }

    [Fact]
    public void HelperCallsContinueTheRun()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("""
            mov r6, r2
            mov r1, 40
            mov r2, 2
            call 7
            add r0, r6
            call 7
            exit
            """));
        vm.RegisterHelper(7, (a, b, _, _, _) => a * 10 + b);
        // 40 * 10 + 2 = 402, + 5 (the length) = 407; then r1 = 40, r2 = 2 still: 402.
        Assert.Equal(402UL, Agree(vm, new byte[5], null).Result);
    }

    [Fact]
    public void FaultsAndUnknownHelpersAreTheSameErrors()
    {
        var load = EbpfVm.CreateRaw(Assembler.Assemble("""
            mov r0, 0
            ldxdw r0, [r1+6]
            exit
            """));
        var fault = Agree(load, new byte[8], null);
        Assert.Equal(RbpfErrorCode.OutOfBounds, fault.Code);
        Assert.Contains("insn #1", fault.Message);
        Assert.Contains("stack [0x", fault.Message); // the whole message, regions and all

        var unknown = EbpfVm.CreateNoData(Assembler.Assemble("""
            mov r0, 1
            call 99
            exit
            """));
        var error = Agree(unknown, null, null);
        Assert.Equal(RbpfErrorCode.UnknownHelper, error.Code);
        Assert.Contains("helper 99", error.Message);
    }

    [Fact]
    public void NeitherPathAllocates()
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(ReadArguments));
        var mem = new byte[8];
        fixed (byte* m = mem)
        {
            foreach (ulong limit in new ulong[] { 0, 100 }) // the lean path, then the general one (counted)
            {
                vm.InstructionLimit = limit;
                Assert.Equal(RbpfErrorCode.Ok, vm.TryExecute(m, 8, null, 0, out _, out _)); // the first run may prepare its code
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int k = 0; k < 1000; k++) vm.TryExecute(m, 8, null, 0, out _, out _);
                Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
            }
        }
    }

    [Fact]
    public void TheOtherRunsTakeTheGeneralPath()
    {
        var withCall = EbpfVm.CreateNoData(Assembler.Assemble("""
            call local +1
            exit
            mov r0, 3
            exit
            """));
        Assert.False(Interpreter.RunsPlain(withCall, withCall.Decoded!));
        Assert.Equal(3UL, withCall.Execute());

        var fixedMbuff = EbpfVm.CreateFixedMbuff(Assembler.Assemble("mov r0, r2\nexit"), 0, 8);
        Assert.False(Interpreter.RunsPlain(fixedMbuff, fixedMbuff.Decoded!));
        Assert.Equal(16UL, fixedMbuff.Execute(new byte[3]));

        var plain = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 5\nexit"));
        Assert.True(Interpreter.RunsPlain(plain, plain.Decoded!));
        Assert.Equal(5UL, plain.Execute());
    }
}
