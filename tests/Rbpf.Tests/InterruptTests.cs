using Xunit;

namespace Rbpf.Tests;

public class InterruptTests
{
    // Never ends (r0 counts up by one from 0 and wraps only after 2^64 rounds), yet the verifier
    // cannot tell: it tests r0.
    private const string Runaway = "mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit";

    private static RbpfException RunInterrupted(EbpfVm vm, bool jit, byte[]? input = null)
    {
        RbpfException? error = null;
        var runner = new Thread(() =>
        {
            try { if (jit) vm.ExecuteJit(input ?? []); else vm.Execute(input ?? []); }
            catch (RbpfException e) { error = e; }
        });
        runner.Start();
        // Keep interrupting until the run has stopped: an interrupt before the run begins is lost.
        while (!runner.Join(20)) vm.Interrupt();
        Assert.NotNull(error);
        return error!;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void InterruptStopsARunawayLoopAtItsHead(bool jit)
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(Runaway));
        if (jit) vm.JitCompile();
        var e = RunInterrupted(vm, jit);
        Assert.Equal(RbpfErrorCode.Interrupted, e.Code);
        Assert.Equal(1, e.InstructionIndex);
        Assert.Equal("interrupted at insn #1", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void InterruptStopsAnEndlessNestWhosePollMovedToTheOuterWayBack(bool jit)
    {
        // The inner loop counts j down from 5 (at most L, which is at least 8) to 0: the JIT polls
        // not at its head (slot 2) but in the block of the outer way back (slot 5), which goes round forever.
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 8, out\nmov r7, 5\ninner:\nadd r0, 1\nsub r7, 1\njne r7, 0, inner\nmov r7, 5\nja inner\nout:\nexit"));
        if (jit)
        {
            vm.JitCompile();
            Assert.DoesNotContain("r11d,[r12", TestUtil.MachineCode(vm.JitDisassembly(), 2, 4));
        }
        var e = RunInterrupted(vm, jit, new byte[8]);
        Assert.Equal(RbpfErrorCode.Interrupted, e.Code);
        Assert.Equal(jit ? 5 : 2, e.InstructionIndex); // the interpreter polls at every loop head
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void InterruptStopsALoopOfHelperCallsAndCountedRuns(bool jit)
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r6, 0\nloop:\ncall 7\nadd r6, 1\njne r6, 0, loop\nexit"));
        vm.RegisterHelper(7, (_, _, _, _, _) => 0);
        vm.InstructionLimit = ulong.MaxValue; // the counted code paths poll as well
        if (jit) vm.JitCompile();
        Assert.Equal(RbpfErrorCode.Interrupted, RunInterrupted(vm, jit).Code);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void InterruptStopsEndlessLocalCallsAtTheFunctionEntry(bool jit)
    {
        // A loop whose every round calls f (slot 5): both the loop head and f's entry are checked.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(
            "mov r6, 0\nloop:\ncall local f\nadd r6, 1\njne r6, 0, loop\nexit\nf:\nmov r0, 0\nexit"));
        if (jit) vm.JitCompile();
        var e = RunInterrupted(vm, jit);
        Assert.Equal(RbpfErrorCode.Interrupted, e.Code);
        Assert.Contains(e.InstructionIndex, new[] { 1, 5 }); // the loop head or f
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnInterruptBetweenRunsIsLost(bool jit)
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 1000, loop\nexit"));
        if (jit) vm.JitCompile();
        vm.Interrupt();
        Assert.Equal(1000UL, jit ? vm.ExecuteJit() : vm.Execute());
        vm.Interrupt();
        vm.Interrupt();
        Assert.Equal(1000UL, jit ? vm.ExecuteJit() : vm.Execute());
    }

    [Fact]
    public void InterruptingOneVmLeavesAnotherRunning()
    {
        var stopped = EbpfVm.CreateNoData(Assembler.Assemble(Runaway));
        var other = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 3000000, loop\nexit"));
        ulong otherResult = 0;
        var t = new Thread(() => otherResult = other.Execute());
        t.Start();
        Assert.Equal(RbpfErrorCode.Interrupted, RunInterrupted(stopped, jit: false).Code);
        t.Join();
        Assert.Equal(3000000UL, otherResult);
    }

    [Fact]
    public void CodeCompiledWithoutInterruptChecksRunsToItsEnd()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 50000000, loop\nexit"));
        vm.JitCompile(new Rbpf.Jit.JitOptions { Interruptible = false });
        Assert.DoesNotContain("r11d,[r11]", vm.JitDisassembly());
        ulong result = 0;
        var t = new Thread(() => result = vm.ExecuteJit());
        t.Start();
        while (!t.Join(5)) vm.Interrupt();
        Assert.Equal(50000000UL, result);
        vm.JitCompile();
        Assert.Contains("r11d,[r11]", vm.JitDisassembly()); // the check is there by default
    }
}
