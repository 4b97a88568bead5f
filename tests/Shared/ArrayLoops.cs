namespace Rbpf.Tests;

/// <summary>
/// Random loops over arrays of 1-, 2-, 4- or 8-byte elements as clang writes them (n = len &gt;&gt; s, an
/// index counted up from a small constant, a pointer from the start moved on by a multiple of the
/// step, the index compared with n), varied around what <c>InputBounds</c> can prove: a pointer
/// walking faster than its index, elements wider than n counts, a first round before any comparison.
/// Shared by the xunit suite and the AArch64 driver, which run them in both engines on every length.
/// </summary>
internal static class ArrayLoops
{
    /// <summary>One program as assembly text.</summary>
    public static string Generate(Random random)
    {
        var regs = new[] { 3, 4, 5, 6, 7, 8, 9 }.OrderBy(_ => random.Next()).ToArray();
        int n = regs[0], i = regs[1], p = regs[2], v = regs[3];
        int shift = random.Next(4);                                   // n counts 2^shift-byte elements
        int ptrShift = random.Next(5) == 0 ? random.Next(4) : shift;  // how far the pointer moves per index
        int size = random.Next(4) == 0 ? 1 << random.Next(4) : 1 << shift;
        int step = random.Next(4) == 0 ? 2 : 1;
        int first = random.Next(3);
        int off = random.Next(5) == 0 ? random.Next(-8, 9) : 0;
        int skew = random.Next(6) == 0 ? random.Next(-4, 5) : 0;      // the pointer not exactly start + index * size
        var lines = new List<string> { "mov r0, 0", $"mov r{n}, r2", $"rsh r{n}, {shift}" };
        if (random.Next(5) > 0) lines.Add($"jlt r2, {random.Next(0, 3 * (1 << shift) + 2)}, out");
        lines.Add($"mov r{i}, {first}");
        lines.Add($"mov r{p}, r1");
        lines.Add($"add r{p}, {(first << ptrShift) + skew}");
        if (random.Next(2) == 0) lines.Add("ja test"); // compare before the first round
        lines.Add("head:");
        lines.Add($"ldx{size switch { 1 => "b", 2 => "h", 4 => "w", _ => "dw" }} r{v}, [r{p}{(off < 0 ? "-" : "+")}{Math.Abs(off)}]");
        lines.Add($"add r0, r{v}");
        lines.Add($"add r{p}, {step << ptrShift}");
        lines.Add($"add r{i}, {step}");
        lines.Add("test:");
        lines.Add(random.Next(5) switch
        {
            0 => $"jle r{i}, r{n}, head",
            1 => $"jgt r{n}, r{i}, head",
            2 => $"jge r{i}, r{n}, out\nja head",
            _ => $"jlt r{i}, r{n}, head",
        });
        lines.Add("out:\nexit");
        return string.Join("\n", lines);
    }
}
