namespace Rbpf.Tests;

public class AssemblerTests
{
    [Theory]
    [InlineData("add64 r1, 0x605", "add %r1, 0x605")]
    [InlineData("mov64 r1, r0", "mov %r1, %r0")]
    [InlineData("ldxh r0, [r1+2]", "ldxh %r0, [%r1+2]")]
    [InlineData("stxdw [r10-8], r1", "stxdw [%r10-8], %r1")]
    [InlineData("lock fetch add64 [r1+0], r2", "lock fetch add [%r1], %r2")]
    [InlineData("lock cmpxchg32 [r1+4], r2", "lock cmpxchg32 [%r1+4], %r2")]
    [InlineData("callx r3", "call %r3")]
    [InlineData("ja32 +1", "gotol +1")]
    [InlineData("bswap16 r1", "swap16 %r1")]
    public void RbpfAndConformanceSyntaxesAgree(string rbpf, string conformance) =>
        Assert.Equal(Assembler.Assemble(rbpf), Assembler.Assemble(conformance));

    [Fact]
    public void LabelsCommentsAndBlankLines()
    {
        var prog = Assembler.Assemble(@"
            # a comment
            mov r0, 0      // another
            start: add r0, 1 ; and a third
            jlt r0, 3, start
            ja end
            mov r0, 99
        end:
            exit");
        Assert.Equal(3UL, EbpfVm.CreateNoData(prog).Execute());
        Assert.Equal(-2, Instruction.Read(prog, 2).Offset);
    }

    [Fact]
    public void ImmediatesInEveryForm()
    {
        Assert.Equal(-1, Instruction.Read(Assembler.Assemble("mov r0, 0xffffffff"), 0).Imm);
        Assert.Equal(-1, Instruction.Read(Assembler.Assemble("mov r0, -1"), 0).Imm);
        Assert.Equal(-16, Instruction.Read(Assembler.Assemble("mov r0, -0x10"), 0).Imm);
        Assert.Equal(42, Instruction.Read(Assembler.Assemble("mov r0, +42"), 0).Imm);
        var lddw = Assembler.Assemble("lddw r0, -2");
        Assert.Equal(-2, Instruction.Read(lddw, 0).Imm);
        Assert.Equal(-1, Instruction.Read(lddw, 1).Imm);
    }

    [Theory]
    [InlineData("mov r0, 1\nfrob r1, 2", 2, 1, "unknown instruction 'frob'")]
    [InlineData("mov r11, 1", 1, 5, "expected a register")]
    [InlineData("add r1,   zzz", 1, 11, "expected a number")]
    [InlineData("mov r0, 0x100000000", 1, 9, "out of range")]
    [InlineData("ldxw r0, r1", 1, 10, "memory operand")]
    [InlineData("ldxw r0, [r1+70000]", 1, 13, "out of range")]
    [InlineData("ja nowhere", 1, 4, "undefined label 'nowhere'")]
    [InlineData("x:\nx:\nexit", 2, 1, "defined twice")]
    [InlineData("exit r0", 1, 1, "too many operands")]
    [InlineData("jeq r0, 1", 1, 1, "expects 3 operands")]
    [InlineData("lock nand [r1], r2", 1, 1, "unknown atomic")]
    [InlineData("  mov r0", 1, 3, "expects 2 operands")]
    public void ErrorsPointAtLineAndColumn(string source, int line, int column, string message)
    {
        var e = Assert.Throws<AssemblyException>(() => Assembler.Assemble(source));
        Assert.Equal(RbpfErrorCode.AssemblyError, e.Code);
        Assert.Equal(line, e.Line);
        Assert.Equal(column, e.Column);
        Assert.Contains(message, e.Message);
        Assert.StartsWith($"line {line}, column {column}: ", e.Message);
    }

    [Fact]
    public void LongJumpNeedsGotol()
    {
        var src = "ja far\n" + string.Concat(Enumerable.Repeat("mov r0, 0\n", 40000)) + "far:\nexit";
        var e = Assert.Throws<AssemblyException>(() => Assembler.Assemble(src));
        Assert.Contains("gotol", e.Message);
        var prog = Assembler.Assemble(src.Replace("ja far", "gotol far"));
        Assert.Equal(40000, Instruction.Read(prog, 0).Imm);
    }

    [Fact]
    public void EveryMnemonicRoundTripsThroughTheDisassembler()
    {
        var prog = Assembler.Assemble(@"
            add r1, 1
            sub32 r2, r3
            mul r1, -2
            div32 r1, 3
            sdiv r1, r2
            smod32 r1, -5
            or r1, r2
            and32 r1, 0xff
            lsh r1, 3
            rsh32 r1, r2
            mod r1, 7
            xor r1, r2
            arsh32 r1, 1
            neg32 r1
            movsx832 r1, r2
            movsx3264 r1, r2
            le16 r1
            be64 r1
            bswap32 r1
            lddw r2, 0xdeadbeefcafe
            ldxb r1, [r2+1]
            ldxsh r1, [r2-2]
            stw [r10-4], -7
            stxh [r10-2], r1
            lock or32 [r10-8], r1
            lock fetch xor [r10-8], r1
            lock xchg [r10-8], r1
            ldabsh 12
            ldindw r3, 4
            ja +0
            jset32 r1, 0x10, +0
            jsle r1, r2, -1
            call 7
            call local +1
            callx r4
            exit");
        string text = Disassembler.Disassemble(prog);
        Assert.Equal(prog, Assembler.Assemble(text));
        Assert.DoesNotContain(".quad", text);
        Assert.Contains("lddw r2, 0xdeadbeefcafe", text);
        Assert.Contains("ldxsh r1, [r2-2]", text);
        Assert.Contains("lock fetch xor64 [r10-8], r1", text);
    }

    [Fact]
    public void SlotsWithoutASpellingBecomeQuads()
    {
        byte[] prog = { 0xff, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0x95, 0, 0, 0, 5, 0, 0, 0 };
        string text = Disassembler.Disassemble(prog);
        Assert.Equal(".quad 0xdebc9a78563412ff\n.quad 0x0000000500000095\n", text);
        Assert.Equal(prog, Assembler.Assemble(text));
    }

    [Fact]
    public void RandomBytesRoundTrip()
    {
        var rng = new Random(1234);
        for (int n = 0; n < 2000; n++)
        {
            byte[] prog = new byte[8 * rng.Next(1, 8)];
            rng.NextBytes(prog);
            // Bias towards real opcodes so most slots have a readable spelling.
            for (int k = 0; k < prog.Length; k += 8)
                if (rng.Next(2) == 0) prog[k] = KnownOpcodes[rng.Next(KnownOpcodes.Length)];
            Assert.Equal(prog, Assembler.Assemble(Disassembler.Disassemble(prog)));
        }
    }

    internal static readonly byte[] KnownOpcodes =
    {
        0x04, 0x0c, 0x07, 0x0f, 0x14, 0x1c, 0x17, 0x1f, 0x24, 0x2c, 0x27, 0x2f, 0x34, 0x3c, 0x37, 0x3f,
        0x44, 0x4c, 0x47, 0x4f, 0x54, 0x5c, 0x57, 0x5f, 0x64, 0x6c, 0x67, 0x6f, 0x74, 0x7c, 0x77, 0x7f,
        0x84, 0x87, 0x94, 0x9c, 0x97, 0x9f, 0xa4, 0xac, 0xa7, 0xaf, 0xb4, 0xbc, 0xb7, 0xbf, 0xc4, 0xcc,
        0xc7, 0xcf, 0xd4, 0xdc, 0xd7, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40, 0x48, 0x50, 0x58,
        0x61, 0x69, 0x71, 0x79, 0x81, 0x89, 0x91, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb,
        0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x55, 0x5d, 0x65, 0x6d, 0x75, 0x7d, 0x85, 0x8d,
        0x95, 0xa5, 0xad, 0xb5, 0xbd, 0xc5, 0xcd, 0xd5, 0xdd, 0x06, 0x16, 0x1e, 0x26, 0x2e, 0x36, 0x3e,
        0x46, 0x4e, 0x56, 0x5e, 0x66, 0x6e, 0x76, 0x7e, 0xa6, 0xae, 0xb6, 0xbe, 0xc6, 0xce, 0xd6, 0xde,
    };

    [Fact]
    public void CallxWithAnOffsetOrLabelIsRbpfsLocalCall()
    {
        // rbpf 0.4 writes bpf-to-bpf calls as "callx IMM": the same bytes as "call local".
        Assert.Equal(Assembler.Assemble("call local +1\nexit\nmov r0, 7\nexit"), Assembler.Assemble("callx 1\nexit\nmov r0, 7\nexit"));
        var prog = Assembler.Assemble("callx f\nexit\nf:\nmov r0, 7\nexit");
        Assert.Equal(7UL, EbpfVm.CreateNoData(prog).Execute());
        var reg = Instruction.Read(Assembler.Assemble("callx r3\nexit"), 0);
        Assert.Equal((Isa.CallX, 3), (reg.Opcode, reg.Dst));
    }

    [Fact]
    public void CallsNameKernelHelpers()
    {
        Assert.Equal(Assembler.Assemble("call 1\nexit"), Assembler.Assemble("call bpf_map_lookup_elem\nexit"));
        Assert.Equal(Assembler.Assemble("call 6\nexit"), Assembler.Assemble("call trace_printk\nexit")); // the prefix may go
        Assert.Equal("bpf_get_prandom_u32", KernelHelpers.NameOf(7));
        Assert.Null(KernelHelpers.NameOf(0));
        // A label of the same name wins: it is a local call.
        var local = Instruction.Read(Assembler.Assemble("call bpf_tail_call\nexit\nbpf_tail_call:\nexit"), 0);
        Assert.Equal(Isa.PseudoCallLocal, local.Src);
        var e = Assert.Throws<AssemblyException>(() => Assembler.Assemble("call no_such_helper\nexit"));
        Assert.Contains("neither a label nor a helper", e.Message);
        Assert.Equal(Assembler.Assemble("call 0x70000003\nexit"), Assembler.Assemble("call sqrti\nexit")); // rbpf's own helpers too
    }
}
