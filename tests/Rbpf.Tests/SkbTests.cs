using Rbpf.Programs;

namespace Rbpf.Tests;

public class SkbTests
{
    private static byte[] Object() => File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "elf", "tc_progs.o"));

    private static byte[] Frame(ushort etherType, byte proto, byte tos, int length = 64)
    {
        var f = new byte[Math.Max(length, 40)];
        f[12] = (byte)(etherType >> 8); f[13] = (byte)etherType;
        f[14] = 0x45; f[15] = tos; f[23] = proto;
        return f[..length];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ATcClassifierReadsAndSetsSkbFields(bool jit)
    {
        var vm = EbpfVm.FromKernelObject(Object(), "classify");
        Assert.Equal(ProgramType.SchedCls, vm.ProgramType);
        if (jit) vm.JitCompile();
        var rng = new Random(15);
        for (int n = 0; n < 500; n++)
        {
            ushort type = rng.Next(5) == 0 ? (ushort)0x86dd : (ushort)0x0800;
            byte proto = (byte)(rng.Next(3) switch { 0 => 1, 1 => 6, _ => 17 });
            byte tos = (byte)rng.Next(256);
            int length = rng.Next(6) == 0 ? rng.Next(0, 40) : rng.Next(40, 120);
            var f = Frame(type, proto, tos, length);
            var r = vm.ExecuteSkb(f, new SkbOptions { Ifindex = 7, Mark = 99 }, jit);
            // The same logic in plain C#.
            bool ipv4 = length >= 34 && type == 0x0800;
            Assert.Equal(ipv4 && proto == 1 ? 2UL : 0UL, r.Result);   // TC_ACT_SHOT 2, TC_ACT_OK 0
            Assert.Equal(ipv4 ? tos : 99u, r.Mark);
            Assert.Equal(ipv4 ? (uint)length : 0u, r.Priority);
            Assert.Equal(ipv4 ? 0x10001u : 0u, r.TcClassid);
            Assert.Equal(ipv4 ? 7u : 0u, r.Cb[2]);
        }
    }

    [Theory]
    [InlineData(false, "tcp_only")]
    [InlineData(true, "tcp_only")]
    [InlineData(false, "tcp_only_ld_abs")]
    [InlineData(true, "tcp_only_ld_abs")]
    public void ASocketFilterKeepsTcpWithSkbLoadBytesOrLdAbs(bool jit, string function)
    {
        var vm = EbpfVm.FromKernelObject(Object(), function);
        Assert.Equal(ProgramType.SocketFilter, vm.ProgramType);
        if (jit) vm.JitCompile();
        Assert.Equal(64UL, vm.ExecuteSkb(Frame(0x0800, 6, 0), jit: jit).Result);
        Assert.Equal(0UL, vm.ExecuteSkb(Frame(0x0800, 17, 0), jit: jit).Result);
        Assert.Equal(0UL, vm.ExecuteSkb(Frame(0x86dd, 6, 0), jit: jit).Result);
        Assert.Equal(0UL, vm.ExecuteSkb(Frame(0x0800, 6, 0, length: 20), jit: jit).Result); // the load fails: dropped
    }

    [Fact]
    public void WhatEachTypeMayNotDoIsRefused()
    {
        var e = Assert.Throws<RbpfException>(() => EbpfVm.FromKernelObject(Object(), "reads_data"));
        Assert.Contains("socket filter programs have no __sk_buff field at offset 76", e.Message);
        EbpfVm Load(ProgramType type, string asm)
        {
            var vm = EbpfVm.ForProgramType(type);
            vm.SetProgram(Assembler.Assemble(asm));
            return vm;
        }
        Assert.Contains("read-only for socket filter", Assert.Throws<RbpfException>(() => Load(ProgramType.SocketFilter, "stw [r1+8], 1\nmov r0, 0\nexit")).Message);
        Assert.Contains("read-only", Assert.Throws<RbpfException>(() => Load(ProgramType.SchedCls, "stw [r1+0], 1\nmov r0, 0\nexit")).Message);
        Assert.Contains("8-byte LD_ABS", Assert.Throws<RbpfException>(() => Load(ProgramType.SocketFilter, "ldabsdw 0\nexit")).Message);
        // LD_ABS has the kernel's meaning in these types: network byte order, 0 from outside the packet.
        var abs = Load(ProgramType.SocketFilter, "ldabsh 1\nadd r0, 1\nexit");
        Assert.Equal(0x0203UL + 1, abs.ExecuteSkb(new byte[] { 1, 2, 3 }).Result);
        Assert.Equal(0UL, abs.ExecuteSkb(new byte[] { 1, 2 }).Result);
        abs.JitCompile();
        Assert.Equal(0x0203UL + 1, abs.ExecuteSkb(new byte[] { 1, 2, 3 }, jit: true).Result);
        Assert.Equal(0UL, abs.ExecuteSkb(new byte[] { 1, 2 }, jit: true).Result);
        // Found by the fuzzing target "kernel": after a legacy packet load or a call, r1-r5 are
        // undefined for the kernel, yet here r1 may still hold the context's address; reading
        // through it (even after a copy or a spill) would read the engine's own context.
        foreach (var asm in new[]
        {
            "ldabsh 12\nldxw r2, [r1+197]\nmov r0, r2\nexit",
            "call bpf_skb_load_bytes\nmov r6, r1\nldxw r0, [r6+0]\nexit",
            "ldabsb 0\nstxdw [r10-8], r1\nldxdw r3, [r10-8]\nldxw r0, [r3+200]\nexit",
        })
            Assert.Contains("left undefined", Assert.Throws<RbpfException>(() => Load(ProgramType.SocketFilter, asm)).Message);
        var cb = Load(ProgramType.SocketFilter, "stw [r1+48], 5\nldxw r0, [r1+48]\nexit"); // cb[0] is writable everywhere
        Assert.Equal(5UL, cb.ExecuteSkb(new byte[20]).Result);
    }

    private static ushort IpChecksum(ReadOnlySpan<byte> header)
    {
        uint sum = 0;
        for (int k = 0; k < header.Length; k += 2) sum += (uint)(header[k] << 8 | header[k + 1]);
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void L3AndL4CsumReplaceKeepChecksumsRight(bool jit)
    {
        // Rewrites the IPv4 destination to 192.168.0.1 and fixes the header checksum (offset 24)
        // with bpf_l3_csum_replace, then the UDP checksum (offset 40) with bpf_l4_csum_replace.
        var vm = EbpfVm.ForProgramType(ProgramType.SchedCls);
        vm.SetProgram(Assembler.Assemble("""
            mov r6, r1
            ldxw r7, [r6+76]
            ldxw r8, [r6+80]
            mov r2, r7
            add r2, 42
            jgt r2, r8, out
            ldxw r9, [r7+30]
            stw [r7+30], 0x0100a8c0
            mov r1, r6
            mov r2, 24
            mov r3, r9
            mov r4, 0x0100a8c0
            mov r5, 4
            call bpf_l3_csum_replace
            jne r0, 0, out
            mov r1, r6
            mov r2, 40
            mov r3, r9
            mov r4, 0x0100a8c0
            mov r5, 0x34
            call bpf_l4_csum_replace
            out:
            exit
            """));
        if (jit) vm.JitCompile();
        var rng = new Random(10);
        for (int n = 0; n < 200; n++)
        {
            var f = new byte[60];
            rng.NextBytes(f);
            f[12] = 0x08; f[13] = 0x00; f[14] = 0x45; f[23] = 17;
            f[24] = f[25] = 0;
            var check = IpChecksum(f.AsSpan(14, 20));
            f[24] = (byte)(check >> 8); f[25] = (byte)check;
            bool noUdpSum = n % 4 == 0;
            if (noUdpSum) f[40] = f[41] = 0;
            ushort udpBefore = (ushort)(f[40] << 8 | f[41]);
            var old = f[30..34];
            Assert.Equal(0UL, vm.ExecuteSkb(f, jit: jit).Result);
            Assert.Equal(new byte[] { 192, 168, 0, 1 }, f[30..34]);
            Assert.Equal(0, IpChecksum(f.AsSpan(14, 20)));          // the header checksums to 0 again
            ushort udpAfter = (ushort)(f[40] << 8 | f[41]);
            if (noUdpSum) Assert.Equal(0, udpAfter);                // BPF_F_MARK_MANGLED_0 leaves "no checksum" alone
            else
            {
                // One's complement: the new sum is the old one adjusted by exactly the address's change.
                uint sum = (ushort)~udpBefore;
                sum += (ushort)~(old[0] << 8 | old[1]) + (uint)(ushort)~(old[2] << 8 | old[3]) + (192u << 8 | 168) + (0u << 8 | 1);
                while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
                ushort expected = (ushort)~sum;
                Assert.Equal(expected == 0 ? 0xffff : expected, udpAfter);
            }
        }
    }
}
