using System.Buffers.Binary;
using Rbpf.Cbpf;

namespace Rbpf.Tests;

public class CbpfTests
{
    /// <summary>libpcap's bpf_filter(), written again from its definition: the reference the translation must match.</summary>
    internal static uint Reference(IReadOnlyList<CbpfInstruction> p, ReadOnlySpan<byte> pkt)
    {
        uint a = 0, x = 0;
        var mem = new uint[16];
        uint len = (uint)pkt.Length;
        int pc = 0;
        while (true)
        {
            var i = p[pc++];
            int code = i.Code;
            uint k = i.K;
            switch (code & 7)
            {
                case 0: // ld
                case 1: // ldx
                {
                    int mode = code & 0xe0, size = (code & 0x18) switch { 0x08 => 2, 0x10 => 1, _ => 4 };
                    uint v;
                    switch (mode)
                    {
                        case 0x00: v = k; break;
                        case 0x80: v = len; break;
                        case 0x60: v = mem[k]; break;
                        case 0xa0: // msh
                            if (k >= len) return 0;
                            v = (uint)(pkt[(int)k] & 0xf) << 2;
                            break;
                        default:
                        {
                            ulong off = mode == 0x40 ? (ulong)x + k : k;
                            if (off + (ulong)size > len) return 0;
                            v = size switch
                            {
                                1 => pkt[(int)off],
                                2 => BinaryPrimitives.ReadUInt16BigEndian(pkt[(int)off..]),
                                _ => BinaryPrimitives.ReadUInt32BigEndian(pkt[(int)off..]),
                            };
                            break;
                        }
                    }
                    if ((code & 7) == 0) a = v; else x = v;
                    break;
                }
                case 2: mem[k] = a; break;
                case 3: mem[k] = x; break;
                case 4:
                {
                    uint s = (code & 8) != 0 ? x : k;
                    switch (code & 0xf0)
                    {
                        case 0x00: a += s; break;
                        case 0x10: a -= s; break;
                        case 0x20: a *= s; break;
                        case 0x30: if (s == 0) return 0; a /= s; break;
                        case 0x40: a |= s; break;
                        case 0x50: a &= s; break;
                        case 0x60: a = s >= 32 ? 0 : a << (int)s; break; // libpcap 1.10: 0 from 32 on
                        case 0x70: a = s >= 32 ? 0 : a >> (int)s; break;
                        case 0x80: a = (uint)-(int)a; break;
                        case 0x90: if (s == 0) return 0; a %= s; break;
                        case 0xa0: a ^= s; break;
                    }
                    break;
                }
                case 5:
                {
                    int op = code & 0xf0;
                    if (op == 0) { pc += (int)k; break; }
                    uint s = (code & 8) != 0 ? x : k;
                    bool taken = op switch { 0x10 => a == s, 0x20 => a > s, 0x30 => a >= s, _ => (a & s) != 0 };
                    pc += taken ? i.Jt : i.Jf;
                    break;
                }
                case 6: return (code & 0x18) == 0x10 ? a : k;
                case 7: if ((code & 0xf8) == 0) x = a; else a = x; break;
            }
        }
    }

    private static (ulong Interp, ulong Jit) Run(IReadOnlyList<CbpfInstruction> p, byte[] packet)
    {
        var vm = EbpfVm.CreateRaw(ClassicBpf.Translate(p));
        ulong i = vm.Execute((byte[])packet.Clone());
        vm.JitCompile();
        return (i, vm.ExecuteJit((byte[])packet.Clone()));
    }

    // tcpdump -dd -y EN10MB 'ip and tcp dst port 80' (libpcap 1.10, optimised)
    private const string TcpPort80 = """
        { 0x28, 0, 0, 0x0000000c },
        { 0x15, 0, 8, 0x00000800 },
        { 0x30, 0, 0, 0x00000017 },
        { 0x15, 0, 6, 0x00000006 },
        { 0x28, 0, 0, 0x00000014 },
        { 0x45, 4, 0, 0x00001fff },
        { 0xb1, 0, 0, 0x0000000e },
        { 0x48, 0, 0, 0x00000010 },
        { 0x15, 0, 1, 0x00000050 },
        { 0x6, 0, 0, 0x00040000 },
        { 0x6, 0, 0, 0x00000000 },
        """;

    internal static byte[] Tcp(ushort dport, int ipHeaderWords = 5, ushort fragment = 0, int length = 64)
    {
        var f = new byte[length];
        f[12] = 0x08; f[13] = 0x00;
        f[14] = (byte)(0x40 | ipHeaderWords);
        f[20] = (byte)(fragment >> 8); f[21] = (byte)fragment;
        f[23] = 6;
        int l4 = 14 + 4 * ipHeaderWords;
        if (l4 + 4 <= length) { f[l4 + 2] = (byte)(dport >> 8); f[l4 + 3] = (byte)dport; }
        return f;
    }

    [Fact]
    public void ATcpdumpFilterGivesLibpcapsVerdicts()
    {
        var p = ClassicBpf.Parse(TcpPort80);
        Assert.Equal(11, p.Length);
        foreach (var (packet, expected) in new (byte[], ulong)[]
        {
            (Tcp(80), 0x40000), (Tcp(81), 0), (Tcp(80, ipHeaderWords: 7), 0x40000), (Tcp(80, fragment: 0x0010), 0),
            (Tcp(80, length: 14 + 20 + 3), 0), // truncated inside the port: the load fails, the packet is dropped
            (new byte[10], 0),
        })
        {
            Assert.Equal(expected, Reference(p, packet));
            Assert.Equal((expected, expected), Run(p, packet));
        }
    }

    [Fact]
    public void TcpdumpDecimalOutputReadsTheSame()
    {
        var dd = ClassicBpf.Parse(TcpPort80);
        string ddd = $"{dd.Length}\n" + string.Join("\n", dd.Select(i => $"{i.Code} {i.Jt} {i.Jf} {i.K}")) + "\n";
        Assert.Equal(dd, ClassicBpf.Parse(ddd));
        Assert.Contains("line 1 says 3 instructions, 11 follow", Assert.Throws<RbpfException>(() => ClassicBpf.Parse("3\n" + ddd[(ddd.IndexOf('\n') + 1)..])).Message);
        Assert.Contains("expected 4 numbers", Assert.Throws<RbpfException>(() => ClassicBpf.Parse("{ 0x6, 0, 0 },")).Message);
    }

    [Theory]
    [InlineData(new ushort[] { }, "no instructions")]
    [InlineData(new ushort[] { 0x28 }, "does not end with a return")]
    [InlineData(new ushort[] { 0xff, 0x06 }, "unknown opcode 0xff")]
    [InlineData(new ushort[] { 0x1ff, 0x06 }, "unknown opcode 0x01ff")]
    [InlineData(new ushort[] { 0x34, 0x06 }, "division by the constant 0")]
    [InlineData(new ushort[] { 0x94, 0x06 }, "modulo by the constant 0")]
    [InlineData(new ushort[] { 0x60, 0x06 }, "scratch word 16")]
    [InlineData(new ushort[] { 0x05, 0x06 }, "jumps past the end")]
    public void ValidationRefusesWhatLibpcapRefuses(ushort[] codes, string message)
    {
        var p = codes.Select(c => new CbpfInstruction(c, 0, 0, c switch { 0x60 => 16u, 0x05 => 5u, _ => 0u })).ToList();
        var e = Assert.Throws<RbpfException>(() => ClassicBpf.Translate(p));
        Assert.Equal(RbpfErrorCode.InvalidProgram, e.Code);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void LinuxAncillaryLoadsAreRefusedSayingSo()
    {
        // ld [SKF_AD_OFF + SKF_AD_PROTOCOL]
        var p = new[] { new CbpfInstruction(0x28, 0, 0, 0xfffff000), new CbpfInstruction(0x16, 0, 0, 0) };
        Assert.Contains("Linux's ancillary", Assert.Throws<RbpfException>(() => ClassicBpf.Translate(p)).Message);
    }

    [Fact]
    public void ScratchWordsStartAtZeroAndDivisionByXZeroDrops()
    {
        var p = new[]
        {
            new CbpfInstruction(0x60, 0, 0, 3),   // ld M[3]: 0
            new CbpfInstruction(0x04, 0, 0, 7),   // add #7
            new CbpfInstruction(0x02, 0, 0, 5),   // st M[5]
            new CbpfInstruction(0x61, 0, 0, 5),   // ldx M[5]
            new CbpfInstruction(0x0c, 0, 0, 0),   // add x: 14
            new CbpfInstruction(0x87, 0, 0, 0),   // txa... a = x = 7
            new CbpfInstruction(0x07, 0, 0, 0),   // tax
            new CbpfInstruction(0x16, 0, 0, 0),   // ret a
        };
        Assert.Equal((7UL, 7UL), Run(p, new byte[1]));
        var div = new[] { new CbpfInstruction(0x00, 0, 0, 9), new CbpfInstruction(0x3c, 0, 0, 0), new CbpfInstruction(0x16, 0, 0, 0) };
        Assert.Equal((0UL, 0UL), Run(div, new byte[1])); // 9 / X(0): returns 0
    }

    /// <summary>One length check before the first load stands for every load on the way to an
    /// accepting return; a load after an accepting return was possible keeps its own check.</summary>
    [Fact]
    public void OneLengthCheckCoversTheLoadsBeforeAnAccept()
    {
        // ldh [12]; jeq #0x800 jt 0 jf 3; ldb [23]; jeq #6 jt 0 jf 1; ret #1; ret #0
        var tcp = new[]
        {
            new CbpfInstruction(0x28, 0, 0, 12), new CbpfInstruction(0x15, 0, 3, 0x800), new CbpfInstruction(0x30, 0, 0, 23),
            new CbpfInstruction(0x15, 0, 1, 6), new CbpfInstruction(0x06, 0, 0, 1), new CbpfInstruction(0x06, 0, 0, 0),
        };
        string text = ClassicBpf.TranslateToAssembly(tcp);
        Assert.Equal(new[] { "jlt r2, 24, ret0" }, text.Split('\n').Where(l => l.StartsWith("jlt r2")).ToArray());
        Assert.DoesNotContain("mov32 r5", text); // X is never read: not set to 0 either
        var frame = Tcp(80, length: 24);
        Assert.Equal((1UL, 1UL), Run(tcp, frame));
        Assert.Equal((0UL, 0UL), Run(tcp, frame[..23]));

        // ldb [0]; jeq #1 jt 0 jf 1; ret #5; ldb [40]; ret a: the accept at 2 needs one byte only.
        var early = new[]
        {
            new CbpfInstruction(0x30, 0, 0, 0), new CbpfInstruction(0x15, 0, 1, 1), new CbpfInstruction(0x06, 0, 0, 5),
            new CbpfInstruction(0x30, 0, 0, 40), new CbpfInstruction(0x16, 0, 0, 0),
        };
        text = ClassicBpf.TranslateToAssembly(early);
        Assert.Equal(new[] { "jlt r2, 1, ret0", "jlt r2, 41, ret0" }, text.Split('\n').Where(l => l.StartsWith("jlt r2")).ToArray());
        Assert.Equal((5UL, 5UL), Run(early, new byte[] { 1, 0 }));
        Assert.Equal((0UL, 0UL), Run(early, new byte[] { 2, 0 }));
        var long41 = new byte[41];
        long41[40] = 9;
        Assert.Equal((9UL, 9UL), Run(early, long41));

        // ldb [0]; jeq #1 jt 0 jf 1; ret a; ldb [40]; ret #1: returning A may accept (A is 1 there).
        var returnsA = new[]
        {
            new CbpfInstruction(0x30, 0, 0, 0), new CbpfInstruction(0x15, 0, 1, 1), new CbpfInstruction(0x16, 0, 0, 0),
            new CbpfInstruction(0x30, 0, 0, 40), new CbpfInstruction(0x06, 0, 0, 1),
        };
        Assert.Equal((1UL, 1UL), Run(returnsA, new byte[] { 1, 0 }));
        Assert.Equal((0UL, 0UL), Run(returnsA, new byte[] { 2, 0 }));
    }

    /// <summary>Random programs libpcap's validator would accept, on random packets: the same verdict
    /// as the reference, in both engines. With many drops, half the returns are 0: the translation
    /// checks the length once for every load before an accepting return, and no more after it.</summary>
    [Theory]
    [InlineData(16, false)]
    [InlineData(17, true)]
    public void RandomValidProgramsMatchTheReference(int seed, bool manyDrops)
    {
        var rng = new Random(seed);
        ushort[] loads = { 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x00, 0x80, 0x60, 0x01, 0x81, 0x61, 0xb1, 0x02, 0x03, 0x07, 0x87 };
        ushort[] alu = { 0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74, 0x7c, 0x84, 0x94, 0x9c, 0xa4, 0xac };
        ushort[] jumps = { 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x05 };
        int checkedRuns = 0;
        for (int n = 0; n < 1500; n++)
        {
            int count = rng.Next(2, 30);
            var p = new List<CbpfInstruction>();
            for (int pc = 0; pc < count - 1; pc++)
            {
                int kind = rng.Next(10);
                ushort code = kind < 4 ? loads[rng.Next(loads.Length)] : kind < 7 ? alu[rng.Next(alu.Length)] : kind < 9 ? jumps[rng.Next(jumps.Length)] : (ushort)(rng.Next(2) == 0 ? 0x06 : 0x16);
                if (manyDrops && code == 0x16 && rng.Next(2) == 0) code = 0x06;
                uint k = (code & 0xe0) == 0x60 || (code & 7) is 2 or 3 ? (uint)rng.Next(16)
                    : (code & 7) == 4 && (code & 0xf0) is 0x60 or 0x70 && (code & 8) == 0 ? (uint)rng.Next(32)
                    : (code & 7) == 4 && (code & 0xf0) is 0x30 or 0x90 && (code & 8) == 0 ? (uint)rng.Next(1, 9)
                    : code is 0x06 or 0x16 && manyDrops ? (uint)rng.Next(2)
                    : rng.Next(4) == 0 ? (uint)rng.Next() : (uint)rng.Next(80);
                byte jt = 0, jf = 0;
                int left = count - pc - 2;
                if ((code & 7) == 5)
                {
                    if (code == 0x05) k = (uint)rng.Next(left + 1);
                    jt = (byte)rng.Next(Math.Min(left, 255) + 1);
                    jf = (byte)rng.Next(Math.Min(left, 255) + 1);
                }
                p.Add(new CbpfInstruction(code, jt, jf, k));
            }
            p.Add(new CbpfInstruction(rng.Next(2) == 0 ? (ushort)0x06 : (ushort)0x16, 0, 0, manyDrops ? (uint)rng.Next(2) : (uint)rng.Next()));
            try { ClassicBpf.Validate(p); }
            catch (RbpfException) { continue; }
            var packet = new byte[rng.Next(0, 100)];
            rng.NextBytes(packet);
            uint expected = Reference(p, packet);
            var got = Run(p, packet);
            Assert.True(got == (expected, expected), $"reference {expected}, got {got}:\n{ClassicBpf.TranslateToAssembly(p)}");
            checkedRuns++;
        }
        Assert.True(checkedRuns > 1000, $"only {checkedRuns} programs were valid");
    }
}
