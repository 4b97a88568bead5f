using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// One generated program through the interpreter and then the JIT with each option set: they must
/// agree on the result and the memory afterwards, or on the error, its instruction and its message
/// (host addresses aside). Shared by the xunit suite and the AArch64 driver.
/// </summary>
internal static class JitAgreement
{
    /// <summary>The option sets every backend is tested with (x86-64 adds its emulated Windows ABI).</summary>
    public static readonly JitOptions[] Options =
    {
        new JitOptions(),
        new JitOptions { ConstantBlinding = true },
        new JitOptions { CheckedMemory = false },
        new JitOptions { Interruptible = false },
    };

    /// <summary>The helper the generated programs call (id 1).</summary>
    public static ulong Helper1(ulong a, ulong b, ulong c, ulong d, ulong e) => a * 31 + b * 7 + (c ^ d) + e;

    /// <summary>Error messages name host addresses, which differ between the engines' buffers and stacks.</summary>
    public static string Shape(string? message) =>
        message == null ? "" : System.Text.RegularExpressions.Regex.Replace(message, "0x[0-9a-f]{6,}", "ADDR");

    /// <summary>
    /// Runs <paramref name="prog"/> on a copy of <paramref name="mem0"/> in both engines; returns the
    /// interpreter's outcome and each disagreement as a sentence (none when they agree). Unchecked
    /// code runs only programs the interpreter finishes, since it would really make a bad access.
    /// </summary>
    public static (RbpfErrorCode Code, List<string> Disagreements) Compare(byte[] prog, byte[] mem0, IEnumerable<JitOptions> optionSets)
    {
        var vm = EbpfVm.CreateRaw(prog);
        vm.RegisterHelper(1, Helper1);
        byte[] memI = mem0.ToArray();
        var codeI = vm.TryExecute(memI, Span<byte>.Empty, out ulong resI, out var errI);
        var disagreements = new List<string>();
        // An observed run sees every instruction: the interpreter's plain code, neither fused nor threaded.
        byte[] memO = mem0.ToArray();
        var codeO = vm.TryExecute(memO, Span<byte>.Empty, (_, _) => { }, out ulong resO, out var errO);
        string? unfused =
            codeI != codeO ? $"interpreter {codeI} ({errI?.Message}) vs observed {codeO} ({errO?.Message})"
            : codeI == RbpfErrorCode.Ok && (resI != resO || !memI.AsSpan().SequenceEqual(memO)) ? $"interpreter 0x{resI:x} vs observed 0x{resO:x}, or the memory"
            : codeI != RbpfErrorCode.Ok && (errI!.InstructionIndex != errO!.InstructionIndex || Shape(errI.Message) != Shape(errO.Message)) ? $"interpreter '{errI.Message}' vs observed '{errO!.Message}'"
            : null;
        if (unfused != null) disagreements.Add($"{unfused}:\n{Disassembler.Disassemble(prog)}");
        foreach (var options in optionSets)
        {
            if (!options.CheckedMemory && codeI != RbpfErrorCode.Ok) continue;
            vm.JitCompile(options);
            byte[] memJ = mem0.ToArray();
            var codeJ = vm.TryExecuteJit(memJ, Span<byte>.Empty, out ulong resJ, out var errJ);
            string? why =
                codeI != codeJ ? $"interpreter {codeI} ({errI?.Message}) vs JIT {codeJ} ({errJ?.Message})"
                : codeI == RbpfErrorCode.Ok && resI != resJ ? $"interpreter 0x{resI:x} vs JIT 0x{resJ:x}"
                : codeI == RbpfErrorCode.Ok && !memI.AsSpan().SequenceEqual(memJ) ? "the memory afterwards differs"
                : codeI != RbpfErrorCode.Ok && errI!.InstructionIndex != errJ!.InstructionIndex ? $"error at #{errI.InstructionIndex} vs #{errJ.InstructionIndex}"
                : codeI != RbpfErrorCode.Ok && Shape(errI!.Message) != Shape(errJ!.Message) ? $"interpreter '{errI.Message}' vs JIT '{errJ.Message}'"
                : null;
            if (why != null) disagreements.Add($"{why} ({options}):\n{Disassembler.Disassemble(prog)}");
        }
        return (codeI, disagreements);
    }
}
