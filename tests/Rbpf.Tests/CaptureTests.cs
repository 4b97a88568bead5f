using System.Buffers.Binary;
using Rbpf.Programs;

namespace Rbpf.Tests;

public class CaptureTests
{
    private static CapturedPacket P(int n, int length) =>
        new(Enumerable.Range(0, length).Select(k => (byte)(n + k)).ToArray(), (uint)length + 10, 1_700_000_000_000_000_000UL + (ulong)n * 1000);

    [Fact]
    public void PcapRoundTrips()
    {
        var packets = new[] { P(1, 60), P(2, 0), P(3, 1500) };
        var (link, back) = Capture.Read(Capture.WritePcap(packets, 1));
        Assert.Equal(1u, link);
        Assert.Equal(packets.Length, back.Count);
        for (int k = 0; k < packets.Length; k++)
        {
            Assert.Equal(packets[k].Data, back[k].Data);
            Assert.Equal(packets[k].OriginalLength, back[k].OriginalLength);
            Assert.Equal(packets[k].Timestamp, back[k].Timestamp);
        }
    }

    /// <summary>A pcapng file as Wireshark writes one (the fuzzing seeds' builder).</summary>
    internal static byte[] Pcapng(params byte[][] packets) => Rbpf.Fuzz.Seeds.Pcapng(packets);

    [Fact]
    public void EveryCaptureFuzzingSeedReads()
    {
        // The fuzzer starts from these: each flavour (pcap in both byte orders and resolutions,
        // pcapng) must read, or the fuzzer never gets past its magic number.
        var seeds = Rbpf.Fuzz.Seeds.For("capture", TestPaths.RepoRoot).ToList();
        Assert.True(seeds.Count >= 4);
        foreach (var (name, data) in seeds)
        {
            var (link, packets) = Capture.Read(data);
            Assert.Equal(1u, link);
            Assert.True(packets.Count == 2, name);
            Assert.Equal(60, packets[0].Data.Length);
        }
    }

    [Fact]
    public void PcapngReads()
    {
        var (link, packets) = Capture.Read(Pcapng(new byte[] { 1, 2, 3 }, new byte[61]));
        Assert.Equal(1u, link);
        Assert.Equal(2, packets.Count);
        Assert.Equal(new byte[] { 1, 2, 3 }, packets[0].Data);
        Assert.Equal(61, packets[1].Data.Length);
        Assert.Equal(1_700_000_000_000_000_000UL, packets[0].Timestamp); // microseconds, in nanoseconds
    }

    [Fact]
    public void DamagedCapturesAreErrorsNeverExceptions()
    {
        var good = Capture.WritePcap(new[] { P(1, 60), P(2, 70) });
        var ng = Pcapng(new byte[40], new byte[50]);
        Assert.Contains("not a pcap", Assert.Throws<RbpfException>(() => Capture.Read(new byte[30])).Message);
        Assert.Contains("70 bytes captured, 67 left", Assert.Throws<RbpfException>(() => Capture.Read(good.AsSpan(0, good.Length - 3))).Message);
        var rng = new Random(7);
        foreach (var file in new[] { good, ng })
            for (int n = 0; n < 3000; n++)
            {
                var copy = (byte[])file.Clone();
                for (int k = rng.Next(1, 4); k > 0; k--) copy[rng.Next(copy.Length)] = (byte)rng.Next(256);
                try { Capture.Read(rng.Next(4) == 0 ? copy.AsSpan(0, rng.Next(copy.Length)) : copy); }
                catch (RbpfException) { }
            }
    }
}
