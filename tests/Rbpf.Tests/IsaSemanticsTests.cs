namespace Rbpf.Tests;

/// <summary>Instruction semantics at their edges, as RFC 9669 defines them.</summary>
public class IsaSemanticsTests
{
    [Theory]
    [InlineData("mov r0, 7\nmov r1, 0\ndiv r0, r1\nexit", 0UL)]
    [InlineData("mov r0, 7\nmov r1, 0\nmod r0, r1\nexit", 7UL)]
    [InlineData("lddw r0, 0x1ffffffff\nmov32 r1, 0\nmod32 r0, r1\nexit", 0xffffffffUL)]
    [InlineData("mov r0, 7\ndiv32 r0, 0\nexit", 0UL)]
    [InlineData("lddw r0, 0x8000000000000000\nsdiv r0, -1\nexit", 0x8000000000000000UL)]
    [InlineData("lddw r0, 0x8000000000000000\nsmod r0, -1\nexit", 0UL)]
    [InlineData("mov32 r0, 0x80000000\nsdiv32 r0, -1\nexit", 0x80000000UL)]
    [InlineData("mov r0, -7\nsdiv r0, 2\nexit", unchecked((ulong)-3L))]
    [InlineData("mov r0, -7\nsmod r0, 2\nexit", unchecked((ulong)-1L))]
    [InlineData("mov r0, -7\nsmod32 r0, 0\nexit", 0xfffffff9UL)]
    public void DivisionEdges(string asm, ulong expected) => Assert.Equal(expected, TestUtil.Run(asm));

    [Theory]
    [InlineData("mov r0, 1\nlsh r0, 65\nexit", 2UL)]
    [InlineData("mov32 r0, 1\nlsh32 r0, 33\nexit", 2UL)]
    [InlineData("mov r0, -1\nrsh32 r0, 28\nexit", 0xfUL)]
    [InlineData("mov32 r0, 0x80000000\narsh32 r0, 4\nexit", 0xf8000000UL)]
    [InlineData("mov r0, -16\narsh r0, 2\nexit", unchecked((ulong)-4L))]
    public void ShiftsAreMasked(string asm, ulong expected) => Assert.Equal(expected, TestUtil.Run(asm));

    [Theory]
    [InlineData("mov r0, -1\nadd32 r0, 1\nexit", 0UL)]
    [InlineData("mov r0, -1\nmov32 r0, r0\nexit", 0xffffffffUL)]
    [InlineData("mov32 r0, -1\nexit", 0xffffffffUL)]
    [InlineData("mov r0, -1\nexit", ulong.MaxValue)]
    [InlineData("mov32 r0, 5\nneg32 r0\nexit", 0xfffffffbUL)]
    [InlineData("mov r1, 0x80\nmovsx864 r0, r1\nexit", 0xffffffffffffff80UL)]
    [InlineData("mov r1, 0x80\nmovsx832 r0, r1\nexit", 0xffffff80UL)]
    [InlineData("mov r1, 0x8000\nmovsx1664 r0, r1\nexit", 0xffffffffffff8000UL)]
    [InlineData("mov32 r1, 0x80000000\nmovsx3264 r0, r1\nexit", 0xffffffff80000000UL)]
    public void Alu32ZeroExtendsAndMovSignExtends(string asm, ulong expected) => Assert.Equal(expected, TestUtil.Run(asm));

    [Theory]
    [InlineData("le16", 0x2211UL)]
    [InlineData("le32", 0x44332211UL)]
    [InlineData("le64", 0x8877665544332211UL)]
    [InlineData("be16", 0x1122UL)]
    [InlineData("be32", 0x11223344UL)]
    [InlineData("be64", 0x1122334455667788UL)]
    [InlineData("bswap16", 0x1122UL)]
    [InlineData("bswap32", 0x11223344UL)]
    [InlineData("bswap64", 0x1122334455667788UL)]
    public void ByteSwaps(string op, ulong expected) =>
        Assert.Equal(expected, TestUtil.Run($"lddw r0, 0x8877665544332211\n{op} r0\nexit"));

    [Fact]
    public void SignExtendingLoads()
    {
        byte[] mem = { 0xff, 0xfe, 0xff, 0xff, 0x80 };
        Assert.Equal(ulong.MaxValue, TestUtil.RunRaw("ldxsb r0, [r1]\nexit", mem));
        Assert.Equal(0xfffffffffffffeffUL, TestUtil.RunRaw("ldxsh r0, [r1]\nexit", mem));
        Assert.Equal(0xfffffffffffffeffUL, TestUtil.RunRaw("ldxsw r0, [r1]\nexit", mem));
        Assert.Equal(0xffffffffffffff80UL, TestUtil.RunRaw("ldxsb r0, [r1+4]\nexit", mem));
        Assert.Equal(0xfffffeffUL, TestUtil.RunRaw("ldxw r0, [r1]\nexit", mem));
    }

    [Fact]
    public void StoresWriteThroughToMemory()
    {
        byte[] mem = new byte[16];
        TestUtil.RunRaw("stdw [r1], 0x11223344\nsth [r1+8], 0x5566\nmov r2, 0x77\nstxb [r1+15], r2\nexit", mem);
        Assert.Equal(new byte[] { 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 0x66, 0x55, 0, 0, 0, 0, 0, 0x77 }, mem);
    }

    [Fact]
    public void AtomicsOnInputMemory()
    {
        byte[] mem = new byte[8];
        BitConverter.TryWriteBytes(mem, 40UL);
        ulong r0 = TestUtil.RunRaw("mov r2, 2\nlock fetch add [r1], r2\nmov r0, r2\nmov r3, 2\nlock add32 [r1], r3\nexit", mem);
        Assert.Equal(40UL, r0);
        Assert.Equal(44UL, BitConverter.ToUInt64(mem));
        // cmpxchg: r0 == old value -> swap, r0 = old
        r0 = TestUtil.RunRaw("mov r0, 44\nmov r2, 9\nlock cmpxchg [r1], r2\nexit", mem);
        Assert.Equal(44UL, r0);
        Assert.Equal(9UL, BitConverter.ToUInt64(mem));
    }

    [Fact]
    public void JumpsCompareSignedAndUnsigned()
    {
        Assert.Equal(1UL, TestUtil.Run("mov r0, 0\nmov r1, -1\njsgt r1, 0, +1\nmov r0, 1\nexit"));
        Assert.Equal(0UL, TestUtil.Run("mov r0, 0\nmov r1, -1\njgt r1, 0, +1\nmov r0, 1\nexit"));
        Assert.Equal(0UL, TestUtil.Run("mov r0, 0\nlddw r1, 0x100000000\njeq32 r1, 0, +1\nmov r0, 1\nexit"));
        Assert.Equal(1UL, TestUtil.Run("mov r0, 0\nlddw r1, 0x100000000\njeq r1, 0, +1\nmov r0, 1\nexit"));
        Assert.Equal(0UL, TestUtil.Run("mov r0, 0\nmov r1, 6\njset r1, 2, +1\nmov r0, 1\nexit"));
    }

    [Fact]
    public void GotolJumpsByItsImmediate()
    {
        var b = new ProgramBuilder()
            .Mov(Source.Imm, Arch.X64).SetDst(0).SetImm(1).Push()
            .JumpLong().SetImm(1).Push()
            .Mov(Source.Imm, Arch.X64).SetDst(0).SetImm(2).Push()
            .Exit().Push();
        Assert.Equal(1UL, TestUtil.Exec(EbpfVm.CreateNoData(b.ToBytes())));
    }

    [Fact]
    public void LocalCallsHaveTheirOwnFrameAndKeepCalleeSaved()
    {
        ulong r0 = TestUtil.Run(@"
            mov r6, 10
            stdw [r10-8], 5
            mov r1, 3
            call local f
            ldxdw r2, [r10-8]
            add r0, r2
            add r0, r6
            exit
        f:
            stdw [r10-8], 100    # the callee's own frame
            ldxdw r0, [r10-8]
            add r0, r1
            mov r6, 0
            exit");
        Assert.Equal(100UL + 3 + 5 + 10, r0);
    }

    [Fact]
    public void CalleeCanReadCallersStackThroughAPointer()
    {
        ulong r0 = TestUtil.Run(@"
            stdw [r10-8], 42
            mov r1, r10
            add r1, -8
            call local f
            exit
        f:
            ldxdw r0, [r1]
            exit");
        Assert.Equal(42UL, r0);
    }

    [Fact]
    public void LegacyPacketLoadsReadThePacket()
    {
        byte[] mem = { 0x10, 0x20, 0x30, 0x40, 0x50 };
        var prog = new ProgramBuilder()
            .LoadAbs(MemSize.HalfWord).SetImm(1).Push()
            .Mov(Source.Reg, Arch.X64).SetDst(6).SetSrc(0).Push()
            .Mov(Source.Imm, Arch.X64).SetDst(2).SetImm(3).Push()
            .LoadInd(MemSize.Byte).SetSrc(2).SetImm(1).Push()
            .LeftShift(Source.Imm, Arch.X64).SetDst(6).SetImm(8).Push()
            .BitOr(Source.Reg, Arch.X64).SetDst(0).SetSrc(6).Push()
            .Exit().Push();
        Assert.Equal(0x302050UL, TestUtil.Exec(EbpfVm.CreateRaw(prog.ToBytes()), mem));
        var outside = new ProgramBuilder().LoadAbs(MemSize.Word).SetImm(2).Push().Exit().Push();
        var e = TestUtil.Fails(EbpfVm.CreateRaw(outside.ToBytes()), mem);
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        Assert.Contains("packet", e.Message);
    }
}
