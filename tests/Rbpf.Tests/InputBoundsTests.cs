using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Checks the JIT leaves out for accesses proven inside a raw VM's input (<see cref="InputBounds"/>),
/// and the peepholes for classic BPF translations' code shapes: what is proven, what is not, the
/// listing, and random programs whose JIT runs must fail exactly where the interpreter's do.
/// </summary>
public class InputBoundsTests
{
    private static void SkipWithoutX64() =>
        Skip.IfNot(EbpfVm.IsJitSupported && !ExecutableMemory.IsArm64, "x86-64 JIT listings");

    /// <summary>The slots proven, as a list.</summary>
    private static int[] Proven(string text)
    {
        var proven = InputBounds.ProvenAccesses(DecodedProgram.Decode(Assembler.Assemble(text)).Code);
        return proven == null ? Array.Empty<int>() : Enumerable.Range(0, proven.Length).Where(pc => proven[pc]).ToArray();
    }

    /// <summary>Runs <paramref name="vm"/>'s interpreter and JIT each on its own copy of <paramref name="input"/>:
    /// the same error code, and the same result when both succeed; returns the copies as each run left them.</summary>
    private static (byte[] Interpreted, byte[] Compiled) AssertSameRun(EbpfVm vm, byte[] input, string what)
    {
        byte[] a = input.ToArray(), b = input.ToArray();
        var ci = vm.TryExecute(a, Span<byte>.Empty, out ulong ri, out var ei);
        var cj = vm.TryExecuteJit(b, Span<byte>.Empty, out ulong rj, out var ej);
        Assert.True(ci == cj, $"{what} on {input.Length} bytes: interpreter {ci} ({ei?.Message}), JIT {cj} ({ej?.Message})");
        if (ci == RbpfErrorCode.Ok) Assert.True(ri == rj, $"{what} on {input.Length} bytes: interpreter {ri}, JIT {rj}");
        return (a, b);
    }

    /// <summary>
    /// The analysis' work on clang's code stays in proportion: at most five steps per slot for each
    /// kernel of benchmarks/clang/kernels.o (checksum 2.6, hash 2.9, sort 3.7, header parsing 2.5, the
    /// token state machine 2.1 when this was written; it was 5.2 to 7.2 before the analysis visited
    /// slots in reverse postorder and widened sooner), and every kernel still has accesses proven.
    /// </summary>
    [Theory]
    [InlineData("checksum")]
    [InlineData("hash")]
    [InlineData("sort")]
    [InlineData("parse")]
    [InlineData("tokens")]
    public void ClangKernelsTakeAFewStepsPerSlot(string kernel)
    {
        var elf = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "benchmarks", "clang", "kernels.o"));
        var vm = EbpfVm.CreateFromElf(VmKind.Raw, elf, kernel);
        var code = DecodedProgram.Decode(vm.Program!.Value.Span).Code;
        var facts = InputBounds.Analyze(code);
        Assert.NotNull(facts);
        Assert.True(facts!.Steps <= 5L * code.Length, $"{kernel}: {facts.Steps} steps for {code.Length} slots");
        Assert.True(facts.Steps >= code.Length / 2, $"{kernel}: {facts.Steps} steps for {code.Length} slots"); // it did visit the program
        Assert.Contains(true, facts.Proven ?? Array.Empty<bool>());
    }

    /// <summary>clang's eBPF for the internet checksum (benchmarks/clang/kernels.c), loop at 6-15, tail byte at 18.</summary>
    private const string Checksum = "mov r0, 0\nmov r3, 0\njlt r2, 2, +13\nmov r4, 0\nmov r0, 0\nmov r3, 0\nmov r5, r1\nadd r5, r4\nldxh r5, [r5+0]\nbe16 r5\nadd r0, r5\nadd r3, 2\nmov r5, r4\nadd r5, 3\nmov r4, r3\njlt r5, r2, -10\njge r3, r2, +5\nadd r1, r3\nldxb r1, [r1+0]\nlsh r1, 8\nadd r1, r0\nmov r0, r1\nexit";

    /// <summary>clang's eBPF for the insertion sort (benchmarks/clang/kernels.c).</summary>
    internal const string Sort = "mov64 r3, r2\nrsh64 r3, 0x2\njlt r2, 0x8, L31\nmov64 r4, 0x1\nmov64 r5, r1\nadd64 r5, 0x4\nja L23\nL7:\nldxw r9, [r6-4]\nmov64 r8, r7\njsle32 r9, r0, L15\nadd64 r7, -0x1\nstxw [r6+0], r9\nmov64 r8, 0x0\nadd64 r6, -0x4\njne r7, 0x0, L7\nL15:\nlsh64 r8, 0x2\nmov64 r6, r1\nadd64 r6, r8\nstxw [r6+0], r0\nadd64 r5, 0x4\nadd64 r4, 0x1\njlt r4, r3, L23\nja L31\nL23:\nmov64 r0, r4\nlsh64 r0, 0x2\nmov64 r6, r1\nadd64 r6, r0\nldxw r0, [r6+0]\nmov64 r6, r5\nmov64 r7, r4\nja L7\nL31:\nmov64 r0, 0x0\njlt r2, 0x4, L41\nmov64 r2, 0x0\nmov64 r0, 0x0\nL35:\nmul64 r0, 0x1f\nldxw r4, [r1+0]\nadd64 r0, r4\nadd64 r1, 0x4\nadd64 r2, 0x1\njlt r2, r3, L35\nL41:\nexit";

    [Theory]
    // jlt falls through with 14 bytes or more: bytes 12 and 13 are in.
    [InlineData("jlt r2, 14, +2\nldxh r0, [r1+12]\nexit\nmov r0, 0\nexit", new[] { 1 })]
    // One byte short: not proven.
    [InlineData("jlt r2, 14, +2\nldxh r0, [r1+13]\nexit\nmov r0, 0\nexit", new int[0])]
    // jge, jgt, jle and jeq on the side they tell; 32-bit comparisons too (r2 is at least w2).
    [InlineData("jge r2, 8, +1\nexit\nldxdw r0, [r1]\nexit", new[] { 2 })]
    [InlineData("jgt r2, 7, +1\nexit\nldxdw r0, [r1]\nexit", new[] { 2 })]
    [InlineData("jle r2, 7, +1\nldxdw r0, [r1]\nexit", new[] { 1 })]
    [InlineData("jeq r2, 4, +1\nexit\nstw [r1], 1\nexit", new[] { 2 })]
    [InlineData("jlt32 r2, 4, +1\nldxw r0, [r1]\nexit", new[] { 1 })]
    // The other side of a jump knows nothing.
    [InlineData("jlt r2, 14, +1\nexit\nldxb r0, [r1]\nexit", new int[0])]
    // A bound shrinks to the least over the paths that meet.
    [InlineData("jlt r2, 10, +6\njlt r2, 20, +2\nldxb r0, [r1+19]\nja +0\nldxb r0, [r1+9]\nldxb r0, [r1+10]\nexit\nexit", new[] { 2, 4 })]
    // Moving r1 along keeps what is known past it; a comparison with r2 once it no longer holds the
    // length says nothing; calls and legacy packet loads forget; a loop back to a bound-less head forgets.
    [InlineData("jlt r2, 14, +3\nadd r1, 13\nldxb r0, [r1]\nexit\nexit", new[] { 2 })]
    [InlineData("jlt r2, 14, +3\nadd r1, 14\nldxb r0, [r1]\nexit\nexit", new int[0])]
    [InlineData("jlt r2, 14, +3\nmov r2, 100\nldxb r0, [r1+13]\nexit\nexit", new[] { 2 })]
    [InlineData("mov r2, 100\njlt r2, 14, +2\nldxb r0, [r1]\nexit\nexit", new int[0])]
    [InlineData("sub r2, 4\njlt r2, 14, +2\nldxb r0, [r1+13]\nexit\nexit", new int[0])]
    [InlineData("mov r3, 100\nmov r2, r3\njlt r2, 14, +2\nldxb r0, [r1+13]\nexit\nexit", new int[0])]
    // The start moved back and forward again is known exactly (the JIT's check is modulo 2^64 too).
    [InlineData("jlt r2, 14, +3\nsub r1, 1\nldxb r0, [r1+1]\nexit\nexit", new[] { 2 })]
    [InlineData("jlt r2, 14, +3\nsub r1, 1\nldxb r0, [r1]\nexit\nexit", new int[0])]
    [InlineData("jlt r2, 14, +3\ncall 1\nldxb r0, [r1]\nexit\nexit", new int[0])]
    [InlineData("jlt r2, 14, +3\nldabsb 0\nldxb r0, [r1]\nexit\nexit", new int[0])]
    [InlineData("mov r3, 0\njlt r2, 14, +3\nldxb r0, [r1+13]\nadd r3, 1\njlt r3, 3, -5\nexit", new[] { 2 })]
    [InlineData("mov r3, 0\nldxb r0, [r1+13]\njlt r2, 14, +2\nadd r3, 1\njlt r3, 3, -5\nexit", new int[0])]
    // A guard on another register, a negative offset, another base: not proven.
    [InlineData("jlt r3, 14, +1\nldxb r0, [r1]\nexit", new int[0])]
    [InlineData("jlt r2, 14, +1\nldxb r0, [r1-1]\nexit", new int[0])]
    // A copy of the start is the start.
    [InlineData("mov r3, r1\njlt r2, 14, +1\nldxb r0, [r3+13]\nexit", new[] { 2 })]
    [InlineData("mov r3, r1\njlt r2, 14, +1\nldxb r0, [r3+14]\nexit", new int[0])]
    // An offset compared with the length, as classic BPF translations check an indirect load: X + 14
    // (X below 2^32), two more for the load's size, jgt against r2, then the input's start added.
    [InlineData("ldxb r5, [r1]\njlt r2, 1, +9\nmov32 r3, 14\nmov32 r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 2\njgt r4, r2, +3\nadd r3, r1\nldxh r0, [r3+0]\nexit\nexit", new[] { 9 })]
    // One byte too many, the wrong way round, a value that could wrap, jgt32: not proven.
    [InlineData("ldxb r5, [r1]\njlt r2, 1, +9\nmov32 r3, 14\nmov32 r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 1\njgt r4, r2, +3\nadd r3, r1\nldxh r0, [r3+0]\nexit\nexit", new int[0])]
    [InlineData("ldxb r5, [r1]\njlt r2, 1, +9\nmov32 r3, 14\nmov32 r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 2\njlt r4, r2, +3\nadd r3, r1\nldxh r0, [r3+0]\nexit\nexit", new int[0])]
    [InlineData("ldxdw r5, [r1]\njlt r2, 1, +9\nmov r3, 14\nmov r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 2\njgt r4, r2, +3\nadd r3, r1\nldxh r0, [r3+0]\nexit\nexit", new int[0])]
    [InlineData("ldxb r5, [r1]\njlt r2, 1, +9\nmov32 r3, 14\nmov32 r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 2\njgt32 r4, r2, +3\nadd r3, r1\nldxh r0, [r3+0]\nexit\nexit", new int[0])]
    // The offset is added to r1 once r1 has moved on: not the input's start any more.
    [InlineData("ldxb r5, [r1]\njlt r2, 1, +10\nmov32 r3, 14\nmov32 r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 2\njgt r4, r2, +4\nadd r1, 1\nadd r3, r1\nldxh r0, [r3+0]\nexit\nexit", new int[0])]
    // Moving the offset on after the comparison leaves less room.
    [InlineData("ldxb r5, [r1]\njlt r2, 1, +10\nmov32 r3, 14\nmov32 r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 2\njgt r4, r2, +4\nadd r3, 1\nadd r3, r1\nldxb r0, [r3+0]\nexit\nexit", new[] { 10 })]
    [InlineData("ldxb r5, [r1]\njlt r2, 1, +10\nmov32 r3, 14\nmov32 r4, r5\nadd r3, r4\nmov r4, r3\nadd r4, 2\njgt r4, r2, +4\nadd r3, 1\nadd r3, r1\nldxh r0, [r3+0]\nexit\nexit", new int[0])]
    // Loops as clang writes them. The checksum: i + 1 < len, two bytes at start + i; r3 and r4 are
    // the same value at the head (both 0 on entry, r4 = r3 on the way back), r5 = r4 + 3 compared.
    [InlineData(Checksum, new[] { 8, 18 })]
    // clang's insertion sort of 32-bit integers (benchmarks/clang/kernels.c): n = len >> 2, i < n; the
    // inner loop walks p = start + 4 * j down while j != 0, loading p[-1] and storing p[0]; the digest
    // loop walks start + 4 * i up. Every access is proven through the pointers' relation to the index.
    [InlineData(Sort, new[] { 7, 11, 18, 27, 36 })]
    // Variations of it: p[-2] loaded in the inner loop; the inner pointer stepped by 2 for each element
    // (no relation to j survives the loop head); n = len >> 1 (bounds twice as many 4-byte elements as
    // there are); the entry guard 4 bytes (one element, but the first round reads the second: only the
    // inner loop's load, at most j elements from the start with j <= i, and the digest stay proven).
    [InlineData("mov64 r3, r2\nrsh64 r3, 0x2\njlt r2, 0x8, L31\nmov64 r4, 0x1\nmov64 r5, r1\nadd64 r5, 0x4\nja L23\nL7:\nldxw r9, [r6-8]\nmov64 r8, r7\njsle32 r9, r0, L15\nadd64 r7, -0x1\nstxw [r6+0], r9\nmov64 r8, 0x0\nadd64 r6, -0x4\njne r7, 0x0, L7\nL15:\nlsh64 r8, 0x2\nmov64 r6, r1\nadd64 r6, r8\nstxw [r6+0], r0\nadd64 r5, 0x4\nadd64 r4, 0x1\njlt r4, r3, L23\nja L31\nL23:\nmov64 r0, r4\nlsh64 r0, 0x2\nmov64 r6, r1\nadd64 r6, r0\nldxw r0, [r6+0]\nmov64 r6, r5\nmov64 r7, r4\nja L7\nL31:\nmov64 r0, 0x0\njlt r2, 0x4, L41\nmov64 r2, 0x0\nmov64 r0, 0x0\nL35:\nmul64 r0, 0x1f\nldxw r4, [r1+0]\nadd64 r0, r4\nadd64 r1, 0x4\nadd64 r2, 0x1\njlt r2, r3, L35\nL41:\nexit", new[] { 11, 18, 27, 36 })]
    [InlineData("mov64 r3, r2\nrsh64 r3, 0x2\njlt r2, 0x8, L31\nmov64 r4, 0x1\nmov64 r5, r1\nadd64 r5, 0x4\nja L23\nL7:\nldxw r9, [r6-4]\nmov64 r8, r7\njsle32 r9, r0, L15\nadd64 r7, -0x1\nstxw [r6+0], r9\nmov64 r8, 0x0\nadd64 r6, -0x2\njne r7, 0x0, L7\nL15:\nlsh64 r8, 0x2\nmov64 r6, r1\nadd64 r6, r8\nstxw [r6+0], r0\nadd64 r5, 0x4\nadd64 r4, 0x1\njlt r4, r3, L23\nja L31\nL23:\nmov64 r0, r4\nlsh64 r0, 0x2\nmov64 r6, r1\nadd64 r6, r0\nldxw r0, [r6+0]\nmov64 r6, r5\nmov64 r7, r4\nja L7\nL31:\nmov64 r0, 0x0\njlt r2, 0x4, L41\nmov64 r2, 0x0\nmov64 r0, 0x0\nL35:\nmul64 r0, 0x1f\nldxw r4, [r1+0]\nadd64 r0, r4\nadd64 r1, 0x4\nadd64 r2, 0x1\njlt r2, r3, L35\nL41:\nexit", new[] { 18, 27, 36 })]
    [InlineData("mov64 r3, r2\nrsh64 r3, 0x1\njlt r2, 0x8, L31\nmov64 r4, 0x1\nmov64 r5, r1\nadd64 r5, 0x4\nja L23\nL7:\nldxw r9, [r6-4]\nmov64 r8, r7\njsle32 r9, r0, L15\nadd64 r7, -0x1\nstxw [r6+0], r9\nmov64 r8, 0x0\nadd64 r6, -0x4\njne r7, 0x0, L7\nL15:\nlsh64 r8, 0x2\nmov64 r6, r1\nadd64 r6, r8\nstxw [r6+0], r0\nadd64 r5, 0x4\nadd64 r4, 0x1\njlt r4, r3, L23\nja L31\nL23:\nmov64 r0, r4\nlsh64 r0, 0x2\nmov64 r6, r1\nadd64 r6, r0\nldxw r0, [r6+0]\nmov64 r6, r5\nmov64 r7, r4\nja L7\nL31:\nmov64 r0, 0x0\njlt r2, 0x4, L41\nmov64 r2, 0x0\nmov64 r0, 0x0\nL35:\nmul64 r0, 0x1f\nldxw r4, [r1+0]\nadd64 r0, r4\nadd64 r1, 0x4\nadd64 r2, 0x1\njlt r2, r3, L35\nL41:\nexit", new int[0])]
    [InlineData("mov64 r3, r2\nrsh64 r3, 0x2\njlt r2, 0x4, L31\nmov64 r4, 0x1\nmov64 r5, r1\nadd64 r5, 0x4\nja L23\nL7:\nldxw r9, [r6-4]\nmov64 r8, r7\njsle32 r9, r0, L15\nadd64 r7, -0x1\nstxw [r6+0], r9\nmov64 r8, 0x0\nadd64 r6, -0x4\njne r7, 0x0, L7\nL15:\nlsh64 r8, 0x2\nmov64 r6, r1\nadd64 r6, r8\nstxw [r6+0], r0\nadd64 r5, 0x4\nadd64 r4, 0x1\njlt r4, r3, L23\nja L31\nL23:\nmov64 r0, r4\nlsh64 r0, 0x2\nmov64 r6, r1\nadd64 r6, r0\nldxw r0, [r6+0]\nmov64 r6, r5\nmov64 r7, r4\nja L7\nL31:\nmov64 r0, 0x0\njlt r2, 0x4, L41\nmov64 r2, 0x0\nmov64 r0, 0x0\nL35:\nmul64 r0, 0x1f\nldxw r4, [r1+0]\nadd64 r0, r4\nadd64 r1, 0x4\nadd64 r2, 0x1\njlt r2, r3, L35\nL41:\nexit", new[] { 7, 36 })]
    // An array walked up: n = len >> 2, i < n, the pointer start + 4 * i moved on with it (related at
    // the loop head from the two constants it starts from and moves by); 8 bytes read, or the pointer
    // moved 8 per element, or a first round before the comparison with 3 bytes measured: not proven.
    [InlineData("mov r3, r2\nrsh r3, 2\nmov r4, 0\nmov r5, r1\nja test\nhead:\nldxw r0, [r5+0]\nadd r5, 4\nadd r4, 1\ntest:\njlt r4, r3, head\nexit", new[] { 5 })]
    [InlineData("mov r3, r2\nrsh r3, 2\nmov r4, 0\nmov r5, r1\nja test\nhead:\nldxdw r0, [r5+0]\nadd r5, 4\nadd r4, 1\ntest:\njlt r4, r3, head\nexit", new int[0])]
    [InlineData("mov r3, r2\nrsh r3, 2\nmov r4, 0\nmov r5, r1\nja test\nhead:\nldxw r0, [r5+0]\nadd r5, 8\nadd r4, 1\ntest:\njlt r4, r3, head\nexit", new int[0])]
    [InlineData("mov r3, r2\nrsh r3, 2\njlt r2, 4, out\nmov r4, 0\nmov r5, r1\nhead:\nldxw r0, [r5+0]\nadd r5, 4\nadd r4, 1\njlt r4, r3, head\nout:\nexit", new[] { 5 })]
    [InlineData("mov r3, r2\nrsh r3, 2\njlt r2, 3, out\nmov r4, 0\nmov r5, r1\nhead:\nldxw r0, [r5+0]\nadd r5, 4\nadd r4, 1\njlt r4, r3, head\nout:\nexit", new int[0])]
    // Scaled room joins to the smaller of two paths': i < n on one, i <= n on the other, 4 * i + 4 bytes
    // not known on both.
    [InlineData("mov r3, r2\nrsh r3, 2\njlt r2, 1, out\nldxb r4, [r1]\nldxb r5, [r1]\njeq r5, 0, other\njge r4, r3, out\nja load\nother:\njgt r4, r3, out\nload:\nlsh r4, 2\nmov r6, r1\nadd r6, r4\nldxw r0, [r6+0]\nout:\nexit", new[] { 3, 4 })]
    [InlineData("mov r3, r2\nrsh r3, 2\njlt r2, 1, out\nldxb r4, [r1]\nldxb r5, [r1]\njeq r5, 0, other\njge r4, r3, out\nja load\nother:\njge r4, r3, out\nload:\nlsh r4, 2\nmov r6, r1\nadd r6, r4\nldxw r0, [r6+0]\nout:\nexit", new[] { 3, 4, 12 })]
    // i < n, then i + 1: 4 * (i + 1) <= L, so 2 bytes before start + 4 * (i + 1) are in, 2 bytes at it may not be.
    [InlineData("mov r3, r2\nrsh r3, 2\nldxb r4, [r1]\njge r4, r3, out\nadd r4, 1\nlsh r4, 2\nmov r5, r1\nadd r5, r4\nldxh r0, [r5-2]\nout:\nexit", new[] { 8 })]
    [InlineData("mov r3, r2\nrsh r3, 2\nldxb r4, [r1]\njge r4, r3, out\nadd r4, 1\nlsh r4, 2\nmov r5, r1\nadd r5, r4\nldxh r0, [r5+0]\nout:\nexit", new int[0])]
    // A constant below n = L >> 2 measures L: 2 < n means L >= 12.
    [InlineData("mov r4, 2\nmov r3, r2\nrsh r3, 2\njge r4, r3, +1\nldxw r0, [r1+8]\nexit", new[] { 4 })]
    [InlineData("mov r4, 2\nmov r3, r2\nrsh r3, 2\njge r4, r3, +1\nldxw r0, [r1+9]\nexit", new int[0])]
    // A pointer set to the start plus an offset walks with it: byte r4 of the input, then on while r4 < L.
    [InlineData("jlt r2, 1, out\nldxb r4, [r1]\nmov r5, r1\nadd r5, r4\nja test\nhead:\nldxb r0, [r5+0]\nadd r5, 1\nadd r4, 1\ntest:\njlt r4, r2, head\nout:\nexit", new[] { 1, 5 })]
    // The index overwritten: the pointer walks with the index's copy plus 1 instead (start + 4 * (i + 1)).
    [InlineData("mov r3, r2\nrsh r3, 2\nmov r4, 0\nmov r5, r1\nja test\nhead:\nldxw r0, [r5+0]\nadd r5, 4\nmov r7, r4\nadd r7, 1\nmov r4, 99\nmov r4, r7\ntest:\njlt r4, r3, head\nexit", new[] { 5 })]
    // A comparison decided by a range: r4 & 3 < 7 always jumps, r4 & 7 < 7 not always.
    [InlineData("jlt r2, 8, out\nldxb r4, [r1]\nand r4, 3\nmov r5, 4\njlt r4, 7, load\nmov r5, 100\nload:\nmov r3, r1\nadd r3, r5\nldxw r0, [r3+0]\nout:\nexit", new[] { 1, 8 })]
    [InlineData("jlt r2, 8, out\nldxb r4, [r1]\nand r4, 7\nmov r5, 4\njlt r4, 7, load\nmov r5, 100\nload:\nmov r3, r1\nadd r3, r5\nldxw r0, [r3+0]\nout:\nexit", new[] { 1 })]
    // A side a register's range rules out is not followed: r4 is 4, so the jump to where it becomes 100 is
    // never taken and the load at start + r4 is proven; when the jump is always taken, it is not.
    [InlineData("jlt r2, 8, out\nmov r4, 4\njne r4, 4, big\nja load\nbig:\nmov r4, 100\nload:\nmov r3, r1\nadd r3, r4\nldxw r0, [r3+0]\nout:\nexit", new[] { 7 })]
    [InlineData("jlt r2, 8, out\nmov r4, 4\njne r4, 5, big\nja load\nbig:\nmov r4, 100\nload:\nmov r3, r1\nadd r3, r4\nldxw r0, [r3+0]\nout:\nexit", new int[0])]
    // The same with i + 2 compared (one byte short of the load), or r3 moving on by 3: not proven.
    [InlineData("mov r0, 0\nmov r3, 0\njlt r2, 2, +13\nmov r4, 0\nmov r0, 0\nmov r3, 0\nmov r5, r1\nadd r5, r4\nldxh r5, [r5+0]\nbe16 r5\nadd r0, r5\nadd r3, 2\nmov r5, r4\nadd r5, 2\nmov r4, r3\njlt r5, r2, -10\njge r3, r2, +5\nadd r1, r3\nldxb r1, [r1+0]\nlsh r1, 8\nadd r1, r0\nmov r0, r1\nexit", new[] { 18 })]
    [InlineData("mov r0, 0\nmov r3, 0\njlt r2, 2, +13\nmov r4, 0\nmov r0, 0\nmov r3, 0\nmov r5, r1\nadd r5, r4\nldxh r5, [r5+0]\nbe16 r5\nadd r0, r5\nadd r3, 3\nmov r5, r4\nadd r5, 3\nmov r4, r3\njlt r5, r2, -10\njge r3, r2, +5\nadd r1, r3\nldxb r1, [r1+0]\nlsh r1, 8\nadd r1, r0\nmov r0, r1\nexit", new[] { 18 })]
    // Without the entry guard the first round reads two bytes of any input: not proven.
    [InlineData("mov r0, 0\nmov r3, 0\nja +0\nmov r4, 0\nmov r0, 0\nmov r3, 0\nmov r5, r1\nadd r5, r4\nldxh r5, [r5+0]\nbe16 r5\nadd r0, r5\nadd r3, 2\nmov r5, r4\nadd r5, 3\nmov r4, r3\njlt r5, r2, -10\nexit", new int[0])]
    // i < len, one byte at start + i, i counted up; r2 compared the other way round (len > i); the
    // load one byte wider than the room; r1 moved inside the loop.
    [InlineData("jeq r2, 0, +6\nmov r7, 0\nmov r3, r1\nadd r3, r7\nldxb r0, [r3+0]\nadd r7, 1\njlt r7, r2, -5\nexit", new[] { 4 })]
    [InlineData("jeq r2, 0, +6\nmov r7, 0\nmov r3, r1\nadd r3, r7\nldxb r0, [r3+0]\nadd r7, 1\njgt r2, r7, -5\nexit", new[] { 4 })]
    [InlineData("jeq r2, 0, +6\nmov r7, 0\nmov r3, r1\nadd r3, r7\nldxh r0, [r3+0]\nadd r7, 1\njlt r7, r2, -5\nexit", new int[0])]
    [InlineData("jeq r2, 0, +7\nmov r7, 0\nmov r3, r1\nadd r3, r7\nldxb r0, [r3+0]\nadd r1, 1\nadd r7, 1\njlt r7, r2, -6\nexit", new int[0])]
    // i + 8 <= len, eight bytes at start + i, i += 8, as clang writes the hash's loop (r4 = i + 8 computed
    // before the comparison, r9 = i + 16 compared, r7 = r4).
    [InlineData("mov r4, 0\njlt r2, 8, +11\nmov r7, 0\nmov r4, 0\nmov r3, r1\nadd r3, r7\nldxdw r3, [r3+0]\nadd r4, 8\nmov r9, r7\nadd r9, 16\nmov r7, r4\njgt r9, r2, +1\nja -9\nexit", new[] { 6 })]
    // len > i as the loop's test gives one byte of room, not two; len != 0 tells one byte.
    [InlineData("jlt r2, 2, +6\nmov r7, 0\nmov r3, r1\nadd r3, r7\nldxh r0, [r3+0]\nadd r7, 1\njgt r2, r7, -5\nexit", new int[0])]
    [InlineData("jeq r2, 0, +2\nldxb r0, [r1]\nexit\nexit", new[] { 1 })]
    [InlineData("jeq r2, 0, +2\nldxh r0, [r1]\nexit\nexit", new int[0])]
    // An index compared with a constant, not the length, runs past the 20 bytes measured: the room it
    // loses every round is dropped at the loop head, not kept.
    [InlineData("jlt r2, 20, +7\nmov r3, 0\nmov r4, r1\nadd r4, r3\nldxb r0, [r4+0]\nadd r3, 1\njlt r3, 100, -5\nexit\nexit", new int[0])]
    // A group's root overwritten: the others stay related to each other (r5 = r4 + 5, r4 = r3 + 5 and
    // r5 = r3), never to the new value.
    [InlineData("jlt r2, 8, +9\nldxdw r3, [r1]\nand r3, 0xffff\nmov r4, r3\nmov r5, r3\nadd r5, 5\nldxb r3, [r1+1]\njge r4, r2, +2\nadd r5, r1\nldxb r0, [r5+0]\nexit", new[] { 1, 6 })]
    [InlineData("jlt r2, 8, +9\nldxdw r3, [r1]\nand r3, 0xffff\nmov r4, r3\nadd r4, 5\nmov r5, r3\nldxb r3, [r1+1]\njge r4, r2, +2\nadd r5, r1\nldxw r0, [r5+2]\nexit", new[] { 1, 6, 9 })]
    [InlineData("jlt r2, 8, +9\nldxdw r3, [r1]\nand r3, 0xffff\nmov r4, r3\nadd r4, 5\nmov r5, r3\nldxb r3, [r1+1]\njge r3, r2, +2\nadd r5, r1\nldxb r0, [r5+0]\nexit", new[] { 1, 6 })]
    // Frames: an offset of at least 8 and at most L, the start plus it, loads back from there.
    [InlineData("mov r7, 8\njlt r2, 8, out\nhead:\nmov r3, r1\nadd r3, r7\nldxb r0, [r3-8]\nadd r7, 8\njgt r7, r2, out\nja head\nout:\nexit", new[] { 4 })]
    [InlineData("mov r7, 8\njlt r2, 8, out\nhead:\nmov r3, r1\nadd r3, r7\nldxb r0, [r3-9]\nadd r7, 8\njgt r7, r2, out\nja head\nout:\nexit", new int[0])]
    // A header length of 14 or 22 added to that offset (at most L + 22), either way round: 23 back is
    // inside, 22 back may be a byte past the end.
    [InlineData("mov r7, 64\njlt r2, 64, out\nhead:\nmov r9, 14\njeq r0, 1, +1\nmov r9, 22\nmov r4, r9\nadd r4, r7\nmov r3, r1\nadd r3, r4\nldxb r0, [r3-23]\nadd r7, 64\njgt r7, r2, out\nja head\nout:\nexit", new[] { 9 })]
    [InlineData("mov r7, 64\njlt r2, 64, out\nhead:\nmov r9, 14\njeq r0, 1, +1\nmov r9, 22\nmov r4, r9\nadd r4, r7\nmov r3, r1\nadd r3, r4\nldxb r0, [r3-22]\nadd r7, 64\njgt r7, r2, out\nja head\nout:\nexit", new int[0])]
    [InlineData("mov r7, 64\njlt r2, 64, out\nhead:\nmov r9, 14\njeq r0, 1, +1\nmov r9, 22\nmov r3, r1\nadd r3, r7\nadd r3, r9\nldxb r0, [r3-23]\nadd r7, 64\njgt r7, r2, out\nja head\nout:\nexit", new[] { 8 })]
    [InlineData("mov r7, 64\njlt r2, 64, out\nhead:\nmov r9, 14\njeq r0, 1, +1\nmov r9, 22\nmov r3, r1\nadd r3, r7\nadd r3, r9\nldxb r0, [r3-22]\nadd r7, 64\njgt r7, r2, out\nja head\nout:\nexit", new int[0])]
    // Bounds from comparisons with constants and shifts: r5 < 23 with 23 bytes is inside, r5 <= 23 not;
    // a byte shifted left by 2 is up to 1020.
    [InlineData("jlt r2, 23, +6\nldxb r5, [r1]\njge r5, 23, +4\nmov r3, r1\nadd r3, r5\nldxb r0, [r3+0]\nexit\nexit", new[] { 1, 5 })]
    [InlineData("jlt r2, 23, +6\nldxb r5, [r1]\njgt r5, 23, +4\nmov r3, r1\nadd r3, r5\nldxb r0, [r3+0]\nexit\nexit", new[] { 1 })]
    [InlineData("jlt r2, 1021, +5\nldxb r5, [r1]\nlsh r5, 2\nmov r3, r1\nadd r3, r5\nldxb r0, [r3]\nexit", new[] { 1, 5 })]
    [InlineData("jlt r2, 1020, +5\nldxb r5, [r1]\nlsh r5, 2\nmov r3, r1\nadd r3, r5\nldxb r0, [r3]\nexit", new[] { 1 })]
    // clang's range test: r4 + -57 > -66 (unsigned) holds for r4 from 0 to 56 only; not once r4 is overwritten.
    [InlineData("jlt r2, 60, +8\nldxb r4, [r1]\nmov r6, r4\nadd r6, -57\njgt r6, -66, +1\nexit\nmov r3, r1\nadd r3, r4\nldxb r0, [r3+3]\nexit", new[] { 1, 8 })]
    [InlineData("jlt r2, 60, +8\nldxb r4, [r1]\nmov r6, r4\nadd r6, -57\njgt r6, -66, +1\nexit\nmov r3, r1\nadd r3, r4\nldxb r0, [r3+4]\nexit", new[] { 1 })]
    [InlineData("jlt r2, 60, +9\nldxb r4, [r1]\nmov r6, r4\nadd r6, -57\nldxb r4, [r1+1]\njgt r6, -66, +1\nexit\nmov r3, r1\nadd r3, r4\nldxb r0, [r3+3]\nexit", new[] { 1, 4 })]
    // A bound on a sum outlives the register that held it: r6 = r9 + r3 tested at most 56, r6
    // overwritten, then r9 += r3 is at most 56 (clang's parser recomputes l3 + ihl so); not once r3 or
    // r9 has changed in between.
    [InlineData("jlt r2, 64, out\nldxb r3, [r1]\nand r3, 60\nmov r9, 14\nmov r6, r9\nadd r6, r3\nmov r4, r6\nadd r4, -57\njgt r4, -66, ok\nexit\nok:\nmov r6, 0\nadd r9, r3\nmov r5, r1\nadd r5, r9\nldxw r0, [r5+4]\nexit\nout:\nexit", new[] { 1, 14 })]
    [InlineData("jlt r2, 64, out\nldxb r3, [r1]\nand r3, 60\nmov r9, 14\nmov r6, r9\nadd r6, r3\nmov r4, r6\nadd r4, -57\njgt r4, -66, ok\nexit\nok:\nmov r6, 0\nadd r9, r3\nmov r5, r1\nadd r5, r9\nldxw r0, [r5+5]\nexit\nout:\nexit", new[] { 1 })]
    [InlineData("jlt r2, 64, out\nldxb r3, [r1]\nand r3, 60\nmov r9, 14\nmov r6, r9\nadd r6, r3\nmov r4, r6\nadd r4, -57\njgt r4, -66, ok\nexit\nok:\nldxb r3, [r1+1]\nadd r9, r3\nmov r5, r1\nadd r5, r9\nldxw r0, [r5+4]\nexit\nout:\nexit", new[] { 1, 10 })]
    [InlineData("jlt r2, 64, out\nldxb r3, [r1]\nand r3, 60\nmov r9, 14\nmov r6, r9\nadd r6, r3\nmov r4, r6\nadd r4, -57\njgt r4, -66, ok\nexit\nok:\nmov r9, 20\nadd r9, r3\nmov r5, r1\nadd r5, r9\nldxw r0, [r5+4]\nexit\nout:\nexit", new[] { 1 })]
    // The sum's register tested after an addend changed: the bound is not the addends' (r3 reloaded).
    [InlineData("jlt r2, 64, out\nldxb r3, [r1]\nand r3, 60\nmov r9, 14\nmov r6, r9\nadd r6, r3\nldxb r3, [r1+1]\nmov r4, r6\nadd r4, -57\njgt r4, -66, ok\nexit\nok:\nadd r9, r3\nmov r5, r1\nadd r5, r9\nldxw r0, [r5+4]\nexit\nout:\nexit", new[] { 1, 6 })]
    // Moving down by 1 a value of at least 1 is exact; by 2 it may wrap below the start.
    [InlineData("jlt r2, 10, +8\nldxb r4, [r1]\njeq r4, 0, +6\njgt r4, 10, +5\nadd r4, -1\nmov r3, r1\nadd r3, r4\nldxb r0, [r3+0]\nexit\nexit", new[] { 1, 7 })]
    [InlineData("jlt r2, 10, +8\nldxb r4, [r1]\njeq r4, 0, +6\njgt r4, 10, +5\nadd r4, -2\nmov r3, r1\nadd r3, r4\nldxb r0, [r3+0]\nexit\nexit", new[] { 1 })]
    // Local functions start knowing nothing.
    [InlineData("jlt r2, 14, +2\ncall sub\nexit\nexit\nsub:\nldxb r0, [r1]\nexit", new int[0])]
    public void ProvesExactlyTheAccessesEveryPathHasMeasured(string text, int[] expected)
    {
        Assert.Equal(expected, Proven(text));
    }

    [SkippableFact]
    public void ProvenLoadsHaveNoCheckInTheListing()
    {
        SkipWithoutX64();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 14, +3\nldxh r0, [r1+12]\nldxb r3, [r1+14]\nexit\nmov r0, 0\nexit"));
        vm.JitCompile();
        var listing = vm.JitDisassembly();
        Assert.DoesNotContain("jae", TestUtil.MachineCode(listing, 1)); // proven: the load alone
        Assert.Contains("movzx", TestUtil.MachineCode(listing, 1));
        Assert.Contains("jae", TestUtil.MachineCode(listing, 2));       // byte 14 is past the 14 measured
        Assert.Equal(0x0201UL, vm.ExecuteJit(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3 }));
        Assert.Equal(RbpfErrorCode.OutOfBounds,
            Assert.Throws<RbpfException>(() => vm.ExecuteJit(new byte[14])).Code);
        Assert.Equal(0UL, vm.ExecuteJit(new byte[13]));
    }

    /// <summary>
    /// An analysis takes the states of the thread's last disposed one (see <c>InputBounds.StatePool</c>):
    /// on states another program's analysis left behind, or one that gave up, it finds exactly what an
    /// analysis on new states finds, slot by slot; disposed facts tell nothing more.
    /// </summary>
    [Fact]
    public void AnAnalysisOnStatesAnotherLeftBehindFindsTheSame()
    {
        var sort = DecodedProgram.Decode(Assembler.Assemble(Sort)).Code;
        var checksum = DecodedProgram.Decode(Assembler.Assemble(Checksum)).Code;
        string Describe(InputBounds.Facts f) => string.Join(";", Enumerable.Range(0, sort.Length).Select(pc =>
            $"{f.HoldsLength(pc)}/{string.Join(",", Enumerable.Range(0, 10).Select(r => $"{f.Relation(pc, r)}{f.AtMostLength(pc, r)}"))}"))
            + $";steps {f.Steps};proven {string.Join(",", f.Proven ?? Array.Empty<bool>())}";

        var held = InputBounds.Analyze(checksum)!; // holds the thread's pool: the next analysis has new states
        var fresh = InputBounds.Analyze(sort)!;
        string expected = Describe(fresh);
        Assert.Contains("True", expected);
        held.Dispose(); // the checksum's states, free for the next analysis
        using (var again = InputBounds.Analyze(sort)!)
            Assert.Equal(expected, Describe(again));
        Assert.Null(InputBounds.Analyze(sort, 20)); // gives up half way: its states are free again too
        var third = InputBounds.Analyze(sort)!;
        Assert.Equal(expected, Describe(third));
        third.Dispose();
        Assert.All(Enumerable.Range(0, sort.Length), pc => Assert.False(third.HoldsLength(pc)));
        Assert.Equal(expected, Describe(fresh)); // never disposed: still its own
    }

    [Fact]
    public void TheAnalysisGivesUpProvingNothingPastItsStepLimit()
    {
        var code = DecodedProgram.Decode(Assembler.Assemble(Sort)).Code;
        Assert.NotNull(InputBounds.Analyze(code)?.Proven);
        Assert.Null(InputBounds.Analyze(code, 20));
        // The default limit is far above what the sort needs.
        int needed = Enumerable.Range(1, 5000).First(steps => InputBounds.Analyze(code, steps) != null);
        Assert.True(needed * 20 < 2000 * code.Length + 100_000, $"the sort needs {needed} steps");
        Assert.Equal(InputBounds.Analyze(code)!.Proven, InputBounds.Analyze(code, needed)!.Proven);
    }

    [Fact]
    public void ProvenAccessesHaveNoCheckInTheAArch64Listing()
    {
        // AArch64 listings are made on any host: a checked access goes through x16 after a compare
        // with the bound (b.hs to the slow path); a proven one loads from the register itself.
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(Sort));
        var listing = vm.JitListing(JitArchitecture.Arm64, new JitOptions());
        foreach (int pc in new[] { 7, 11, 18, 27, 36 })
        {
            Assert.DoesNotContain("b.hs", TestUtil.MachineCode(listing, pc));
            Assert.DoesNotContain("[x16]", TestUtil.MachineCode(listing, pc));
        }
        // The same program with a 4-byte entry guard: the outer loop's first load is checked again.
        var guarded = EbpfVm.CreateRaw(Assembler.Assemble(Sort.Replace("jlt r2, 0x8, L31", "jlt r2, 0x4, L31")));
        var code = TestUtil.MachineCode(guarded.JitListing(JitArchitecture.Arm64, new JitOptions()), 27);
        Assert.Contains("b.hs", code);
        Assert.Contains("[x16]", code);
    }

    [SkippableFact]
    public void AJumpOverAJaIsOneInvertedJumpAndBe16AfterLdxhHasNoExtraZeroExtension()
    {
        SkipWithoutX64();
        var vm = EbpfVm.CreateRaw(Assembler.Assemble("mov r0, 0\njlt r2, 2, +5\nldxh r0, [r1]\nbe16 r0\njeq r0, 0x800, +1\nja +1\nmov r0, 1\nexit"));
        vm.JitCompile();
        var listing = vm.JitDisassembly();
        var jumps = TestUtil.MachineCode(listing, 4, 5);
        Assert.Contains("jne", jumps);
        Assert.DoesNotContain("jmp", jumps);
        Assert.DoesNotContain("movzx", TestUtil.MachineCode(listing, 3));
        Assert.Equal(1UL, vm.ExecuteJit(new byte[] { 8, 0 }));
        Assert.Equal(8UL, vm.ExecuteJit(new byte[] { 0, 8 })); // not 0x800: r0 keeps the swapped value
        Assert.Equal(0UL, vm.ExecuteJit(new byte[] { 8 }));
    }

    /// <summary>
    /// Random raw programs of guards, loads and stores through r1 (and through copies of it),
    /// writes to r1 and r2, loops and calls: the JIT must give the interpreter's result, or fail
    /// with its error, on inputs of every length near the guards. An access wrongly proven would
    /// read or write outside the input without the error the interpreter reports.
    /// </summary>
    [SkippableFact]
    public void RandomGuardedProgramsRunAsInterpreted()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(17);
        var jumps = new[] { "jlt", "jle", "jgt", "jge", "jeq", "jne", "jlt32", "jge32", "jgt32", "jle32" };
        int programs = 0;
        for (int n = 0; n < 2000; n++)
        {
            var lines = new List<string> { "mov r0, 0", "mov r3, 0" };
            int guard = 8;
            int length = random.Next(3, 14);
            for (int k = 0; k < length; k++)
            {
                int left = length - k; // jumps stay inside the body, which ends with exit
                switch (random.Next(12))
                {
                    case 0: case 1:
                        guard = random.Next(0, 24);
                        lines.Add($"{jumps[random.Next(jumps.Length)]} r2, {guard}, +{random.Next(0, Math.Min(left, 3))}");
                        break;
                    case 2:
                        // Only the taken side goes on: what the jump tells there is not joined with the other side.
                        guard = random.Next(0, 24);
                        lines.Add($"{jumps[random.Next(jumps.Length)]} r2, {guard}, +1");
                        lines.Add("exit");
                        break;
                    case 3: case 4:
                    {
                        // Mostly right at the last guard's edge, where an off-by-one would show.
                        int size = 1 << random.Next(4);
                        int off = random.Next(3) > 0 ? guard - size + random.Next(-1, 3) : random.Next(-2, 22);
                        lines.Add($"ldx{size switch { 1 => "b", 2 => "h", 4 => "w", _ => "dw" }} r4, [r1{(off < 0 ? "-" : "+")}{Math.Abs(off)}]");
                        lines.Add("add r0, r4");
                        break;
                    }
                    case 5:
                        lines.Add($"st{"bhw"[random.Next(3)]} [r1+{random.Next(0, 22)}], 7");
                        break;
                    case 6:
                        lines.Add(random.Next(2) == 0 ? "add r1, 1" : "sub r2, 1");
                        break;
                    case 7:
                        lines.Add("mov r8, r1"); // a copy of the pointer (only used to address: results must not depend on where inputs are)
                        lines.Add($"ldxb r4, [r8+{random.Next(0, 20)}]");
                        break;
                    case 10: case 11:
                    {
                        // An indirect load as classic BPF translations guard it, with variations that break the proof.
                        int size = 1 << random.Next(3);
                        string wide = random.Next(4) == 0 ? "" : "32";
                        lines.Add($"ldx{(random.Next(4) == 0 ? "dw" : "b")} r5, [r1+{random.Next(0, 3)}]");
                        lines.Add($"mov{wide} r6, {random.Next(0, 20)}");
                        lines.Add($"mov{(random.Next(4) == 0 ? "" : "32")} r7, r5");
                        lines.Add("add r6, r7");
                        lines.Add("mov r7, r6");
                        lines.Add($"add r7, {size + random.Next(-1, 2)}");
                        int step = random.Next(3) == 0 ? random.Next(1, 3) : 0; // moving the offset on eats its room
                        lines.Add($"{new[] { "jgt", "jgt", "jge", "jlt", "jle", "jgt32" }[random.Next(6)]} r7, r2, +{(step > 0 ? 4 : 3)}");
                        if (step > 0) lines.Add($"add r6, {step}");
                        lines.Add("mov r9, r6"); // r9 only ever addresses: no number depends on where the input is
                        lines.Add("add r9, r1");
                        lines.Add($"ldx{size switch { 1 => "b", 2 => "h", _ => "w" }} r7, [r9+{random.Next(-step, 2)}]");
                        lines.Add("add r0, r7");
                        break;
                    }
                    case 8:
                        lines.Add("add r3, 1");
                        lines.Add($"jlt r3, 3, -{random.Next(1, Math.Min(lines.Count - 2, 6))}");
                        break;
                    default:
                        lines.Add($"ldxdw r4, [r1+{random.Next(0, 16)}]");
                        lines.Add("xor r0, r4");
                        break;
                }
            }
            lines.Add("exit");
            byte[] program;
            try { program = Assembler.Assemble(string.Join("\n", lines)); }
            catch (RbpfException) { continue; }
            EbpfVm vm;
            try
            {
                vm = EbpfVm.CreateRaw(program);
                vm.InstructionLimit = 2000; // a guard can skip a loop's counter: both engines stop alike
                vm.JitCompile();
            }
            catch (RbpfException) { continue; } // the verifier refused it (a jump to itself and the like)
            programs++;
            for (int len = 0; len <= 26; len++)
            {
                var a = new byte[len];
                random.NextBytes(a);
                var (interpreted, compiled) = AssertSameRun(vm, a, string.Join("; ", lines));
                Assert.Equal(interpreted, compiled);
            }
        }
        Assert.True(programs > 1000, $"only {programs} programs were accepted");
    }

    /// <summary>
    /// Random loops over the input in the shapes clang writes (an index counted up by a step, a copy
    /// of it plus a constant compared with the length, the load at start + index), with variations
    /// that break the proof: steps larger than the room, loads wider or further on, comparisons the
    /// wrong way round or against a value one too large, no entry guard, the start or the index
    /// changed on the way. The JIT must give the interpreter's result or error on every length.
    /// </summary>
    [SkippableFact]
    public void RandomLoopsOverTheInputRunAsInterpreted()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(29);
        int programs = 0, withProofs = 0;
        for (int n = 0; n < 1500; n++)
        {
            var regs = new[] { 3, 4, 5, 6, 7, 8, 9 }.OrderBy(_ => random.Next()).ToArray();
            int index = regs[0], copy = regs[1], ptr = regs[2], cmp = regs[3], value = regs[4];
            int size = 1 << random.Next(4);
            int step = random.Next(1, 5);
            int off = random.Next(4) == 0 ? random.Next(-1, 3) : 0;
            var lines = new List<string> { "mov r0, 0" };
            switch (random.Next(6))
            {
                case 0: case 1: case 2: lines.Add($"jlt r2, {(random.Next(2) == 0 ? size + random.Next(-1, 2) : random.Next(0, 10))}, out"); break;
                case 3: lines.Add("jeq r2, 0, out"); break;
                case 4: lines.Add($"jgt r2, {random.Next(0, 10)}, +1\nja out"); break;
                default: break; // no guard
            }
            lines.Add($"mov r{index}, {(random.Next(3) == 0 ? random.Next(0, 3) : 0)}");
            bool twin = random.Next(2) == 0; // clang's second register holding the index (r3 and r4 in the checksum)
            if (twin) lines.Add($"mov r{copy}, r{index}");
            lines.Add("head:");
            if (random.Next(2) == 0) lines.Add($"mov r{ptr}, r1\nadd r{ptr}, r{index}");
            else lines.Add($"mov r{ptr}, r{index}\nadd r{ptr}, r1");
            lines.Add($"ldx{size switch { 1 => "b", 2 => "h", 4 => "w", _ => "dw" }} r{value}, [r{ptr}{(off < 0 ? "-" : "+")}{Math.Abs(off)}]");
            lines.Add($"add r0, r{value}");
            switch (random.Next(10))
            {
                case 0: lines.Add("add r1, 1"); break;
                case 1: lines.Add($"mov r{index}, r{value}"); break;
                case 2: lines.Add($"sub r{index}, 1"); break;
                default: break;
            }
            // The next index, and the value compared: index + c (c from 0 to size + 1) or the next index itself.
            int c = random.Next(3) > 0 ? size - random.Next(2) : random.Next(0, size + 2); // size - 1: exactly enough for jlt, size for jle
            if (twin)
            {
                lines.Add($"add r{copy}, {step}");
                lines.Add($"mov r{cmp}, r{index}\nadd r{cmp}, {step + c}");
                lines.Add($"mov r{index}, r{copy}");
            }
            else
            {
                lines.Add($"add r{index}, {step}");
                lines.Add($"mov r{cmp}, r{index}\nadd r{cmp}, {c}");
            }
            lines.Add(random.Next(6) switch
            {
                0 => $"jlt r{cmp}, r2, head",
                1 => $"jle r{cmp}, r2, head",
                2 => $"jgt r2, r{cmp}, head",
                3 => $"jge r2, r{cmp}, head",
                4 => $"jgt r{cmp}, r2, out\nja head",
                _ => $"jge r{cmp}, r2, out\nja head",
            });
            lines.Add("out:\nexit");
            var program = Assembler.Assemble(string.Join("\n", lines));
            EbpfVm vm;
            try
            {
                vm = EbpfVm.CreateRaw(program);
                vm.InstructionLimit = 5000;
                vm.JitCompile();
            }
            catch (RbpfException) { continue; }
            programs++;
            if (InputBounds.ProvenAccesses(DecodedProgram.Decode(program).Code) != null) withProofs++;
            for (int len = 0; len <= 24; len++)
            {
                var a = new byte[len];
                random.NextBytes(a);
                AssertSameRun(vm, a, string.Join("; ", lines));
            }
        }
        Assert.True(programs > 1400, $"only {programs} programs were accepted");
        Assert.True(withProofs > 150, $"only {withProofs} programs had a proven access");
    }

    /// <summary>
    /// Random parsers of fixed-size frames as clang compiles them: an offset moved on by the frame
    /// size and compared with the length before going round, loads at negative offsets from
    /// start + offset, a header length from a masked byte joined over paths, sums of offsets, and
    /// clang's wrapped range test (<c>t = l + -a; if t &gt; -b</c>) before loads at start + offset + l
    /// minus a constant; every constant varies around the edge of what can be proven. The JIT must
    /// give the interpreter's result or error on every length.
    /// </summary>
    [SkippableFact]
    public void RandomFrameParsersRunAsInterpreted()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(37);
        int programs = 0, withProofs = 0, throughRange = 0;
        for (int n = 0; n < 700; n++)
        {
            int frame = random.Next(2, 9) * 4;
            int R(int lo, int hi) => random.Next(lo, hi + 1);
            string Size() => new[] { "b", "h", "w", "dw" }[random.Next(4)];
            var lines = new List<string>
            {
                "mov r8, r1", "mov r0, 0", $"mov r7, {frame}", $"jlt r2, {frame + R(-1, 1)}, out",
                "head:", "mov r3, r8", "add r3, r7",
                $"ldx{Size()} r4, [r3-{R(1, frame + 1)}]", "add r0, r4",
                // a header length of 14 or 22 (joined), a masked byte of 20 to 60
                "mov r9, 14", $"jeq r4, {R(0, 3)}, +1", $"mov r9, {R(14, 26)}",
                $"ldxb r5, [r3-{R(1, frame)}]", "lsh32 r5, 2", $"and32 r5, {new[] { 60, 60, 124 }[random.Next(3)]}",
                $"jlt32 r5, {R(0, 24)}, next",
                // l = l3 + ihl, tested as clang does: l - a > -b (unsigned) when l < a, with l >= a - b + 1
                "mov r1, r9", "add r1, r5", "mov r6, r1", $"add r6, -{R(30, 70)}", $"jgt r6, -{R(60, 100)}, +1", "ja next",
                // The sum kept in r1, or (as clang's parser) r1 overwritten and the sum made again in r9,
                // sometimes after an addend changed (then the bound must not carry over).
                random.Next(3) switch
                {
                    0 => "mov r4, r7\nadd r4, r1",
                    1 => "mov r1, 0\nadd r9, r5\nmov r4, r7\nadd r4, r9",
                    _ => $"mov r1, 0\n{(random.Next(2) == 0 ? "add r5, " + R(1, 8) : "ldxb r9, [r3-" + R(1, frame) + "]")}\nadd r9, r5\nmov r4, r7\nadd r4, r9",
                },
                "mov r3, r8", "add r3, r4",
                $"ldx{Size()} r4, [r3-{R(20, frame + 70)}]", "add r0, r4",
                "next:", $"add r7, {frame}", random.Next(4) == 0 ? "jge r7, r2, out" : "jgt r7, r2, out", "ja head",
                "out:", "exit",
            };
            string text = string.Join("\n", lines);
            var program = Assembler.Assemble(text);
            var vm = EbpfVm.CreateRaw(program);
            vm.InstructionLimit = 100000;
            vm.JitCompile();
            programs++;
            if (InputBounds.ProvenAccesses(DecodedProgram.Decode(program).Code) is { } proven)
            {
                if (proven.Count(p => p) >= 2) withProofs++;
                if (proven.Count(p => p) >= 3) throughRange++; // the load after the range test too
            }
            for (int len = 0; len <= 3 * frame + 8; len++)
            {
                var input = new byte[len];
                for (int k = 0; k < len; k++) input[k] = (byte)(random.Next(3) == 0 ? random.Next(4) : random.Next(256));
                AssertSameRun(vm, input, text);
            }
        }
        Assert.True(withProofs > 300 && throughRange > 15, $"{withProofs} of {programs} programs had two proven accesses, {throughRange} three");
    }

    /// <summary>Random loops over arrays (<see cref="ArrayLoops"/>): the JIT must give the interpreter's
    /// result or error on every length, and enough of them must have accesses proven.</summary>
    [SkippableFact]
    public void RandomArrayLoopsRunAsInterpreted()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(41);
        int programs = 0, withProofs = 0;
        for (int t = 0; t < 1200; t++)
        {
            string text = ArrayLoops.Generate(random);
            var program = Assembler.Assemble(text);
            var vm = EbpfVm.CreateRaw(program);
            vm.InstructionLimit = 5000;
            vm.JitCompile();
            programs++;
            if (InputBounds.ProvenAccesses(DecodedProgram.Decode(program).Code) != null) withProofs++;
            for (int len = 0; len <= 40; len++)
            {
                var a = new byte[len];
                random.NextBytes(a);
                AssertSameRun(vm, a, text);
            }
        }
        Assert.True(withProofs > 300, $"only {withProofs} of {programs} programs had a proven access");
    }

    /// <summary>
    /// Variations of clang's insertion sort (nested loops, a pointer walked down with its index, one
    /// found at the outer loop's head): element counts, guards, first index, pointer steps, shifts,
    /// load and store offsets and sizes, the inner loop's end test and the outer comparison changed
    /// one to three at a time, around what can be proven. The JIT must give the interpreter's result
    /// or error on every length (random 32-bit integers to sort).
    /// </summary>
    [SkippableFact]
    public void RandomSortVariantsRunAsInterpreted()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(53);
        var lines = Sort.Split('\n');
        // Line index and the variants it may take.
        var points = new (int Line, Func<string> Variant)[]
        {
            (1, () => $"rsh64 r3, {random.Next(0, 4)}"),
            (2, () => $"jlt r2, {random.Next(0, 13)}, L31"),
            (3, () => $"mov64 r4, {random.Next(0, 3)}"),
            (5, () => $"add64 r5, {random.Next(0, 9)}"),
            (8, () => $"ldx{"bhwd"[random.Next(4)] switch { 'd' => "dw", var c => c.ToString() }} r9, [r6{random.Next(-9, 2):+0;-0}]"),
            (12, () => $"stx{"bhw"[random.Next(3)]} [r6{random.Next(-5, 5):+0;-0}], r9"),
            (14, () => $"add64 r6, {random.Next(-8, 0)}"),
            (15, () => $"jne r7, {random.Next(0, 2)}, L7"),
            (17, () => $"lsh64 r8, {random.Next(0, 4)}"),
            (21, () => $"add64 r5, {random.Next(1, 9)}"),
            (23, () => random.Next(2) == 0 ? "jle r4, r3, L23" : "jgt r3, r4, L23"),
            (27, () => $"lsh64 r0, {random.Next(0, 4)}"),
            (30, () => $"ldx{"bhw"[random.Next(3)]} r0, [r6{random.Next(-4, 4):+0;-0}]"),
            (43, () => $"add64 r1, {random.Next(1, 9)}"),
        };
        int withProofs = 0;
        for (int t = 0; t < 400; t++)
        {
            var variant = (string[])lines.Clone();
            for (int c = random.Next(1, 4); c > 0; c--)
            {
                var (line, make) = points[random.Next(points.Length)];
                variant[line] = make();
            }
            string text = string.Join("\n", variant);
            var program = Assembler.Assemble(text);
            var vm = EbpfVm.CreateRaw(program);
            vm.InstructionLimit = 20000;
            vm.JitCompile();
            if (InputBounds.ProvenAccesses(DecodedProgram.Decode(program).Code) is { } proven && proven.Count(p => p) >= 3) withProofs++;
            for (int len = 0; len <= 40; len += 1 + random.Next(3))
            {
                var a = new byte[len];
                random.NextBytes(a);
                AssertSameRun(vm, a, text);
            }
        }
        Assert.True(withProofs > 180, $"only {withProofs} of 400 variants had three proven accesses");
    }

    /// <summary>
    /// A step's state is settled again only for the registers it wrote (<c>InputBounds.State.Written</c>, noted by
    /// every write through <c>State.W</c>). With <c>InputBounds.CheckWritten</c> on, each settling compares the
    /// whole state with the one the step began with and throws if a register changed unnoted: over the
    /// clang kernels, the sort variants' base and random programs of copies, sums, shifts, masks, loads, calls and
    /// comparisons with r2 and each other (groups of related registers made and broken, loops), it must not.
    /// </summary>
    [Fact]
    public void EveryRegisterAStepChangesIsNotedAsWritten()
    {
        var programs = new List<DecodedInsn[]> { DecodedProgram.Decode(Assembler.Assemble(Sort)).Code, DecodedProgram.Decode(Assembler.Assemble(Checksum)).Code };
        var elf = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "benchmarks", "clang", "kernels.o"));
        foreach (var kernel in new[] { "checksum", "hash", "sort", "parse", "tokens" })
            programs.Add(DecodedProgram.Decode(EbpfVm.CreateFromElf(VmKind.Raw, elf, kernel).Program!.Value.Span).Code);
        var random = new Random(61);
        var jumps = new[] { "jlt", "jle", "jgt", "jge", "jeq", "jne", "jlt32", "jgt32", "jsgt", "jslt" };
        for (int n = 0; n < 1500; n++)
        {
            int length = random.Next(6, 30);
            var lines = new List<string>();
            string R() => $"r{random.Next(0, 10)}";
            for (int k = 0; k < length; k++)
            {
                int back = -Math.Min(k, 6), ahead = length - k - 1; // jumps stay inside the program
                lines.Add(random.Next(16) switch
                {
                    0 => $"mov {R()}, {R()}",
                    1 => $"mov {R()}, {random.Next(-2, 40)}",
                    2 => $"add {R()}, {random.Next(-9, 9)}",
                    3 => $"add {R()}, {R()}",
                    4 => $"lsh {R()}, {random.Next(0, 4)}",
                    5 => $"rsh {R()}, {random.Next(0, 4)}",
                    6 => $"and {R()}, {random.Next(0, 64)}",
                    7 => $"ldx{"bhw"[random.Next(3)]} {R()}, [{R()}{random.Next(-4, 8):+0;-0}]",
                    8 => $"{jumps[random.Next(jumps.Length)]} r2, {random.Next(0, 30)}, {random.Next(back, ahead + 1):+0;-0}",
                    9 => $"{jumps[random.Next(4)]} {R()}, r2, {random.Next(back, ahead + 1):+0;-0}",
                    10 => $"{jumps[random.Next(jumps.Length)]} {R()}, {R()}, {random.Next(back, ahead + 1):+0;-0}",
                    11 => $"{jumps[random.Next(jumps.Length)]} {R()}, {random.Next(-70, 70)}, {random.Next(back, ahead + 1):+0;-0}",
                    12 => $"stxw [{R()}{random.Next(-4, 8):+0;-0}], {R()}",
                    13 => "call 1",
                    14 => $"mov32 {R()}, {R()}",
                    _ => $"xor {R()}, {R()}",
                });
            }
            lines.Add("exit");
            programs.Add(DecodedProgram.Decode(Assembler.Assemble(string.Join("\n", lines))).Code);
        }
        int analysed = 0;
        InputBounds.CheckWritten = true;
        try
        {
            foreach (var code in programs)
            {
                using var facts = InputBounds.Analyze(code);
                if (facts != null) analysed++;
            }
        }
        finally
        {
            InputBounds.CheckWritten = false;
        }
        Assert.True(analysed > 1000, $"only {analysed} of {programs.Count} programs were analysed to the end");
    }

    [SkippableFact]
    public void ADropTestOfTheDataIsAFlagNotABranch()
    {
        SkipWithoutX64();
        string text = "jlt r2, 2, drop\nldxb r0, [r1]\njne r0, 6, drop\nldxb r0, [r1+1]\njeq r0, 80, accept\nja drop\naccept:\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit";
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        vm.JitCompile();
        var listing = vm.JitDisassembly();
        var machine = TestUtil.MachineCode(listing, 2);
        Assert.Contains("cmov", machine);
        Assert.DoesNotContain("jne", machine);
        foreach (var (input, expected) in new[] { (new byte[] { 6, 80 }, 1UL), (new byte[] { 6, 81 }, 0UL), (new byte[] { 17, 80 }, 0UL), (new byte[] { 6 }, 0UL) })
        {
            Assert.Equal(expected, vm.Execute(input));
            Assert.Equal(expected, vm.ExecuteJit(input));
        }
        // With a store into the input, going on past a drop would change it: branches stay.
        vm = EbpfVm.CreateRaw(Assembler.Assemble("jlt r2, 2, drop\nldxb r0, [r1]\njne r0, 6, drop\nstb [r1+1], 9\nldxb r0, [r1+1]\njeq r0, 80, accept\nja drop\naccept:\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit"));
        vm.JitCompile();
        Assert.DoesNotContain("cmov", TestUtil.MachineCode(vm.JitDisassembly(), 2));
    }

    /// <summary>A classic translation's "if (c) goto next; goto drop; next:" as a flag: the ja to the
    /// drop is left out and the run falls through, no jump at all; a ja something else lands on stays.</summary>
    [SkippableFact]
    public void AFlaggedTestFallsThroughWhereItsJaToTheDropWas()
    {
        SkipWithoutX64();
        string text = "jlt r2, 2, drop\nldxb r0, [r1]\njeq r0, 6, next\nja drop\nnext:\nldxb r0, [r1+1]\njeq r0, 80, accept\nja drop\naccept:\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit";
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        vm.JitCompile();
        var machine = TestUtil.MachineCode(vm.JitDisassembly(), 2, 3);
        Assert.Contains("cmov", machine);
        Assert.DoesNotContain("jmp", machine);
        foreach (var (input, expected) in new[] { (new byte[] { 6, 80 }, 1UL), (new byte[] { 6, 81 }, 0UL), (new byte[] { 17, 80 }, 0UL), (new byte[] { 6 }, 0UL) })
        {
            Assert.Equal(expected, vm.Execute(input));
            Assert.Equal(expected, vm.ExecuteJit(input));
        }
        // The same with a jump landing on the ja (from a branch whose both sides go on): the ja keeps its code.
        text = "jlt r2, 2, drop\nldxb r0, [r1]\njgt r0, 200, big\nja test\nbig:\nmov r3, 5\nja skip\ntest:\njeq r0, 6, next\nskip:\nja drop\nnext:\nldxb r0, [r1+1]\njeq r0, 80, accept\nja drop\naccept:\nmov r0, 1\nexit\ndrop:\nmov r0, 0\nexit";
        vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        vm.JitCompile();
        Assert.Contains("cmov", TestUtil.MachineCode(vm.JitDisassembly(), 6)); // the test is a flag, its ja stays
        foreach (var (input, expected) in new[] { (new byte[] { 6, 80 }, 1UL), (new byte[] { 201, 80 }, 0UL), (new byte[] { 17, 80 }, 0UL), (new byte[] { 6, 1 }, 0UL) })
        {
            Assert.Equal(expected, vm.Execute(input));
            Assert.Equal(expected, vm.ExecuteJit(input));
        }
    }

    [SkippableFact]
    public void ADropTestThatBoundsAnOffsetStaysABranch()
    {
        // The load at r1 + off is proven only because off <= 56 past the test; going on past a drop
        // with a flag would load at r1 + 0x7fffffff (it crashed the host before the fix).
        string text = "jlt r2, 64, drop\nldxw r3, [r1+0]\njgt r3, 56, drop\nadd r3, r1\nldxb r0, [r3+0]\nexit\ndrop:\nmov r0, 0\nexit";
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        vm.JitCompile();
        if (!ExecutableMemory.IsArm64) Assert.DoesNotContain("cmov", TestUtil.MachineCode(vm.JitDisassembly(), 2, 4));
        foreach (uint off in new[] { 0u, 3u, 56u, 57u, 1000u, 0x7fffffffu, 0xffffffffu })
        {
            var input = new byte[64];
            BitConverter.TryWriteBytes(input, off);
            input[56] = 0x5a;
            ulong expected = off <= 56 ? input[off] : 0UL;
            Assert.Equal(expected, vm.Execute(input));
            Assert.Equal(expected, vm.ExecuteJit(input));
        }
    }

    /// <summary>
    /// Random filters in the shape of classic BPF translations (guards, loads, tests that go on,
    /// accept with a constant or a loaded value, or drop), where the JIT turns drop tests into a
    /// flag: every verdict must be the interpreter's.
    /// </summary>
    [SkippableFact]
    public void RandomFiltersWithDropsAsAFlagRunAsInterpreted()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT is not supported here");
        var random = new Random(23);
        var tests = new[] { "jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jslt", "jeq32", "jne32", "jgt32", "jset32" };
        int flagged = 0;
        for (int n = 0; n < 600; n++)
        {
            int blocks = random.Next(2, 8);
            var lines = new List<string> { "mov r0, 0", "mov r5, 0" };
            for (int b = 0; b < blocks; b++)
            {
                lines.Add($"b{b}:");
                int off = random.Next(0, 12);
                int size = 1 << random.Next(3);
                lines.Add($"jlt r2, {off + size}, drop");
                lines.Add($"ldx{size switch { 1 => "b", 2 => "h", _ => "w" }} r0, [r1+{off}]");
                if (size > 1 && random.Next(2) == 0) lines.Add($"be{8 * size} r0"); // a network-order field (the JIT may test it unswapped)
                if (random.Next(5) == 0)
                {
                    // An offset from the data, bounded by a drop test, then loaded through: the test guards the load.
                    int bound = random.Next(0, 8);
                    lines.Add($"jlt r2, {bound + 13}, drop\nldxw r3, [r1+8]\njgt r3, {bound}, drop\nadd r3, r1\nldxb r0, [r3+12]");
                }
                if (random.Next(3) == 0) lines.Add($"and r0, {random.Next(1, 256)}");
                string Target() => random.Next(4) switch
                {
                    0 => "drop",
                    1 => $"accept{random.Next(2)}",
                    _ => b + 1 < blocks ? $"b{random.Next(b + 1, blocks)}" : "drop",
                };
                // Sometimes a chain of tests with one target (the JIT's TryEmitAnyOf).
                string target = Target();
                int chain = random.Next(3) == 0 ? random.Next(2, 5) : 1;
                for (int c = 0; c < chain; c++)
                    lines.Add($"{tests[random.Next(tests.Length)]} r0, {random.Next(0, 8) * (random.Next(2) == 0 ? 1 : 37)}, {target}");
                if (random.Next(2) == 0) lines.Add($"ja {Target()}");
            }
            lines.Add("ja drop");
            lines.Add("accept0:\nmov r0, 0x40000\nexit");
            lines.Add("accept1:\nexit"); // returns A, the last value loaded
            lines.Add("drop:\nmov r0, 0\nexit");
            var vm = EbpfVm.CreateRaw(Assembler.Assemble(string.Join("\n", lines)));
            vm.JitCompile();
            if (ExecutableMemory.IsArm64 == false && vm.JitDisassembly().Contains("cmov", StringComparison.Ordinal)) flagged++;
            for (int len = 0; len <= 16; len++)
                for (int k = 0; k < 4; k++)
                {
                    var input = new byte[len];
                    for (int j = 0; j < len; j++) input[j] = (byte)(random.Next(3) == 0 ? random.Next(256) : random.Next(8));
                    ulong ri = vm.Execute(input);
                    ulong rj = vm.ExecuteJit(input);
                    Assert.True(ri == rj, $"{string.Join("; ", lines)} on {Convert.ToHexString(input)}: interpreter {ri}, JIT {rj}");
                }
        }
        if (!ExecutableMemory.IsArm64) Assert.True(flagged > 300, $"only {flagged} programs used cmov");
    }
}
