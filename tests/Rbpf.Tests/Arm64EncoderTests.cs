using System.Diagnostics;
using System.Text;
using Rbpf.Jit;
using Rbpf.Jit.Arm64;

namespace Rbpf.Tests;

/// <summary>
/// The AArch64 backend's encodings, checked on any host against an independent encoder and decoder:
/// programs are compiled for AArch64 with a listing, GNU as (aarch64-linux-gnu-as) assembles the
/// listing, and its bytes must be ours word for word; objdump must decode every word as a real
/// instruction. (Running the code is the job of the AArch64 driver under QEMU: tests/Rbpf.Arm64Driver.)
/// </summary>
public class Arm64EncoderTests
{
    private static readonly string? As = Tool("aarch64-linux-gnu-as");
    private static readonly string? Objcopy = Tool("aarch64-linux-gnu-objcopy");
    private static readonly string? Objdump = Tool("aarch64-linux-gnu-objdump");

    private static string? Tool(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            if (dir.Length > 0 && File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }

    private static void SkipWithoutTools() =>
        Skip.If(As == null || Objcopy == null || Objdump == null,
            "aarch64-linux-gnu binutils are not installed (./build.sh setup installs them): AArch64 encodings not checked");

    private static readonly JitOptions[] Options = JitAgreement.Options;

    private static (string Output, int Exit) RunTool(string file, string args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (stdout.Result + err, p.ExitCode);
    }

    /// <summary>Assembles the listings of <paramref name="outputs"/> with GNU as and compares every word.</summary>
    private static void CheckWithGnu(IReadOnlyList<(string Name, A64Compiler.Output Output)> outputs)
    {
        string dir = Directory.CreateTempSubdirectory("rbpf-a64-").FullName;
        try
        {
            var src = new StringBuilder();
            var expected = new List<byte>();
            var origin = new List<(string Name, string Text)>();
            foreach (var (name, output) in outputs)
            {
                var text = output.Assembler.Text(relative: true);
                Assert.Equal(text.Length * 4, output.Code.Length);
                foreach (var line in text)
                {
                    src.Append('\t').Append(line).Append('\n');
                    origin.Add((name, line));
                }
                expected.AddRange(output.Code);
            }
            File.WriteAllText(Path.Combine(dir, "a.s"), src.ToString());
            var (asOut, asExit) = RunTool(As!, $"-o {dir}/a.o {dir}/a.s");
            Assert.True(asExit == 0, "GNU as refused the listing:\n" + string.Join('\n', asOut.Split('\n').Take(20)));
            var (cpOut, cpExit) = RunTool(Objcopy!, $"-O binary -j .text {dir}/a.o {dir}/a.bin");
            Assert.True(cpExit == 0, cpOut);
            byte[] gnu = File.ReadAllBytes(Path.Combine(dir, "a.bin"));
            Assert.Equal(expected.Count, gnu.Length);
            for (int k = 0; k < gnu.Length; k += 4)
            {
                uint ours = BitConverter.ToUInt32(expected.ToArray(), k), theirs = BitConverter.ToUInt32(gnu, k);
                if (ours != theirs)
                    Assert.Fail($"{origin[k / 4].Name}: '{origin[k / 4].Text}' encoded as {ours:x8}, GNU as gives {theirs:x8}");
            }
            // An independent decoder must see a real instruction in every word.
            var (dump, dumpExit) = RunTool(Objdump!, $"-D -b binary -m aarch64 {dir}/a.bin");
            Assert.True(dumpExit == 0, dump);
            var bad = dump.Split('\n').Where(l => l.Contains(".inst") || l.Contains("undefined")).Take(5).ToList();
            Assert.True(bad.Count == 0, "objdump could not decode:\n" + string.Join('\n', bad));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static EbpfVm Vm(byte[] program, VmKind kind = VmKind.Raw)
    {
        var vm = kind switch
        {
            VmKind.NoData => EbpfVm.CreateNoData(program),
            VmKind.Mbuff => EbpfVm.CreateMbuff(program),
            VmKind.FixedMbuff => EbpfVm.CreateFixedMbuff(program, 0x40, 0x50),
            _ => EbpfVm.CreateRaw(program),
        };
        vm.RegisterHelper(1, (a, b, c, d, e) => a + b + c + d + e);
        vm.RegisterHelper(5, (r1, _, _, _, _) => r1, "unwind");
        vm.UnwindHelper = 5;
        return vm;
    }

    [SkippableFact]
    public void GeneratedProgramsEncodeAsGnuAsDoes()
    {
        SkipWithoutTools();
        var rng = new Random(64);
        var outputs = new List<(string, A64Compiler.Output)>();
        for (int n = 0; n < 300; n++)
        {
            byte[] prog = Instruction.Encode(ProgramGenerator.Generate(rng, rng.Next(0, 64)));
            var vm = Vm(prog);
            if (n % 3 == 0) vm.InstructionLimit = 100_000;
            outputs.Add(($"generated {n}", vm.CompileArm64(Options[n % Options.Length])));
        }
        CheckWithGnu(outputs);
    }

    [SkippableFact]
    public void EveryInstructionFormEncodesAsGnuAsDoes()
    {
        SkipWithoutTools();
        // Each operation with small, 12-bit, large and negative immediates, every register pair
        // kind, loads, stores, atomics, packet loads, calls and every VM kind's entry.
        var asm = new StringBuilder();
        string[] alu = { "add", "sub", "mul", "div", "or", "and", "lsh", "rsh", "mod", "xor", "mov", "arsh", "sdiv", "smod" };
        foreach (var op in alu)
            foreach (var suffix in new[] { "64", "32" })
            {
                foreach (var imm in new[] { "0", "1", "4095", "4096", "-1", "-4095", "0x12345678", "-0x7fffffff" })
                    asm.Append($"{op}{suffix} r3, {imm}\n");
                asm.Append($"{op}{suffix} r0, r9\n{op}{suffix} r6, r1\n");
            }
        foreach (var op in new[] { "neg64 r2", "neg32 r7", "be16 r1", "be32 r2", "be64 r3", "le16 r4", "le32 r5", "le64 r6", "bswap16 r0", "bswap32 r1", "bswap64 r9" })
            asm.Append(op).Append('\n');
        asm.Append("movsx864 r1, r2\nmovsx1664 r1, r2\nmovsx3264 r1, r2\nmovsx832 r3, r4\nmovsx1632 r3, r4\n");
        asm.Append("lddw r5, 0x123456789abcdef0\nlddw r0, -2\n");
        foreach (var sz in new[] { "b", "h", "w", "dw" })
        {
            asm.Append($"ldx{sz} r0, [r1+0]\nldx{sz} r2, [r10-8]\nldx{sz} r3, [r1+4000]\nldx{sz} r3, [r1-300]\nldx{sz} r4, [r1+32767]\n");
            asm.Append($"stx{sz} [r1+8], r2\nstx{sz} [r10-16], r0\nst{sz} [r1+2], 0\nst{sz} [r10-24], -77\nst{sz} [r1-32768], 0x12345\n");
            asm.Append($"ldabs{sz} 12\nldind{sz} r1, 4\n");
        }
        foreach (var sz in new[] { "b", "h", "w" }) asm.Append($"ldxs{sz} r0, [r1+2]\nldxs{sz} r5, [r10-64]\n");
        foreach (var op in new[] { "add", "or", "and", "xor" })
            foreach (var w in new[] { "32", "64" })
                asm.Append($"lock {op}{w} [r1+0], r2\nlock fetch {op}{w} [r1+8], r3\n");
        asm.Append("lock xchg32 [r1+0], r0\nlock xchg64 [r10-8], r4\nlock cmpxchg32 [r1+0], r2\nlock cmpxchg64 [r1+8], r0\n");
        string[] jumps = { "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle" };
        foreach (var j in jumps)
            foreach (var w in new[] { "", "32" })
                asm.Append($"{j}{w} r1, 7, +0\n{j}{w} r1, -7, +0\n{j}{w} r1, 100000, +0\n{j}{w} r2, r3, +0\n");
        asm.Append("call 1\ncall 5\ncallx r2\ncall local +2\nja +0\nexit\nstdw [r10-8], 1\nexit\n");
        byte[] prog = Assembler.Assemble(asm.ToString());
        var outputs = new List<(string, A64Compiler.Output)>();
        foreach (var kind in new[] { VmKind.Raw, VmKind.NoData, VmKind.Mbuff, VmKind.FixedMbuff })
            foreach (var options in Options)
            {
                var vm = Vm(prog, kind);
                vm.InstructionLimit = 1000;
                outputs.Add(($"{kind} {options}", vm.CompileArm64(options)));
            }
        CheckWithGnu(outputs);
    }

    [SkippableFact]
    public void ConformanceProgramsEncodeAsGnuAsDoes()
    {
        SkipWithoutTools();
        Skip.If(TestPaths.ConformanceDir == null, "../shared/conformance is absent: conformance programs not encoded");
        var outputs = new List<(string, A64Compiler.Output)>();
        int n = 0;
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.ConformanceDir!, "tests"), "*.data").OrderBy(f => f, StringComparer.Ordinal))
        {
            var c = ConformanceCase.Load(f);
            var vm = ConformanceCase.CreateVm(c.Program);
            outputs.Add((c.Name, vm.CompileArm64(Options[n++ % Options.Length])));
        }
        Assert.True(outputs.Count > 100);
        CheckWithGnu(outputs);
    }

    [Fact]
    public void FarBranchesAreUsedWhenShortOnesCannotReach()
    {
        // 30,000 checked and blinded stores make more than 1 MiB of code between the first jump and its target.
        var asm = new StringBuilder("jeq r1, 0, +30000\n");
        for (int k = 0; k < 30000; k++) asm.Append("stdw [r1+8], 0x12345678\n");
        asm.Append("mov r0, 1\nexit\n");
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(asm.ToString()));
        var output = vm.CompileArm64(new JitOptions { ConstantBlinding = true }, listing: true);
        Assert.True(output.Code.Length > 1 << 20, $"only {output.Code.Length} bytes");
        var text = output.Assembler.Text(relative: true);
        // The first jump became an inverted short branch over an unconditional one.
        int body = Array.FindIndex(text, t => t.StartsWith("subs xzr, x0, x9", StringComparison.Ordinal));
        Assert.True(body > 0, "no compare for the first jump");
        Assert.StartsWith("b.ne .+8", text[body + 1]);
        Assert.StartsWith("b .+", text[body + 2]);
    }

    [Fact]
    public void MovImmBuildsEveryValue()
    {
        // The listing's movz/movn/movk, replayed, gives back the value.
        var rng = new Random(5);
        var values = new List<long> { 0, 1, -1, 0xffff, 0x10000, -0x10000, long.MinValue, long.MaxValue, 0x0000ffff00000000, unchecked((long)0xffff0000ffff0000) };
        for (int k = 0; k < 2000; k++) values.Add(rng.NextInt64() >> rng.Next(64));
        foreach (long v in values)
            foreach (bool is64 in new[] { true, false })
            {
                var a = new A64Assembler(listing: true);
                a.MovImm(is64, 9, v);
                Assert.InRange(a.Count, 1, is64 ? 4 : 2);
                ulong r = 0;
                foreach (var line in a.Text(relative: true))
                {
                    var parts = line.Replace(",", "").Split(' ');
                    ulong imm = Convert.ToUInt64(parts[2][3..], 16);
                    int shift = int.Parse(parts[4][1..], System.Globalization.CultureInfo.InvariantCulture);
                    ulong mask = 0xffffUL << shift;
                    r = parts[0] switch
                    {
                        "movz" => imm << shift,
                        "movn" => ~(imm << shift),
                        _ => (r & ~mask) | (imm << shift),
                    };
                    if (!is64) r &= 0xffffffff;
                }
                Assert.Equal(is64 ? (ulong)v : (uint)v, r);
            }
    }
}
