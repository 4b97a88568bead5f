using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Runs programs through every engine: the interpreter, and the JIT in each of its modes where it
/// is supported. Every engine must give the same result, the same memory contents afterwards, or
/// the same error.
/// </summary>
internal static class TestUtil
{
    /// <summary>Assembles and runs a program with no input.</summary>
    public static ulong Run(string asm) => Exec(EbpfVm.CreateNoData(Assembler.Assemble(asm)));

    /// <summary>Assembles and runs a program on <paramref name="mem"/> (raw kind).</summary>
    public static ulong RunRaw(string asm, byte[] mem) => Exec(EbpfVm.CreateRaw(Assembler.Assemble(asm)), mem);

    /// <summary>
    /// The machine instructions a JIT listing (<see cref="EbpfVm.JitDisassembly"/>) shows under
    /// slots <paramref name="first"/> to <paramref name="last"/> (just <paramref name="first"/> by
    /// default), without the eBPF lines.
    /// </summary>
    public static string MachineCode(string listing, int first, int last = -1)
    {
        int start = listing.IndexOf($";{first,6}:", StringComparison.Ordinal);
        int end = listing.IndexOf($";{(last < 0 ? first : last) + 1,6}:", StringComparison.Ordinal);
        return string.Join("\n", listing[start..end].Split('\n').Where(l => !l.StartsWith(';')));
    }

    private static IEnumerable<JitOptions> JitModes => EbpfVm.IsJitSupported ? JitTests.AllOptions : Array.Empty<JitOptions>();

    /// <summary>Runs <paramref name="vm"/> in every engine and returns the (common) result.</summary>
    public static ulong Exec(EbpfVm vm, byte[]? mem = null, byte[]? mbuff = null)
    {
        mem ??= Array.Empty<byte>();
        mbuff ??= Array.Empty<byte>();
        byte[] mem0 = mem.ToArray(), mbuff0 = mbuff.ToArray();
        var outcomes = new List<(string Engine, ulong Result, byte[] Mem, byte[] Mbuff)>();
        foreach (var options in JitModes)
        {
            mem0.CopyTo(mem, 0);
            mbuff0.CopyTo(mbuff, 0);
            vm.JitCompile(options);
            var code = vm.TryExecuteJit(mem, mbuff, out ulong r, out var error);
            Assert.True(code == RbpfErrorCode.Ok, $"JIT ({options}) failed where it should not: {error?.Message}");
            outcomes.Add(($"JIT {options}", r, mem.ToArray(), mbuff.ToArray()));
        }
        mem0.CopyTo(mem, 0);
        mbuff0.CopyTo(mbuff, 0);
        ulong result = vm.Execute(mem, mbuff);
        foreach (var o in outcomes)
        {
            Assert.True(result == o.Result, $"{o.Engine} returned 0x{o.Result:x}, the interpreter 0x{result:x}");
            Assert.Equal(mem, o.Mem);
            Assert.Equal(mbuff, o.Mbuff);
        }
        return result;
    }

    /// <summary>Runs in every engine and returns the error all of them must fail with.</summary>
    public static RbpfException Fails(EbpfVm vm, byte[]? mem = null)
    {
        mem ??= Array.Empty<byte>();
        var code = vm.TryExecute(mem, Span<byte>.Empty, out _, out var error);
        Assert.NotEqual(RbpfErrorCode.Ok, code);
        Assert.NotNull(error);
        Assert.Equal(code, error!.Code);
        if (vm.Program != null)
        {
            foreach (var options in JitModes)
            {
                if (!options.CheckedMemory && code == RbpfErrorCode.OutOfBounds) continue; // unchecked mode does not look
                vm.JitCompile(options);
                var jitCode = vm.TryExecuteJit(mem.ToArray(), Span<byte>.Empty, out _, out var jitError);
                Assert.True(jitCode == code, $"JIT ({options}) gave {jitCode} ({jitError?.Message}), the interpreter {code} ({error.Message})");
                if (code != RbpfErrorCode.InstructionLimit)
                {
                    Assert.Equal(error.InstructionIndex, jitError!.InstructionIndex);
                    // Same message, but for host addresses: the engines run on different stacks.
                    Assert.Equal(JitAgreement.Shape(error.Message), JitAgreement.Shape(jitError.Message));
                }
            }
        }
        return error;
    }
}
