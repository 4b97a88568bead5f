using System.Text;
using Rbpf.Cbpf;
using Rbpf.Programs;

namespace Rbpf.Fuzz;

/// <summary>Starting inputs for each target: small, valid, and covering each input format's parts.</summary>
public static class Seeds
{
    private static readonly string[] Programs =
    {
        "mov r0, 1\nexit",
        "ldxb r0, [r1+2]\nexit",
        "mov r0, 0\nloop:\nadd r0, 1\njlt r0, 10, loop\nexit",
        "stxdw [r10-8], r1\nldxdw r2, [r10-8]\nlock add64 [r10-8], r2\nmov r0, r2\nexit",
        "mov r1, 5\ncall 1\ncall local f\nexit\nf:\nmov r0, 7\nexit",
        "lddw r0, 0x1122334455667788\nbe16 r0\nsdiv r0, 3\nexit",
        "r0 = 1\nif r0 > 2 goto +1\nr0 = *(u32 *)(r10 - 8)\nexit",
        "mov32 %r0, 2\nexit",
    };

    /// <summary>The seeds of <paramref name="target"/> as (name, bytes).</summary>
    public static IEnumerable<(string Name, byte[] Data)> For(string target, string repoRoot)
    {
        switch (target)
        {
            case "asm":
                for (int k = 0; k < Programs.Length; k++) yield return ($"p{k}.s", Encoding.UTF8.GetBytes(Programs[k]));
                break;
            case "disasm":
                for (int k = 0; k < Programs.Length; k++) yield return ($"p{k}.bin", Assembler.Assemble(Programs[k]));
                break;
            case "exec":
                for (int k = 0; k < Programs.Length; k++) yield return ($"p{k}.bin", new byte[] { 1 }.Concat(Assembler.Assemble(Programs[k])).ToArray());
                break;
            case "elf":
                foreach (var o in Directory.GetFiles(Path.Combine(repoRoot, "tests", "elf"), "*.o").Where(f => new FileInfo(f).Length < 32768))
                    yield return (Path.GetFileName(o), File.ReadAllBytes(o));
                break;
            case "cbpf":
            {
                string dd = "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 8, 0x00000800 },\n{ 0x30, 0, 0, 0x00000017 },\n{ 0x15, 0, 6, 0x00000006 },\n" +
                    "{ 0x28, 0, 0, 0x00000014 },\n{ 0x45, 4, 0, 0x00001fff },\n{ 0xb1, 0, 0, 0x0000000e },\n{ 0x48, 0, 0, 0x00000010 },\n" +
                    "{ 0x15, 0, 1, 0x00000050 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },";
                yield return ("port80.bin", new byte[] { 64 }.Concat(ClassicBpf.Write(ClassicBpf.Parse(dd))).ToArray());
                var scratch = new[] { new CbpfInstruction(0x60, 0, 0, 3), new CbpfInstruction(0x02, 0, 0, 5), new CbpfInstruction(0x3c, 0, 0, 0), new CbpfInstruction(0x16, 0, 0, 0) };
                yield return ("scratch.bin", new byte[] { 20 }.Concat(ClassicBpf.Write(scratch)).ToArray());
                break;
            }
            case "capture":
            {
                var packets = new[] { new CapturedPacket(new byte[60], 60, 1), new CapturedPacket(new byte[14], 100, 2) };
                yield return ("two.pcap", Capture.WritePcap(packets));
                yield return ("two.pcapng", Pcapng(new byte[60], new byte[14]));
                // The other pcap flavours: microseconds, and both in big-endian byte order.
                var micro = Capture.WritePcap(packets);
                BitConverter.GetBytes(0xa1b2c3d4u).CopyTo(micro, 0);
                yield return ("micro.pcap", micro);
                yield return ("big-endian.pcap", BigEndianPcap(new byte[60], new byte[14]));
                break;
            }
            case "machine":
                // Three to eight states with small bodies: an add of the byte, a store and a load on the stack, nothing.
                yield return ("three.bin", new byte[] { 0, 40, 1 }.Concat(Assembler.Assemble("add r0, r4")).Concat(new byte[] { 0x10, 0, 0x22, 1 })
                    .Concat(Assembler.Assemble("stxdw [r10-8], r0")).Concat(new byte[] { 0x03 }).ToArray());
                yield return ("eight.bin", new byte[] { 13, 80, 2 }.Concat(Assembler.Assemble("xor r0, r4\nmul r0, 3")).Concat(new byte[] { 0x1a, 0, 0x31, 0, 0x44, 0, 0x55, 0, 0x6c, 0, 0x70, 0, 0x05, 0, 0x02 }).ToArray());
                break;
            case "kernel":
                yield return ("xdp.bin", new byte[] { 0 }.Concat(Assembler.Assemble("ldxw r2, [r1+0]\nldxw r3, [r1+4]\nmov r4, r2\nadd r4, 14\njgt r4, r3, +2\nldxb r0, [r2+12]\nexit\nmov r0, 2\nexit")).ToArray());
                yield return ("tc.bin", new byte[] { 1 }.Concat(Assembler.Assemble("ldxw r0, [r1+0]\nstxw [r1+8], r0\nldxw r2, [r1+76]\nexit")).ToArray());
                yield return ("socket.bin", new byte[] { 2 }.Concat(Assembler.Assemble("ldabsh 12\nldxw r2, [r1+0]\nadd r0, r2\nexit")).ToArray());
                break;
        }
    }

    /// <summary>A pcapng file as Wireshark writes one: section header, interface (microseconds),
    /// enhanced packets (little-endian). The capture tests use it too.</summary>
    public static byte[] Pcapng(params byte[][] packets)
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
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(shb, 0x1A2B3C4D);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(shb.AsSpan(4), 1);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(shb.AsSpan(8), -1);
        Block(0x0A0D0D0A, shb);
        var idb = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(idb, 1);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(idb.AsSpan(4), 65535);
        Block(1, idb);
        ulong ts = 1_700_000_000_000_000;
        foreach (var p in packets)
        {
            var epb = new byte[20 + p.Length];
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(4), (uint)(ts >> 32));
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(8), (uint)ts);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(12), (uint)p.Length);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(epb.AsSpan(16), (uint)p.Length);
            p.CopyTo(epb, 20);
            Block(6, epb);
            ts += 1;
        }
        return ms.ToArray();
    }

    /// <summary>A classic pcap file in big-endian byte order (microseconds, Ethernet).</summary>
    private static byte[] BigEndianPcap(params byte[][] packets)
    {
        var ms = new MemoryStream();
        void U32(uint v) { var b = new byte[4]; System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(b, v); ms.Write(b); }
        void U16(ushort v) { var b = new byte[2]; System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(b, v); ms.Write(b); }
        U32(0xa1b2c3d4); U16(2); U16(4); U32(0); U32(0); U32(65535); U32(1);
        uint second = 1_700_000_000;
        foreach (var p in packets)
        {
            U32(second++); U32(500); U32((uint)p.Length); U32((uint)p.Length);
            ms.Write(p);
        }
        return ms.ToArray();
    }
}
