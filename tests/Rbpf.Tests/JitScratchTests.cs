using System.Text;
using System.Text.RegularExpressions;
using Rbpf.Jit;
using Xunit;

namespace Rbpf.Tests;

/// <summary>
/// The x86-64 compiler keeps its working arrays (labels, block starts, loop heads, jump targets,
/// checked slots, shared slow checks, saved registers) and its assembler's output buffer per
/// thread between compiles. What a thread compiled before must not show in what it compiles next.
/// </summary>
public class JitScratchTests
{
    private static void SkipWithoutX64() =>
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT");

    /// <summary>A small program: a loop whose head follows a ja (aligned), checked loads and a store, a stack slot.</summary>
    private const string Small = """
        mov r0, 0
        mov r6, 8
        ja +2
        ldxb r3, [r1+1]
        add r0, r3
        ldxh r4, [r1+2]
        add r0, r4
        stxw [r10-8], r0
        sub r6, 1
        jne r6, 0, -7
        exit
        """;

    /// <summary>A long program that leaves something in every array: jumps to many slots, loops,
    /// loads and atomics of every size, lddw, registers r6-r9, a helper call.</summary>
    private static string Large()
    {
        var s = new StringBuilder();
        s.AppendLine("mov r6, r1");
        s.AppendLine("mov r7, 0");
        s.AppendLine("mov r8, 0");
        s.AppendLine("mov r9, 3");
        s.AppendLine("stdw [r10-16], 0");
        for (int k = 0; k < 300; k++)
        {
            s.AppendLine($"ldxb r2, [r6+{k % 8}]");
            s.AppendLine($"ldxw r3, [r6+{k % 4}]");
            s.AppendLine("add r7, r2");
            s.AppendLine("jgt r3, 7, +1");
            s.AppendLine("xor r8, r3");
            s.AppendLine("mov r1, r10");
            s.AppendLine("add r1, -16");
            s.AppendLine("lock add64 [r1+0], r7");
            s.AppendLine("lddw r4, 0x123456789");
            s.AppendLine("add r8, r4");
        }
        s.AppendLine("sub r9, 1");
        s.AppendLine("jne r9, 0, -3302"); // to the first ldxb (slot 5): 300 rounds of 11 slots, and the sub
        s.AppendLine("mov r0, r7");
        s.AppendLine("add r0, r8");
        s.AppendLine("exit");
        return s.ToString();
    }

    /// <summary>The listing with the addresses a compile embeds (its context, helpers) masked: they differ per compile.</summary>
    private static string Listing(EbpfVm vm) =>
        Regex.Replace(vm.JitDisassembly(), @"\b(mov\s+\w+,)[0-9A-F]+h", "$1<address>");

    private static (string Listing, ulong[] Results) CompileSmall(JitOptions options)
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(Small));
        vm.JitCompile(options);
        var packet = new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 };
        var results = new[] { vm.ExecuteJit(packet), vm.Execute(packet) };
        if (options.CheckedMemory) Assert.Throws<RbpfException>(() => vm.ExecuteJit(new byte[2])); // the ldxh at 2 is outside
        return (Listing(vm), results);
    }

    private static T OnFreshThread<T>(Func<T> f)
    {
        T result = default!;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try { result = f(); }
            catch (Exception e) { error = e; }
        });
        t.Start();
        t.Join();
        if (error != null) throw new Exception("on the fresh thread", error);
        return result;
    }

    [SkippableFact]
    public void WhatAThreadCompiledBeforeDoesNotChangeTheCodeItCompilesNext()
    {
        SkipWithoutX64();
        var large = Assembler.Assemble(Large());
        foreach (var options in JitTests.AllOptions)
        {
            var alone = OnFreshThread(() => CompileSmall(options));
            var after = OnFreshThread(() =>
            {
                var big = EbpfVm.CreateRaw(large);
                big.JitCompile(options);
                Assert.Equal(big.Execute(new byte[8]), big.ExecuteJit(new byte[8]));
                return CompileSmall(options);
            });
            Assert.Equal(alone.Results[1], alone.Results[0]);
            Assert.Equal(alone.Results, after.Results);
            Assert.Equal(alone.Listing, after.Listing);
        }
    }

    /// <summary>The AArch64 assembler keeps its word buffer and branch list per thread when it compiles
    /// without a listing (on any host: the code is compared, not run).</summary>
    [Fact]
    public void TheAArch64CompilerGivesTheSameCodeWhateverTheThreadCompiledBefore()
    {
        var small = EbpfVm.CreateRaw(Assembler.Assemble(Small));
        var large = EbpfVm.CreateRaw(Assembler.Assemble(Large()));
        foreach (var options in JitTests.AllOptions)
        {
            var alone = OnFreshThread(() => small.CompileArm64(options, listing: false).Code);
            var after = OnFreshThread(() =>
            {
                Assert.True(large.CompileArm64(options, listing: false).Code.Length > 4 * 3000);
                return small.CompileArm64(options, listing: false).Code;
            });
            Assert.Equal(alone, after);
            Assert.Equal(alone, small.CompileArm64(options, listing: true).Code); // and the listing's code is the same
        }
    }
}
