namespace Rbpf.Tests;

public class ConformanceTests
{
    [SkippableTheory]
    [MemberData(nameof(ConformanceCase.All), MemberType = typeof(ConformanceCase))]
    public void InterpreterPassesConformanceFile(string name)
    {
        var c = ConformanceCase.Get(name);
        var program = c.Program;
        if (c.Error != null)
        {
            var ex = Assert.ThrowsAny<RbpfException>(() => ConformanceCase.CreateVm(program).Execute(c.Memory.ToArray()));
            Assert.NotEqual(RbpfErrorCode.Ok, ex.Code);
            return;
        }
        var vm = ConformanceCase.CreateVm(program);
        ulong r0 = vm.Execute(c.Memory.ToArray());
        Assert.Equal(c.Result!.Value, r0);
    }

    [SkippableTheory]
    [MemberData(nameof(ConformanceCase.All), MemberType = typeof(ConformanceCase))]
    public void JitPassesConformanceFile(string name)
    {
        var c = ConformanceCase.Get(name);
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        foreach (var options in JitTests.AllOptions)
        {
            var vm = ConformanceCase.CreateVm(c.Program);
            vm.JitCompile(options);
            ulong r0 = vm.ExecuteJit(c.Memory.ToArray());
            Assert.Equal(c.Result!.Value, r0);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(ConformanceCase.All), MemberType = typeof(ConformanceCase))]
    public void AssemblerMatchesTheSuitesBytecode(string name)
    {
        var c = ConformanceCase.Get(name);
        string hexPath = Path.Combine(TestPaths.ConformanceDir!, "bytecode", name + ".hex");
        Skip.If(!File.Exists(hexPath) || c.Asm == null || c.Raw != null, $"{name}: the suite has no reference bytecode for it");
        byte[] expected = Convert.FromHexString(File.ReadAllText(hexPath).Trim());
        Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(Assembler.Assemble(c.Asm!)));
    }

    [SkippableTheory]
    [MemberData(nameof(ConformanceCase.All), MemberType = typeof(ConformanceCase))]
    public void DisassemblyRoundTrips(string name)
    {
        var c = ConformanceCase.Get(name);
        var program = c.Program;
        Assert.Equal(program, Assembler.Assemble(Disassembler.Disassemble(program)));
    }
}
