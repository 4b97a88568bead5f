using System.Diagnostics;
using System.Text;

namespace Rbpf.Tests;

/// <summary>Runs the built rbpf command (out/bin/rbpf, or $RBPF_CLI).</summary>
public class CliTests
{
    private static string? CliPath()
    {
        string? env = Environment.GetEnvironmentVariable("RBPF_CLI");
        if (env != null)
        {
            Assert.True(File.Exists(env), $"RBPF_CLI={env} does not exist");
            return env;
        }
        string path = Path.Combine(TestPaths.RepoRoot, "out", "bin", "rbpf");
        return File.Exists(path) ? path : null;
    }

    internal sealed record Result(int Exit, string Stdout, string Stderr, byte[] StdoutBytes);

    internal static Result Cli(string[] args, byte[]? stdin = null, string? exe = null)
    {
        string? path = exe ?? CliPath();
        Skip.If(path == null, "the rbpf command is not built (run ./build.sh): CLI tests skipped");
        var psi = new ProcessStartInfo(path!)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var errTask = p.StandardError.ReadToEndAsync();
        var ms = new MemoryStream();
        var outTask = p.StandardOutput.BaseStream.CopyToAsync(ms);
        if (stdin != null) p.StandardInput.BaseStream.Write(stdin);
        p.StandardInput.Close();
        Assert.True(p.WaitForExit(60_000), "rbpf did not finish");
        outTask.Wait();
        byte[] bytes = ms.ToArray();
        return new Result(p.ExitCode, Encoding.UTF8.GetString(bytes), errTask.Result, bytes);
    }

    private static string Temp(string name, byte[] content)
    {
        string dir = Path.Combine(Path.GetTempPath(), "rbpf-cli-tests-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int SendSignal(int pid, int signal);

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void CtrlCStopsARunawayRunWithItsInstruction(bool jit)
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "SIGINT is sent with kill(2)");
        string? path = CliPath();
        Skip.If(path == null, "the rbpf command is not built (run ./build.sh): CLI tests skipped");
        string prog = Temp("runaway.s", Encoding.ASCII.GetBytes("mov r0, 0\nloop:\nadd r0, 1\njne r0, 0, loop\nexit\n"));
        // Through env --default-signal=INT: a test run started in the background of a script
        // inherits SIGINT ignored, which the library then leaves alone (docs/c-api.md).
        var psi = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("--default-signal=INT");
        psi.ArgumentList.Add(path!);
        foreach (var a in jit ? new[] { "run", "--jit", prog } : new[] { "run", prog }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        Thread.Sleep(500); // past the start, into the loop
        var sw = Stopwatch.StartNew();
        while (!p.WaitForExit(200) && sw.ElapsedMilliseconds < 20_000) SendSignal(p.Id, 2);
        Assert.True(p.HasExited, "rbpf run did not stop on SIGINT");
        Assert.Equal(130, p.ExitCode);
        Assert.Equal("rbpf: interrupted at insn #1\n", err.Result);
        Assert.Equal("", output.Result);
    }

    [SkippableFact]
    public void RunFormatsBpfTracePrintkAsTheKernelDoes()
    {
        // A program compiled by clang with its format string in .rodata (tests/elf/printk.c).
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "printk.o");
        var r = Cli(new[] { "run", obj, "--mem-hex", "aa bb 07" });
        Assert.Equal(0, r.Exit);
        Assert.Equal("len=3 first=0xaa last=7\n0x18\n", r.Stdout); // 24 bytes formatted, newline included
        var j = Cli(new[] { "run", obj, "--mem-hex", "aa bb 07", "--jit" });
        Assert.Equal(r.Stdout, j.Stdout);
    }

    [SkippableFact]
    public void DisassemblesOnlyTheSectionsAProgramReaches()
    {
        // tests/elf/sections.c: prog/scaled (10 slots) calls scale() in .text (4); prog/logged calls a helper by name.
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "sections.o");
        var r = Cli(new[] { "disasm", obj, "--section", "prog/scaled" });
        Assert.Equal(0, r.Exit);
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(10 + 4, lines.Count(l => !l.EndsWith(':'))); // instructions, labels aside
        Assert.DoesNotContain(lines, l => l.StartsWith("call 0x")); // no helper call: logged's code is not there
        Assert.Equal(2, lines.Count(l => l.StartsWith("call local")));
        var run = Cli(new[] { "run", obj, "--section", "prog/scaled", "--mem-hex", "00 00 00" });
        Assert.Equal(0, run.Exit);
        Assert.Equal($"0x{(3UL * 3 + 7) ^ (3UL * 5 + 7):x}\n", run.Stdout);
    }

    [SkippableFact]
    public void RunsTheLongestProgramAndRefusesALongerOne()
    {
        string longest = Temp("longest.bin", LargeProgramTests.Adds(Isa.MaxInstructions));
        foreach (var jit in new[] { false, true })
        {
            var r = Cli(jit ? new[] { "run", longest, "--kind", "nodata", "--jit" } : new[] { "run", longest, "--kind", "nodata" });
            Assert.Equal(0, r.Exit);
            Assert.Equal($"0x{Isa.MaxInstructions - 1:x}\n", r.Stdout);
        }
        var tooLong = Cli(new[] { "run", Temp("too-long.bin", LargeProgramTests.Adds(Isa.MaxInstructions + 1)), "--kind", "nodata" });
        Assert.Equal(3, tooLong.Exit); // bad input
        Assert.Contains("1000001 instructions, more than the limit of 1000000", tooLong.Stderr);
    }

    [SkippableFact]
    public void DisasmWritesLabelsAndTheLlvmSyntaxWhichAsmReadsBack()
    {
        string src = Temp("loop.s", Encoding.ASCII.GetBytes("mov r0, 0\nloop:\nadd r0, 1\njlt r0, 10, loop\nexit\n"));
        var bin = Cli(new[] { "asm", src });
        Assert.Equal(0, bin.Exit);
        string prog = Temp("loop.bin", bin.StdoutBytes);
        Assert.Equal("mov64 r0, 0x0\nL1:\nadd64 r0, 0x1\njlt r0, 0xa, L1\nexit\n", Cli(new[] { "disasm", prog }).Stdout);
        Assert.Equal("mov64 r0, 0x0\nadd64 r0, 0x1\njlt r0, 0xa, -2\nexit\n", Cli(new[] { "disasm", prog, "--no-labels" }).Stdout);
        var llvm = Cli(new[] { "disasm", prog, "--syntax", "llvm" });
        Assert.Equal("r0 = 0x0\nL1:\nr0 += 0x1\nif r0 < 0xa goto L1\nexit\n", llvm.Stdout);
        Assert.Equal(bin.StdoutBytes, Cli(new[] { "asm", "-" }, Encoding.ASCII.GetBytes(llvm.Stdout)).StdoutBytes);
        var bad = Cli(new[] { "disasm", prog, "--syntax", "att" });
        Assert.Equal(2, bad.Exit);
        Assert.Contains("unknown syntax 'att'", bad.Stderr);
        Assert.Equal("0xa\n", Cli(new[] { "run", "-", "--kind", "nodata" }, Encoding.ASCII.GetBytes(llvm.Stdout)).Stdout);
    }

    [SkippableFact]
    public void RunDumpsTheMapsAnObjectDeclares()
    {
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "port_counts.o");
        var frame = new byte[60];
        frame[12] = 0x08; frame[14] = 0x45; frame[23] = 17; frame[37] = 53;
        string mem = Temp("frame.bin", frame);
        var r = Cli(new[] { "run", obj, "--mem", mem, "--repeat", "5", "--dump-maps" });
        Assert.Equal(0, r.Exit);
        Assert.Equal("0x1\n" +
            "map port_counts (hash, key 2 bytes, value 8 bytes, 1 of 256 entries):\n  35 00: 05 00 00 00 00 00 00 00\n" +
            "map total_bytes (array, key 4 bytes, value 8 bytes, 1 of 1 entries):\n  00 00 00 00: 2c 01 00 00 00 00 00 00\n", r.Stdout);
        var j = Cli(new[] { "run", obj, "--mem", mem, "--jit", "--dump-maps" });
        Assert.Contains("35 00: 01 00 00 00 00 00 00 00", j.Stdout);
        var ring = Cli(new[] { "run", Path.Combine(TestPaths.RepoRoot, "tests", "elf", "legacy_maps.o"), "--mem-hex", "0102030405060708", "--dump-maps" });
        Assert.Contains("map events (ring buffer, 4096 bytes): 1 record\n  01 02 03 04 05 06 07 08\n", ring.Stdout);
    }

    [SkippableFact]
    public void RunAndDisasmTakeClassicFilters()
    {
        string dd = Temp("ip.dd", Encoding.ASCII.GetBytes("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n"));
        Assert.Equal("0x40000\n", Cli(new[] { "run", "--cbpf", dd, "--mem-hex", "000000000000 000000000000 0800 45" }).Stdout);
        Assert.Equal("0x0\n", Cli(new[] { "run", "--cbpf", dd, "--mem-hex", "000000000000 000000000000 86dd", "--jit" }).Stdout);
        Assert.Equal("0x0\n", Cli(new[] { "run", "--cbpf", dd, "--mem-hex", "0000" }).Stdout); // too short: dropped
        string ddd = Temp("ip.ddd", Encoding.ASCII.GetBytes("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"));
        Assert.Equal("0x40000\n", Cli(new[] { "run", ddd, "--format", "cbpf", "--mem-hex", "000000000000 000000000000 0800" }).Stdout);
        var dis = Cli(new[] { "disasm", "--cbpf", dd });
        Assert.Equal(0, dis.Exit);
        Assert.Contains("c1:\njeq32 r0, 0x800, c2\nja c3\n", dis.Stdout);
        var bad = Cli(new[] { "run", "--cbpf", Temp("bad.dd", Encoding.ASCII.GetBytes("{ 0x34, 0, 0, 0 },\n{ 0x16, 0, 0, 0 },\n")) });
        Assert.Equal(3, bad.Exit);
        Assert.Contains("division by the constant 0", bad.Stderr);
        Assert.Equal(2, Cli(new[] { "run", "--cbpf", dd, "--kind", "nodata" }).Exit);
    }

    [SkippableFact]
    public void RunTakesXdpProgramsAsTheirType()
    {
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "xdp_progs.o");
        var frame = new byte[64];
        for (int k = 0; k < 6; k++) { frame[k] = (byte)(0xd0 + k); frame[6 + k] = (byte)(0x50 + k); }
        frame[12] = 0x08; frame[14] = 0x45; frame[23] = 17; frame[36] = 0x27; frame[37] = 0x0f; // UDP to 9999
        string mem = Temp("xdp-frame.bin", frame);
        Assert.Equal("0x1 (XDP_DROP)\n", Cli(new[] { "run", obj, "--section", "drop_port", "--mem", mem }).Stdout);
        var tx = Cli(new[] { "run", obj, "--section", "bounce", "--mem", mem, "--jit" });
        Assert.StartsWith("0x3 (XDP_TX)\nframe (64 bytes): 50 51 52 53 54 55 d0 d1 d2 d3 d4 d5 08 00", tx.Stdout);
        var bad = Cli(new[] { "run", obj, "--section", "bad_field", "--mem", mem });
        Assert.Equal(3, bad.Exit);
        Assert.Contains("no xdp_md field at offset 24", bad.Stderr);
    }

    [SkippableFact]
    public void RunGoesThroughACaptureAndKeepsPacketsByVerdict()
    {
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "xdp_progs.o");
        byte[] Udp(int port, int length = 64)
        {
            var f = new byte[64];
            f[12] = 0x08; f[14] = 0x45; f[23] = 17; f[36] = (byte)(port >> 8); f[37] = (byte)port;
            return f[..length];
        }
        var packets = new[] { Udp(9999), Udp(53), Udp(9999, 30), Udp(80), Udp(9999) }
            .Select((d, n) => new Rbpf.Programs.CapturedPacket(d, 64, (ulong)n)).ToArray();
        string pcap = Temp("in.pcap", Rbpf.Programs.Capture.WritePcap(packets));
        string pcapng = Temp("in.pcapng", CaptureTests.Pcapng(packets.Select(p => p.Data).ToArray()));
        string outPath = Path.Combine(Path.GetDirectoryName(pcap)!, "pass.pcap");
        foreach (var input in new[] { pcap, pcapng })
        {
            var r = Cli(new[] { "run", obj, "--section", "drop_port", "--pcap", input, "--write-pcap", outPath, "--verdict", "pass", "--jit" });
            Assert.Equal(0, r.Exit);
            Assert.Equal($"5 packets\n  XDP_DROP: 2\n  XDP_PASS: 3\nwrote 3 packets to {outPath}\n", r.Stdout);
            var (_, kept) = Rbpf.Programs.Capture.Read(File.ReadAllBytes(outPath));
            Assert.Equal(new[] { 64, 30, 64 }, kept.Select(k => k.Data.Length));
        }
        // --trace N follows one packet of the capture.
        var traced = Cli(new[] { "run", obj, "--section", "drop_port", "--pcap", pcap, "--trace", "2" });
        Assert.Equal(0, traced.Exit);
        Assert.StartsWith("packet 2 (30 bytes):\n", traced.Stdout);
        Assert.Contains("r0=0x2", traced.Stdout);
        Assert.EndsWith("5 packets\n  XDP_DROP: 2\n  XDP_PASS: 3\n", traced.Stdout);
        Assert.Equal(2, Cli(new[] { "run", obj, "--section", "drop_port", "--pcap", pcap, "--trace", "2", "--jit" }).Exit);
        // A raw program (a classic filter) over the same capture, verdicts by number.
        string dd = Temp("udp53.dd", Encoding.ASCII.GetBytes("{ 0x28, 0, 0, 0x00000024 },\n{ 0x15, 0, 1, 0x00000035 },\n{ 0x6, 0, 0, 0x00040000 },\n{ 0x6, 0, 0, 0x00000000 },\n"));
        Assert.Equal("5 packets\n  0x0: 4\n  0x40000: 1\n", Cli(new[] { "run", "--cbpf", dd, "--pcap", pcap }).Stdout);
        Assert.Equal(2, Cli(new[] { "run", obj, "--section", "drop_port", "--pcap", pcap, "--write-pcap", outPath }).Exit);
        Assert.Contains("not a pcap", Cli(new[] { "run", obj, "--section", "drop_port", "--pcap", Temp("bad.pcap", new byte[40]) }).Stderr);
    }

    [SkippableFact]
    public void RunTakesTcProgramsAndSocketFilters()
    {
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "tc_progs.o");
        var pkt = new byte[60];
        pkt[12] = 0x08; pkt[14] = 0x45; pkt[15] = 0x2e; pkt[23] = 1;
        string mem = Temp("skb.bin", pkt);
        Assert.Equal("0x2 (TC_ACT_SHOT)\nset: mark=0x2e priority=60 tc_classid=0x10001 cb[2]=1\n",
            Cli(new[] { "run", obj, "--section", "classify", "--mem", mem }).Stdout);
        pkt[23] = 6;
        string tcp = Temp("skb-tcp.bin", pkt);
        Assert.Equal("0x3c (keep 60 bytes)\n", Cli(new[] { "run", obj, "--section", "tcp_only", "--type", "socket", "--mem", tcp, "--jit" }).Stdout);
        Assert.Equal(2, Cli(new[] { "run", obj, "--section", "tcp_only", "--type", "bogus", "--mem", tcp }).Exit);
        var icmp = (byte[])pkt.Clone();
        icmp[23] = 1;
        string capture = Temp("skb.pcap", Rbpf.Programs.Capture.WritePcap(new[] { pkt, icmp, pkt }.Select(d => new Rbpf.Programs.CapturedPacket(d, 60, 0))));
        Assert.Equal("3 packets\n  0x0: 2\n  0x2: 1\n", Cli(new[] { "run", obj, "--section", "classify", "--pcap", capture }).Stdout);
        Assert.Equal(2, Cli(new[] { "run", obj, "--section", "tcp_only", "--type", "socket", "--kind", "raw", "--mem", tcp }).Exit);
    }

    private const string Sample = "mov r0, 0\nldxb r1, [r1+1]\nadd r0, r1\nadd r0, 0x10\nexit\n";

    [SkippableFact]
    public void AsmWritesBytecodeAndDisasmReadsItBack()
    {
        var asm = Cli(new[] { "asm", "-" }, Encoding.UTF8.GetBytes(Sample));
        Assert.Equal(0, asm.Exit);
        Assert.Equal(Assembler.Assemble(Sample), asm.StdoutBytes);
        var dis = Cli(new[] { "disasm", "-" }, asm.StdoutBytes);
        Assert.Equal(0, dis.Exit);
        Assert.Equal(Disassembler.Disassemble(asm.StdoutBytes), dis.Stdout);
        var again = Cli(new[] { "asm", "-" }, Encoding.UTF8.GetBytes(dis.Stdout));
        Assert.Equal(asm.StdoutBytes, again.StdoutBytes);
    }

    [SkippableFact]
    public void AsmHexAndOutputFile()
    {
        string src = Temp("prog.s", Encoding.UTF8.GetBytes(Sample));
        var hex = Cli(new[] { "asm", src, "--hex" });
        Assert.Equal(0, hex.Exit);
        Assert.StartsWith("b700000000000000\n7111010000000000\n", hex.Stdout);
        string outFile = src + ".bin";
        Assert.Equal(0, Cli(new[] { "asm", src, "-o", outFile }).Exit);
        Assert.Equal(Assembler.Assemble(Sample), File.ReadAllBytes(outFile));
        // The hex output is itself a program the other commands read.
        string hexFile = Temp("prog.hex", Encoding.ASCII.GetBytes(hex.Stdout));
        Assert.Equal(Disassembler.Disassemble(Assembler.Assemble(Sample)), Cli(new[] { "disasm", hexFile }).Stdout);
    }

    [SkippableFact]
    public void RunDetectsEveryFormat()
    {
        byte[] prog = Assembler.Assemble(Sample);
        string asm = Temp("f.s", Encoding.UTF8.GetBytes(Sample));
        string raw = Temp("f.bin", prog);
        string hex = Temp("f.hex", Encoding.ASCII.GetBytes(Convert.ToHexString(prog)));
        foreach (var file in new[] { asm, raw, hex })
        {
            var r = Cli(new[] { "run", file, "--mem-hex", "00 22 33" });
            Assert.Equal(0, r.Exit);
            Assert.Equal("0x32\n", r.Stdout);
        }
        Assert.Equal("0x32\n", Cli(new[] { "run", raw, "--format", "raw", "--mem-hex", "0022" }).Stdout);
        string memFile = Temp("mem.bin", new byte[] { 0, 5 });
        Assert.Equal("0x15\n", Cli(new[] { "run", asm, "--mem", memFile }).Stdout);
    }

    [SkippableFact]
    public void RunKindsLimitsAndTrace()
    {
        string nodata = Temp("k.s", Encoding.UTF8.GetBytes("mov r0, r1\nadd r0, r2\nexit"));
        Assert.Equal("0x0\n", Cli(new[] { "run", nodata, "--kind", "nodata" }).Stdout);
        string len = Temp("len.s", Encoding.UTF8.GetBytes("mov r0, r2\nexit"));
        Assert.Equal("0x4\n", Cli(new[] { "run", len, "--kind", "raw", "--mem-hex", "01020304" }).Stdout);
        string fixedProg = Temp("fx.s", Encoding.UTF8.GetBytes("ldxdw r2, [r1+16]\nldxdw r3, [r1+32]\nmov r0, r3\nsub r0, r2\nexit"));
        Assert.Equal("0x3\n", Cli(new[] { "run", fixedProg, "--kind", "fixed", "--data-offset", "16", "--data-end-offset", "32", "--mem-hex", "aabbcc" }).Stdout);
        string loop = Temp("loop.s", Encoding.UTF8.GetBytes("mov r0, 0\nl:\nadd r0, 1\njne r0, 0, l\nexit"));
        var limited = Cli(new[] { "run", loop, "--limit", "100" });
        Assert.Equal(1, limited.Exit);
        Assert.Contains("instruction limit of 100", limited.Stderr);
        // Helpers nobody registered can be stubbed: each call is logged and returns the value given.
        string calls = Temp("calls.s", Encoding.UTF8.GetBytes("mov r1, 3\ncall 99\nadd r0, 1\nexit"));
        Assert.NotEqual(0, Cli(new[] { "run", calls }).Exit);
        var stubbed = Cli(new[] { "run", calls, "--stub-helpers", "41" });
        Assert.Equal(0, stubbed.Exit);
        Assert.Equal("0x2a\n", stubbed.Stdout);
        Assert.Contains("stub helper 99 called with 0x3, ", stubbed.Stderr);
        // Input a kind does not use is refused, not ignored.
        var unused = Cli(new[] { "run", nodata, "--kind", "nodata", "--mem-hex", "0102" });
        Assert.NotEqual(0, unused.Exit);
        Assert.Contains("takes no input memory", unused.Stderr);
        // A loop with no way out is refused before it runs.
        string endless = Temp("endless.s", Encoding.UTF8.GetBytes("l:\nja l\nexit"));
        var refused = Cli(new[] { "run", endless });
        Assert.NotEqual(0, refused.Exit);
        Assert.Contains("infinite loop", refused.Stderr);
        var trace = Cli(new[] { "run", nodata, "--kind", "nodata", "--trace" });
        Assert.Equal(0, trace.Exit);
        var lines = trace.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.StartsWith("    0: mov64 r0, r1", lines[0]);
        Assert.Contains("r10=0x", lines[0]);
        Assert.StartsWith("    2: exit", lines[2]);
        Assert.Equal("0x0", lines[3]);
        var repeat = Cli(new[] { "run", nodata, "--kind", "nodata", "--repeat", "2000" });
        Assert.Equal(0, repeat.Exit);
        Assert.Contains("2000 runs in", repeat.Stderr);
        Assert.Contains("runs/s", repeat.Stderr);
    }

    [SkippableFact]
    public void ErrorsHaveDocumentedExitCodes()
    {
        Assert.Equal(2, Cli(Array.Empty<string>()).Exit);
        Assert.Equal(2, Cli(new[] { "frobnicate" }).Exit);
        Assert.Equal(2, Cli(new[] { "run" }).Exit);
        Assert.Equal(2, Cli(new[] { "run", "x", "--kind", "weird" }).Exit);
        Assert.Equal(2, Cli(new[] { "run", "x", "--bogus" }).Exit);
        var missing = Cli(new[] { "run", "/nonexistent/prog.s" });
        Assert.Equal(3, missing.Exit);
        Assert.Contains("cannot read", missing.Stderr);
        // Messages are sentences, never .NET resource keys (NativeAOT can strip the texts).
        Assert.Contains("Could not find a part of the path", missing.Stderr);
        Assert.DoesNotContain("IO_FileNotFound", missing.Stderr);
        var directory = Cli(new[] { "run", Path.GetTempPath() });
        Assert.Equal(3, directory.Exit);
        Assert.Contains("is a directory", directory.Stderr);
        string source = Temp("ok.s", Encoding.UTF8.GetBytes("mov r0, 1\nexit"));
        var unwritable = Cli(new[] { "asm", source, "-o", "/nonexistent/dir/x.bin" });
        Assert.Equal(3, unwritable.Exit);
        Assert.Contains("Could not find a part of the path", unwritable.Stderr);
        Assert.DoesNotContain("IO_PathNotFound", unwritable.Stderr);
        var bad = Cli(new[] { "asm", "-" }, Encoding.UTF8.GetBytes("mov r0, 1\n  frob r1\n"));
        Assert.Equal(3, bad.Exit);
        Assert.Contains("line 2, column 3", bad.Stderr);
        string rejected = Temp("rej.s", Encoding.UTF8.GetBytes("mov r0, 1"));
        var rej = Cli(new[] { "run", rejected });
        Assert.Equal(3, rej.Exit);
        Assert.Contains("fall off the end", rej.Stderr);
        string oob = Temp("oob.s", Encoding.UTF8.GetBytes("ldxw r0, [r1+8]\nexit"));
        var run = Cli(new[] { "run", oob, "--mem-hex", "00" });
        Assert.Equal(1, run.Exit);
        Assert.Contains("out-of-bounds load of 4 bytes", run.Stderr);
        Assert.Equal(3, Cli(new[] { "disasm", "-" }, new byte[7]).Exit);
        var jitRun = Cli(new[] { "run", oob, "--mem-hex", "00", "--jit" });
        Assert.Equal(1, jitRun.Exit);
        Assert.Contains("out-of-bounds load of 4 bytes", jitRun.Stderr);
    }

    [Fact]
    public void JitCommandListsAArch64CodeOnAnyHost()
    {
        string prog = Temp("jit-arm64.s", Encoding.UTF8.GetBytes(Sample));
        var jit = Cli(new[] { "jit", prog, "--arch", "arm64" });
        Assert.Equal(0, jit.Exit);
        Assert.Contains(";     1: ldxb r1, [r1+1]", jit.Stdout);
        Assert.Contains("ldrb w0, [x16]", jit.Stdout); // r1 is x0; a checked load goes through x16
        Assert.Contains("bytes of AArch64 code for 5 eBPF slots", jit.Stdout);
        Assert.DoesNotContain("ldrb w0, [x16]", Cli(new[] { "jit", prog, "--arch", "arm64", "--unchecked" }).Stdout);
        var bad = Cli(new[] { "jit", prog, "--arch", "mips" });
        Assert.Equal(2, bad.Exit);
        Assert.Contains("unknown architecture 'mips'", bad.Stderr);
    }

    [Fact]
    public void JitCommandListsTheCopiesOfAThreadedStateMachine()
    {
        // clang's switch in a loop (tests/elf/ini_lexer.c): the listing shows the copies jump threading
        // made, each with the slot it copies; both engines give the lexer's counts.
        string obj = Path.Combine(TestPaths.RepoRoot, "tests", "elf", "ini_lexer.o");
        var jit = Cli(new[] { "jit", obj, "--arch", "arm64" });
        Assert.Equal(0, jit.Exit);
        Assert.Matches(@"(?m)^; +\d+: \[\d+\] ldxb ", jit.Stdout);
        string text = Temp("lexer.ini", Encoding.ASCII.GetBytes("[main]\nkey = \"a\\\"b\"\n; c\nx=1\nbad!\n  y = 22\n[unterminated\n"));
        var engines = EbpfVm.IsJitSupported ? new[] { Array.Empty<string>(), new[] { "--jit" } } : new[] { Array.Empty<string>() };
        foreach (var extra in engines)
        {
            var r = Cli(new[] { "run", obj, "--mem", text }.Concat(extra).ToArray());
            Assert.Equal(0, r.Exit);
            Assert.Equal("0x2010101030402\n", r.Stdout); // 2 sections, 4 keys, 3 values, 1 quoted, 1 escape, 1 comment, 2 bad
        }
    }

    [SkippableFact]
    public void JitCommandShowsCodeAndRunJitAgrees()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        string prog = Temp("jit.s", Encoding.UTF8.GetBytes(Sample));
        var jit = Cli(new[] { "jit", prog });
        Assert.Equal(0, jit.Exit);
        Assert.Contains(";     1: ldxb r1, [r1+1]", jit.Stdout);
        Assert.Contains("movzx", jit.Stdout);
        Assert.Contains("bytes of x86-64 code for 5 eBPF slots", jit.Stdout);
        // The inline check subtracts the packet's start (in the context) from the address; unchecked code does not.
        string check = $"subr10,[r12+{Rbpf.Jit.JitContext.OffPacketStart:X}h]";
        Assert.Contains(check, jit.Stdout.Replace(" ", ""));
        Assert.DoesNotContain(check, Cli(new[] { "jit", prog, "--unchecked" }).Stdout.Replace(" ", ""));
        foreach (var extra in new[] { Array.Empty<string>(), new[] { "--jit" }, new[] { "--jit", "--unchecked" } })
        {
            var r = Cli(new[] { "run", prog, "--mem-hex", "00 22 33" }.Concat(extra).ToArray());
            Assert.Equal(0, r.Exit);
            Assert.Equal("0x32\n", r.Stdout);
        }
        var repeat = Cli(new[] { "run", prog, "--mem-hex", "00 22", "--jit", "--repeat", "5000" });
        Assert.Equal(0, repeat.Exit);
        Assert.Contains("5000 runs in", repeat.Stderr);
        Assert.Equal(2, Cli(new[] { "run", prog, "--jit", "--trace" }).Exit);
    }

    [SkippableFact]
    public void ElfObjectsRunDisassembleAndCompile()
    {
        string dir = Path.Combine(TestPaths.RepoRoot, "tests", "elf");
        string rodata = Path.Combine(dir, "rodata.o");
        var dis = Cli(new[] { "disasm", rodata, "--section", "socket" });
        Assert.Equal(0, dis.Exit);
        Assert.Contains("lddw", dis.Stdout);
        // The default program is the same (lddw of global data shows the address of this run's copy).
        static string NoAddresses(string t) => System.Text.RegularExpressions.Regex.Replace(t, "lddw (r\\d+), 0x[0-9a-f]+", "lddw $1, ADDR");
        Assert.Equal(NoAddresses(dis.Stdout), NoAddresses(Cli(new[] { "disasm", rodata }).Stdout));
        var run = Cli(new[] { "run", rodata, "--mem-hex", "313233343536373839" });
        Assert.Equal(0, run.Exit);
        Assert.Equal("0xf4\n", run.Stdout); // CRC-8 of "123456789"
        Assert.Equal("0xf4\n", Cli(new[] { "run", rodata, "--section", "crc8", "--mem-hex", "313233343536373839", "--jit" }).Stdout);
        var filter = Cli(new[] { "run", Path.Combine(dir, "block_port.v4.o"), "--kind", "fixed", "--data-offset", "0x40", "--data-end-offset", "0x50",
            "--mem-hex", "0123456789abfedcba987654080045 00003ba6ab400040 06960f7f0000017f 0000019999c6cc d1e5c49dd430b5d2" });
        Assert.Equal(0, filter.Exit);
        Assert.Equal("0x0\n", filter.Stdout);
        var bad = Cli(new[] { "run", rodata, "--section", "nope" });
        Assert.Equal(3, bad.Exit);
        Assert.Contains("nope", bad.Stderr);
        Assert.Equal(2, Cli(new[] { "run", Temp("x.s", "exit"u8.ToArray()), "--section", "a" }).Exit);
        Assert.Contains("ELF", Cli(new[] { "disasm", "-", "--format", "elf" }, "\u007fELF..."u8.ToArray()).Stderr);
    }

    [SkippableTheory]
    [InlineData("asm")]
    [InlineData("disasm")]
    [InlineData("run")]
    [InlineData("jit")]
    [InlineData("plugin")]
    public void EverySubcommandHasHelp(string command)
    {
        var r = Cli(new[] { command, "--help" });
        Assert.Equal(0, r.Exit);
        Assert.StartsWith("usage: rbpf " + command, r.Stdout);
    }

    [SkippableFact]
    public void PluginSpeaksTheConformanceProtocol()
    {
        string? dir = TestPaths.ConformanceDir;
        Skip.If(dir == null, "../shared/conformance is absent: plugin conformance run skipped");
        string plugin = Path.Combine(Path.GetDirectoryName(CliPath() ?? "")!, "rbpf-plugin");
        Skip.If(!File.Exists(plugin), "rbpf-plugin is not built");
        int ran = 0;
        foreach (var file in Directory.GetFiles(Path.Combine(dir!, "tests"), "*.data"))
        {
            var c = ConformanceCase.Load(file);
            string progHex = string.Join(" ", c.Program.Select(b => b.ToString("x2")));
            var args = c.Memory.Length > 0 ? new[] { string.Join(" ", c.Memory.Select(b => b.ToString("x2"))) } : Array.Empty<string>();
            var modes = EbpfVm.IsJitSupported
                ? new[] { new[] { "--interpret" }, new[] { "--jit" }, new[] { "--jit", "--blind" } }
                : new[] { new[] { "--interpret" } };
            foreach (var mode in modes)
            {
                var r = Cli(args.Concat(mode).ToArray(), Encoding.ASCII.GetBytes(progHex), plugin);
                Assert.True(r.Exit == 0, $"{c.Name} {string.Join(" ", mode)}: exit {r.Exit}: {r.Stderr}");
                Assert.Equal(c.Result!.Value, Convert.ToUInt64(r.Stdout.Trim(), 16));
            }
            ran++;
        }
        Assert.True(ran > 300);
        var bad = Cli(Array.Empty<string>(), Encoding.ASCII.GetBytes("95 00 00"), plugin);
        Assert.NotEqual(0, bad.Exit);
        Assert.NotEmpty(bad.Stderr);
        var oob = Cli(new[] { "00" }, Encoding.ASCII.GetBytes("61 10 08 00 00 00 00 00 95 00 00 00 00 00 00 00"), plugin);
        Assert.Equal(1, oob.Exit);
        Assert.Contains("out-of-bounds", oob.Stderr);
    }
}
