using System.Buffers.Binary;

namespace Rbpf.Programs;

/// <summary>One packet of a capture: its bytes as captured, its length on the wire, its time.</summary>
/// <param name="Data">The captured bytes (possibly fewer than the packet had: a truncated capture).</param>
/// <param name="OriginalLength">Its length on the wire.</param>
/// <param name="Timestamp">Nanoseconds since the epoch.</param>
public sealed record CapturedPacket(byte[] Data, uint OriginalLength, ulong Timestamp);

/// <summary>
/// Reads pcap and pcapng captures (a reader of our own: the two formats need a few dozen lines, and
/// owning them means no native dependency for the library and a precise error for every malformed
/// file) and writes pcap.
/// </summary>
public static class Capture
{
    private static RbpfException Bad(string message) => new(RbpfErrorCode.InvalidArgument, "capture: " + message);

    /// <summary>The link type (1: Ethernet) and every packet of a pcap or pcapng file's bytes.</summary>
    public static (uint LinkType, List<CapturedPacket> Packets) Read(ReadOnlySpan<byte> file)
    {
        if (file.Length < 4) throw Bad($"{file.Length} bytes is too short for a pcap or pcapng file");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(file);
        if (magic == 0x0A0D0D0A) return ReadPcapng(file);
        return ReadPcap(file);
    }

    private static (uint, List<CapturedPacket>) ReadPcap(ReadOnlySpan<byte> f)
    {
        if (f.Length < 24) throw Bad("shorter than a pcap file header (24 bytes)");
        uint magicLe = BinaryPrimitives.ReadUInt32LittleEndian(f);
        bool big;
        bool nanos;
        switch (magicLe)
        {
            case 0xa1b2c3d4: big = false; nanos = false; break;
            case 0xa1b23c4d: big = false; nanos = true; break;
            case 0xd4c3b2a1: big = true; nanos = false; break;
            case 0x4d3cb2a1: big = true; nanos = true; break;
            default: throw Bad($"not a pcap or pcapng file (magic 0x{magicLe:x8})");
        }
        uint U32(ReadOnlySpan<byte> s) => big ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);
        uint link = U32(f[20..]) & 0x0fff_ffff;
        var packets = new List<CapturedPacket>();
        int at = 24;
        while (at < f.Length)
        {
            if (f.Length - at < 16) throw Bad($"record {packets.Count} at byte {at}: its header is cut short");
            uint sec = U32(f[at..]), frac = U32(f[(at + 4)..]), incl = U32(f[(at + 8)..]), orig = U32(f[(at + 12)..]);
            at += 16;
            if (incl > (uint)(f.Length - at)) throw Bad($"record {packets.Count}: {incl} bytes captured, {f.Length - at} left in the file");
            if (incl > 1 << 26) throw Bad($"record {packets.Count}: {incl} bytes is not a packet");
            packets.Add(new CapturedPacket(f.Slice(at, (int)incl).ToArray(), orig, sec * 1_000_000_000UL + frac * (nanos ? 1UL : 1000UL)));
            at += (int)incl;
        }
        return (link, packets);
    }

    private static (uint, List<CapturedPacket>) ReadPcapng(ReadOnlySpan<byte> file)
    {
        byte[] f = file.ToArray();
        var packets = new List<CapturedPacket>();
        var links = new List<(uint Link, ulong Resolution)>();
        bool big = false;
        uint link = 1;
        int at = 0;
        while (at < f.Length)
        {
            if (f.Length - at < 12) throw Bad($"block at byte {at} is cut short");
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(at));
            if (type == 0x0A0D0D0A)
            {
                uint bom = BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(at + 8));
                big = bom switch { 0x1A2B3C4D => false, 0x4D3C2B1A => true, _ => throw Bad($"section header at byte {at} has a bad byte-order magic") };
                links.Clear();
            }
            uint U32(int off) => big ? BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(off)) : BinaryPrimitives.ReadUInt32LittleEndian(f.AsSpan(off));
            ushort U16(int off) => big ? BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off)) : BinaryPrimitives.ReadUInt16LittleEndian(f.AsSpan(off));
            type = U32(at);
            uint length = U32(at + 4);
            if (length < 12 || length % 4 != 0 || length > (uint)(f.Length - at)) throw Bad($"block at byte {at} has a bad length {length}");
            int body = at + 8, end = at + (int)length - 4;
            switch (type)
            {
                case 1: // interface description
                    if (end - body < 8) throw Bad($"interface block at byte {at} is cut short");
                    links.Add((U16(body), 1000)); // microseconds unless an if_tsresol option says otherwise
                    ParseResolution(f, body + 8, end, big, links);
                    if (links.Count == 1) link = links[0].Link;
                    break;
                case 6: // enhanced packet
                {
                    if (end - body < 20) throw Bad($"packet block at byte {at} is cut short");
                    uint iface = U32(body), hi = U32(body + 4), lo = U32(body + 8), incl = U32(body + 12), orig = U32(body + 16);
                    if (iface >= links.Count) throw Bad($"packet block at byte {at} names interface {iface}, which was not described");
                    if (incl > (uint)(end - body - 20)) throw Bad($"packet block at byte {at}: {incl} bytes captured do not fit in it");
                    ulong ts = ((ulong)hi << 32 | lo) * links[(int)iface].Resolution;
                    packets.Add(new CapturedPacket(f.AsSpan(body + 20, (int)incl).ToArray(), orig, ts));
                    break;
                }
                case 3: // simple packet
                {
                    if (end - body < 4 || links.Count == 0) throw Bad($"simple packet block at byte {at} is cut short or has no interface");
                    uint orig = U32(body);
                    int incl = (int)Math.Min(orig, (uint)(end - body - 4));
                    packets.Add(new CapturedPacket(f.AsSpan(body + 4, incl).ToArray(), orig, 0));
                    break;
                }
            }
            at += (int)length;
        }
        return (link, packets);
    }

    private static void ParseResolution(ReadOnlySpan<byte> f, int at, int end, bool big, List<(uint Link, ulong Resolution)> links)
    {
        while (end - at >= 4)
        {
            ushort code = big ? BinaryPrimitives.ReadUInt16BigEndian(f[at..]) : BinaryPrimitives.ReadUInt16LittleEndian(f[at..]);
            ushort len = big ? BinaryPrimitives.ReadUInt16BigEndian(f[(at + 2)..]) : BinaryPrimitives.ReadUInt16LittleEndian(f[(at + 2)..]);
            if (code == 0 || at + 4 + len > end) return;
            if (code == 9 && len >= 1) // if_tsresol: 10^-n seconds (or 2^-n with the top bit)
            {
                byte r = f[at + 4];
                ulong nanos = (r & 0x80) == 0 && r <= 9 ? (ulong)Math.Pow(10, 9 - r) : 1;
                links[^1] = (links[^1].Link, Math.Max(nanos, 1));
            }
            at += 4 + ((len + 3) & ~3);
        }
    }

    /// <summary>A pcap file (little-endian, nanosecond times) of <paramref name="packets"/>.</summary>
    public static byte[] WritePcap(IEnumerable<CapturedPacket> packets, uint linkType = 1)
    {
        using var ms = new MemoryStream();
        Span<byte> h = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0xa1b23c4d);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(h[8..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h[16..], 262144);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], linkType);
        ms.Write(h);
        Span<byte> r = stackalloc byte[16];
        foreach (var p in packets)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(r, (uint)(p.Timestamp / 1_000_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(r[4..], (uint)(p.Timestamp % 1_000_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(r[8..], (uint)p.Data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(r[12..], Math.Max(p.OriginalLength, (uint)p.Data.Length));
            ms.Write(r);
            ms.Write(p.Data);
        }
        return ms.ToArray();
    }
}
