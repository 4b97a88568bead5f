using System.Runtime.InteropServices;
using System.Text;
using Rbpf;
using Rbpf.Jit;
using Rbpf.Tests;

// The AArch64 test driver: everything the x86-64 xunit suite checks about running code, in one
// NativeAOT process for qemu-aarch64 (see docs/arm64.md). Usage:
//   rbpf-arm64-driver [--conformance DIR] [--elf DIR] [--generated N]
// Prints one line per failure and ends with "arm64: N passed, N failed".

int passed = 0, failed = 0;
string? conformance = null, elfDir = null;
int generated = 2000;
for (int k = 0; k < args.Length; k++)
{
    switch (args[k])
    {
        case "--conformance": conformance = args[++k]; break;
        case "--elf": elfDir = args[++k]; break;
        case "--generated": generated = int.Parse(args[++k], System.Globalization.CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown argument {args[k]}"); return 2;
    }
}

void Check(bool ok, string what)
{
    if (ok) passed++;
    else
    {
        failed++;
        Console.WriteLine($"FAIL {what}");
    }
}

void Guard(string what, Action body)
{
    try { body(); }
    catch (Exception ex) { Check(false, $"{what}: {ex.GetType().Name}: {ex.Message}"); }
}

JitOptions[] allOptions = JitAgreement.Options;

Check(RuntimeInformation.ProcessArchitecture == Architecture.Arm64, $"the driver runs on AArch64 (it runs on {RuntimeInformation.ProcessArchitecture})");
Check(EbpfVm.IsJitSupported, "the JIT is supported on AArch64 Linux");

// 1. The conformance suite: the interpreter and the JIT (every option set) give the expected result or fail.
if (conformance != null)
{
    int files = 0;
    foreach (var f in Directory.GetFiles(Path.Combine(conformance, "tests"), "*.data").OrderBy(f => f, StringComparer.Ordinal))
    {
        files++;
        var c = ConformanceCase.Load(f);
        Guard($"conformance {c.Name}", () =>
        {
            var program = c.Program;
            var vm = ConformanceCase.CreateVm(program);
            var code = vm.TryExecute(c.Memory.ToArray(), Span<byte>.Empty, out ulong r, out var err);
            Check(c.Error != null ? code != RbpfErrorCode.Ok : code == RbpfErrorCode.Ok && r == c.Result,
                $"conformance {c.Name} (interpreter): {code} 0x{r:x} {err?.Message}");
            foreach (var options in allOptions)
            {
                if (c.Error != null && !options.CheckedMemory) continue;
                var jvm = ConformanceCase.CreateVm(program);
                jvm.JitCompile(options);
                var jcode = jvm.TryExecuteJit(c.Memory.ToArray(), Span<byte>.Empty, out ulong jr, out var jerr);
                Check(c.Error != null ? jcode != RbpfErrorCode.Ok : jcode == RbpfErrorCode.Ok && jr == c.Result,
                    $"conformance {c.Name} (JIT {options}): {jcode} 0x{jr:x} {jerr?.Message}");
            }
        });
    }
    Check(files > 100, $"conformance: only {files} files in {conformance}");
}

// 2. Generated programs: the JIT agrees with the interpreter (JitAgreement: result and memory, or error, instruction and message).
{
    var rng = new Random(9669);
    int results = 0, errors = 0;
    for (int n = 0; n < generated; n++)
    {
        int memLength = rng.Next(0, 64);
        byte[] prog = Instruction.Encode(ProgramGenerator.Generate(rng, memLength));
        byte[] mem0 = new byte[memLength];
        rng.NextBytes(mem0);
        int index = n;
        Guard($"generated {n}", () =>
        {
            var (code, disagreements) = JitAgreement.Compare(prog, mem0, allOptions);
            foreach (var why in disagreements) Check(false, $"generated {index}: {why}");
            if (disagreements.Count == 0) passed++;
            if (code == RbpfErrorCode.Ok) results++; else errors++;
        });
    }
    Check(generated == 0 || (results > generated / 6 && errors > generated / 15), $"generated: {results} results, {errors} errors");
}

// 3. The code in executable memory is the compiled code, and the instruction cache was flushed for it.
Guard("code read back", () =>
{
    long flushes = ExecutableMemory.CacheFlushes;
    var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 3\nadd r0, 4\nexit"));
    vm.JitCompile();
    Check(vm.JitExecutableBytes().AsSpan().SequenceEqual(vm.JitMachineCode()), "the executable pages hold the compiled code");
    Check(ExecutableMemory.CacheFlushes == flushes + 1, "compiling flushed the instruction cache once");
    Check(vm.ExecuteJit() == 7, "mov/add/exit runs");
    string listing = vm.JitDisassembly();
    Check(listing.Contains("movz") && listing.Contains(";     0: mov") && listing.Contains("ret"), "the AArch64 listing shows the eBPF and the machine instructions:\n" + listing);
});

// 4. What the x86-64 JIT tests check about errors and limits, here.
Guard("errors", () =>
{
    RbpfErrorCode Jit(EbpfVm vm, byte[] mem, out ulong r, out RbpfException? e, JitOptions? o = null)
    {
        vm.JitCompile(o);
        return vm.TryExecuteJit(mem, Span<byte>.Empty, out r, out e);
    }
    // Out of bounds: the same message as the interpreter.
    var oob = EbpfVm.CreateRaw(Assembler.Assemble("ldxdw r0, [r1+8]\nexit"));
    var ci = oob.TryExecute(new byte[8], Span<byte>.Empty, out _, out var ei);
    var cj = Jit(oob, new byte[8], out _, out var ej);
    Check(ci == RbpfErrorCode.OutOfBounds && cj == ci && JitAgreement.Shape(ei!.Message) == JitAgreement.Shape(ej!.Message), $"out of bounds: '{ei?.Message}' vs '{ej?.Message}'");
    // The instruction limit.
    var loop = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 0\nadd r0, 1\njlt r0, 1000000, -2\nexit"));
    loop.InstructionLimit = 1000;
    Check(Jit(loop, Array.Empty<byte>(), out _, out var el) == RbpfErrorCode.InstructionLimit, $"instruction limit: {el?.Message}");
    loop.InstructionLimit = 0;
    Check(Jit(loop, Array.Empty<byte>(), out ulong lr, out _) == RbpfErrorCode.Ok && lr == 1000000, "a million iterations without a limit");
    // An interrupt from another thread stops a runaway loop.
    var runaway = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 1\nadd r0, 1\njne r0, 0, -2\nexit"));
    runaway.JitCompile();
    var t = new Thread(() => { Thread.Sleep(200); runaway.Interrupt(); });
    t.Start();
    var ic = runaway.TryExecuteJit(Span<byte>.Empty, Span<byte>.Empty, out _, out var ie);
    t.Join();
    Check(ic == RbpfErrorCode.Interrupted, $"interrupt: {ic} {ie?.Message}");
    // Division by zero and INT_MIN / -1 do not trap.
    var div = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 5\nmov r1, 0\ndiv r0, r1\nlddw r2, 0x8000000000000000\nsdiv r2, -1\nadd r0, r2\nmov r3, 7\nmod r3, r1\nadd r0, r3\nexit"));
    Check(Jit(div, Array.Empty<byte>(), out ulong dr, out _) == RbpfErrorCode.Ok && dr == 0x8000000000000007, $"division corners: 0x{dr:x}");
    // Local calls nested too deep.
    var deep = EbpfVm.CreateNoData(Assembler.Assemble("call local -1\nexit"));
    Check(Jit(deep, Array.Empty<byte>(), out _, out var ed) == RbpfErrorCode.CallDepthExceeded, $"call depth: {ed?.Message}");
    // A helper that fails ends the run with HelperFailed.
    var failing = EbpfVm.CreateNoData(Assembler.Assemble("call 9\nexit"));
    failing.RegisterHelper(9, (_, _, _, _, _) => throw new InvalidOperationException("no"));
    Check(Jit(failing, Array.Empty<byte>(), out _, out var ef) == RbpfErrorCode.HelperFailed, $"helper failure: {ef?.Message}");
    // Each VM kind builds r1 and r2 as the interpreter does.
    byte[] packet = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();
    var raw = EbpfVm.CreateRaw(Assembler.Assemble("ldxb r0, [r1+3]\nadd r0, r2\nexit"));
    Check(Jit(raw, packet.ToArray(), out ulong rr, out _) == RbpfErrorCode.Ok && rr == 4 + 16, $"raw kind: {rr}");
    var fixedVm = EbpfVm.CreateFixedMbuff(Assembler.Assemble("ldxdw r2, [r1+0x40]\nldxdw r3, [r1+0x50]\nsub r3, r2\nldxb r0, [r2+15]\nadd r0, r3\nexit"), 0x40, 0x50);
    Check(Jit(fixedVm, packet.ToArray(), out ulong fr, out _) == RbpfErrorCode.Ok && fr == 16 + 16, $"fixed mbuff kind: {fr}");
    var mbuff = EbpfVm.CreateMbuff(Assembler.Assemble("ldxw r0, [r1+4]\nexit"));
    mbuff.JitCompile();
    byte[] meta = BitConverter.GetBytes(0x1122334455667788UL);
    Check(mbuff.TryExecuteJit(packet.ToArray(), meta, out ulong mr, out _) == RbpfErrorCode.Ok && mr == 0x11223344, $"mbuff kind: 0x{mr:x}");
    // Atomics (exclusive loops) give the interpreter's values.
    var atomics = EbpfVm.CreateRaw(Assembler.Assemble(
        "mov r2, 5\nlock fetch add64 [r1+0], r2\nmov r0, r2\nmov r3, 9\nlock xchg32 [r1+8], r3\nadd r0, r3\n" +
        "mov r0, 0x0201\nmov r4, 77\nlock cmpxchg64 [r1+0], r4\nldxdw r5, [r1+0]\nadd r0, r5\nexit"));
    byte[] am = BitConverter.GetBytes(0x0201UL - 5).Concat(new byte[8]).ToArray();
    var aci = atomics.TryExecute(am.ToArray(), Span<byte>.Empty, out ulong ari, out _);
    Check(Jit(atomics, am.ToArray(), out ulong arj, out _) == aci && ari == arj, $"atomics: 0x{ari:x} vs 0x{arj:x}");
});

// 5. ELF objects compiled by clang (tests/elf): the JIT gives the interpreter's result.
if (elfDir != null)
{
    foreach (var f in Directory.GetFiles(elfDir, "*.o").OrderBy(f => f, StringComparer.Ordinal))
    {
        Guard($"elf {Path.GetFileName(f)}", () =>
        {
            EbpfVm vm, jvm;
            try
            {
                // Two VMs: an object's maps keep what a run wrote.
                vm = EbpfVm.CreateFromElf(VmKind.Raw, File.ReadAllBytes(f));
                jvm = EbpfVm.CreateFromElf(VmKind.Raw, File.ReadAllBytes(f));
            }
            catch (RbpfException) { return; } // objects for other VM kinds or program types are the xunit suite's
            byte[] mem = Encoding.ASCII.GetBytes("the quick brown fox jumps over the lazy dog 0123456789");
            var ci = vm.TryExecute(mem.ToArray(), Span<byte>.Empty, out ulong ri, out var ei);
            jvm.JitCompile();
            var cj = jvm.TryExecuteJit(mem.ToArray(), Span<byte>.Empty, out ulong rj, out var ej);
            Check(ci == cj && ri == rj && JitAgreement.Shape(ei?.Message) == JitAgreement.Shape(ej?.Message), $"elf {Path.GetFileName(f)}: {ci} 0x{ri:x} '{ei?.Message}' vs JIT {cj} 0x{rj:x} '{ej?.Message}'");
        });
    }
}

// 6. The seed's examples (the rbpf README this project started from), JIT-compiled.
Guard("seed examples", () =>
{
    var three = EbpfVm.CreateNoData(new byte[]
    {
        0xb4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb4, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0c, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    });
    three.JitCompile();
    Check(three.ExecuteJit() == 3, "seed: mov32/add32 returns 3");
    var ldx = EbpfVm.CreateRaw(new byte[] { 0x71, 0x10, 0x02, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0 });
    ldx.JitCompile();
    Check(ldx.ExecuteJit(new byte[] { 0xaa, 0xbb, 0x11, 0xcc, 0xdd }) == 0x11, "seed: raw packet load returns 0x11");
    var meta = EbpfVm.CreateMbuff(new byte[]
    {
        0x79, 0x11, 0x08, 0, 0, 0, 0, 0, 0x69, 0x10, 0x02, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0,
    });
    meta.JitCompile();
    byte[] packet = { 0xaa, 0xbb, 0x11, 0x22, 0xcc, 0xdd };
    unsafe
    {
        fixed (byte* m = packet)
        {
            byte[] mbuff = new byte[32];
            BitConverter.TryWriteBytes(mbuff.AsSpan(8), (ulong)m);
            BitConverter.TryWriteBytes(mbuff.AsSpan(24), (ulong)m + (ulong)packet.Length);
            Check(meta.ExecuteJit(packet, mbuff) == 0x2211, "seed: metadata buffer returns 0x2211");
        }
    }
});

// 7. Kernel program types: XDP and socket/tc programs compiled by clang, through the JIT, as the interpreter runs them.
if (elfDir != null)
{
    Guard("xdp", () =>
    {
        byte[] obj = File.ReadAllBytes(Path.Combine(elfDir, "xdp_progs.o"));
        var interp = EbpfVm.FromKernelObject(obj, "drop_port");
        var jit = EbpfVm.FromKernelObject(obj, "drop_port");
        jit.JitCompile();
        var rng = new Random(15);
        int drops = 0, same = 0;
        for (int n = 0; n < 2000; n++)
        {
            var f = new byte[rng.Next(4) == 0 ? rng.Next(0, 64) : 64];
            if (f.Length >= 38)
            {
                f[12] = 0x08; f[14] = 0x45; f[23] = (byte)(rng.Next(4) == 0 ? 6 : 17);
                ushort port = rng.Next(3) == 0 ? (ushort)9999 : (ushort)rng.Next(65536);
                f[36] = (byte)(port >> 8); f[37] = (byte)port;
            }
            var a = interp.ExecuteXdp(f.ToArray());
            var b = jit.ExecuteXdpJit(f.ToArray());
            if (a == b) same++;
            else Check(false, $"xdp drop_port frame {n}: interpreter {a} vs JIT {b}");
            if (a.Action == Rbpf.Programs.XdpAction.Drop) drops++;
        }
        Check(same == 2000 && drops > 300, $"xdp drop_port: {same} frames alike, {drops} drops");
        var bounce = EbpfVm.FromKernelObject(obj, "bounce");
        bounce.JitCompile();
        byte[] frame = Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();
        frame[12] = 0x08; frame[13] = 0; frame[14] = 0x45;
        byte[] expected = frame.ToArray();
        var r = EbpfVm.FromKernelObject(obj, "bounce").ExecuteXdp(expected);
        var rj = bounce.ExecuteXdpJit(frame);
        Check(r == rj && frame.AsSpan().SequenceEqual(expected), $"xdp bounce: {r} vs {rj}");
    });
    Guard("socket and tc", () =>
    {
        byte[] obj = File.ReadAllBytes(Path.Combine(elfDir, "tc_progs.o"));
        foreach (var function in new[] { "classify", "tcp_only", "tcp_only_ld_abs" })
        {
            var interp = EbpfVm.FromKernelObject(obj, function);
            var jit = EbpfVm.FromKernelObject(obj, function);
            jit.JitCompile();
            var rng = new Random(7);
            int alike = 0;
            for (int n = 0; n < 200; n++)
            {
                var f = new byte[rng.Next(0, 80)];
                rng.NextBytes(f);
                if (f.Length > 23 && rng.Next(2) == 0) { f[12] = 0x08; f[13] = 0; f[14] = 0x45; f[23] = (byte)(rng.Next(2) == 0 ? 6 : 17); }
                var a = interp.ExecuteSkb(f.ToArray(), new Rbpf.Programs.SkbOptions { Ifindex = 7, Mark = 99 });
                var b = jit.ExecuteSkb(f.ToArray(), new Rbpf.Programs.SkbOptions { Ifindex = 7, Mark = 99 }, jit: true);
                if (a.Result == b.Result && a.Mark == b.Mark && a.Priority == b.Priority && a.TcClassid == b.TcClassid && a.Cb.AsSpan().SequenceEqual(b.Cb)) alike++;
                else Check(false, $"{function} frame {n}: interpreter {a.Result} vs JIT {b.Result}");
            }
            Check(alike == 200, $"{function}: {alike} of 200 frames alike");
        }
    });
}

// 8. Loops over arrays in raw VMs, whose accesses the JIT may prove inside the input and leave unchecked
// (InputBounds): the JIT gives the interpreter's result or error on every length.
Guard("array loops", () =>
{
    var rng = new Random(41);
    int alike = 0, runs = 0;
    for (int t = 0; t < 300; t++)
    {
        string text = ArrayLoops.Generate(rng);
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
        vm.InstructionLimit = 5000;
        vm.JitCompile();
        for (int len = 0; len <= 40; len++)
        {
            var a = new byte[len];
            rng.NextBytes(a);
            runs++;
            var ci = vm.TryExecute(a.ToArray(), Span<byte>.Empty, out ulong ri, out _);
            var cj = vm.TryExecuteJit(a.ToArray(), Span<byte>.Empty, out ulong rj, out _);
            if (ci == cj && (ci != RbpfErrorCode.Ok || ri == rj)) alike++;
            else Check(false, $"array loop on {len} bytes: interpreter {ci} {ri}, JIT {cj} {rj}: {text.Replace('\n', ';')}");
        }
    }
    Check(alike == runs, $"array loops: {alike} of {runs} runs alike");
});

Console.WriteLine($"arm64: {passed} passed, {failed} failed");
return failed == 0 ? 0 : 1;
