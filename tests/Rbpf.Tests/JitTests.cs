using Rbpf.Jit;

namespace Rbpf.Tests;

public class JitTests
{
    internal static readonly JitOptions[] AllOptions =
    {
        new JitOptions(),
        new JitOptions { ConstantBlinding = true },
        new JitOptions { CheckedMemory = false },
        // Windows' calling convention at the edges, with adapters so that it runs here.
        new JitOptions { Abi = JitAbi.Win64Emulated },
    };

    [SkippableFact]
    public void SimpleProgram()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov32 r0, 0\nmov32 r1, 2\nadd32 r0, 1\nadd32 r0, r1\nexit"));
        vm.JitCompile();
        Assert.Equal(3UL, vm.ExecuteJit());
    }
}

public class JitLimitTests
{
    [SkippableFact]
    public void SwitchingTheLimitOnOrOffDiscardsCompiledCode()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 100, loop\nexit"));
        vm.JitCompile();
        Assert.Equal(100UL, vm.ExecuteJit());
        vm.InstructionLimit = 50;
        Assert.False(vm.IsJitCompiled);
        Assert.Equal(RbpfErrorCode.NoProgram, Assert.Throws<RbpfException>(() => vm.ExecuteJit()).Code);
        vm.JitCompile();
        Assert.Equal(RbpfErrorCode.InstructionLimit, Assert.Throws<RbpfException>(() => vm.ExecuteJit()).Code);
        vm.InstructionLimit = 1000; // still a limit: the code stays
        Assert.True(vm.IsJitCompiled);
        Assert.Equal(100UL, vm.ExecuteJit());
        vm.InstructionLimit = 0;
        Assert.False(vm.IsJitCompiled);
    }

    [SkippableFact]
    public void JitDisassemblyListsEachInstruction()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1+1]\nstxdw [r10-8], r0\nexit"));
        vm.JitCompile();
        string text = vm.JitDisassembly();
        Assert.Contains(";     0: ldxb r0, [r1+1]", text);
        Assert.Contains(";     1: stxdw [r10-8], r0", text);
        Assert.Contains(";     2: exit", text);
        Assert.Contains("[rbp-8]", text); // r10-relative access inside the frame: no check
        Assert.True(vm.JitCodeSize > 0);
        var blind = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0x12345678\nexit"));
        blind.JitCompile(new JitOptions { ConstantBlinding = true });
        static string MachineCode(string listing) =>
            string.Join("\n", listing.Split('\n').Where(l => !l.StartsWith(';')));
        Assert.DoesNotContain("12345678", MachineCode(blind.JitDisassembly()));
        Assert.Equal(0x12345678UL, blind.ExecuteJit());
        blind.JitCompile();
        Assert.Contains("12345678", MachineCode(blind.JitDisassembly()));
    }
}

/// <summary><see cref="EbpfVm.JitFunction"/>: the compiled program as a bare native function.</summary>
public unsafe class JitFunctionTests
{
    private static int Call(nint fn, byte[] mem, out ulong result)
    {
        ulong r = 0xdead;
        int code;
        fixed (byte* m = mem)
            code = ((delegate* unmanaged<byte*, nuint, byte*, nuint, ulong*, int>)fn)(m, (nuint)mem.Length, null, 0, &r);
        result = r;
        return code;
    }

    [SkippableTheory]
    [InlineData(JitAbi.Host)]
    [InlineData(JitAbi.Win64Emulated)]
    internal void RunsAsTheVmDoesWithTheSameErrors(JitAbi abi)
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxw r0, [r1+2]\nstb [r1], 9\nexit"));
        Assert.Equal(RbpfErrorCode.NoProgram, Assert.Throws<RbpfException>(() => vm.JitFunction).Code);
        vm.JitCompile(new JitOptions { Abi = abi });
        nint fn = vm.JitFunction;
        var mem = new byte[] { 0, 0, 0x11, 0x22, 0x33, 0x44 };
        Assert.Equal(0, Call(fn, mem, out ulong r));
        Assert.Equal(0x44332211UL, r);
        Assert.Equal(9, mem[0]);
        Assert.Equal((int)RbpfErrorCode.OutOfBounds, Call(fn, new byte[5], out r));
        Assert.Equal(0xdeadUL, r); // untouched on failure
        // Each bad argument: InvalidArgument, and the thread's failure names it as the VM would.
        ulong value;
        var bare = (delegate* unmanaged<byte*, nuint, byte*, nuint, ulong*, int>)fn;
        JitRuntime.TakeFailure();
        Assert.Equal((int)RbpfErrorCode.InvalidArgument, bare(null, 3, null, 0, &value));
        Assert.Equal("mem is NULL but mem_len is 3", JitRuntime.TakeFailure()!.Message);
        Assert.Equal((int)RbpfErrorCode.InvalidArgument, bare(null, 0, null, 0, null));
        Assert.Equal("result is NULL", JitRuntime.TakeFailure()!.Message);
        fixed (byte* m = mem)
        {
            Assert.Equal((int)RbpfErrorCode.InvalidArgument, bare(m, 6, null, 2, &value));
            Assert.Equal("mbuff is NULL but its length is not 0", JitRuntime.TakeFailure()!.Message);
            Assert.Equal((int)RbpfErrorCode.InvalidArgument, bare(m, 6, m, 2, &value));
            Assert.Equal(EbpfVm.UnusedInput(VmKind.Raw, mbuff: true).Message, JitRuntime.TakeFailure()!.Message);
        }
    }

    [SkippableFact]
    public void LargeFixedBuffersNeedTheVm()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var prog = Assembler.Assemble("ldxdw r2, [r1+0x40]\nldxdw r3, [r1+0x48]\nsub r3, r2\nmov r0, r3\nexit");
        var small = EbpfVm.CreateFixedMbuff(prog, 0x40, 0x48);
        small.JitCompile();
        Assert.Equal(0, Call(small.JitFunction, new byte[7], out ulong r));
        Assert.Equal(7UL, r);
        var large = EbpfVm.CreateFixedMbuff(prog, 2000, 2008);
        large.JitCompile();
        Assert.Equal(RbpfErrorCode.Unsupported, Assert.Throws<RbpfException>(() => large.JitFunction).Code);
        Assert.Equal(0UL, large.ExecuteJit(new byte[7])); // r1+0x40 and r1+0x48 are zeroes of the buffer
    }
}

/// <summary>
/// The Microsoft x64 convention at the code's edges (Windows), run here through adapters: every JIT
/// test already runs in that mode (<see cref="JitTests.AllOptions"/>); these look at the edges.
/// </summary>
public unsafe class Win64AbiTests
{
    [System.Runtime.InteropServices.UnmanagedCallersOnly]
    private static ulong Weigh(ulong a, ulong b, ulong c, ulong d, ulong e) => a + 10 * b + 100 * c + 1000 * d + 10000 * e;

    private const string FiveArguments = "mov r1, 1\nmov r2, 2\nmov r3, 3\nmov r4, 4\nmov r5, 5\n";

    [SkippableFact]
    public void HelpersGetTheirFiveArgumentsInOrder()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        // A native helper (called directly), a managed one and callx (both through the runtime's
        // six-argument trampolines); r1-r5 stay as they were after each call, as in the interpreter.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(
            FiveArguments + "call 1\nmov r6, r0\n" +
            "call 2\nadd r6, r0\n" +
            "mov r7, 2\ncallx r7\nadd r6, r0\n" +
            "mov r0, r6\nadd r0, r1\nadd r0, r5\nexit"));
        vm.RegisterHelper(1, &Weigh, "weigh_native");
        vm.RegisterHelper(2, (a, b, c, d, e) => a + 10 * b + 100 * c + 1000 * d + 10000 * e, "weigh_managed");
        Assert.Equal(3 * 54321UL + 1 + 5, TestUtil.Exec(vm));
    }

    [SkippableFact]
    public void TheEdgesFollowTheMicrosoftConvention()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        Skip.If(OperatingSystem.IsWindows(), "on Windows the host mode is this mode");
        var vm = EbpfVm.CreateNoData(Assembler.Assemble(FiveArguments + "call 1\nexit"));
        vm.RegisterHelper(1, &Weigh, "weigh_native");
        vm.JitCompile();
        string host = vm.JitDisassembly();
        vm.JitCompile(new JitOptions { Abi = JitAbi.Win64Emulated });
        string win64 = vm.JitDisassembly();
        // The fifth argument goes on the stack above the 32 bytes of shadow space; the entry takes
        // its fifth (the result pointer) from there.
        Assert.Contains("[rsp+20h],r8", win64);
        Assert.Contains("r8,[rsp+40h]", win64);
        Assert.DoesNotContain("[rsp+20h],r8", host);
        Assert.Equal(54321UL, vm.ExecuteJit());
    }
}

/// <summary>Compiled code lives as long as a run uses it, whatever other threads do to the VM.</summary>
public class JitLifetimeTests
{
    [SkippableFact]
    public void RecompilingAndDisposingWhileOtherThreadsRunIsSafe()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0\nmov r1, 0\nl:\nadd r0, 3\nadd r1, 1\njlt r1, 20000, l\nexit"));
        vm.JitCompile();
        int bad = 0, runs = 0;
        bool stop = false;
        var threads = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                var code = vm.TryExecuteJit(Span<byte>.Empty, Span<byte>.Empty, out ulong r, out RbpfException? _);
                if (code == RbpfErrorCode.Ok ? r != 60000 : code != RbpfErrorCode.NoProgram) Interlocked.Increment(ref bad);
                Interlocked.Increment(ref runs);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        for (int i = 0; i < 200; i++)
        {
            if (i % 10 == 9) vm.Dispose(); // the next runs see no code until the next compile
            else vm.JitCompile();
            // Collect, so that code nobody refers to any more is really unmapped meanwhile.
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Volatile.Write(ref stop, true);
        threads.ForEach(t => t.Join());
        Assert.Equal(0, bad);
        Assert.True(runs > 0);
    }
}

/// <summary>Accesses through one base register share one check in the JIT; the results and errors must not show it.</summary>
public class FusedCheckTests
{
    [Fact]
    public void GroupsGiveTheSameResults()
    {
        // Adjacent bytes, a span rounded up past the end (bytes 0 and 2 of 3), a 64-bit span of 8.
        Assert.Equal(0x30UL + 0x10, TestUtil.RunRaw("ldxb r0, [r1]\nldxb r2, [r1+2]\nadd r0, r2\nexit", new byte[] { 0x10, 0x20, 0x30 }));
        Assert.Equal(0x0201UL, TestUtil.RunRaw("ldxb r0, [r1]\nldxb r2, [r1+1]\nlsh r2, 8\nor r0, r2\nexit", new byte[] { 1, 2 }));
        var mem = new byte[8];
        TestUtil.RunRaw("stw [r1], 0x04030201\nsth [r1+4], 0x0605\nstb [r1+6], 7\nstb [r1+7], 8\nmov r0, 0\nexit", mem);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, mem);
        // A load into the base register ends a group: the next access uses the new base (here the
        // buffer's own address plus 8, stored in its first eight bytes).
        var chain = GC.AllocateArray<byte>(16, pinned: true);
        unsafe
        {
            fixed (byte* p = chain) BitConverter.TryWriteBytes(chain, (ulong)p + 8);
        }
        chain[9] = 0x55;
        Assert.Equal(0x55UL, TestUtil.RunRaw("ldxdw r1, [r1]\nldxb r0, [r1+1]\nexit", chain));
        // And a new base outside every region faults at the access that uses it.
        var bad = new byte[16];
        bad[0] = 0x10;
        var e = TestUtil.Fails(EbpfVm.CreateRaw(Assembler.Assemble("ldxdw r1, [r1]\nldxb r0, [r1+1]\nexit")), bad);
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        Assert.Equal(1, e.InstructionIndex);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AFaultInsideAGroupStopsAtItsOwnInstruction(bool jit)
    {
        if (jit && !EbpfVm.IsJitSupported) return;
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("stb [r1+2], 7\nstb [r1+3], 9\nmov r0, 1\nexit"));
        if (jit) vm.JitCompile();
        var mem = new byte[3];
        var code = jit ? vm.TryExecuteJit(mem, Span<byte>.Empty, out _, out RbpfException? error)
                       : vm.TryExecute(mem, Span<byte>.Empty, out _, out error);
        Assert.Equal(RbpfErrorCode.OutOfBounds, code);
        Assert.Equal(1, error!.InstructionIndex);
        Assert.Contains("store of 1 byte at", error.Message);
        Assert.Equal(7, mem[2]); // the first store happened
    }
}
