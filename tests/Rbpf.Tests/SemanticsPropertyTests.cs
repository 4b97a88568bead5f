using System.Buffers.Binary;
using System.Globalization;
using CsCheck;
using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// A direct model of RFC 9669's instruction semantics, written from the RFC's text and apart from
/// both engines: each function says what one instruction leaves in its destination (or memory).
/// </summary>
internal static class Rfc9669
{
    public static readonly string[] AluOps =
        { "add", "sub", "mul", "div", "sdiv", "or", "and", "lsh", "rsh", "neg", "mod", "smod", "xor", "mov", "arsh" };

    /// <summary>dst op src for a 64-bit (ALU64) or 32-bit (ALU) instruction; src is the register's value or the immediate sign-extended to 64 bits.</summary>
    public static ulong Alu(string op, bool is64, ulong dst, ulong src)
    {
        if (!is64)
        {
            uint d = (uint)dst, s = (uint)src;
            uint r = op switch
            {
                "add" => d + s,
                "sub" => d - s,
                "mul" => d * s,
                "div" => s == 0 ? 0 : d / s,
                "sdiv" => s == 0 ? 0 : (int)s == -1 ? (uint)-(int)d : (uint)((int)d / (int)s),
                "or" => d | s,
                "and" => d & s,
                "lsh" => d << (int)(s & 31),
                "rsh" => d >> (int)(s & 31),
                "neg" => (uint)-(int)d,
                "mod" => s == 0 ? d : d % s,
                "smod" => s == 0 ? d : (int)s == -1 ? 0 : (uint)((int)d % (int)s),
                "xor" => d ^ s,
                "mov" => s,
                "arsh" => (uint)((int)d >> (int)(s & 31)),
                _ => throw new ArgumentException(op),
            };
            return r; // ALU writes zero the upper half
        }
        return op switch
        {
            "add" => dst + src,
            "sub" => dst - src,
            "mul" => dst * src,
            "div" => src == 0 ? 0 : dst / src,
            "sdiv" => src == 0 ? 0 : (long)src == -1 ? (ulong)-(long)dst : (ulong)((long)dst / (long)src),
            "or" => dst | src,
            "and" => dst & src,
            "lsh" => dst << (int)(src & 63),
            "rsh" => dst >> (int)(src & 63),
            "neg" => (ulong)-(long)dst,
            "mod" => src == 0 ? dst : dst % src,
            "smod" => src == 0 ? dst : (long)src == -1 ? 0 : (ulong)((long)dst % (long)src),
            "xor" => dst ^ src,
            "mov" => src,
            "arsh" => (ulong)((long)dst >> (int)(src & 63)),
            _ => throw new ArgumentException(op),
        };
    }

    /// <summary>movsx: the low <paramref name="bits"/> of src sign-extended (to 32 bits and zero-extended for the ALU form).</summary>
    public static ulong MovSx(int bits, bool is64, ulong src)
    {
        long v = bits switch { 8 => (sbyte)src, 16 => (short)src, _ => (int)src };
        return is64 ? (ulong)v : (uint)v;
    }

    /// <summary>le/be (ALU class: to little-endian is a truncation on a little-endian host, to big-endian a swap) and bswap (ALU64 class: always a swap).</summary>
    public static ulong Endian(string kind, int width, ulong v)
    {
        bool swap = kind != "le";
        return width switch
        {
            16 => swap ? BinaryPrimitives.ReverseEndianness((ushort)v) : (ushort)v,
            32 => swap ? BinaryPrimitives.ReverseEndianness((uint)v) : (uint)v,
            _ => swap ? BinaryPrimitives.ReverseEndianness(v) : v,
        };
    }

    public static readonly string[] Conditions = { "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt", "jsle" };

    public static bool Jump(string cond, bool is64, ulong a, ulong b)
    {
        if (!is64)
        {
            uint x = (uint)a, y = (uint)b;
            return cond switch
            {
                "jeq" => x == y, "jgt" => x > y, "jge" => x >= y, "jset" => (x & y) != 0, "jne" => x != y,
                "jsgt" => (int)x > (int)y, "jsge" => (int)x >= (int)y, "jlt" => x < y, "jle" => x <= y,
                "jslt" => (int)x < (int)y, _ => (int)x <= (int)y,
            };
        }
        return cond switch
        {
            "jeq" => a == b, "jgt" => a > b, "jge" => a >= b, "jset" => (a & b) != 0, "jne" => a != b,
            "jsgt" => (long)a > (long)b, "jsge" => (long)a >= (long)b, "jlt" => a < b, "jle" => a <= b,
            "jslt" => (long)a < (long)b, _ => (long)a <= (long)b,
        };
    }

    /// <summary>An atomic operation on memory holding <paramref name="old"/>: the new memory value, the source register and r0 afterwards.</summary>
    public static (ulong Memory, ulong Src, ulong R0) Atomic(string op, bool is64, ulong old, ulong src, ulong r0)
    {
        ulong mask = is64 ? ulong.MaxValue : uint.MaxValue;
        old &= mask;
        ulong s = src & mask;
        switch (op)
        {
            case "add": return ((old + s) & mask, src, r0);
            case "or": return (old | s, src, r0);
            case "and": return (old & s, src, r0);
            case "xor": return (old ^ s, src, r0);
            case "fetch add": return ((old + s) & mask, old, r0);
            case "fetch or": return (old | s, old, r0);
            case "fetch and": return (old & s, old, r0);
            case "fetch xor": return (old ^ s, old, r0);
            case "xchg": return (s, old, r0);
            default: // cmpxchg: compare r0 (its low half for 32 bits) with memory; r0 gets the old value
                return ((r0 & mask) == old ? s : old, src, old);
        }
    }
}

/// <summary>
/// Property tests with shrinking (CsCheck): random operands, biased to the edges, for every ALU,
/// jump, load/store and atomic instruction; the interpreter and the JIT (checked, unchecked,
/// blinded) must give what <see cref="Rfc9669"/> says. A failure is shrunk to small operands.
/// </summary>
public class SemanticsPropertyTests
{
    private static readonly Gen<ulong> Operand = Gen.Frequency(
        (4, Gen.ULong),
        (2, Gen.OneOf(0UL, 1UL, 2UL, 7UL, 31UL, 32UL, 63UL, 64UL, 0x7fUL, 0x80UL, 0xffUL, 0x7fffUL, 0x8000UL, 0xffffUL,
            0x7fffffffUL, 0x80000000UL, 0xffffffffUL, 0x100000000UL, 0x7fffffffffffffffUL, 0x8000000000000000UL, ulong.MaxValue,
            unchecked((ulong)-2L), unchecked((ulong)-7L))),
        (1, Gen.Int.Select(i => (ulong)(long)i)));

    private static readonly Gen<int> Immediate = Gen.Frequency(
        (3, Gen.Int),
        (2, Gen.OneOf(0, 1, -1, 2, -2, 7, 31, 32, 63, 64, int.MinValue, int.MaxValue, 0x8000, -0x8000)));

    private static int Iterations => Environment.GetEnvironmentVariable("RBPF_PROPERTY_ITERATIONS") is { } n
        ? int.Parse(n, CultureInfo.InvariantCulture) : 1500;

    private static readonly JitOptions[] JitModes =
    {
        new JitOptions(), new JitOptions { CheckedMemory = false }, new JitOptions { ConstantBlinding = true },
    };

    private static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>Runs <paramref name="asm"/> on <paramref name="memory"/> in every engine; each must return <paramref name="expected"/> and leave <paramref name="expectedMemory"/>.</summary>
    private static void Expect(string asm, ulong expected, byte[]? memory = null, byte[]? expectedMemory = null)
    {
        var vm = EbpfVm.CreateRaw(Assembler.Assemble(asm));
        var mem = (memory ?? new byte[16]).ToArray();
        ulong got = vm.Execute(mem);
        if (got != expected) throw new Exception($"interpreter: {Hex(got)}, RFC 9669: {Hex(expected)}\n{asm}");
        if (expectedMemory != null && !mem.AsSpan().SequenceEqual(expectedMemory))
            throw new Exception($"interpreter memory {Convert.ToHexString(mem)}, RFC 9669 {Convert.ToHexString(expectedMemory)}\n{asm}");
        if (!EbpfVm.IsJitSupported) return;
        foreach (var options in JitModes)
        {
            vm.JitCompile(options);
            mem = (memory ?? new byte[16]).ToArray();
            got = vm.ExecuteJit(mem);
            if (got != expected) throw new Exception($"JIT ({options}): {Hex(got)}, RFC 9669: {Hex(expected)}\n{asm}");
            if (expectedMemory != null && !mem.AsSpan().SequenceEqual(expectedMemory))
                throw new Exception($"JIT ({options}) memory {Convert.ToHexString(mem)}, RFC 9669 {Convert.ToHexString(expectedMemory)}\n{asm}");
        }
    }

    [Fact]
    public void AluRegisterForms() =>
        Gen.Select(Gen.Int[0, Rfc9669.AluOps.Length - 1], Gen.Bool, Operand, Operand).Sample((k, is64, a, b) =>
        {
            string op = Rfc9669.AluOps[k];
            string name = op + (is64 ? "" : "32");
            string text = op == "neg" ? $"{name} r1" : $"{name} r1, r2";
            Expect($"lddw r1, {Hex(a)}\nlddw r2, {Hex(b)}\n{text}\nmov r0, r1\nexit", Rfc9669.Alu(op, is64, a, b));
        }, iter: Iterations);

    [Fact]
    public void AluImmediateForms() =>
        Gen.Select(Gen.Int[0, Rfc9669.AluOps.Length - 1], Gen.Bool, Operand, Immediate).Sample((k, is64, a, imm) =>
        {
            string op = Rfc9669.AluOps[k];
            if (op == "neg") return;
            string name = op + (is64 ? "" : "32");
            // The immediate is sign-extended to 64 bits (the 32-bit forms use its low half).
            Expect($"lddw r1, {Hex(a)}\n{name} r1, {imm}\nmov r0, r1\nexit", Rfc9669.Alu(op, is64, a, (ulong)(long)imm));
        }, iter: Iterations);

    [Fact]
    public void SignExtendingMovesAndByteSwaps() =>
        Gen.Select(Gen.Int[0, 8], Operand).Sample((k, a) =>
        {
            (string text, ulong expected) = k switch
            {
                0 => ("movsx864 r0, r1", Rfc9669.MovSx(8, true, a)),
                1 => ("movsx1664 r0, r1", Rfc9669.MovSx(16, true, a)),
                2 => ("movsx3264 r0, r1", Rfc9669.MovSx(32, true, a)),
                3 => ("movsx832 r0, r1", Rfc9669.MovSx(8, false, a)),
                4 => ("movsx1632 r0, r1", Rfc9669.MovSx(16, false, a)),
                _ => ("", 0UL),
            };
            if (k >= 5)
            {
                string kind = new[] { "le", "be", "bswap", "be" }[k - 5];
                int width = new[] { 16, 32, 64 }[(int)(a % 3)];
                text = $"{kind}{width} r1\nmov r0, r1";
                expected = Rfc9669.Endian(kind, width, a);
            }
            Expect($"lddw r1, {Hex(a)}\nmov r0, 0\n{text}\nexit", expected);
        }, iter: Iterations);

    [Fact]
    public void ConditionalJumps() =>
        Gen.Select(Gen.Int[0, Rfc9669.Conditions.Length - 1], Gen.Bool, Gen.Bool, Operand, Operand, Immediate).Sample((k, is64, reg, a, b, imm) =>
        {
            string cond = Rfc9669.Conditions[k] + (is64 ? "" : "32");
            ulong other = reg ? b : (ulong)(long)imm; // immediates compare sign-extended
            string operand = reg ? "r2" : imm.ToString(CultureInfo.InvariantCulture);
            bool taken = Rfc9669.Jump(Rfc9669.Conditions[k], is64, a, other);
            Expect($"lddw r1, {Hex(a)}\nlddw r2, {Hex(b)}\nmov r0, 1\n{cond} r1, {operand}, +1\nmov r0, 0\nexit", taken ? 1UL : 0UL);
        }, iter: Iterations);

    [Fact]
    public void LoadsAndStores() =>
        Gen.Select(Gen.Int[0, 3], Gen.Int[0, 8], Gen.Int[0, 2], Operand, Immediate).Sample((sizeIndex, offset, form, value, imm) =>
        {
            int size = 1 << sizeIndex;
            string suffix = new[] { "b", "h", "w", "dw" }[sizeIndex];
            var memory = new byte[16];
            for (int i = 0; i < 16; i++) memory[i] = (byte)(0xa0 + i);
            // The stored value: a register (stx) or the immediate sign-extended (st), truncated to the size.
            ulong stored = form == 1 ? (ulong)(long)imm : value;
            var after = memory.ToArray();
            for (int i = 0; i < size; i++) after[offset + i] = (byte)(stored >> (8 * i));
            ulong loaded = 0;
            for (int i = size - 1; i >= 0; i--) loaded = loaded << 8 | after[offset + i];
            bool signed = form == 2 && size < 8;
            if (signed) loaded = Rfc9669.MovSx(size * 8, true, loaded);
            string store = form == 1 ? $"st{suffix} [r1+{offset}], {imm}" : $"stx{suffix} [r1+{offset}], r2";
            string load = signed ? $"ldxs{suffix} r0, [r1+{offset}]" : $"ldx{suffix} r0, [r1+{offset}]";
            Expect($"lddw r2, {Hex(value)}\n{store}\n{load}\nexit", loaded, memory, after);
            // Through the stack as well (the JIT addresses r10 without checks).
            string at = $"[r10{offset - 16}]";
            string stackStore = form == 1 ? $"st{suffix} {at}, {imm}" : $"stx{suffix} {at}, r2";
            string stackLoad = signed ? $"ldxs{suffix} r0, {at}" : $"ldx{suffix} r0, {at}";
            Expect($"lddw r2, {Hex(value)}\nstdw [r10-16], 0\nstdw [r10-8], 0\n{stackStore}\n{stackLoad}\nexit",
                Stack(size, offset, stored, signed));
        }, iter: Iterations);

    /// <summary>What a load after a store of <paramref name="stored"/> reads from a zeroed 16-byte stack area.</summary>
    private static ulong Stack(int size, int offset, ulong stored, bool signed)
    {
        ulong mask = size == 8 ? ulong.MaxValue : (1UL << (8 * size)) - 1;
        ulong v = stored & mask;
        return signed ? Rfc9669.MovSx(size * 8, true, v) : v;
    }

    private static readonly string[] AtomicOps = { "add", "or", "and", "xor", "fetch add", "fetch or", "fetch and", "fetch xor", "xchg", "cmpxchg" };

    [Fact]
    public void Atomics() =>
        Gen.Select(Gen.Int[0, AtomicOps.Length - 1], Gen.Bool, Operand, Operand, Operand, Gen.Bool).Sample((k, is64, old, src, r0, equal) =>
        {
            string op = AtomicOps[k];
            int size = is64 ? 8 : 4;
            if (op == "cmpxchg" && equal) r0 = (r0 & ~(is64 ? ulong.MaxValue : uint.MaxValue)) | (old & (is64 ? ulong.MaxValue : uint.MaxValue));
            var memory = new byte[16];
            BinaryPrimitives.WriteUInt64LittleEndian(memory.AsSpan(8), old);
            var (newMemory, newSrc, newR0) = Rfc9669.Atomic(op, is64, old, src, r0);
            var after = memory.ToArray();
            if (is64) BinaryPrimitives.WriteUInt64LittleEndian(after.AsSpan(8), newMemory);
            else BinaryPrimitives.WriteUInt32LittleEndian(after.AsSpan(8), (uint)newMemory);
            // The program returns src and r0 mixed, so both must be right.
            ulong expected = newSrc * 0x9e3779b97f4a7c15UL ^ newR0;
            Expect($"lddw r2, {Hex(src)}\nlddw r0, {Hex(r0)}\nlock {op}{(is64 ? "" : "32")} [r1+8], r2\n" +
                "lddw r3, 0x9e3779b97f4a7c15\nmul r2, r3\nxor r0, r2\nexit", expected, memory, after);
            _ = size;
        }, iter: Iterations);

    [Fact]
    public void TheModelIsNotTheInterpreter()
    {
        // The model is checked against a few values from the RFC's text, so a shared mistake with
        // the engines would still need to get these wrong.
        Assert.Equal(0UL, Rfc9669.Alu("div", true, 7, 0));
        Assert.Equal(7UL, Rfc9669.Alu("mod", true, 7, 0));
        Assert.Equal(0xffffffffUL, Rfc9669.Alu("mod", false, 0x1ffffffffUL, 0));
        Assert.Equal(0x8000000000000000UL, Rfc9669.Alu("sdiv", true, 0x8000000000000000UL, ulong.MaxValue));
        Assert.Equal(0UL, Rfc9669.Alu("smod", true, 0x8000000000000000UL, ulong.MaxValue));
        Assert.Equal(unchecked((ulong)-1L), Rfc9669.Alu("smod", true, unchecked((ulong)-7L), 2));
        Assert.Equal(2UL, Rfc9669.Alu("lsh", true, 1, 65));
        Assert.Equal(0xffffff80UL, Rfc9669.MovSx(8, false, 0x80));
        Assert.Equal(0x3412UL, Rfc9669.Endian("be", 16, 0xffff1234));
        Assert.Equal(0x1234UL, Rfc9669.Endian("le", 16, 0xffff1234));
        Assert.True(Rfc9669.Jump("jslt", false, 0xffffffff, 0));
        Assert.False(Rfc9669.Jump("jlt", false, 0xffffffff, 0));
        Assert.Equal((5UL, 2UL, 9UL), Rfc9669.Atomic("fetch add", false, 0x100000002UL, 3, 9));
        Assert.Equal((8UL, 8UL, 5UL), Rfc9669.Atomic("cmpxchg", true, 5, 8, 5));
    }
}
