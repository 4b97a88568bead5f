namespace Rbpf.Tests;

/// <summary>
/// Malformed and random programs: every one must be rejected by the verifier or run to a result or
/// an error. Nothing may crash or throw anything but <see cref="RbpfException"/>.
/// </summary>
public class FuzzTests
{
    private static readonly RbpfErrorCode[] RunTimeErrors =
    {
        RbpfErrorCode.OutOfBounds, RbpfErrorCode.UnknownHelper, RbpfErrorCode.InstructionLimit,
        RbpfErrorCode.CallDepthExceeded, RbpfErrorCode.HelperFailed, RbpfErrorCode.IllegalInstruction,
    };

    private sealed class Stats
    {
        public int Programs, Rejected, Ran, Failed;
    }

    private static void Check(byte[] prog, byte[] mem, bool verify, Stats stats)
    {
        stats.Programs++;
        var vm = new EbpfVm(VmKind.Raw);
        if (!verify) vm.SetVerifier(null);
        vm.RegisterHelper(1, (a, b, _, _, _) => a ^ b);
        vm.InstructionLimit = 2000;
        try
        {
            vm.SetProgram(prog);
        }
        catch (RbpfException e)
        {
            Assert.Equal(RbpfErrorCode.InvalidProgram, e.Code);
            Assert.False(string.IsNullOrEmpty(e.Message));
            stats.Rejected++;
            return;
        }
        var code = vm.TryExecute(mem, Span<byte>.Empty, out _, out var error);
        if (code == RbpfErrorCode.Ok) { stats.Ran++; return; }
        Assert.Contains(code, RunTimeErrors);
        if (verify) Assert.NotEqual(RbpfErrorCode.IllegalInstruction, code); // verified programs have no illegal slots
        Assert.NotNull(error);
        stats.Failed++;
    }

    private static byte[] RandomSlots(Random rng, int count, bool knownOpcodes)
    {
        var prog = new byte[count * 8];
        rng.NextBytes(prog);
        for (int k = 0; k < prog.Length; k += 8)
        {
            if (knownOpcodes) prog[k] = AssemblerTests.KnownOpcodes[rng.Next(AssemblerTests.KnownOpcodes.Length)];
            if (knownOpcodes && rng.Next(4) != 0) prog[k + 1] = (byte)(rng.Next(11) | (rng.Next(11) << 4));
            if (knownOpcodes && rng.Next(3) != 0) { prog[k + 2] = (byte)rng.Next(-4, 5); prog[k + 3] = (byte)(prog[k + 2] >= 0x80 ? 0xff : 0); }
            if (knownOpcodes && rng.Next(3) == 0) { prog[k + 4] = (byte)rng.Next(0, 70); prog[k + 5] = prog[k + 6] = prog[k + 7] = 0; }
        }
        if (rng.Next(3) != 0) prog[^8] = Isa.Exit;
        return prog;
    }

    [Fact]
    public void HundredThousandMalformedProgramsNeverCrash()
    {
        var rng = new Random(20261125);
        var stats = new Stats();
        byte[] mem = new byte[64];
        for (int n = 0; n < 30_000; n++)
        {
            // Pure random bytes, sometimes of a bad length.
            int len = rng.Next(0, 24) * 8 + (rng.Next(10) == 0 ? rng.Next(1, 8) : 0);
            var prog = new byte[len];
            rng.NextBytes(prog);
            Check(prog, mem, verify: true, stats);
        }
        for (int n = 0; n < 40_000; n++)
        {
            // Real opcodes with random fields: many pass the verifier and run.
            rng.NextBytes(mem);
            Check(RandomSlots(rng, rng.Next(1, 24), knownOpcodes: true), mem, verify: true, stats);
        }
        for (int n = 0; n < 10_000; n++)
        {
            // Truncated or corrupted lddw.
            var prog = RandomSlots(rng, rng.Next(1, 6), knownOpcodes: true);
            int at = rng.Next(prog.Length / 8);
            prog[at * 8] = Isa.Lddw;
            if (at + 1 < prog.Length / 8 && rng.Next(2) == 0) prog[(at + 1) * 8 + rng.Next(4)] = (byte)rng.Next(1, 256);
            if (rng.Next(2) == 0) Array.Resize(ref prog, (at + 1) * 8);
            Check(prog, mem, verify: true, stats);
        }
        var valid = Assembler.Assemble(@"
            mov r0, 0
            mov r2, 5
        loop:
            add r0, r2
            lddw r3, 0x1122334455667788
            jlt r0, 100, loop
            stxdw [r10-8], r0
            ldxdw r0, [r10-8]
            call local f
            exit
        f:
            ja +0
            exit");
        for (int n = 0; n < 10_000; n++)
        {
            // Random jump offsets in a valid program.
            var prog = (byte[])valid.Clone();
            for (int k = 0; k < prog.Length / 8; k++)
            {
                byte op = prog[k * 8];
                if ((op & 7) == Isa.ClassJmp && op != Isa.Exit && rng.Next(2) == 0)
                {
                    if (op == Isa.Call) BitConverter.TryWriteBytes(prog.AsSpan(k * 8 + 4), rng.Next(-20, 20));
                    else BitConverter.TryWriteBytes(prog.AsSpan(k * 8 + 2), (short)rng.Next(-20, 20));
                }
            }
            Check(prog, mem, verify: true, stats);
        }
        for (int n = 0; n < 15_000; n++)
        {
            // No verifier at all: the interpreter alone must stay safe.
            Check(RandomSlots(rng, rng.Next(1, 24), knownOpcodes: rng.Next(4) != 0), mem, verify: false, stats);
        }
        Assert.True(stats.Programs >= 100_000, $"only {stats.Programs} programs");
        // The generators reach every outcome, so the test exercises both the verifier and the engine.
        Assert.True(stats.Rejected > 10_000, $"rejected {stats.Rejected}");
        Assert.True(stats.Ran > 1_000, $"ran {stats.Ran}");
        Assert.True(stats.Failed > 1_000, $"failed {stats.Failed}");
    }
}

/// <summary>Defects found by coverage-guided fuzzing (issue #18), each fixed with its own test.</summary>
public class FuzzFoundTests
{
    [Theory]
    [InlineData("0228000b0000000000b7000000040100000fa00000000000009500000000000000")] // socket: r0 = r10 + 0x104
    [InlineData("1b150000000200000081120000000000001fa00000000000009500000000000000")] // xdp: r0 -= r10
    public void KernelProgramsReturningStackAddressesAgreeAcrossEngines(string hex)
    {
        // Found by a 20-minute campaign of the kernel target (2026-11-30): the engines' stacks sit
        // at different addresses (they had coincided until the JIT's frame shrank), so a result
        // made from r10 differs; the target now checks that it moves with the stack alike in both.
        var input = Convert.FromHexString(hex);
        var exception = Record.Exception(() => Rbpf.Fuzz.Targets.Kernel(input));
        Assert.Null(exception);
    }

    [Theory]
    [InlineData("02bfa000000000000057000000f00f00009500000000000000")] // socket: r0 = r10 & 0xff0
    [InlineData("02170000000080adeb4700000004e4f840bf000000000000007ca00000000000009500000000000000")] // socket: r0 >>= r10 (32-bit)
    [InlineData("801400000040330ff86fa0000000000000b500fdff0c95404c9500000000000000")] // socket: r0 <<= r10 in a loop
    [InlineData("efbf8000000000000077000000040000efbfa00000000000007700000004f8ffff47000000037f7f00bf000000000000009500000000000000")] // socket: r0 = r10 >> 4 | 0x7f7f03
    public void KernelProgramsComputingWithStackBitsAreNotCompared(string hex)
    {
        // Found by a 15-minute campaign of the kernel target (2026-12-02, 46 findings, all of this
        // kind): a result made from r10's bits (a shift by it, a mask) stays put when the stack moves
        // by 4 KiB, so the target took it for one that does not depend on the stack and compared it
        // across the engines, whose frames sit at different addresses. The target now moves the
        // stack by 16 bytes to 16 KiB and compares only results that stay put or move in step.
        var input = Convert.FromHexString(hex);
        for (int run = 0; run < 3; run++)
            Assert.Null(Record.Exception(() => Rbpf.Fuzz.Targets.Kernel(input)));
    }

    [Theory]
    [InlineData("elf-address-times-constant.o", true)] // r0 = value + 1000000 * &data
    [InlineData("elf-shift-by-data-address.o", false)] // r0 <<= &data + byte (two copies agree when their addresses do mod 64)
    [InlineData("elf-ring-buffer-reserve.o", true)]    // r0 = the address bpf_ringbuf_reserve gave
    public void ElfProgramsComputingWithAddressesRunBothEnginesOnOneVm(string file, bool alwaysDiffersOnCopies)
    {
        // Found by 20-minute campaigns of the elf target (2026-11-30): the target ran the JIT on a
        // second copy of the object, whose data, map values and ring buffer sit elsewhere, so
        // results computed from those addresses differed. It now runs both engines on one VM and
        // puts back what the first run changed (global data, map entries, the ring buffer's
        // records and positions) before the second.
        var elf = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "fuzz-found", file));
        var a = EbpfVm.CreateFromElf(VmKind.Raw, elf);
        var b = EbpfVm.CreateFromElf(VmKind.Raw, elf);
        var input = new byte[64];
        input[0] = 7;
        a.InstructionLimit = b.InstructionLimit = 5000;
        ulong ra = 0, rb = 0;
        for (int run = 0; run < 4 && ra == rb; run++) { ra = a.Execute(input); rb = b.Execute(input); }
        if (alwaysDiffersOnCopies) Assert.NotEqual(ra, rb); // on two copies the result depends on where things are
        for (int n = 0; n < 20; n++) Assert.Null(Record.Exception(() => Rbpf.Fuzz.Targets.Elf(elf)));
    }

    [Theory]
    [InlineData("180c00001800000000000000000000009500000000000000", ".quad 0x0000001800000c18")] // lddw r12, 0x18
    [InlineData("181f0000030000000000000000000000", ".quad 0x0000000300001f18")]                   // lddw r15, map 3
    [InlineData("180b0000ffffffff00000000ffffffff", ".quad 0xffffffff00000b18")]                   // lddw r11, -1
    public void LddwIntoRegistersPastR10RoundTripsAsQuads(string hex, string firstLine)
    {
        // Found by a 20-minute campaign of the disasm target (2026-11-30): the disassembler wrote
        // "lddw r12, 0x18", which the assembler refuses; such a slot now becomes .quad lines.
        var prog = Convert.FromHexString(hex);
        foreach (var syntax in new[] { AsmSyntax.Rbpf, AsmSyntax.Llvm })
            foreach (bool labels in new[] { false, true })
            {
                var text = Disassembler.Disassemble(prog, syntax, labels);
                Assert.Equal(prog, Assembler.Assemble(text));
                Assert.Equal(firstLine, text.Split('\n')[0]);
            }
        Assert.Null(Record.Exception(() => Rbpf.Fuzz.Targets.Disassemble(prog)));
    }

    [Theory]
    [InlineData("call local 0x100000000\nexit")]
    [InlineData("gotol 0x100000000\nexit")]
    [InlineData("ja32 0x80000000\nexit")]
    [InlineData("callx 0x100000000\nexit")]
    [InlineData("call local -0x80000001\nexit")]
    public void HugeJumpAndCallTargetsAreAssemblyErrors(string source)
    {
        var e = Assert.Throws<AssemblyException>(() => Assembler.Assemble(source));
        Assert.Equal(1, e.Line);
        Assert.Contains("does not fit in 32 bits", e.Message);
    }

    [Fact]
    public void AForgedNullSectionIsNotRead()
    {
        // Section header 0 claims to be an allocated PROGBITS section, then a symbol table, then
        // the name table, each with an offset past the end of the file: an ELF error or a load that
        // ignores it, never another exception.
        var elf = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "elf", "calls.o"));
        ulong shoff = BitConverter.ToUInt64(elf, 40);
        foreach (uint type in new uint[] { 1, 2, 3 })
        {
            var copy = (byte[])elf.Clone();
            int h = (int)shoff;
            BitConverter.GetBytes(type).CopyTo(copy, h + 4);
            BitConverter.GetBytes(2UL).CopyTo(copy, h + 8);             // SHF_ALLOC
            BitConverter.GetBytes(0xffff_0000UL).CopyTo(copy, h + 24);  // offset far past the end
            BitConverter.GetBytes(64UL).CopyTo(copy, h + 32);
            var vm = EbpfVm.CreateFromElf(VmKind.Raw, copy); // section 0 is the null section whatever it says
            Assert.NotNull(vm.Program);
        }
        var names = (byte[])elf.Clone();
        names[62] = 0; names[63] = 0; // e_shstrndx = 0
        Assert.Contains("null section", Assert.Throws<RbpfException>(() => EbpfVm.CreateFromElf(VmKind.Raw, names)).Message);
    }

    [Theory]
    [InlineData("legacy_maps.o", "maps")]
    [InlineData("counters.o", ".bss")]
    [InlineData("rodata.o", ".rodata")]
    public void ASectionOfZeroesClaimingGigabytesIsAnElfError(string file, string section)
    {
        // Found by a 20-minute campaign of the elf target (2026-11-30): a legacy "maps" section
        // turned SHT_NOBITS with a size past 2^31 threw OverflowException; a .bss of 2 GiB was
        // allocated. Sections of zeroes are now limited to ElfLoader.MaxNoBitsSize.
        var elf = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "elf", file));
        ulong shoff = BitConverter.ToUInt64(elf, 40);
        int shnum = BitConverter.ToUInt16(elf, 60), shstrndx = BitConverter.ToUInt16(elf, 62);
        int names = (int)BitConverter.ToUInt64(elf, (int)shoff + shstrndx * 64 + 24);
        int header = -1;
        for (int i = 0; i < shnum; i++)
        {
            int h = (int)shoff + i * 64, n = names + BitConverter.ToInt32(elf, h);
            if (System.Text.Encoding.ASCII.GetString(elf, n, section.Length) == section && elf[n + section.Length] == 0) header = h;
        }
        Assert.True(header >= 0, $"{file} has no section {section}");
        foreach (ulong size in new[] { 1UL << 40, (ElfLoader.MaxNoBitsSize) + 1 })
        {
            var copy = (byte[])elf.Clone();
            BitConverter.GetBytes(8u).CopyTo(copy, header + 4);     // SHT_NOBITS
            BitConverter.GetBytes(size).CopyTo(copy, header + 32);  // sh_size
            var e = Assert.Throws<RbpfException>(() => EbpfVm.CreateFromElf(VmKind.Raw, copy));
            Assert.Equal(RbpfErrorCode.ElfError, e.Code);
            Assert.Contains("MiB is refused", e.Message);
        }
        var found = File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "tests", "fuzz-found", "elf-huge-nobits-maps.o"));
        Assert.Null(Record.Exception(() => Rbpf.Fuzz.Targets.Elf(found)));
    }

    [Fact]
    public void AnLdindOffsetThatWrapsIsOutsideThePacketInBothEngines()
    {
        // mov r2, -1; ldindh r2, 1; exit: r2 + 1 wraps to 0, which is not the packet's byte 0.
        var prog = Convert.FromHexString("b7020000ffffffff48200000010000009500000000000000");
        var vm = EbpfVm.CreateRaw(prog);
        var e = Assert.Throws<RbpfException>(() => vm.Execute(new byte[] { 1, 2, 3, 4 }));
        Assert.Equal(RbpfErrorCode.OutOfBounds, e.Code);
        vm.JitCompile();
        var j = Assert.Throws<RbpfException>(() => vm.ExecuteJit(new byte[] { 1, 2, 3, 4 }));
        Assert.Equal(RbpfErrorCode.OutOfBounds, j.Code);
        Assert.Equal(e.InstructionIndex, j.InstructionIndex);
    }
}
