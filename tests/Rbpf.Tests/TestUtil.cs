namespace Rbpf.Tests;

internal static class TestUtil
{
    /// <summary>Assembles and runs a program with no input.</summary>
    public static ulong Run(string asm) => EbpfVm.CreateNoData(Assembler.Assemble(asm)).Execute();

    /// <summary>Assembles and runs a program on <paramref name="mem"/> (raw kind).</summary>
    public static ulong RunRaw(string asm, byte[] mem) => EbpfVm.CreateRaw(Assembler.Assemble(asm)).Execute(mem);

    /// <summary>Runs and returns the error the run must fail with.</summary>
    public static RbpfException Fails(EbpfVm vm, byte[]? mem = null)
    {
        var code = vm.TryExecute(mem ?? Array.Empty<byte>(), Span<byte>.Empty, out _, out var error);
        Assert.NotEqual(RbpfErrorCode.Ok, code);
        Assert.NotNull(error);
        Assert.Equal(code, error!.Code);
        return error;
    }
}
