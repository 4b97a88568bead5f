using System.Buffers.Binary;
using Rbpf.Maps;

namespace Rbpf.Tests;

public class MapTests
{
    /// <summary>Counts calls per key (the input's first 4 bytes) in map fd 0; returns the new count.</summary>
    internal const string CounterProgram = """
        ldxw r1, [r1]
        stxw [r10-4], r1
        lddw r1, map 0
        mov r2, r10
        add r2, -4
        call bpf_map_lookup_elem
        jne r0, 0, found
        mov r1, 1
        stxdw [r10-16], r1
        lddw r1, map 0
        mov r2, r10
        add r2, -4
        mov r3, r10
        add r3, -16
        mov r4, 1
        call bpf_map_update_elem
        jne r0, 0, failed
        mov r0, 1
        exit
        found:
        mov r1, 1
        lock add64 [r0], r1
        ldxdw r0, [r0]
        exit
        failed:
        mov r0, -1
        exit
        """;

    private static byte[] U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return b; }
    private static byte[] U64(ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); return b; }

    [Theory]
    [InlineData(MapType.Hash, false)]
    [InlineData(MapType.Hash, true)]
    [InlineData(MapType.LruHash, true)]
    [InlineData(MapType.PerCpuHash, false)]
    public void ProgramsCountInAHashMapTheHostReads(MapType type, bool jit)
    {
        var map = BpfMap.Create(type, 4, 8, 16, name: "counts");
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(CounterProgram));
        vm.BindMap(0, map);
        if (jit) vm.JitCompile();
        for (uint k = 0; k < 10; k++)
        {
            var mem = U32(k % 3 + 100);
            ulong r = jit ? vm.ExecuteJit(mem) : vm.Execute(mem);
            Assert.Equal((ulong)(k / 3 + 1), r);
        }
        var value = new byte[8];
        Assert.True(map.TryLookup(U32(100), value));
        Assert.Equal(4UL, BinaryPrimitives.ReadUInt64LittleEndian(value));
        Assert.True(map.TryLookup(U32(102), value));
        Assert.Equal(3UL, BinaryPrimitives.ReadUInt64LittleEndian(value));
        Assert.False(map.TryLookup(U32(103), value));
        Assert.Equal(3, map.Count);
        Assert.Equal(new[] { 100u, 101u, 102u }, map.Keys().Select(k => BinaryPrimitives.ReadUInt32LittleEndian(k)).Order());
    }

    [Fact]
    public void ThreadsInsertingAndCountingLoseNothing()
    {
        // Four threads of interpreted runs insert keys (under the map's lock) and count through
        // lookups (no lock) on one map; a fifth deletes and re-adds keys of its own meanwhile.
        var map = BpfMap.Create(MapType.Hash, 4, 8, 4096, name: "shared");
        const int perThread = 40_000;
        int lostInserts = 0;
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var vm = EbpfVm.CreateRaw(Assembler.Assemble(CounterProgram));
            vm.BindMap(0, map);
            var mem = new byte[4];
            for (int i = 0; i < perThread; i++)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(mem, (uint)(i % 64)); // 64 keys shared by all
                if (vm.Execute(mem) == ulong.MaxValue) Interlocked.Increment(ref lostInserts);
            }
        })).ToList();
        bool stop = false;
        var churn = new Thread(() =>
        {
            var v = new byte[8];
            for (uint n = 0; !Volatile.Read(ref stop); n++)
            {
                map.Update(U32(10_000 + n % 100), U64(n));
                map.TryDelete(U32(10_000 + (n + 50) % 100));
                map.TryLookup(U32(10_000 + n % 100), v);
            }
        });
        churn.Start();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Volatile.Write(ref stop, true);
        churn.Join();
        var value = new byte[8];
        ulong total = 0;
        for (uint k = 0; k < 64; k++)
        {
            Assert.True(map.TryLookup(U32(k), value));
            total += BinaryPrimitives.ReadUInt64LittleEndian(value);
        }
        // Two threads may insert the same new key at once: the loser's BPF_NOEXIST fails (its
        // program returns -1 and counts nothing). Every other run counted once.
        Assert.InRange(lostInserts, 0, 3 * 64);
        Assert.Equal(4UL * perThread - (ulong)lostInserts, total);
    }

    [Fact]
    public void HashMapsFollowTheKernelsUpdateRules()
    {
        var map = BpfMap.Create(MapType.Hash, 4, 8, 2, name: "h");
        map.Update(U32(1), U64(10), MapUpdate.NoExist);
        Assert.Equal(RbpfErrorCode.KeyExists, Assert.Throws<RbpfException>(() => map.Update(U32(1), U64(11), MapUpdate.NoExist)).Code);
        Assert.Equal(RbpfErrorCode.NotFound, Assert.Throws<RbpfException>(() => map.Update(U32(2), U64(20), MapUpdate.Exist)).Code);
        map.Update(U32(1), U64(12), MapUpdate.Exist);
        map.Update(U32(2), U64(20));
        var full = Assert.Throws<RbpfException>(() => map.Update(U32(3), U64(30)));
        Assert.Equal(RbpfErrorCode.MapFull, full.Code);
        Assert.Contains("full", full.Message);
        map.Delete(U32(1));
        Assert.Equal(RbpfErrorCode.NotFound, Assert.Throws<RbpfException>(() => map.Delete(U32(1))).Code);
        map.Update(U32(3), U64(30)); // the freed slot is reused
        Assert.Equal(2, map.Count);
        var bad = Assert.Throws<RbpfException>(() => map.Update(new byte[3], U64(1)));
        Assert.Equal(RbpfErrorCode.InvalidArgument, bad.Code);
    }

    [Fact]
    public void LruMapsEvictTheLeastRecentlyUsedKey()
    {
        var map = BpfMap.Create(MapType.LruHash, 4, 8, 3, name: "lru");
        map.Update(U32(1), U64(1));
        map.Update(U32(2), U64(2));
        map.Update(U32(3), U64(3));
        var v = new byte[8];
        Assert.True(map.TryLookup(U32(1), v)); // 2 is now the oldest
        map.Update(U32(4), U64(4));
        Assert.False(map.TryLookup(U32(2), v));
        Assert.True(map.TryLookup(U32(1), v));
        Assert.True(map.TryLookup(U32(3), v));
        Assert.True(map.TryLookup(U32(4), v));
    }

    [Fact]
    public void ArrayMapsHaveEveryIndexAndRefuseDeletes()
    {
        var map = BpfMap.Create(MapType.Array, 4, 8, 4, name: "a");
        var v = new byte[8];
        Assert.True(map.TryLookup(U32(3), v));
        Assert.Equal(new byte[8], v);
        Assert.False(map.TryLookup(U32(4), v));
        map.Update(U32(2), U64(7));
        Assert.Equal(RbpfErrorCode.KeyExists, Assert.Throws<RbpfException>(() => map.Update(U32(2), U64(7), MapUpdate.NoExist)).Code);
        Assert.Equal(RbpfErrorCode.MapFull, Assert.Throws<RbpfException>(() => map.Update(U32(4), U64(7))).Code);
        Assert.Equal(RbpfErrorCode.InvalidArgument, Assert.Throws<RbpfException>(() => map.Delete(U32(2))).Code);
        Assert.Equal(new uint[] { 0, 1, 2, 3 }, map.Keys().Select(k => BinaryPrimitives.ReadUInt32LittleEndian(k)));
        Assert.Equal(RbpfErrorCode.InvalidArgument, Assert.Throws<RbpfException>(() => BpfMap.Create(MapType.Array, 8, 8, 4)).Code);
        Assert.Equal(RbpfErrorCode.InvalidArgument, Assert.Throws<RbpfException>(() => BpfMap.Create((MapType)99, 4, 8, 4)).Code);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ValuePointersAreCheckedRegions(bool jit)
    {
        // Reading just past an array's values faults; inside them works.
        var map = BpfMap.Create(MapType.Array, 4, 8, 1, name: "one");
        string prog = "mov r1, 0\nstxw [r10-4], r1\nlddw r1, map 5\nmov r2, r10\nadd r2, -4\ncall 1\njeq r0, 0, +2\nldxdw r0, [r0+{0}]\nexit\nmov r0, 99\nexit";
        var ok = EbpfVm.CreateNoData(Assembler.Assemble(string.Format(prog, 0)));
        ok.BindMap(5, map);
        map.Update(U32(0), U64(0x1234));
        if (jit) ok.JitCompile();
        Assert.Equal(0x1234UL, jit ? ok.ExecuteJit() : ok.Execute());
        var bad = EbpfVm.CreateNoData(Assembler.Assemble(string.Format(prog, 8)));
        bad.BindMap(5, map);
        if (jit) bad.JitCompile();
        var e = Assert.Throws<RbpfException>(() => jit ? bad.ExecuteJit() : bad.Execute());
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        Assert.Contains("map:one", e.Message);
    }

    [Fact]
    public void AMapThatIsNotBoundFailsTheHelper()
    {
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, 0\nstxw [r10-4], r1\nlddw r1, map 9\nmov r2, r10\nadd r2, -4\ncall 1\nexit"));
        vm.BindMap(0, BpfMap.Create(MapType.Array, 4, 8, 1));
        var e = Assert.Throws<RbpfException>(() => vm.Execute());
        Assert.Equal(RbpfErrorCode.HelperFailed, e.Code);
        Assert.Contains("not a map bound to this VM", e.Message);
    }

    [Fact]
    public void CsumDiffPrandomAndProcessorIdHaveTheKernelsMeaning()
    {
        // bpf_csum_diff(from, 4, to, 8, seed): the one's-complement sum of to's words minus from's, plus the seed.
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("""
            stw [r10-4], 0x11112222
            stw [r10-16], 0x33334444
            stw [r10-12], 0x00010002
            mov r1, r10
            add r1, -4
            mov r2, 4
            mov r3, r10
            add r3, -16
            mov r4, 8
            mov r5, 7
            call bpf_csum_diff
            exit
            """));
        vm.BindMap(0, BpfMap.Create(MapType.Array, 4, 4, 1)); // the helpers come with a map
        ulong sum = 7UL + (~0x11112222u) + 0x33334444u + 0x00010002u;
        while (sum >> 32 != 0) sum = (sum & 0xffffffff) + (sum >> 32);
        Assert.Equal(sum, vm.Execute());
        var bad = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, r10\nadd r1, -4\nmov r2, 3\nmov r3, 0\nmov r4, 0\nmov r5, 0\ncall 28\nexit"));
        bad.BindMap(0, BpfMap.Create(MapType.Array, 4, 4, 1));
        Assert.Equal(unchecked((ulong)-22L), bad.Execute()); // sizes must be multiples of 4

        var rnd = EbpfVm.CreateNoData(Assembler.Assemble("call bpf_get_prandom_u32\nmov r6, r0\ncall bpf_get_prandom_u32\nxor r0, r6\nmov r1, r0\nrsh r1, 32\nlsh r1, 1\ncall bpf_get_smp_processor_id\nexit"));
        rnd.BindMap(0, BpfMap.Create(MapType.Array, 4, 4, 1));
        Assert.Equal(0UL, rnd.Execute()); // processor 0
        var values = Enumerable.Range(0, 50).Select(_ =>
        {
            var v = EbpfVm.CreateNoData(Assembler.Assemble("call bpf_get_prandom_u32\nexit"));
            v.BindMap(0, BpfMap.Create(MapType.Array, 4, 4, 1));
            return v.Execute();
        }).ToList();
        Assert.All(values, v => Assert.True(v <= uint.MaxValue));
        Assert.True(values.Distinct().Count() > 40);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void RingBufferOutputDiscardAndQuery(bool jit)
    {
        var ring = (RingBufferMap)BpfMap.Create(MapType.RingBuffer, 0, 0, 4096, name: "events");
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("""
            stdw [r10-8], 0x0a0b0c0d
            lddw r1, map 0
            mov r2, r10
            add r2, -8
            mov r3, 4
            mov r4, 0
            call bpf_ringbuf_output
            jne r0, 0, bad
            lddw r1, map 0
            mov r2, 16
            mov r3, 0
            call bpf_ringbuf_reserve
            jeq r0, 0, bad
            stdw [r0], 1
            mov r1, r0
            mov r2, 0
            call bpf_ringbuf_discard
            lddw r1, map 0
            mov r2, 1
            call bpf_ringbuf_query
            exit
            bad:
            mov r0, -1
            exit
            """));
        vm.BindMap(0, ring);
        if (jit) vm.JitCompile();
        Assert.Equal(4096UL, jit ? vm.ExecuteJit() : vm.Execute()); // query 1: its size
        Assert.Equal(16UL + 24UL, ring.Query(0));                  // both records wait, the discarded one too
        var records = new List<byte[]>();
        Assert.Equal(1, ring.Consume(r => { records.Add(r.ToArray()); return 0; }));
        Assert.Equal(new byte[] { 0x0d, 0x0c, 0x0b, 0x0a }, records[0]);
        Assert.Equal(0UL, ring.Query(0));

        // Submitting something that is not a reserved record fails the run, never the process.
        var forged = EbpfVm.CreateNoData(Assembler.Assemble("mov r1, r10\nadd r1, -8\nmov r2, 0\ncall bpf_ringbuf_submit\nexit"));
        forged.BindMap(0, ring);
        var e = Assert.Throws<RbpfException>(() => forged.Execute());
        Assert.Equal(RbpfErrorCode.HelperFailed, e.Code);
        Assert.Contains("not in a ring buffer", e.Message);
    }

    [Fact]
    public void AFullRingBufferRefusesRecords()
    {
        var ring = (RingBufferMap)BpfMap.Create(MapType.RingBuffer, 0, 0, 4096);
        int written = 0;
        while (ring.Output(new byte[100])) written++;
        Assert.Equal(4096 / 112, written); // 8-byte header, 100 bytes rounded up to 104
        Assert.Equal(written, (int)ring.Consume(_ => 0));
        Assert.True(ring.Output(new byte[100])); // room again, past the wrap
        Assert.Equal(RbpfErrorCode.InvalidArgument, Assert.Throws<RbpfException>(() => BpfMap.Create(MapType.RingBuffer, 0, 0, 5000)).Code);
    }

    [Fact]
    public void MapFdLoadsRoundTripThroughTheDisassembler()
    {
        var prog = Assembler.Assemble("lddw r1, map 3\nexit");
        Assert.Equal(1, prog[1] >> 4);
        Assert.Equal(3, prog[4]);
        Assert.Equal("lddw r1, map 3\nexit\n", Disassembler.Disassemble(prog));
    }
}

public class TailCallTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TailCallsJumpToTheProgramAtTheIndexOrFallThrough(bool jit)
    {
        var programs = (ProgramArrayMap)BpfMap.Create(MapType.ProgramArray, 4, 4, 4, name: "jmp");
        var caller = EbpfVm.CreateRaw(Assembler.Assemble("mov r6, r1\nldxb r3, [r6]\nlddw r2, map 0\nmov r1, r6\ncall bpf_tail_call\nmov r0, 7\nexit"));
        var target = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1+1]\nadd r0, 40\nexit"));
        caller.BindMap(0, programs);
        programs.SetProgram(2, target);
        if (jit) { caller.JitCompile(); target.JitCompile(); }
        ulong Run(byte[] input) => jit ? caller.ExecuteJit(input) : caller.Execute(input);
        Assert.Equal(42UL, Run(new byte[] { 2, 2 }));  // index 2: the target's result, same input
        Assert.Equal(7UL, Run(new byte[] { 3, 2 }));   // nothing at 3: falls through
        Assert.Equal(7UL, Run(new byte[] { 9, 2 }));   // past the end: falls through
        programs.SetProgram(2, null);
        Assert.Equal(7UL, Run(new byte[] { 2, 2 }));
        var other = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 1\nexit"));
        programs.SetProgram(2, other);
        var e = Assert.Throws<RbpfException>(() => Run(new byte[] { 2, 2 }));
        Assert.Contains("NoData VM", e.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AChainStopsAfter33TailCalls(bool jit)
    {
        // A program that counts its runs in an array map and tail-calls itself: 1 + 33 runs.
        var programs = (ProgramArrayMap)BpfMap.Create(MapType.ProgramArray, 4, 4, 1, name: "self");
        var runs = BpfMap.Create(MapType.Array, 4, 8, 1, name: "runs");
        var vm = EbpfVm.CreateNoData(Assembler.Assemble("""
            mov r6, r1
            mov r1, 0
            stxw [r10-4], r1
            lddw r1, map 1
            mov r2, r10
            add r2, -4
            call bpf_map_lookup_elem
            jeq r0, 0, out
            mov r1, 1
            lock add64 [r0], r1
            mov r1, r6
            lddw r2, map 0
            mov r3, 0
            call bpf_tail_call
            out:
            mov r0, 5
            exit
            """));
        vm.BindMap(0, programs);
        vm.BindMap(1, runs);
        programs.SetProgram(0, vm);
        if (jit) vm.JitCompile();
        Assert.Equal(5UL, jit ? vm.ExecuteJit() : vm.Execute());
        var value = new byte[8];
        Assert.True(runs.TryLookup(new byte[4], value));
        Assert.Equal(34UL, BitConverter.ToUInt64(value));
    }
}

public class ElfMapTests
{
    private static byte[] Object(string name) => File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "elf", name));

    /// <summary>An Ethernet + IPv4 frame to <paramref name="port"/> over <paramref name="proto"/> (6 TCP, 17 UDP), <paramref name="length"/> bytes.</summary>
    internal static byte[] Frame(ushort port, byte proto = 17, int length = 60)
    {
        var f = new byte[length];
        f[12] = 0x08; f[13] = 0x00;
        f[14] = 0x45;
        f[14 + 9] = proto;
        f[14 + 20 + 2] = (byte)(port >> 8);
        f[14 + 20 + 3] = (byte)port;
        return f;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AClangProgramCountsPortsInMapsItDeclares(bool jit)
    {
        var vm = EbpfVm.CreateFromElf(VmKind.Raw, Object("port_counts.o"));
        Assert.Equal(new[] { "port_counts", "total_bytes" }, vm.ElfMaps.Keys.Order());
        var ports = vm.GetMap("port_counts")!;
        Assert.Equal((MapType.Hash, 2u, 8u, 256u), (ports.Type, ports.KeySize, ports.ValueSize, ports.MaxEntries));
        if (jit) vm.JitCompile();
        ulong bytes = 0;
        foreach (var (port, proto, len) in new (ushort, byte, int)[] { (53, 17, 60), (80, 6, 74), (53, 17, 90), (443, 6, 60), (53, 1, 60), (80, 6, 64) })
        {
            var frame = Frame(port, proto, len);
            ulong r = jit ? vm.ExecuteJit(frame) : vm.Execute(frame);
            Assert.Equal(proto == 1 ? 0UL : 1UL, r);
            if (proto != 1) bytes += (ulong)len;
        }
        var value = new byte[8];
        ulong Count(ushort port) => ports.TryLookup(BitConverter.GetBytes(port), value) ? BitConverter.ToUInt64(value) : 0;
        Assert.Equal(2UL, Count(53));
        Assert.Equal(2UL, Count(80));
        Assert.Equal(1UL, Count(443));
        Assert.Equal(0UL, Count(22));
        Assert.True(vm.GetMap("total_bytes")!.TryLookup(new byte[4], value));
        Assert.Equal(bytes, BitConverter.ToUInt64(value));

        // The typed view.
        var typed = new Map<ushort, ulong>(ports);
        Assert.Equal(2UL, typed[53]);
        Assert.Equal(new (ushort, ulong)[] { (53, 2), (80, 2), (443, 1) }, typed.Select(kv => (kv.Key, kv.Value)).OrderBy(p => p.Item1));
        typed[22] = 9;
        Assert.True(typed.Remove(22));
        Assert.False(typed.Remove(22));
        Assert.Equal(RbpfErrorCode.NotFound, Assert.Throws<RbpfException>(() => typed[22]).Code);
        Assert.Equal(RbpfErrorCode.InvalidArgument, Assert.Throws<RbpfException>(() => new Map<uint, ulong>(ports)).Code);
    }

    [Fact]
    public void SeveralVmsShareAMapAndItOutlivesThem()
    {
        var shared = BpfMap.Create(MapType.Hash, 2, 8, 64, name: "shared");
        var elf = Object("port_counts.o");
        for (int k = 0; k < 3; k++)
        {
            var vm = EbpfVm.CreateFromElf(VmKind.Raw, elf);
            vm.BindMap(0, shared); // port_counts is fd 0: replace it with the shared map
            vm.Execute(Frame(7));
        }
        GC.Collect();
        var value = new byte[8];
        Assert.True(shared.TryLookup(BitConverter.GetBytes((ushort)7), value));
        Assert.Equal(3UL, BitConverter.ToUInt64(value));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LegacyMapsAndARingBuffer(bool jit)
    {
        var vm = EbpfVm.CreateFromElf(VmKind.Raw, Object("legacy_maps.o"));
        var last = vm.GetMap("last_byte")!;
        Assert.Equal((MapType.Array, 4u, 8u, 4u), (last.Type, last.KeySize, last.ValueSize, last.MaxEntries));
        var events = vm.GetMap("events")!;
        Assert.Equal(MapType.RingBuffer, events.Type);
        if (jit) vm.JitCompile();
        for (byte b = 1; b <= 3; b++)
        {
            var input = new byte[] { b, 2, 3, 4, 5, 6, 7, 8 };
            ulong available = jit ? vm.ExecuteJit(input) : vm.Execute(input);
            Assert.Equal(16UL * b, available); // each record: an 8-byte header and 8 bytes
        }
        var value = new byte[8];
        Assert.True(last.TryLookup(BitConverter.GetBytes(1u), value));
        Assert.Equal(3, value[0]);
        var seen = new List<byte[]>();
        long n = ((RingBufferMap)events).Consume(record => { seen.Add(record.ToArray()); return 0; });
        Assert.Equal(3, n);
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, seen[0]);
        Assert.Equal(3, seen[2][0]);
        Assert.Equal(0, ((RingBufferMap)events).Consume(_ => 0));
    }

    [Fact]
    public void MapsWithoutBtfAreRefusedWithAReason()
    {
        // port_counts.o without its .BTF section: rename the section so the loader cannot find it.
        var elf = Object("port_counts.o");
        int at = System.Text.Encoding.ASCII.GetBytes(".BTF\0").Length;
        var text = System.Text.Encoding.Latin1.GetString(elf);
        int i = text.IndexOf(".BTF\0", StringComparison.Ordinal);
        Assert.True(i > 0);
        elf[i + 1] = (byte)'X';
        var e = Assert.Throws<RbpfException>(() => EbpfVm.CreateFromElf(VmKind.Raw, elf));
        Assert.Equal(RbpfErrorCode.ElfError, e.Code);
        Assert.Contains("compile with -g", e.Message);
    }

    [Fact]
    public void MutatedObjectsWithMapsFailCleanly()
    {
        // Random damage anywhere (the BTF, the map sections, relocations): an error, never another exception.
        var rng = new Random(14);
        foreach (var name in new[] { "port_counts.o", "legacy_maps.o" })
        {
            var original = Object(name);
            for (int n = 0; n < 4000; n++)
            {
                var elf = (byte[])original.Clone();
                int flips = rng.Next(1, 6);
                for (int k = 0; k < flips; k++) elf[rng.Next(elf.Length)] = (byte)rng.Next(256);
                try
                {
                    var vm = EbpfVm.CreateFromElf(VmKind.Raw, elf);
                    vm.InstructionLimit = 10_000;
                    vm.TryExecute(ElfMapTests.Frame(53), Span<byte>.Empty, out _, out _);
                }
                catch (RbpfException) { }
            }
        }
    }
}
