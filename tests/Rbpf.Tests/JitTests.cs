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
