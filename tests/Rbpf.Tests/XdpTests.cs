using Rbpf.Programs;

namespace Rbpf.Tests;

public class XdpTests
{
    private static byte[] Object() => File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "elf", "xdp_progs.o"));

    /// <summary>Ethernet + IPv4 + UDP (or another protocol) to <paramref name="port"/>, <paramref name="vlan"/>-tagged if asked.</summary>
    private static byte[] Frame(ushort port, byte proto = 17, int ihlWords = 5, bool vlan = false, int length = 64)
    {
        var f = new byte[Math.Max(length, 80)];
        for (int k = 0; k < 6; k++) { f[k] = (byte)(0xd0 + k); f[6 + k] = (byte)(0x50 + k); }
        int at = 12;
        if (vlan) { f[12] = 0x81; f[13] = 0x00; f[14] = 0x00; f[15] = 0x64; at = 16; }
        f[at] = 0x08; f[at + 1] = 0x00;
        int ip = at + 2;
        f[ip] = (byte)(0x40 | ihlWords);
        f[ip + 9] = proto;
        f[ip + 12] = 10; f[ip + 13] = 0; f[ip + 14] = 0; f[ip + 15] = 1;
        f[ip + 16] = 192; f[ip + 17] = 168; f[ip + 18] = 1; f[ip + 19] = 2;
        int l4 = ip + 4 * ihlWords;
        f[l4 + 2] = (byte)(port >> 8);
        f[l4 + 3] = (byte)port;
        return f[..length];
    }

    /// <summary>drop_port in plain C#: the verdict the program must give.</summary>
    private static XdpAction DropPortReference(byte[] f)
    {
        if (f.Length < 14 || f[12] != 0x08 || f[13] != 0x00) return XdpAction.Pass;
        if (f.Length < 34 || f[23] != 17) return XdpAction.Pass;
        int l4 = 14 + (f[14] & 0xf) * 4;
        if (l4 + 8 > f.Length) return XdpAction.Pass;
        return (f[l4 + 2] << 8 | f[l4 + 3]) == 9999 ? XdpAction.Drop : XdpAction.Pass;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AnXdpFilterDropsItsPortOnGeneratedPackets(bool jit)
    {
        var vm = EbpfVm.FromKernelObject(Object(), "drop_port");
        Assert.Equal(ProgramType.Xdp, vm.ProgramType);
        if (jit) vm.JitCompile();
        var rng = new Random(15);
        int drops = 0;
        for (int n = 0; n < 2000; n++)
        {
            ushort port = rng.Next(3) == 0 ? (ushort)9999 : (ushort)rng.Next(65536);
            var f = Frame(port, proto: rng.Next(4) == 0 ? (byte)6 : (byte)17, ihlWords: 5 + rng.Next(3), length: rng.Next(4) == 0 ? rng.Next(0, 64) : 64);
            if (rng.Next(10) == 0 && f.Length > 12) f[12] = 0x86;
            var expected = DropPortReference(f);
            var r = jit ? vm.ExecuteXdpJit(f) : vm.ExecuteXdp(f);
            Assert.Equal(expected, r.Action);
            Assert.Equal((0, f.Length), (r.Offset, r.Length));
            if (expected == XdpAction.Drop) drops++;
        }
        Assert.True(drops > 300);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void XdpTxSwapsTheAddressesInPlace(bool jit)
    {
        var vm = EbpfVm.FromKernelObject(Object(), "bounce");
        if (jit) vm.JitCompile();
        var f = Frame(53);
        var before = (byte[])f.Clone();
        var r = jit ? vm.ExecuteXdpJit(f) : vm.ExecuteXdp(f);
        Assert.Equal(XdpAction.Tx, r.Action);
        Assert.Equal(before[6..12], f[0..6]);
        Assert.Equal(before[0..6], f[6..12]);
        Assert.Equal(before[30..34], f[26..30]); // IP source <- destination
        Assert.Equal(before[26..30], f[30..34]);
        Assert.Equal(before[34..], f[34..]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AdjustHeadStripsAVlanTag(bool jit)
    {
        var vm = EbpfVm.FromKernelObject(Object(), "strip_vlan");
        if (jit) vm.JitCompile();
        var tagged = Frame(80, vlan: true);
        var buffer = new byte[256 + tagged.Length];
        tagged.CopyTo(buffer, 256);
        var r = jit ? vm.ExecuteXdpJit(buffer, new XdpOptions { Headroom = 256 }) : vm.ExecuteXdp(buffer, new XdpOptions { Headroom = 256 });
        Assert.Equal(XdpAction.Pass, r.Action);
        Assert.Equal((260, tagged.Length - 4), (r.Offset, r.Length));
        var frame = buffer.AsSpan(r.Offset, r.Length).ToArray();
        var untagged = Frame(80, vlan: false);
        Assert.Equal(untagged[..14], frame[..14]);          // the MACs moved, the type is IPv4 now
        Assert.Equal(untagged[14..60], frame[14..60]);
        var plain = Frame(80);
        Assert.Equal(XdpAction.Pass, vm.ExecuteXdp(plain).Action); // nothing to strip
    }

    [Fact]
    public void ContextAccessesTheKernelRefusesAreRefusedAtLoad()
    {
        var e = Assert.Throws<RbpfException>(() => EbpfVm.FromKernelObject(Object(), "bad_field"));
        Assert.Equal(RbpfErrorCode.InvalidProgram, e.Code);
        Assert.Contains("no xdp_md field at offset 24", e.Message);

        EbpfVm Load(string asm)
        {
            var vm = EbpfVm.ForProgramType(ProgramType.Xdp);
            vm.SetProgram(Assembler.Assemble(asm));
            return vm;
        }
        Assert.Contains("pointer field is read whole", Assert.Throws<RbpfException>(() => Load("ldxh r0, [r1+0]\nexit")).Message);
        Assert.Contains("read-only", Assert.Throws<RbpfException>(() => Load("stw [r1+12], 1\nmov r0, 2\nexit")).Message);
        Assert.Contains("moved by arithmetic", Assert.Throws<RbpfException>(() => Load("add r1, 4\nldxw r0, [r1+0]\nexit")).Message);
        Assert.Contains("on some paths", Assert.Throws<RbpfException>(() => Load("jeq r2, 0, +1\nmov r1, r10\nldxw r0, [r1-8]\nexit")).Message);
        // Found by the fuzzing target "kernel": addresses computed to land on the engine's own
        // context (next to the stack, or from the context's address) are refused, and the helpers
        // check the context's pointers as any address anyway.
        Assert.Contains("outside the frame", Assert.Throws<RbpfException>(() => Load("sth [r10+512], 0\nmov r0, 2\nexit")).Message);
        Assert.Contains("moved by arithmetic", Assert.Throws<RbpfException>(() =>
            Load("ldxw r2, [r1+0]\nmov r3, r1\nsub r3, r2\nadd r2, r3\nstxdw [r2+0], r2\nmov r0, 2\nexit")).Message);
        // Spilled to the stack and filled again, the context is still the context.
        var ok = Load("stxdw [r10-8], r1\nmov r1, 0\nldxdw r6, [r10-8]\nldxw r0, [r6+12]\nexit");
        Assert.Equal(7UL, ok.ExecuteXdp(new byte[20], new XdpOptions { IngressIfindex = 7 }).Result);
        Assert.Equal(ProgramType.Xdp, ProgramTypes.FromSection("xdp.frags"));
        Assert.Equal(ProgramType.SchedCls, ProgramTypes.FromSection("tc/ingress"));
        Assert.Equal(ProgramType.None, ProgramTypes.FromSection("kprobe/foo"));
    }
}
