using System.Text;
using Iced.Intel;
using Rbpf.Jit;
using Rbpf.Jit.X64;
using I = Iced.Intel.AssemblerRegisters;
using M = Rbpf.Jit.X64.X64Registers;

namespace Rbpf.Tests;

using Instruction = Iced.Intel.Instruction;

/// <summary>
/// The x86-64 backend's encoder (<see cref="X64Assembler"/>), checked against Iced: every form the
/// JIT uses, over every register and a spread of displacements and immediates, is encoded by both
/// and decoded by Iced's decoder, and the decoded instructions must mean the same (mnemonic,
/// registers, memory operand, immediate, prefixes; the length may differ where one picks a shorter
/// form). Whole compiled programs are decoded too: every byte is part of a valid instruction and
/// every branch lands on an instruction.
/// </summary>
public class X64EncoderTests
{
    private static readonly Gpr64[] Mine64 = { M.rax, M.rcx, M.rdx, M.rbx, M.rsp, M.rbp, M.rsi, M.rdi, M.r8, M.r9, M.r10, M.r11, M.r12, M.r13, M.r14, M.r15 };
    private static readonly AssemblerRegister64[] Iced64 = { I.rax, I.rcx, I.rdx, I.rbx, I.rsp, I.rbp, I.rsi, I.rdi, I.r8, I.r9, I.r10, I.r11, I.r12, I.r13, I.r14, I.r15 };
    private static readonly Gpr32[] Mine32 = { M.eax, M.ecx, M.edx, M.ebx, M.esp, M.ebp, M.esi, M.edi, M.r8d, M.r9d, M.r10d, M.r11d, M.r12d, M.r13d, M.r14d, M.r15d };
    private static readonly AssemblerRegister32[] Iced32 = { I.eax, I.ecx, I.edx, I.ebx, I.esp, I.ebp, I.esi, I.edi, I.r8d, I.r9d, I.r10d, I.r11d, I.r12d, I.r13d, I.r14d, I.r15d };
    private static readonly Gpr16[] Mine16 = { M.ax, M.cx, M.dx, M.bx, M.sp, M.bp, M.si, M.di, M.r8w, M.r9w, M.r10w, M.r11w, M.r12w, M.r13w, M.r14w, M.r15w };
    private static readonly AssemblerRegister16[] Iced16 = { I.ax, I.cx, I.dx, I.bx, I.sp, I.bp, I.si, I.di, I.r8w, I.r9w, I.r10w, I.r11w, I.r12w, I.r13w, I.r14w, I.r15w };
    private static readonly Gpr8[] Mine8 = { M.al, M.cl, M.dl, M.bl, M.spl, M.bpl, M.sil, M.dil, M.r8b, M.r9b, M.r10b, M.r11b, M.r12b, M.r13b, M.r14b, M.r15b };
    private static readonly AssemblerRegister8[] Iced8 = { I.al, I.cl, I.dl, I.bl, I.spl, I.bpl, I.sil, I.dil, I.r8b, I.r9b, I.r10b, I.r11b, I.r12b, I.r13b, I.r14b, I.r15b };

    private static readonly int[] Displacements = { 0, 1, -8, 127, -128, 128, -129, 0x12345678, -0x12345678 };
    private static readonly int[] Immediates = { 0, 1, -1, 2, 127, -128, 128, -129, 255, 0x7fff, 0x12345678, int.MaxValue, int.MinValue };

    /// <summary>Memory operands: every base with each displacement, and base + index * scale forms.</summary>
    private static IEnumerable<(Mem Mine, AssemblerMemoryOperand Iced)> Memories()
    {
        for (int b = 0; b < 16; b++)
            foreach (int d in Displacements)
                yield return (Mine64[b] + d, I.__[Iced64[b] + d]);
        for (int b = 0; b < 16; b += 3)
            for (int x = 0; x < 16; x++)
            {
                if (x == 4) continue; // rsp is no index
                foreach (int scale in new[] { 1, 2, 4, 8 })
                    yield return (Mine64[b] + Mine64[x] * scale + 16, I.__[Iced64[b] + Iced64[x] * scale + 16]);
            }
    }

    private static List<Instruction> Decode(byte[] code)
    {
        var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
        var list = new List<Instruction>();
        while (decoder.IP < (ulong)code.Length)
        {
            decoder.Decode(out var instr);
            if (instr.IsInvalid) Assert.Fail($"invalid instruction at {instr.IP} in {Convert.ToHexString(code.AsSpan(0, Math.Min(code.Length, 256)))}");
            list.Add(instr);
        }
        return list;
    }

    private static byte[] Mine(Action<X64Assembler> emit)
    {
        var a = new X64Assembler();
        emit(a);
        return a.Assemble();
    }

    private static byte[] Theirs(Action<Iced.Intel.Assembler> emit)
    {
        var a = new Iced.Intel.Assembler(64);
        emit(a);
        var stream = new MemoryStream();
        a.Assemble(new StreamCodeWriter(stream), 0);
        return stream.ToArray();
    }

    private static string Text(Instruction i)
    {
        var f = new NasmFormatter();
        var o = new StringOutput();
        f.Format(i, o);
        return o.ToStringAndReset();
    }

    /// <summary>What an instruction means, as far as the JIT cares.</summary>
    private static string Meaning(Instruction i)
    {
        var sb = new StringBuilder();
        sb.Append(i.Mnemonic).Append(i.HasLockPrefix ? " lock" : "").Append(i.HasRepPrefix ? " rep" : "");
        for (int k = 0; k < i.OpCount; k++)
        {
            var kind = i.GetOpKind(k);
            sb.Append(" | ");
            switch (kind)
            {
                case OpKind.Register: sb.Append(i.GetOpRegister(k)); break;
                case OpKind.Memory:
                    sb.Append($"[{i.MemoryBase}+{i.MemoryIndex}*{i.MemoryIndexScale}+{(long)i.MemoryDisplacement64}] {i.MemorySize}");
                    break;
                case OpKind.NearBranch16: case OpKind.NearBranch32: case OpKind.NearBranch64:
                    sb.Append($"-> {i.NearBranchTarget}");
                    break;
                case OpKind.Immediate8: case OpKind.Immediate8_2nd: case OpKind.Immediate16: case OpKind.Immediate32:
                case OpKind.Immediate64: case OpKind.Immediate8to16: case OpKind.Immediate8to32: case OpKind.Immediate8to64:
                case OpKind.Immediate32to64:
                {
                    // Immediates of any width: the value the instruction uses, at its operand size.
                    ulong v = i.GetImmediate(k);
                    int bits = i.OpCount > 0 && i.GetOpKind(0) == OpKind.Register ? i.GetOpRegister(0).GetSize() * 8
                        : i.MemorySize.GetSize() * 8;
                    if (bits is > 0 and < 64) v &= (1UL << bits) - 1;
                    sb.Append($"#{v:x}");
                    break;
                }
                default: sb.Append(kind); break; // string operands
            }
        }
        return sb.ToString();
    }

    private static int s_checked;

    /// <summary>Encodes with both; the decoded instructions must mean the same.</summary>
    private static void Same(Action<X64Assembler> mine, Action<Iced.Intel.Assembler> iced)
    {
        var ours = Decode(Mine(mine));
        var theirs = Decode(Theirs(iced));
        Assert.Equal(theirs.Count, ours.Count);
        for (int k = 0; k < ours.Count; k++)
        {
            string a = Meaning(ours[k]), b = Meaning(theirs[k]);
            if (a != b) Assert.Fail($"ours: {Text(ours[k])} ({a})\nIced: {Text(theirs[k])} ({b})");
        }
        s_checked++;
    }

    [Fact]
    public void ArithmeticMatchesIced()
    {
        var mineRR64 = new Action<X64Assembler, Gpr64, Gpr64>[] { (a, d, s) => a.add(d, s), (a, d, s) => a.or(d, s), (a, d, s) => a.and(d, s), (a, d, s) => a.sub(d, s), (a, d, s) => a.xor(d, s), (a, d, s) => a.cmp(d, s), (a, d, s) => a.test(d, s), (a, d, s) => a.mov(d, s), (a, d, s) => a.imul(d, s), (a, d, s) => a.cmovnz(d, s), (a, d, s) => a.cmovb(d, s), (a, d, s) => a.cmova(d, s) };
        var icedRR64 = new Action<Iced.Intel.Assembler, AssemblerRegister64, AssemblerRegister64>[] { (a, d, s) => a.add(d, s), (a, d, s) => a.or(d, s), (a, d, s) => a.and(d, s), (a, d, s) => a.sub(d, s), (a, d, s) => a.xor(d, s), (a, d, s) => a.cmp(d, s), (a, d, s) => a.test(d, s), (a, d, s) => a.mov(d, s), (a, d, s) => a.imul(d, s), (a, d, s) => a.cmovnz(d, s), (a, d, s) => a.cmovb(d, s), (a, d, s) => a.cmova(d, s) };
        var mineRR32 = new Action<X64Assembler, Gpr32, Gpr32>[] { (a, d, s) => a.add(d, s), (a, d, s) => a.or(d, s), (a, d, s) => a.and(d, s), (a, d, s) => a.sub(d, s), (a, d, s) => a.xor(d, s), (a, d, s) => a.cmp(d, s), (a, d, s) => a.test(d, s), (a, d, s) => a.mov(d, s), (a, d, s) => a.imul(d, s) };
        var icedRR32 = new Action<Iced.Intel.Assembler, AssemblerRegister32, AssemblerRegister32>[] { (a, d, s) => a.add(d, s), (a, d, s) => a.or(d, s), (a, d, s) => a.and(d, s), (a, d, s) => a.sub(d, s), (a, d, s) => a.xor(d, s), (a, d, s) => a.cmp(d, s), (a, d, s) => a.test(d, s), (a, d, s) => a.mov(d, s), (a, d, s) => a.imul(d, s) };
        for (int d = 0; d < 16; d++)
            for (int s = 0; s < 16; s++)
            {
                for (int k = 0; k < mineRR64.Length; k++)
                {
                    var (m, i, dd, ss) = (mineRR64[k], icedRR64[k], d, s);
                    Same(a => m(a, Mine64[dd], Mine64[ss]), a => i(a, Iced64[dd], Iced64[ss]));
                }
                for (int k = 0; k < mineRR32.Length; k++)
                {
                    var (m, i, dd, ss) = (mineRR32[k], icedRR32[k], d, s);
                    Same(a => m(a, Mine32[dd], Mine32[ss]), a => i(a, Iced32[dd], Iced32[ss]));
                }
                int d2 = d, s2 = s;
                Same(a => a.movsxd(Mine64[d2], Mine32[s2]), a => a.movsxd(Iced64[d2], Iced32[s2]));
                Same(a => a.movsx(Mine64[d2], Mine8[s2]), a => a.movsx(Iced64[d2], Iced8[s2]));
                Same(a => a.movsx(Mine64[d2], Mine16[s2]), a => a.movsx(Iced64[d2], Iced16[s2]));
                Same(a => a.movsx(Mine32[d2], Mine8[s2]), a => a.movsx(Iced32[d2], Iced8[s2]));
                Same(a => a.movsx(Mine32[d2], Mine16[s2]), a => a.movsx(Iced32[d2], Iced16[s2]));
                Same(a => a.movzx(Mine32[d2], Mine16[s2]), a => a.movzx(Iced32[d2], Iced16[s2]));
                Same(a => a.movzx(Mine32[d2], Mine8[s2]), a => a.movzx(Iced32[d2], Iced8[s2]));
                foreach (int imm in Immediates)
                {
                    Same(a => a.imul(Mine64[d2], Mine64[s2], imm), a => a.imul(Iced64[d2], Iced64[s2], imm));
                    Same(a => a.imul(Mine32[d2], Mine32[s2], imm), a => a.imul(Iced32[d2], Iced32[s2], imm));
                }
            }
        Assert.True(s_checked > 5000);
    }

    [Fact]
    public void ImmediatesMatchIced()
    {
        for (int d = 0; d < 16; d++)
        {
            int r = d;
            foreach (int imm in Immediates)
            {
                Same(a => a.add(Mine64[r], imm), a => a.add(Iced64[r], imm));
                Same(a => a.or(Mine64[r], imm), a => a.or(Iced64[r], imm));
                Same(a => a.and(Mine64[r], imm), a => a.and(Iced64[r], imm));
                Same(a => a.sub(Mine64[r], imm), a => a.sub(Iced64[r], imm));
                Same(a => a.xor(Mine64[r], imm), a => a.xor(Iced64[r], imm));
                Same(a => a.cmp(Mine64[r], imm), a => a.cmp(Iced64[r], imm));
                Same(a => a.test(Mine64[r], imm), a => a.test(Iced64[r], imm));
                Same(a => a.add(Mine32[r], imm), a => a.add(Iced32[r], imm));
                Same(a => a.or(Mine32[r], imm), a => a.or(Iced32[r], imm));
                Same(a => a.and(Mine32[r], imm), a => a.and(Iced32[r], imm));
                Same(a => a.sub(Mine32[r], imm), a => a.sub(Iced32[r], imm));
                Same(a => a.xor(Mine32[r], imm), a => a.xor(Iced32[r], imm));
                Same(a => a.cmp(Mine32[r], imm), a => a.cmp(Iced32[r], imm));
                Same(a => a.test(Mine32[r], imm), a => a.test(Iced32[r], imm));
                Same(a => a.mov(Mine32[r], imm), a => a.mov(Iced32[r], imm));
                Same(a => a.mov(Mine32[r], (uint)imm), a => a.mov(Iced32[r], (uint)imm));
            }
            foreach (byte b in new byte[] { 0, 1, 7, 8, 31, 32, 63, 0x80, 0xff })
            {
                Same(a => a.test(Mine8[r], b), a => a.test(Iced8[r], b));
                Same(a => a.shl(Mine64[r], b), a => a.shl(Iced64[r], b));
                Same(a => a.shr(Mine64[r], b), a => a.shr(Iced64[r], b));
                Same(a => a.sar(Mine64[r], b), a => a.sar(Iced64[r], b));
                Same(a => a.shl(Mine32[r], b), a => a.shl(Iced32[r], b));
                Same(a => a.shr(Mine32[r], b), a => a.shr(Iced32[r], b));
                Same(a => a.sar(Mine32[r], b), a => a.sar(Iced32[r], b));
                Same(a => a.rol(Mine16[r], b), a => a.rol(Iced16[r], b));
                Same(a => a.rol(Mine64[r], b), a => a.rol(Iced64[r], b));
                Same(a => a.ror(Mine16[r], b), a => a.ror(Iced16[r], b));
            }
            Same(a => a.shl(Mine64[r], M.cl), a => a.shl(Iced64[r], I.cl));
            Same(a => a.shr(Mine64[r], M.cl), a => a.shr(Iced64[r], I.cl));
            Same(a => a.sar(Mine64[r], M.cl), a => a.sar(Iced64[r], I.cl));
            Same(a => a.shl(Mine32[r], M.cl), a => a.shl(Iced32[r], I.cl));
            Same(a => a.shr(Mine32[r], M.cl), a => a.shr(Iced32[r], I.cl));
            Same(a => a.sar(Mine32[r], M.cl), a => a.sar(Iced32[r], I.cl));
            Same(a => a.neg(Mine64[r]), a => a.neg(Iced64[r]));
            Same(a => a.neg(Mine32[r]), a => a.neg(Iced32[r]));
            Same(a => a.dec(Mine64[r]), a => a.dec(Iced64[r]));
            Same(a => a.inc(Mine64[r]), a => a.inc(Iced64[r]));
            Same(a => a.dec(Mine32[r]), a => a.dec(Iced32[r]));
            Same(a => a.bswap(Mine64[r]), a => a.bswap(Iced64[r]));
            Same(a => a.bswap(Mine32[r]), a => a.bswap(Iced32[r]));
            Same(a => a.div(Mine64[r]), a => a.div(Iced64[r]));
            Same(a => a.div(Mine32[r]), a => a.div(Iced32[r]));
            Same(a => a.idiv(Mine64[r]), a => a.idiv(Iced64[r]));
            Same(a => a.idiv(Mine32[r]), a => a.idiv(Iced32[r]));
            Same(a => a.push(Mine64[r]), a => a.push(Iced64[r]));
            Same(a => a.pop(Mine64[r]), a => a.pop(Iced64[r]));
            Same(a => a.call(Mine64[r]), a => a.call(Iced64[r]));
            Same(a => a.jmp(Mine64[r]), a => a.jmp(Iced64[r]));
        }
        Same(a => { a.cdq(); a.cqo(); a.ret(); a.nop(); a.rep.stosb(); }, a => { a.cdq(); a.cqo(); a.ret(); a.nop(); a.rep.stosb(); });
        Same(a => a.pxor(M.xmm0, M.xmm1), a => a.pxor(I.xmm0, I.xmm1));
    }

    [Fact]
    public void SixtyFourBitConstantsTakeTheShortestForm()
    {
        var values = new List<long> { 0, 1, -1, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, int.MinValue, (long)int.MinValue - 1, long.MinValue, long.MaxValue };
        var rng = new Random(3);
        for (int k = 0; k < 200; k++) values.Add(rng.NextInt64() >> rng.Next(64));
        for (int r = 0; r < 16; r++)
            foreach (long v in values)
            {
                var code = Mine(a => a.mov(Mine64[r], v));
                var i = Assert.Single(Decode(code));
                Assert.Equal(Mnemonic.Mov, i.Mnemonic);
                var dst = i.GetOpRegister(0);
                Assert.Equal(r, dst.GetFullRegister().GetNumber());
                // What the register holds afterwards: 32-bit moves zero-extend, imm32 to 64 bits sign-extends.
                ulong held = dst.GetSize() == 4 ? (uint)i.GetImmediate(1) : i.GetImmediate(1);
                Assert.Equal((ulong)v, held);
                int expected = (ulong)v <= uint.MaxValue ? (r >= 8 ? 6 : 5) : v >= int.MinValue && v <= int.MaxValue ? 7 : 10;
                Assert.Equal(expected, code.Length);
            }
    }

    [Fact]
    public void MemoryOperandsMatchIced()
    {
        foreach (var (mm, im) in Memories())
            for (int r = 0; r < 16; r++)
            {
                int s = r;
                var (q, iq) = (M.__qword_ptr[mm], I.__qword_ptr[im]);
                var (dw, idw) = (M.__dword_ptr[mm], I.__dword_ptr[im]);
                var (w, iw) = (M.__word_ptr[mm], I.__word_ptr[im]);
                var (b, ib) = (M.__byte_ptr[mm], I.__byte_ptr[im]);
                Same(a => a.mov(Mine64[s], q), a => a.mov(Iced64[s], iq));
                Same(a => a.mov(Mine32[s], dw), a => a.mov(Iced32[s], idw));
                Same(a => a.mov(q, Mine64[s]), a => a.mov(iq, Iced64[s]));
                Same(a => a.mov(dw, Mine32[s]), a => a.mov(idw, Iced32[s]));
                Same(a => a.mov(w, Mine16[s]), a => a.mov(iw, Iced16[s]));
                Same(a => a.mov(b, Mine8[s]), a => a.mov(ib, Iced8[s]));
                Same(a => a.lea(Mine64[s], mm), a => a.lea(Iced64[s], im));
                Same(a => a.lea(Mine32[s], mm), a => a.lea(Iced32[s], im));
                Same(a => a.movzx(Mine32[s], b), a => a.movzx(Iced32[s], ib));
                Same(a => a.movzx(Mine32[s], w), a => a.movzx(Iced32[s], iw));
                Same(a => a.movsx(Mine64[s], b), a => a.movsx(Iced64[s], ib));
                Same(a => a.movsx(Mine64[s], w), a => a.movsx(Iced64[s], iw));
                Same(a => a.movsxd(Mine64[s], dw), a => a.movsxd(Iced64[s], idw));
                Same(a => a.add(Mine64[s], q), a => a.add(Iced64[s], iq));
                Same(a => a.sub(Mine64[s], q), a => a.sub(Iced64[s], iq));
                Same(a => a.cmp(Mine64[s], q), a => a.cmp(Iced64[s], iq));
                Same(a => a.cmp(Mine32[s], dw), a => a.cmp(Iced32[s], idw));
                Same(a => a.cmp(q, Mine64[s]), a => a.cmp(iq, Iced64[s]));
                Same(a => a.cmovb(Mine64[s], q), a => a.cmovb(Iced64[s], iq));
                Same(a => a.test(dw, Mine32[s]), a => a.test(idw, Iced32[s]));
                Same(a => a.xchg(q, Mine64[s]), a => a.xchg(iq, Iced64[s]));
                Same(a => a.xchg(dw, Mine32[s]), a => a.xchg(idw, Iced32[s]));
                Same(a => a.@lock.add(q, Mine64[s]), a => a.@lock.add(iq, Iced64[s]));
                Same(a => a.@lock.or(dw, Mine32[s]), a => a.@lock.or(idw, Iced32[s]));
                Same(a => a.@lock.and(q, Mine64[s]), a => a.@lock.and(iq, Iced64[s]));
                Same(a => a.@lock.xor(dw, Mine32[s]), a => a.@lock.xor(idw, Iced32[s]));
                Same(a => a.@lock.xadd(q, Mine64[s]), a => a.@lock.xadd(iq, Iced64[s]));
                Same(a => a.@lock.xadd(dw, Mine32[s]), a => a.@lock.xadd(idw, Iced32[s]));
                Same(a => a.@lock.cmpxchg(q, Mine64[s]), a => a.@lock.cmpxchg(iq, Iced64[s]));
                Same(a => a.@lock.cmpxchg(dw, Mine32[s]), a => a.@lock.cmpxchg(idw, Iced32[s]));
            }
        foreach (var (mm, im) in Memories())
        {
            foreach (int imm in Immediates)
            {
                Same(a => a.mov(M.__qword_ptr[mm], imm), a => a.mov(I.__qword_ptr[im], imm));
                Same(a => a.mov(M.__dword_ptr[mm], imm), a => a.mov(I.__dword_ptr[im], imm));
                Same(a => a.mov(M.__word_ptr[mm], imm), a => a.mov(I.__word_ptr[im], (short)imm));
                Same(a => a.mov(M.__byte_ptr[mm], imm), a => a.mov(I.__byte_ptr[im], (sbyte)imm));
                Same(a => a.sub(M.__qword_ptr[mm], imm), a => a.sub(I.__qword_ptr[im], imm));
                Same(a => a.add(M.__dword_ptr[mm], imm), a => a.add(I.__dword_ptr[im], imm));
                Same(a => a.cmp(M.__dword_ptr[mm], imm), a => a.cmp(I.__dword_ptr[im], imm));
                Same(a => a.cmp(M.__qword_ptr[mm], imm), a => a.cmp(I.__qword_ptr[im], imm));
            }
            Same(a => a.inc(M.__dword_ptr[mm]), a => a.inc(I.__dword_ptr[im]));
            Same(a => a.dec(M.__dword_ptr[mm]), a => a.dec(I.__dword_ptr[im]));
            Same(a => a.movdqu(M.__xmmword_ptr[mm], M.xmm0), a => a.movdqu(I.__xmmword_ptr[im], I.xmm0));
        }
    }

    [Fact]
    public void BranchesReachTheirLabelsShortWhenTheyCan()
    {
        // A jump over n bytes forwards and backwards, for every kind of branch, around the rel8 limit.
        var kinds = new Action<X64Assembler, X64Label>[]
        {
            (a, l) => a.jmp(l), (a, l) => a.call(l), (a, l) => a.je(l), (a, l) => a.jne(l), (a, l) => a.jb(l), (a, l) => a.jae(l),
            (a, l) => a.jbe(l), (a, l) => a.ja(l), (a, l) => a.jl(l), (a, l) => a.jge(l), (a, l) => a.jle(l), (a, l) => a.jg(l),
        };
        foreach (var kind in kinds)
            foreach (int n in new[] { 0, 1, 100, 125, 126, 127, 128, 129, 130, 300, 100000 })
                foreach (bool forward in new[] { true, false })
                {
                    var a = new X64Assembler();
                    var target = a.CreateLabel();
                    var before = a.CreateLabel();
                    if (!forward) a.Label(ref target);
                    for (int k = 0; k < n; k++) a.nop();
                    a.Label(ref before);
                    kind(a, target);
                    for (int k = 0; k < n; k++) a.nop();
                    if (forward) a.Label(ref target);
                    a.ret();
                    var code = a.Assemble();
                    int at = a.LabelOffset(before);
                    var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code[at..]));
                    decoder.IP = (ulong)at;
                    decoder.Decode(out var branch);
                    Assert.Equal((ulong)a.LabelOffset(target), branch.NearBranchTarget);
                    Assert.Equal(forward ? n + at + branch.Length : 0, a.LabelOffset(target));
                    bool call = branch.Mnemonic == Mnemonic.Call;
                    long rel = forward ? n : -(n + 2);
                    bool fitsShort = rel >= -128 && rel <= 127;
                    Assert.Equal(call ? 5 : fitsShort ? 2 : branch.Mnemonic == Mnemonic.Jmp ? 5 : 6, branch.Length);
                    Decode(code);
                }
    }

    [Fact]
    public void ChainsOfBranchesSettle()
    {
        // Each branch's reach depends on the others' sizes: 400 forward branches over each other and
        // some padding, every one checked against where its label landed.
        var rng = new Random(11);
        var a = new X64Assembler();
        var labels = Enumerable.Range(0, 400).Select(_ => a.CreateLabel()).ToArray();
        var sources = new List<(X64Label At, int Target)>();
        for (int k = 0; k < labels.Length; k++)
        {
            int t = Math.Min(labels.Length - 1, k + rng.Next(1, 40));
            var at = a.CreateLabel();
            a.Label(ref at);
            a.jne(labels[t]);
            sources.Add((at, t));
            for (int p = rng.Next(0, 6); p > 0; p--) a.nop();
            a.Label(ref labels[k]);
        }
        a.ret();
        var code = a.Assemble();
        foreach (var (at, t) in sources)
        {
            var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code[a.LabelOffset(at)..]));
            decoder.IP = (ulong)a.LabelOffset(at);
            decoder.Decode(out var branch);
            Assert.Equal((ulong)a.LabelOffset(labels[t]), branch.NearBranchTarget);
        }
        Decode(code);
    }

    [Fact]
    public void LabelsMadeInBulkAreDistinctAndLand()
    {
        // The JIT makes a label per eBPF slot in one call: more than the assembler starts with, and
        // again after a reset (its arrays already grown), between labels made one by one.
        var a = new X64Assembler();
        for (int round = 0; round < 2; round++)
        {
            a.Reset();
            var single = a.CreateLabel();
            var bulk = new X64Label[300];
            a.CreateLabels(bulk);
            var after = a.CreateLabel();
            Assert.Equal(302, bulk.Append(single).Append(after).Select(l => l.Id).Distinct().Count());
            a.jmp(after); // over the 300 bytes below: rel32, 5 bytes
            for (int k = 0; k < bulk.Length; k++)
            {
                a.Label(ref bulk[k]);
                a.nop();
            }
            a.Label(ref single);
            a.Label(ref after);
            a.ret();
            var code = a.Assemble();
            for (int k = 0; k < bulk.Length; k++) Assert.Equal(5 + k, a.LabelOffset(bulk[k]));
            Assert.Equal(305, a.LabelOffset(after));
            var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code));
            decoder.Decode(out var jump);
            Assert.Equal(305UL, jump.NearBranchTarget);
        }
    }

    [Fact]
    public void PaddingAlignsItsLabelWithNopsAndBranchesStillLand()
    {
        // Branches back and forth over labels that start at a boundary: every such label lands on
        // a multiple of its boundary, the padding decodes as no-ops only, and every branch (sized
        // while each padding counted at its largest) reaches its label.
        foreach (int seed in new[] { 3, 4, 5 })
        {
            var rng = new Random(seed);
            var a = new X64Assembler();
            var labels = Enumerable.Range(0, 200).Select(_ => a.CreateLabel()).ToArray();
            var boundaries = new int[labels.Length];
            var sources = new List<(X64Label At, int Target)>();
            for (int k = 0; k < labels.Length; k++)
            {
                boundaries[k] = rng.Next(3) == 0 ? new[] { 2, 4, 8, 16, 32, 64 }[rng.Next(6)] : 1;
                if (boundaries[k] > 1) a.Align(boundaries[k]);
                a.Label(ref labels[k]);
                for (int p = rng.Next(0, 9); p > 0; p--) a.nop();
                int t = Math.Clamp(k + rng.Next(-30, 30), 0, labels.Length - 1);
                var at = a.CreateLabel();
                a.Label(ref at);
                if (rng.Next(2) == 0) a.jmp(labels[t]); else a.jle(labels[t]);
                sources.Add((at, t));
            }
            a.ret();
            var code = a.Assemble();
            for (int k = 0; k < labels.Length; k++)
                Assert.Equal(0, a.LabelOffset(labels[k]) % boundaries[k]);
            foreach (var (at, t) in sources)
            {
                var decoder = Iced.Intel.Decoder.Create(64, new ByteArrayCodeReader(code[a.LabelOffset(at)..]));
                decoder.IP = (ulong)a.LabelOffset(at);
                decoder.Decode(out var branch);
                Assert.Equal((ulong)a.LabelOffset(labels[t]), branch.NearBranchTarget);
            }
            var instructions = Decode(code);
            Assert.All(instructions, i => Assert.True(i.Mnemonic is Mnemonic.Nop or Mnemonic.Jmp or Mnemonic.Jle or Mnemonic.Ret, Text(i)));
            // Short where a branch and its label sit close: padding did not push every branch long.
            Assert.Contains(instructions, i => i.Mnemonic == Mnemonic.Jle && i.Length == 2);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new X64Assembler().Align(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => new X64Assembler().Align(128));
    }

    [Fact]
    public void MisuseIsRefused()
    {
        var a = new X64Assembler();
        var l = a.CreateLabel();
        a.jmp(l);
        Assert.Throws<InvalidOperationException>(() => a.Assemble()); // never bound
        Assert.Throws<InvalidOperationException>(() => new X64Assembler().jmp(default(X64Label)));
        Assert.Throws<InvalidOperationException>(() => new X64Assembler().mov(M.__[M.rax], 1)); // no size
        Assert.Throws<InvalidOperationException>(() => new X64Assembler().shl(M.rax, M.dl));
        Assert.Throws<InvalidOperationException>(() => new X64Assembler().lea(M.rax, M.rax + M.rsp));
        // A lock or rep prefix goes into the code at once: one left without its instruction is refused.
        var dangling = new X64Assembler();
        _ = dangling.@lock;
        Assert.Throws<InvalidOperationException>(() => dangling.Assemble());
        Assert.Throws<InvalidOperationException>(() => dangling.rep); // two in a row
        var beforeBranch = new X64Assembler();
        var target = beforeBranch.CreateLabel();
        _ = beforeBranch.@lock;
        Assert.Throws<InvalidOperationException>(() => beforeBranch.jmp(target));
        // Once its instruction follows, it is no longer pending: the code assembles, prefix first.
        var used = new X64Assembler();
        used.@lock.add(M.__qword_ptr[M.rdi], M.rax);
        Assert.Equal(new byte[] { 0xF0, 0x48, 0x01, 0x07 }, used.Assemble());
    }

    /// <summary>Every compiled program decodes fully and its branches land on instructions inside it.</summary>
    private static void CheckCompiled(EbpfVm vm, JitOptions options)
    {
        vm.JitCompile(options);
        var code = vm.JitMachineCode();
        var instructions = Decode(code);
        var starts = new HashSet<ulong>(instructions.Select(i => i.IP));
        Assert.Equal((ulong)code.Length, instructions[^1].IP + (ulong)instructions[^1].Length);
        foreach (var i in instructions)
            if (i.FlowControl is FlowControl.UnconditionalBranch or FlowControl.ConditionalBranch or FlowControl.Call
                && i.Op0Kind is OpKind.NearBranch64)
                Assert.True(starts.Contains(i.NearBranchTarget), $"{Text(i)} at {i.IP} lands inside an instruction");
    }

    [SkippableFact]
    public void GeneratedProgramsDecodeCompletely()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        Skip.IfNot(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64,
            "x86-64 code is compiled on x86-64 hosts");
        var rng = new Random(17);
        for (int k = 0; k < 300; k++)
        {
            var prog = Rbpf.Instruction.Encode(ProgramGenerator.Generate(rng, 64));
            var vm = EbpfVm.CreateRaw(prog);
            vm.RegisterHelper(1, JitAgreement.Helper1);
            if (k % 3 == 0) vm.InstructionLimit = 10000;
            CheckCompiled(vm, JitTests.AllOptions[k % JitTests.AllOptions.Length]);
        }
    }

    [SkippableFact]
    public void ConformanceProgramsDecodeCompletely()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        Skip.IfNot(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64,
            "x86-64 code is compiled on x86-64 hosts");
        Skip.If(TestPaths.ConformanceDir == null, "../shared/conformance is absent: conformance programs not decoded");
        int n = 0;
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.ConformanceDir!, "tests"), "*.data").OrderBy(f => f, StringComparer.Ordinal))
        {
            var c = ConformanceCase.Load(f);
            EbpfVm vm;
            try { vm = ConformanceCase.CreateVm(c.Program); }
            catch (RbpfException) { continue; } // cases that expect a load error
            CheckCompiled(vm, JitTests.AllOptions[n++ % JitTests.AllOptions.Length]);
        }
        Assert.True(n > 100);
    }
}
