using System.Runtime.InteropServices;

namespace Rbpf.Tests;

/// <summary>The examples of the rbpf README this project started from.</summary>
public class SeedExampleTests
{
    [Fact]
    public void Mov32Add32ReturnsThree()
    {
        byte[] prog =
        {
            0xb4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // mov32 r0, 0
            0xb4, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, // mov32 r1, 2
            0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // add32 r0, 1
            0x0c, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // add32 r0, r1
            0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
        };
        var vm = EbpfVm.CreateNoData(prog);
        Assert.Equal(3UL, TestUtil.Exec(vm));
    }

    [Fact]
    public void RawPacketLoadReturns0x11()
    {
        // 0x71 is ldxb (the seed's comment says ldxh): r0 = mem[2].
        byte[] prog =
        {
            0x71, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        byte[] mem = { 0xaa, 0xbb, 0x11, 0xcc, 0xdd };
        var vm = EbpfVm.CreateRaw(prog);
        Assert.Equal(0x11UL, TestUtil.Exec(vm, mem));
        Assert.Equal("ldxb r0, [r1+2]\nexit\n", Disassembler.Disassemble(prog));
    }

    [Fact]
    public unsafe void MetadataBufferReturns0x2211()
    {
        byte[] prog =
        {
            0x79, 0x11, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // ldxdw r1, [r1+8]
            0x69, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, // ldxh r0, [r1+2]
            0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
        };
        byte[] mem = { 0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd };
        byte[] mbuff = new byte[32];
        fixed (byte* m = mem)
        {
            MemoryMarshal.Write(mbuff.AsSpan(8), (ulong)m);
            MemoryMarshal.Write(mbuff.AsSpan(24), (ulong)m + (ulong)mem.Length);
            var vm = EbpfVm.CreateMbuff(prog);
            Assert.Equal(0x2211UL, TestUtil.Exec(vm, mem, mbuff));
        }
    }

    [Fact]
    public void FixedMetadataBufferWritesPacketPointers()
    {
        // Loads data and data_end from the VM's own buffer at 0x40 and 0x50 and returns the length.
        byte[] prog = Assembler.Assemble(@"
            ldxdw r2, [r1+0x40]
            ldxdw r3, [r1+0x50]
            mov64 r0, r3
            sub64 r0, r2
            ldxb r4, [r2+1]
            lsh64 r4, 32
            or64 r0, r4
            exit");
        var vm = EbpfVm.CreateFixedMbuff(prog, 0x40, 0x50);
        byte[] packet = { 1, 0x7f, 3, 4, 5, 6, 7 };
        Assert.Equal((0x7fUL << 32) | 7, TestUtil.Exec(vm, packet));
        Assert.Equal((0x7fUL << 32) | 7, vm.Execute(packet)); // the buffer is rebuilt every run // the buffer is rebuilt every run
    }

    [Fact]
    public void AssemblerProducesTheSeedBytes()
    {
        byte[] prog = Assembler.Assemble(@"add64 r1, 0x605
mov64 r2, 0x32
mov64 r1, r0
be16 r0
neg64 r2
exit");
        byte[] expected =
        {
            0x07, 0x01, 0x00, 0x00, 0x05, 0x06, 0x00, 0x00,
            0xb7, 0x02, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00,
            0xbf, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xdc, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
            0x87, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        Assert.Equal(expected, prog);
        Assert.Equal("add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit\n", Disassembler.Disassemble(prog));
    }

    [Fact]
    public void BuilderProducesTheSeedBytes()
    {
        var code = new ProgramBuilder()
            .Add(Source.Imm, Arch.X64).SetDst(1).SetImm(0x605).Push()
            .Mov(Source.Imm, Arch.X64).SetDst(2).SetImm(0x32).Push()
            .Mov(Source.Reg, Arch.X64).SetSrc(0).SetDst(1).Push()
            .SwapBytes(Endian.Big).SetDst(0).SetImm(0x10).Push()
            .Negate(Arch.X64).SetDst(2).Push()
            .Exit().Push();
        Assert.Equal(Assembler.Assemble("add64 r1, 0x605\nmov64 r2, 0x32\nmov64 r1, r0\nbe16 r0\nneg64 r2\nexit"), code.ToBytes());
    }
}
