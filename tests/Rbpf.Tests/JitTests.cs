using Rbpf.Jit;

namespace Rbpf.Tests;

public class JitTests
{
    internal static readonly JitOptions[] AllOptions =
    {
        new JitOptions(),
        new JitOptions { ConstantBlinding = true },
        new JitOptions { CheckedMemory = false },
    };

    [SkippableFact]
    public void SimpleProgram()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux or macOS");
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
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux or macOS");
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
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux or macOS");
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
