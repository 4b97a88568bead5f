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

    /// <summary>A pcapng file as Wireshark writes one: section header, interface (microseconds), enhanced packets.</summary>
    internal static byte[] Pcapng(params byte[][] packets)
    {
        var ms = new MemoryStream();
        void Block(uint type, byte[] body)
        {
            int padded = (body.Length + 3) & ~3;
            uint total = (uint)(12 + padded);
            ms.Write(BitConverter.GetBytes(type));
            ms.Write(BitConverter.GetBytes(total));
            ms.Write(body);
            ms.Write(new byte[padded - body.Length]);
            ms.Write(BitConverter.GetBytes(total));
        }
        var shb = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(shb, 0x1A2B3C4D);
        BinaryPrimitives.WriteUInt16LittleEndian(shb.AsSpan(4), 1);
        BinaryPrimitives.WriteInt64LittleEndian(shb.AsSpan(8), -1);
        Block(0x0A0D0D0A, shb);
        var idb = new byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(idb, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(idb.AsSpan(4), 65535);
        Block(1, idb);
        ulong ts = 1_700_000_000_000_000;
        foreach (var p in packets)
        {
            var epb = new byte[20 + p.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(4), (uint)(ts >> 32));
            BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(8), (uint)ts);
            BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(12), (uint)p.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(16), (uint)p.Length);
            p.CopyTo(epb, 20);
            Block(6, epb);
            ts += 1;
        }
        return ms.ToArray();
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
