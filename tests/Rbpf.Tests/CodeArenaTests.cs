using System.Globalization;
using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Where compiled code lives on Linux (<see cref="CodeArena"/>): shared chunks mapped read-write
/// and read-execute at different addresses, reused as programs come and go.
/// </summary>
public class CodeArenaTests
{
    private static void SkipOffLinux() =>
        Skip.IfNot(OperatingSystem.IsLinux() && EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "the code arena is for x86-64 Linux");

    /// <summary>The arena's mappings in /proc/self/maps: (start, end, permissions).</summary>
    private static List<(ulong Start, ulong End, string Perms)> ArenaMappings() =>
        File.ReadAllLines("/proc/self/maps")
            .Where(l => l.Contains("rbpf-jit", StringComparison.Ordinal))
            .Select(l =>
            {
                var parts = l.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var range = parts[0].Split('-');
                return (ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture), parts[1]);
            })
            .ToList();

    private static unsafe byte[] ReadBack(ExecutableMemory m) => new ReadOnlySpan<byte>(m.Address, m.Length).ToArray();

    [SkippableFact]
    public void CodeIsInTheArenaAndNeverWritableWhereItRuns()
    {
        SkipOffLinux();
        Skip.If(CodeArena.Disabled, "the arena is off here (RBPF_JIT_SEPARATE_PAGES=1 or no executable memfd)");
        var code = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
        using var m = ExecutableMemory.Create(code);
        Assert.True(m.InArena);
        Assert.Equal(code, ReadBack(m));
        var maps = ArenaMappings();
        ulong at;
        unsafe { at = (ulong)m.Address; }
        var home = Assert.Single(maps, r => at >= r.Start && at < r.End);
        Assert.StartsWith("r-x", home.Perms, StringComparison.Ordinal);
        Assert.DoesNotContain(maps, r => r.Perms.Contains('w') && r.Perms.Contains('x'));
        Assert.Contains(maps, r => r.Perms.StartsWith("rw-", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void ThousandsOfCompilesReuseAFewChunks()
    {
        SkipOffLinux();
        Skip.If(CodeArena.Disabled, "the arena is off here");
        // With a mapping per program this left thousands of mappings until finalizers ran; the
        // arena keeps a few chunks whatever the number of programs compiled over time.
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1]\nadd r0, 1\nexit"));
        var packet = new byte[] { 41 };
        for (int k = 0; k < 3000; k++)
        {
            vm.JitCompile();
            Assert.Equal(42UL, vm.ExecuteJit(packet));
            if (k % 500 == 499)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.InRange(ArenaMappings().Count, 2, 2 * 16);
        Assert.InRange(CodeArena.ChunkCount, 1, 16);
    }

    [SkippableFact]
    public void CodeLargerThanAChunkGetsItsOwnAndGivesItBack()
    {
        SkipOffLinux();
        Skip.If(CodeArena.Disabled, "the arena is off here");
        var code = new byte[CodeArena.ChunkSize + 5000];
        new Random(1).NextBytes(code);
        ulong at;
        using (var m = ExecutableMemory.Create(code))
        {
            Assert.True(m.InArena);
            Assert.Equal(code, ReadBack(m));
            unsafe { at = (ulong)m.Address; }
            Assert.Contains(ArenaMappings(), r => r.Start == at && r.End - r.Start >= (ulong)code.Length);
        }
        Assert.DoesNotContain(ArenaMappings(), r => at >= r.Start && at < r.End);
    }

    [SkippableFact]
    public unsafe void FreedRangesAreFilledWithInt3()
    {
        SkipOffLinux();
        Skip.If(CodeArena.Disabled, "the arena is off here");
        // Directly on the allocator: ranges of a chunk come back merged and trapping.
        var a = CodeArena.TryAllocate(new byte[] { 1, 2, 3 }, out var chunkA, out int offsetA);
        var b = CodeArena.TryAllocate(new byte[100], out var chunkB, out int offsetB);
        Assert.True(a != null && b != null);
        unsafe
        {
            Assert.Equal(0, (long)a % 64);
            Assert.Equal(new byte[] { 1, 2, 3 }, new ReadOnlySpan<byte>(a, 3).ToArray());
            CodeArena.Release(chunkA!, offsetA, 3);
            Assert.All(new ReadOnlySpan<byte>(a, 64).ToArray(), x => Assert.Equal(0xCC, x));
            CodeArena.Release(chunkB!, offsetB, 100);
            Assert.All(new ReadOnlySpan<byte>(b, 128).ToArray(), x => Assert.Equal(0xCC, x));
        }
    }

    [SkippableFact]
    public void WithoutTheArenaEachProgramHasPagesOfItsOwn()
    {
        SkipOffLinux();
        bool was = CodeArena.Disabled;
        CodeArena.Disabled = true;
        try
        {
            var code = new byte[] { 0xC3, 0x90, 0x90 };
            using var m = ExecutableMemory.Create(code);
            Assert.False(m.InArena);
            Assert.Equal(code, ReadBack(m));
            var vm = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1]\nadd r0, 1\nexit"));
            vm.JitCompile();
            Assert.Equal(8UL, vm.ExecuteJit(new byte[] { 7 }));
        }
        finally
        {
            CodeArena.Disabled = was;
        }
    }
}
