using System.Diagnostics;

namespace Rbpf.Tests;

/// <summary>The LLVM/kernel assembly syntax, in the assembler and the disassembler.</summary>
public class LlvmSyntaxTests
{
    [Theory]
    [InlineData("r0 = 1", "mov64 r0, 1")]
    [InlineData("w1 = w2", "mov32 r1, r2")]
    [InlineData("r1 += -3", "add64 r1, -3")]
    [InlineData("w3 s>>= 4", "arsh32 r3, 4")]
    [InlineData("r2 s/= r3", "sdiv64 r2, r3")]
    [InlineData("w2 s%= 7", "smod32 r2, 7")]
    [InlineData("r4 <<= 0x3", "lsh64 r4, 3")]
    [InlineData("r5 = -r5", "neg64 r5")]
    [InlineData("w5 = -w5", "neg32 r5")]
    [InlineData("r1 = (s8)r2", "movsx864 r1, r2")]
    [InlineData("w1 = (s16)w2", "movsx1632 r1, r2")]
    [InlineData("r1 = be16 r1", "be16 r1")]
    [InlineData("r1 = le32 r1", "le32 r1")]
    [InlineData("r1 = bswap64 r1", "bswap64 r1")]
    [InlineData("r1 = 0x1122334455667788 ll", "lddw r1, 0x1122334455667788")]
    [InlineData("r0 = 1469598103934665603 ll", "lddw r0, 1469598103934665603")]
    [InlineData("r1 = *(u32 *)(r2 + 4)", "ldxw r1, [r2+4]")]
    [InlineData("r1 = *(u8 *)(r10 - 8)", "ldxb r1, [r10-8]")]
    [InlineData("r1 = *(s16 *)(r2 + 0)", "ldxsh r1, [r2+0]")]
    [InlineData("w1 = *(u32 *)(r2 + 0)", "ldxw r1, [r2+0]")]
    [InlineData("*(u64 *)(r10 - 8) = r1", "stxdw [r10-8], r1")]
    [InlineData("*(u32 *)(r10 - 4) = w1", "stxw [r10-4], r1")]
    [InlineData("*(u16 *)(r1 + 2) = 0x1234", "sth [r1+2], 0x1234")]
    [InlineData("lock *(u64 *)(r1 + 0) += r2", "lock add64 [r1+0], r2")]
    [InlineData("lock *(u32 *)(r1 + 8) ^= w2", "lock xor32 [r1+8], r2")]
    [InlineData("r2 = atomic_fetch_or((u64 *)(r1 + 0), r2)", "lock fetch or64 [r1+0], r2")]
    [InlineData("w2 = atomic_fetch_and((u32 *)(r1 - 4), w2)", "lock fetch and32 [r1-4], r2")]
    [InlineData("r3 = xchg_64(r1 + 8, r3)", "lock xchg64 [r1+8], r3")]
    [InlineData("w3 = xchg32_32(r1 + 0, w3)", "lock xchg32 [r1+0], r3")]
    [InlineData("r0 = cmpxchg_64(r1 + 0, r0, r2)", "lock cmpxchg64 [r1+0], r2")]
    [InlineData("w0 = cmpxchg32_32(r1 + 0, w0, w2)", "lock cmpxchg32 [r1+0], r2")]
    [InlineData("r0 = *(u16 *)skb[12]", "ldabsh 12")]
    [InlineData("r0 = *(u8 *)skb[r3 + 0x4]", "ldindb r3, 4")]
    [InlineData("goto +3", "ja +3")]
    [InlineData("gotol -2", "gotol -2")]
    [InlineData("if r1 > r2 goto +3", "jgt r1, r2, +3")]
    [InlineData("if w1 s<= -1 goto -4", "jsle32 r1, -1, -4")]
    [InlineData("if r1 & 0x10 goto +1 <LBB0_2>", "jset r1, 0x10, +1")]
    [InlineData("if r9 < 63 goto -9", "jlt r9, 63, -9")]
    [InlineData("call bpf_map_lookup_elem", "call 1")]
    public void LlvmStatementsAssembleLikeOurs(string llvm, string ours)
    {
        Assert.Equal(Assembler.Assemble(ours), Assembler.Assemble(llvm));
    }

    [Fact]
    public void ClangAssemblyOutputWithLabelsAndDirectivesAssembles()
    {
        const string text = """
            	.text
            	.file	"loop.c"
            	.globl	sum                             # -- Begin function sum
            	.p2align	3
            	.type	sum,@function
            sum:                                    # @sum
            # %bb.0:
            	r0 = 0
            	if r2 == 0 goto LBB0_2
            LBB0_1:                                 # =>This Inner Loop Header: Depth=1
            	r3 = *(u8 *)(r1 + 0)
            	r0 += r3
            	r1 += 1
            	r2 += -1
            	if r2 != 0 goto LBB0_1
            LBB0_2:
            	exit
            .Lfunc_end0:
            	.size	sum, .Lfunc_end0-sum
            	.addrsig
            """;
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        Assert.Equal(10UL, vm.Execute(new byte[] { 1, 2, 3, 4 }));
    }

    [Fact]
    public void ASymbolLoadSaysItNeedsTheElf()
    {
        var e = Assert.Throws<AssemblyException>(() => Assembler.Assemble("r0 = 0\n\tr1 = show.fmt ll\nexit"));
        Assert.Equal(2, e.Line);
        Assert.Equal(2, e.Column);
        Assert.Contains("relocation", e.Message);
        var bad = Assert.Throws<AssemblyException>(() => Assembler.Assemble("r0 = r1 + 2"));
        Assert.Contains("cannot read 'r0 = r1 + 2' as an instruction", bad.Message);
    }

    [SkippableFact]
    public void LlvmObjdumpListingsAssembleToTheirBytes()
    {
        // llvm-objdump's own listing of the committed calls.o, pasted as it prints it (bytes
        // included, a local call printed as "call 4"): the assembler takes the bytes.
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "calls.o");
        Skip.If(!File.Exists("/usr/bin/llvm-objdump"), "llvm-objdump is not installed");
        var psi = new ProcessStartInfo("llvm-objdump", new[] { "-d", obj }) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        string listing = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        var expected = new List<byte>();
        foreach (System.Text.RegularExpressions.Match m in System.Text.RegularExpressions.Regex.Matches(listing,
                     @"^\s*\d+:\t((?:[0-9a-f]{2} ?)+)\t", System.Text.RegularExpressions.RegexOptions.Multiline))
            expected.AddRange(m.Groups[1].Value.Trim().Split(' ').Select(b => Convert.ToByte(b, 16)));
        var assembled = Assembler.Assemble(listing);
        Assert.True(expected.Count > 100);
        Assert.Equal(expected.ToArray(), assembled);
        Assert.Contains("call 4", listing);
        int call = Array.FindIndex(Instruction.ReadAll(assembled), i => i.Opcode == Isa.Call && i.Imm == 4);
        Assert.Equal(Isa.PseudoCallLocal, Instruction.ReadAll(assembled)[call].Src); // a local call, as the bytes say
    }

    [Fact]
    public void RandomProgramsRoundTripInBothSyntaxesWithLabels()
    {
        var rng = new Random(41);
        for (int n = 0; n < 3000; n++)
        {
            var prog = new byte[8 * rng.Next(1, 24)];
            rng.NextBytes(prog);
            for (int k = 0; k < prog.Length; k += 8)
            {
                if (rng.Next(5) != 0) prog[k] = AssemblerTests.KnownOpcodes[rng.Next(AssemblerTests.KnownOpcodes.Length)];
                if (rng.Next(3) != 0) prog[k + 1] = (byte)(rng.Next(11) | (rng.Next(11) << 4));
                if (rng.Next(2) == 0) { prog[k + 2] = (byte)rng.Next(-3, 4); prog[k + 3] = (byte)(prog[k + 2] >= 0x80 ? 0xff : 0); }
                if (rng.Next(2) == 0) { prog[k + 5] = prog[k + 6] = prog[k + 7] = 0; prog[k + 4] = (byte)rng.Next(0, 8); }
            }
            foreach (var syntax in new[] { AsmSyntax.Rbpf, AsmSyntax.Llvm })
                foreach (bool labels in new[] { false, true })
                {
                    string text = Disassembler.Disassemble(prog, syntax, labels);
                    Assert.True(prog.AsSpan().SequenceEqual(Assembler.Assemble(text)), $"{syntax}, labels {labels}:\n{text}");
                }
        }
    }

    [Fact]
    public void DisassemblyNamesJumpTargetsWithLabels()
    {
        var prog = Assembler.Assemble("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 10, loop\ncall local f\nexit\nf:\nmov r0, 2\nexit");
        Assert.Equal("mov64 r0, 0x0\nL1:\nadd64 r0, 0x1\njlt r0, 0xa, L1\ncall local L5\nexit\nL5:\nmov64 r0, 0x2\nexit\n",
            Disassembler.Disassemble(prog, AsmSyntax.Rbpf));
        Assert.Equal("r0 = 0x0\nL1:\nr0 += 0x1\nif r0 < 0xa goto L1\ncall L5\nexit\nL5:\nr0 = 0x2\nexit\n",
            Disassembler.Disassemble(prog, AsmSyntax.Llvm));
        Assert.Equal("r0 = 0x0\nr0 += 0x1\nif r0 < 0xa goto -2\ncall local +1\nexit\nr0 = 0x2\nexit\n",
            Disassembler.Disassemble(prog, AsmSyntax.Llvm, labels: false));
    }
}
