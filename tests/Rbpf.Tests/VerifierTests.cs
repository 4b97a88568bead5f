namespace Rbpf.Tests;

public class VerifierTests
{
    private static RbpfException Rejects(byte[] prog)
    {
        var e = Assert.Throws<RbpfException>(() => Verifier.Verify(prog));
        Assert.Equal(RbpfErrorCode.InvalidProgram, e.Code);
        // The VM refuses it with the same error.
        var e2 = Assert.Throws<RbpfException>(() => EbpfVm.CreateNoData(prog));
        Assert.Equal(e.Message, e2.Message);
        return e;
    }

    private static byte[] Slots(params (byte op, int dst, int src, short off, int imm)[] insns) =>
        Instruction.Encode(insns.Select(i => new Instruction(i.op, i.dst, i.src, i.off, i.imm)).ToList());

    private static readonly (byte, int, int, short, int) ExitSlot = (Isa.Exit, 0, 0, 0, 0);

    [Fact]
    public void EmptyProgram() => Assert.Contains("empty", Rejects(Array.Empty<byte>()).Message);

    [Fact]
    public void LengthNotMultipleOf8() => Assert.Contains("multiple of 8", Rejects(new byte[12]).Message);

    [Fact]
    public void TooLong()
    {
        var prog = new byte[(Isa.MaxInstructions + 1) * 8];
        prog[^8] = Isa.Exit;
        Assert.Contains("limit", Rejects(prog).Message);
    }

    [Fact]
    public void MaxLengthIsAccepted()
    {
        var prog = new byte[Isa.MaxInstructions * 8];
        for (int i = 0; i < Isa.MaxInstructions; i++) prog[i * 8] = 0xb7; // mov r0, 0
        prog[^8] = Isa.Exit;
        Verifier.Verify(prog);
    }

    [Theory]
    [InlineData("mov r0, 0")]
    [InlineData("exit\nmov r0, 1")]
    [InlineData("exit\njeq r0, 0, -2")]
    public void LastInstructionMustEndExecution(string asm) =>
        Assert.Contains("fall off the end", Rejects(Assembler.Assemble(asm)).Message);

    [Fact]
    public void ProgramEndingInLddwIsRejected() =>
        Assert.Contains("lddw", Rejects(Assembler.Assemble("exit\nlddw r0, 1")).Message);

    [Theory]
    [InlineData(0xff)]
    [InlineData(0x8c)] // neg with register source
    [InlineData(0xdf)] // bswap with register source
    [InlineData(0xe7)]
    [InlineData(0xf4)]
    [InlineData(0x9d)] // exit with register source
    [InlineData(0x86)] // call in JMP32
    [InlineData(0x96)] // exit in JMP32
    [InlineData(0x98)] // ldxdw sign-extending does not exist
    [InlineData(0x02 | 0x80)] // st with memsx mode
    [InlineData(0xe0)]
    public void UnknownOpcodes(int opcode)
    {
        var e = Rejects(Slots(((byte)opcode, 0, 0, 0, 0), ExitSlot));
        Assert.Equal(0, e.InstructionIndex);
        Assert.Contains("insn #0", e.Message);
    }

    [Theory]
    [InlineData(11, 0)]
    [InlineData(0, 11)]
    [InlineData(15, 15)]
    public void BadRegisters(int dst, int src) =>
        Assert.Contains("register", Rejects(Slots((0xbf, dst, src, 0, 0), ExitSlot)).Message);

    [Theory]
    [InlineData("mov r10, 1")]
    [InlineData("add32 r10, r1")]
    [InlineData("ldxw r10, [r1]")]
    [InlineData("lddw r10, 5")]
    [InlineData("neg r10")]
    [InlineData("be16 r10")]
    public void WritesToR10(string asm) =>
        Assert.Contains("r10 is read-only", Rejects(Assembler.Assemble(asm + "\nexit")).Message);

    [Fact]
    public void StoresThroughR10AndComparisonsOfR10AreFine() =>
        Verifier.Verify(Assembler.Assemble("stw [r10-4], 1\njeq r10, 0, +0\nexit"));

    [Fact]
    public void IncompleteLddw() =>
        Assert.Contains("incomplete lddw", Rejects(Slots((Isa.Lddw, 0, 0, 0, 1))).Message);

    [Fact]
    public void MalformedLddwSecondSlot() =>
        Assert.Contains("malformed lddw", Rejects(Slots((Isa.Lddw, 0, 0, 0, 1), (0, 1, 0, 0, 1), ExitSlot)).Message);

    [Fact]
    public void LddwFollowedByAnotherInstructionIsIncomplete()
    {
        var e = Rejects(Slots((Isa.Lddw, 0, 0, 0, 1), (0x07, 0, 0, 0, 1), ExitSlot));
        Assert.Equal(VerifierCheck.IncompleteLddw, e.Check);
        Assert.Contains("incomplete lddw", e.Message);
    }

    [Fact]
    public void LddwSourcesOtherThanAMapFdAreUnsupported()
    {
        // Source 1 (a map fd) is accepted with 0 in the second immediate; others are refused.
        Verifier.Verify(Slots((Isa.Lddw, 0, 1, 0, 1), (0, 0, 0, 0, 0), ExitSlot));
        Assert.Contains("has 0 in its second slot", Rejects(Slots((Isa.Lddw, 0, 1, 0, 1), (0, 0, 0, 0, 4), ExitSlot)).Message);
        Assert.Contains("unsupported lddw source 2", Rejects(Slots((Isa.Lddw, 0, 2, 0, 1), (0, 0, 0, 0, 0), ExitSlot)).Message);
    }

    [Theory]
    [InlineData("ja +5\nexit")]
    [InlineData("ja -3\nexit")]
    [InlineData("jeq r0, 1, +1\nexit")]
    [InlineData("ja32 +9\nexit")]
    [InlineData("call local +4\nexit")]
    [InlineData("call local -3\nexit")]
    public void JumpsAndCallsOutOfTheProgram(string asm) =>
        Assert.Contains("outside the program", Rejects(Assembler.Assemble(asm)).Message);

    [Theory]
    [InlineData("ja +1\nlddw r0, 1\nexit")]
    [InlineData("call local +1\nlddw r0, 1\nexit")]
    [InlineData("jne r0, r1, +1\nlddw r0, 1\nexit")]
    public void JumpsIntoTheMiddleOfLddw(string asm) =>
        Assert.Contains("middle of lddw", Rejects(Assembler.Assemble(asm)).Message);

    [Theory]
    [InlineData(0xd4, 8)]
    [InlineData(0xdc, 0)]
    [InlineData(0xd7, 128)]
    public void BadByteSwapWidths(int opcode, int width) =>
        Assert.Contains("byte swap width", Rejects(Slots(((byte)opcode, 0, 0, 0, width), ExitSlot)).Message);

    [Theory]
    [InlineData(0x3f, 2)]  // div with offset 2
    [InlineData(0xbf, 64)] // movsx of 64 bits
    [InlineData(0xbc, 32)] // movsx32 from 32 bits
    [InlineData(0xb7, 8)]  // movsx needs a register source
    [InlineData(0x0f, 1)]  // add with an offset
    public void BadOffsetVariants(int opcode, int offset) =>
        Rejects(Slots(((byte)opcode, 0, 1, (short)offset, 0), ExitSlot));

    [Fact]
    public void UnknownAtomicOperation() =>
        Assert.Contains("atomic", Rejects(Slots((0xdb, 1, 2, 0, 0x10), ExitSlot)).Message);

    [Fact]
    public void UnsupportedCallKind() =>
        Assert.Contains("call kind", Rejects(Slots((Isa.Call, 0, 2, 0, 1), ExitSlot)).Message);

    [Theory]
    [InlineData("div r0, 0")]
    [InlineData("mod32 r0, 0")]
    [InlineData("sdiv r0, 0")]
    [InlineData("smod32 r0, 0")]
    public void DivisionByImmediateZeroIsDefinedByTheRfcAndAccepted(string asm) =>
        Verifier.Verify(Assembler.Assemble(asm + "\nexit"));

    [Fact]
    public void LastInstructionMayBeAnUnconditionalJump() =>
        Verifier.Verify(Assembler.Assemble("ja +1\nexit\nja -2"));

    // Loops with no way out.
    [Theory]
    [InlineData("l:\nja l\nexit", 0)]
    [InlineData("mov r0, 0\nl:\njeq r0, 0, l\nexit", 1)]             // a conditional jump to itself
    [InlineData("mov r0, 0\na:\nadd r0, 1\nja b\nb:\nja a\nexit", 3)] // a cycle of straight-line code and ja
    [InlineData("mov r0, 0\nl:\nlddw r1, 5\nja l\nexit", 3)]
    [InlineData("gotol 0\nexit", -1)]                                  // gotol to the next slot is fine
    public void EndlessLoopsAreRefused(string asm, int at)
    {
        var prog = Assembler.Assemble(asm);
        if (at < 0)
        {
            Verifier.Verify(prog);
            return;
        }
        var e = Rejects(prog);
        Assert.Equal(VerifierCheck.InfiniteLoop, e.Check);
        Assert.Equal(at, e.InstructionIndex);
        Assert.Contains("infinite loop", e.Message);
    }

    [Theory]
    [InlineData("mov r0, 0\nl:\nadd r0, 1\njne r0, 0, l\nexit")] // may end: left to the instruction limit
    [InlineData("l:\ncall 1\nja l")]                                   // a helper may end it (unwind)
    [InlineData("l:\nmov r0, 1\njeq r0, 2, x\nja l\nx:\nexit")]
    public void LoopsWithAWayOutAreAccepted(string asm) => Verifier.Verify(Assembler.Assemble(asm));

    // Functions: the code from one local call target to the next.
    [Fact]
    public void FunctionMustNotRunIntoTheNext()
    {
        var e = Rejects(Assembler.Assemble("mov r0, 1\ncall local f\nf:\nexit"));
        Assert.Equal(VerifierCheck.FunctionFallsThrough, e.Check);
        Assert.Equal(1, e.InstructionIndex);
    }

    [Fact]
    public void JumpsStayInsideTheirFunction()
    {
        var e = Rejects(Assembler.Assemble("begin:\nmov r1, 1\ncall local f\nexit\nf:\nadd r1, 1\nja begin\nexit"));
        Assert.Equal(VerifierCheck.JumpBetweenFunctions, e.Check);
        Assert.Equal(4, e.InstructionIndex);
        Verifier.Verify(Assembler.Assemble("mov r1, 1\ncall local f\nexit\nf:\njeq r1, 0, out\nadd r1, 1\nout:\nexit"));
        // An entry jump at slot 0 into the entry function (as the ELF loader writes) is allowed.
        Verifier.Verify(Assembler.Assemble("ja main\nf:\nmov r0, 3\nexit\nmain:\ncall local f\nexit"));
    }

    // RFC 9669: fields an instruction does not use must be zero.
    [Theory]
    [InlineData(0x07, 0, 3, 0, 1, VerifierCheck.UnusedSource)]      // add r0, 1 with src r3
    [InlineData(0x0f, 0, 1, 0, 7, VerifierCheck.UnusedImmediate)]   // add r0, r1 with imm 7
    [InlineData(0x87, 0, 0, 0, 4, VerifierCheck.UnusedImmediate)]   // neg r0 with imm 4
    [InlineData(0x87, 0, 0, 2, 0, VerifierCheck.UnusedOffset)]      // neg r0 with offset 2
    [InlineData(0xd4, 0, 2, 0, 16, VerifierCheck.UnusedSource)]     // le16 r0 with src r2
    [InlineData(0xdc, 0, 0, 1, 32, VerifierCheck.UnusedOffset)]     // be32 r0 with offset 1
    [InlineData(0x61, 0, 1, 0, 9, VerifierCheck.UnusedImmediate)]   // ldxw with imm 9
    [InlineData(0x62, 10, 1, -8, 9, VerifierCheck.UnusedSource)]    // stw with src r1
    [InlineData(0x63, 10, 1, -8, 9, VerifierCheck.UnusedImmediate)] // stxw with imm 9
    [InlineData(0x05, 1, 0, 0, 0, VerifierCheck.UnusedDestination)] // ja with dst r1
    [InlineData(0x05, 0, 0, 0, 3, VerifierCheck.UnusedImmediate)]   // ja with imm 3
    [InlineData(0x06, 0, 0, 1, 0, VerifierCheck.UnusedOffset)]      // gotol with offset 1
    [InlineData(0x15, 1, 2, 0, 0, VerifierCheck.UnusedSource)]      // jeq r1, 0 with src r2
    [InlineData(0x1d, 1, 2, 0, 5, VerifierCheck.UnusedImmediate)]   // jeq r1, r2 with imm 5
    [InlineData(0x85, 3, 0, 0, 1, VerifierCheck.UnusedDestination)] // call 1 with dst r3
    [InlineData(0x85, 0, 0, 4, 1, VerifierCheck.UnusedOffset)]      // call 1 with offset 4
    [InlineData(0x95, 0, 0, 0, 1, VerifierCheck.UnusedImmediate)]   // exit with imm 1
    [InlineData(0x95, 2, 0, 0, 0, VerifierCheck.UnusedDestination)] // exit with dst r2
    public void UnusedFieldsMustBeZero(byte op, int dst, int src, short off, int imm, VerifierCheck check)
    {
        var prog = Slots((op, dst, src, off, imm), ExitSlot, ExitSlot);
        var e = Rejects(prog);
        Assert.Equal(check, e.Check);
        Assert.Equal(0, e.InstructionIndex);
        Assert.Contains("must be 0", e.Message);
        // The same instruction with the field cleared is accepted.
        int d = check == VerifierCheck.UnusedDestination ? 0 : dst, sr = check == VerifierCheck.UnusedSource ? 0 : src;
        short o = check == VerifierCheck.UnusedOffset ? (short)0 : off;
        int im = check == VerifierCheck.UnusedImmediate ? 0 : imm;
        Verifier.Verify(Slots((op, d, sr, o, im), ExitSlot, ExitSlot));
    }

    [Fact]
    public void EveryRefusalNamesItsRule()
    {
        Assert.Equal(VerifierCheck.JumpOutOfBounds, Rejects(Assembler.Assemble("ja +2\nexit")).Check);
        Assert.Equal(VerifierCheck.UnknownOpcode, Rejects(Slots((0x06 | 0x08, 0, 0, 0, 0), ExitSlot)).Check);
        Assert.Equal(VerifierCheck.ByteSwapWidth, Rejects(Slots((0xdc, 0, 0, 0, 48), ExitSlot)).Check);
        Assert.Equal(VerifierCheck.Length, Rejects(Array.Empty<byte>()).Check);
    }
}
