using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Programs that need no context or frame (raw, nothing to check, no stack, calls or polls) run
/// with the x86-64 JIT's lean entry: same results, same argument errors, and a listing without
/// the context (r12).
/// </summary>
public class LeanEntryTests
{
    private static void SkipWithoutX64() =>
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT listings");

    /// <summary>The listing's entry, before the first eBPF instruction (bad arguments go to the runtime out of line).</summary>
    private static string Prologue(EbpfVm vm)
    {
        var listing = vm.JitDisassembly();
        return listing[..listing.IndexOf(";     0:", StringComparison.Ordinal)];
    }

    // tcpdump's "ip" as the classic translation leaves it: a guard, a load, a verdict.
    private const string Ip = "mov r0, 0\njlt r2, 14, drop\nldxh r0, [r1+12]\nbe16 r0\njeq r0, 0x800, +2\ndrop:\nmov r0, 0\nexit\nmov r0, 0x40000\nexit";

    [SkippableTheory]
    [InlineData(Ip, true)]
    [InlineData("mov r0, 1\nexit", true)]
    [InlineData("mov r6, 3\nmov r7, r2\nmul r7, r6\nmov r0, r7\nexit", true)]           // callee-saved registers
    [InlineData("jlt r2, 4, +3\nldxw r0, [r1]\ndiv r0, r2\nexit\nmov r0, 0\nexit", true)] // division by a register
    // Not lean: a load to check, the stack, a call, a loop that polls.
    [InlineData("ldxb r0, [r1]\nexit", false)]
    [InlineData("stxdw [r10-8], r2\nldxdw r0, [r10-8]\nexit", false)]
    [InlineData("mov r1, 1\nmov r2, 2\ncall 1\nexit", false)]
    [InlineData("mov r0, 0\nadd r0, 1\njne r0, 5, -2\nexit", false)]
    public void LeanProgramsHaveNoContextAndComputeTheSame(string text, bool lean)
    {
        SkipWithoutX64();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        vm.RegisterHelper(1, (a, b, _, _, _) => a + b);
        vm.JitCompile();
        Assert.Equal(lean, !Prologue(vm).Contains("r12", StringComparison.Ordinal));
        for (int len = 0; len <= 20; len++)
        {
            var mem = Enumerable.Range(0, len).Select(k => (byte)(k == 12 ? 8 : k * 29 + 3)).ToArray();
            var ci = vm.TryExecute(mem, Span<byte>.Empty, out ulong ri, out _);
            var cj = vm.TryExecuteJit(mem, Span<byte>.Empty, out ulong rj, out _);
            Assert.Equal(ci, cj);
            Assert.Equal(ri, rj);
        }
    }

    [SkippableFact]
    public unsafe void LeanProgramsRefuseBadArgumentsAsTheFullEntryDoes()
    {
        SkipWithoutX64();
        var lean = EbpfVm.CreateRaw(Assembler.Assemble(Ip));
        var full = EbpfVm.CreateRaw(Assembler.Assemble(Ip.Replace("jlt r2, 14, drop\n", ""))); // its load needs a check
        var mem = new byte[20];
        foreach (var vm in new[] { lean, full })
        {
            vm.JitCompile();
            fixed (byte* m = mem)
            {
                ulong r = 5;
                Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecuteJit(null, 3, null, 0, null, 0, out r, out var e1));
                Assert.Equal("mem is NULL but mem_len is 3", e1!.Message);
                Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecuteJit(m, 20, null, 4, null, 0, out r, out var e2));
                Assert.Equal("mbuff is NULL but its length is not 0", e2!.Message);
                Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecuteJit(m, 20, m, 4, null, 0, out r, out var e3));
                Assert.Contains("takes no metadata buffer", e3!.Message);
                Assert.Equal(RbpfErrorCode.Ok, vm.TryExecuteJit(m, 20, m, 0, null, 0, out r, out _)); // a pointer without a length is no buffer
            }
        }
        Assert.DoesNotContain("r12", Prologue(lean));
        Assert.Contains("r12", Prologue(full));
    }

    [SkippableFact]
    public unsafe void NoDataProgramsRunLeanWithR1AndR2AtZero()
    {
        SkipWithoutX64();
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, r1\nadd r0, r2\nadd r0, 5\nexit"));
        vm.JitCompile();
        Assert.DoesNotContain("r12", Prologue(vm));
        var mem = new byte[4];
        fixed (byte* m = mem)
        {
            Assert.Equal(RbpfErrorCode.Ok, vm.TryExecuteJit(m, 0, null, 0, null, 0, out ulong r, out _));
            Assert.Equal(5UL, r); // a pointer without a length: r1 is still 0
            Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecuteJit(m, 4, null, 0, null, 0, out _, out var e1));
            Assert.Contains("takes no input memory", e1!.Message);
            Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecuteJit(null, 4, null, 0, null, 0, out _, out var e2));
            Assert.Equal("mem is NULL but mem_len is 4", e2!.Message);
            Assert.Equal(RbpfErrorCode.InvalidArgument, vm.TryExecuteJit(null, 0, m, 4, null, 0, out _, out var e3));
            Assert.Contains("takes no metadata buffer", e3!.Message);
        }
        Assert.Equal(vm.Execute(), vm.ExecuteJit());
    }

    /// <summary>The entry zeroes a register only when some path may read it before writing it.</summary>
    [SkippableFact]
    public void TheEntryZeroesOnlyRegistersReadBeforeWritten()
    {
        SkipWithoutX64();
        var written = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 14, drop\nldxh r0, [r1+12]\nexit\ndrop:\nmov r0, 7\nexit"));
        var read = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 1, +1\nldxb r0, [r1]\nexit")); // an empty input returns r0 as it started
        foreach (var vm in new[] { written, read }) vm.JitCompile();
        Assert.DoesNotContain("xor     eax,eax", Prologue(written));
        Assert.Contains("xor     eax,eax", Prologue(read));
        // r0 left over from another run (a register, not memory) must not leak into this one.
        var mem = new byte[14];
        mem[12] = 1;
        Assert.Equal(1UL, written.ExecuteJit(mem));
        Assert.Equal(7UL, written.ExecuteJit(new byte[3]));
        Assert.Equal(9UL, read.ExecuteJit(new byte[] { 9 }));
        Assert.Equal(0UL, read.ExecuteJit(Array.Empty<byte>()));
    }

    /// <summary>
    /// A lean program has no frame: no exit through one, no error exit. Its trailing slot and lddw tails,
    /// which no path reaches, are a trap; past 16 exits they share one, which returns by itself.
    /// </summary>
    [SkippableTheory]
    [InlineData(3)]
    [InlineData(20)]
    public void LeanProgramsCarryNoFrameExitsAndTrapWhereNothingGoes(int exits)
    {
        SkipWithoutX64();
        // r0 starts as a constant that needs lddw; then an exit for each of the first byte's values below exits - 1.
        var text = new System.Text.StringBuilder("lddw r0, 0x1122334455667788\njlt r2, 1, last\nldxb r3, [r1]\n");
        for (int k = 0; k < exits - 1; k++) text.Append($"jne r3, {k}, +2\nadd r0, {k}\nexit\n");
        text.Append("last:\nexit\n");
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text.ToString()));
        vm.JitCompile();
        var listing = vm.JitDisassembly();
        Assert.DoesNotContain("r12", listing); // no context anywhere: no frame, no failure through one
        var tail = listing[listing.IndexOf("; exits and out-of-line checks", StringComparison.Ordinal)..].Split('\n');
        Assert.Contains("ud2", tail[1]); // the trailing slot's trap comes first
        Assert.Equal(exits > 16, tail.Count(l => l.Contains("ret", StringComparison.Ordinal)) > 0); // the shared exit
        for (int b = 0; b < exits + 2; b++)
        {
            var mem = new[] { (byte)b };
            Assert.Equal(vm.Execute(mem), vm.ExecuteJit(mem));
        }
        Assert.Equal(vm.Execute(Array.Empty<byte>()), vm.ExecuteJit(Array.Empty<byte>()));
    }
}
