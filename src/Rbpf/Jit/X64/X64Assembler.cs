using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Rbpf.Jit.X64;

/// <summary>A 64-bit general-purpose register (0 rax ... 15 r15).</summary>
internal readonly struct Gpr64(int n)
{
    public readonly int N = n;
    public static Mem operator +(Gpr64 b, int disp) => new(b.N, -1, 0, disp, 0);
    public static Mem operator -(Gpr64 b, int disp) => new(b.N, -1, 0, -disp, 0);
    public static Mem operator +(Gpr64 b, Gpr64 index) => new(b.N, index.N, 0, 0, 0);
    public static Mem operator +(Gpr64 b, ScaledIndex index) => new(b.N, index.N, index.Shift, 0, 0);
    public static ScaledIndex operator *(Gpr64 index, int scale) => new(index.N, scale switch
    {
        1 => 0, 2 => 1, 4 => 2, 8 => 3, _ => throw new ArgumentOutOfRangeException(nameof(scale)),
    });
}

/// <summary>The low 32 bits of a general-purpose register.</summary>
internal readonly struct Gpr32(int n) { public readonly int N = n; }

/// <summary>The low 16 bits of a general-purpose register.</summary>
internal readonly struct Gpr16(int n) { public readonly int N = n; }

/// <summary>The low 8 bits of a general-purpose register (spl, bpl, sil, dil need a REX prefix).</summary>
internal readonly struct Gpr8(int n) { public readonly int N = n; }

/// <summary>An SSE register.</summary>
internal readonly struct Xmm(int n) { public readonly int N = n; }

/// <summary>An index register with its scale (as a shift: 0-3).</summary>
internal readonly struct ScaledIndex(int n, int shift)
{
    public readonly int N = n, Shift = shift;
}

/// <summary>A memory operand [base + index * scale + disp] of <see cref="Size"/> bytes (0: taken from the other operand).</summary>
internal readonly struct Mem(int baseReg, int index, int shift, int disp, int size)
{
    public readonly int Base = baseReg, Index = index, Shift = shift, Disp = disp, Size = size;
    public static Mem operator +(Mem m, int disp) => new(m.Base, m.Index, m.Shift, checked(m.Disp + disp), m.Size);
    public static Mem operator -(Mem m, int disp) => new(m.Base, m.Index, m.Shift, checked(m.Disp - disp), m.Size);
    public Mem WithSize(int size) => new(Base, Index, Shift, Disp, size);
}

/// <summary>Builds memory operands of one size: <c>__qword_ptr[rbp - 8]</c>.</summary>
internal readonly struct MemSize(int size)
{
    private readonly int _size = size;
    public Mem this[Mem m] => m.WithSize(_size);
    public Mem this[Gpr64 b] => new(b.N, -1, 0, 0, _size);
}

/// <summary>A position in the code, bound once; branches may name it before.</summary>
internal readonly struct X64Label(int id)
{
    /// <summary>1-based; 0 is a label no assembler created.</summary>
    public readonly int Id = id;
}

/// <summary>The registers and operand builders, for <c>using static</c>.</summary>
internal static class X64Registers
{
    public static readonly Gpr64 rax = new(0), rcx = new(1), rdx = new(2), rbx = new(3), rsp = new(4), rbp = new(5),
        rsi = new(6), rdi = new(7), r8 = new(8), r9 = new(9), r10 = new(10), r11 = new(11), r12 = new(12),
        r13 = new(13), r14 = new(14), r15 = new(15);
    public static readonly Gpr32 eax = new(0), ecx = new(1), edx = new(2), ebx = new(3), esp = new(4), ebp = new(5),
        esi = new(6), edi = new(7), r8d = new(8), r9d = new(9), r10d = new(10), r11d = new(11), r12d = new(12),
        r13d = new(13), r14d = new(14), r15d = new(15);
    public static readonly Gpr16 ax = new(0), cx = new(1), dx = new(2), bx = new(3), sp = new(4), bp = new(5),
        si = new(6), di = new(7), r8w = new(8), r9w = new(9), r10w = new(10), r11w = new(11), r12w = new(12),
        r13w = new(13), r14w = new(14), r15w = new(15);
    public static readonly Gpr8 al = new(0), cl = new(1), dl = new(2), bl = new(3), spl = new(4), bpl = new(5),
        sil = new(6), dil = new(7), r8b = new(8), r9b = new(9), r10b = new(10), r11b = new(11), r12b = new(12),
        r13b = new(13), r14b = new(14), r15b = new(15);
    public static readonly Xmm xmm0 = new(0), xmm1 = new(1);
    public static readonly MemSize __ = new(0), __byte_ptr = new(1), __word_ptr = new(2), __dword_ptr = new(4),
        __qword_ptr = new(8), __xmmword_ptr = new(16);
}

/// <summary>
/// A small x86-64 encoder that writes bytes directly: the instructions the JIT emits, with labels.
/// Method names and operand forms follow Intel syntax (destination first). Branches to labels are
/// kept aside while the code is emitted and sized at the end (<see cref="Assemble"/>): every branch
/// starts short (rel8) and those whose target is out of reach grow to rel32, pass after pass, until
/// nothing changes (sizes only grow, so it ends). Encodings are checked against Iced's decoder and
/// assembler in the tests.
/// </summary>
internal sealed class X64Assembler
{
    private byte[] _buf = new byte[1024];
    private int _len;

    /// <summary>A branch to a label (or a padding), with what <see cref="AssembleInPlace"/> works out for it.</summary>
    private struct BranchEntry
    {
        public int Pos;         // where it goes in the byte stream
        public int Label;       // its label's index (a padding: its boundary)
        public short Kind;      // KindJmp, KindCall, KindAlign, or a condition code 0-15
        public byte Size;       // its size in bytes
        public int Before;      // bytes of branches before it (entry n, past the last, holds them all)
        public int TargetPos;   // the label's byte position
        public int TargetCount; // and how many branches precede the label
    }

    // Branches in code order, one entry more than there are (Before of all of them): a single
    // array, so that sizing them walks one stream of memory with one base register.
    private BranchEntry[] _br = new BranchEntry[65];
    private int _brCount;
    private const short KindJmp = 16, KindCall = 17, KindAlign = 18; // an alignment's label field holds its boundary

    // Labels: byte position when bound (-1 before) and how many branches precede them.
    private int[] _labelPos = new int[64];
    private int[] _labelBranches = new int[64];
    private int _labelCount;

    /// <summary>Where the code ended when a lock (F0) or rep (F3) prefix was written (-1: none yet). The
    /// prefix goes into the code at once, ahead of the instruction's own prefixes, so the encoders need
    /// no test for it; it is pending while nothing else has been written after it.</summary>
    private int _prefixEnd = -1;

    private bool PrefixPending => _prefixEnd == _len;

    private bool _assembled;

    /// <summary>Starts over, keeping the buffers.</summary>
    public void Reset()
    {
        _len = 0;
        _brCount = 0;
        _labelCount = 0;
        _prefixEnd = -1;
        _assembled = false;
    }

    /// <summary>Changes whenever anything is emitted (bytes or a branch): equal marks mean nothing came in between.</summary>
    public long Mark => (long)_brCount << 32 | (uint)_len;

    /// <summary>
    /// Makes room at once for about <paramref name="bytes"/> of code, <paramref name="branches"/> branches and
    /// <paramref name="labels"/> labels (an estimate: past it the buffers grow as usual). A large program's
    /// buffers would otherwise double their way up from a kilobyte, leaving every smaller copy as garbage.
    /// </summary>
    public void Reserve(int bytes, int branches, int labels)
    {
        if (_buf.Length < bytes) _buf = new byte[bytes];
        if (_br.Length < branches + 1) _br = new BranchEntry[branches + 1];
        if (_labelPos.Length < labels)
        {
            _labelPos = new int[labels];
            _labelBranches = new int[labels];
        }
    }

    /// <summary>Whether the buffers have grown past <paramref name="bytes"/> (a thread keeps no large one).</summary>
    public bool IsLarge(int bytes) => _buf.Length > bytes || _out.Length > bytes || _br.Length * 24 > bytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public X64Label CreateLabel()
    {
        int n = _labelCount;
        if (n == _labelPos.Length) GrowLabels(n + 1);
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_labelPos), n) = -1;
        _labelCount = n + 1;
        return new X64Label(n + 1);
    }

    /// <summary>A new label in each element of <paramref name="labels"/> (as many <see cref="CreateLabel"/>
    /// calls, in one pass: the JIT makes one per eBPF slot).</summary>
    public void CreateLabels(Span<X64Label> labels)
    {
        int n = _labelCount, count = labels.Length;
        if (n + count > _labelPos.Length) GrowLabels(n + count);
        _labelPos.AsSpan(n, count).Fill(-1);
        ref X64Label first = ref MemoryMarshal.GetReference(labels);
        for (int k = 0; k < count; k++) Unsafe.Add(ref first, k) = new X64Label(n + k + 1);
        _labelCount = n + count;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void GrowLabels(int needed)
    {
        int size = Math.Max(needed, _labelPos.Length * 2);
        Array.Resize(ref _labelPos, size);
        Array.Resize(ref _labelBranches, size);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Label(ref X64Label label)
    {
        int k = LabelIndex(label); // below _labelCount, so inside both arrays
        ref int at = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_labelPos), k);
        if (at >= 0) BoundTwice();
        at = _len;
        Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_labelBranches), k) = _brCount;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int LabelIndex(X64Label label)
    {
        if ((uint)(label.Id - 1) >= (uint)_labelCount) NoSuchLabel();
        return label.Id - 1;
    }

    // Throw helpers: calls rather than an exception built at every site these inline into.
    private static void NoSuchLabel() => throw new InvalidOperationException("label from no assembler");

    private static void BoundTwice() => throw new InvalidOperationException("label bound twice");

    private static void PrefixBeforeBranch() => throw new InvalidOperationException("prefix before a branch");

    /// <summary>Prefixes the next instruction with lock.</summary>
    public X64Assembler @lock => Prefix(0xF0);

    /// <summary>Prefixes the next instruction with rep.</summary>
    public X64Assembler rep => Prefix(0xF3);

    private X64Assembler Prefix(int prefix)
    {
        if (PrefixPending) throw new InvalidOperationException("two prefixes in a row");
        Need(1);
        B(prefix);
        _prefixEnd = _len;
        return this;
    }

    // ---- bytes ----
    // Every instruction reserves its longest encoding with Need before it writes (OpRR and OpRM
    // reserve room for their immediate too), so the writers below skip bounds checks. x86-64 is
    // little-endian, as the encoding is.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Need(int n)
    {
        if (_len + n > _buf.Length) Grow(n);
    }

    private void Grow(int n) => Array.Resize(ref _buf, Math.Max(_buf.Length * 2, _len + n));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void B(int b) => Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), _len++) = (byte)b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void I16(int v)
    {
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), _len), (ushort)v);
        _len += 2;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void I32(int v)
    {
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), _len), v);
        _len += 4;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void I64(long v)
    {
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), _len), v);
        _len += 8;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsInt8(long v) => v >= sbyte.MinValue && v <= sbyte.MaxValue;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Branch(X64Label label, short kind) => Entry(LabelIndex(label), kind); // fails early on a label from nowhere

    /// <summary>
    /// Pads with no-ops to the next multiple of <paramref name="boundary"/> (a power of two up to 64)
    /// from the start of the code. Sized with the branches: counted at its largest while they are
    /// sized, so a branch sized short stays in reach when the padding turns out smaller.
    /// </summary>
    public void Align(int boundary)
    {
        if (boundary is not (2 or 4 or 8 or 16 or 32 or 64)) throw new ArgumentOutOfRangeException(nameof(boundary));
        Entry(boundary, KindAlign);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Entry(int label, short kind)
    {
        if (PrefixPending) PrefixBeforeBranch();
        int n = _brCount;
        if (n + 1 >= _br.Length) GrowBranches();
        // n + 1 is inside the array: the entry, and the one past it that sizing uses.
        ref BranchEntry b = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_br), n);
        b.Pos = _len;
        b.Label = label;
        b.Kind = kind;
        _brCount = n + 1;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void GrowBranches()
    {
        Array.Resize(ref _br, _br.Length * 2);
    }

    // Operand sizes: 1, 2, 4, 8 bytes.

    /// <summary>
    /// Emits prefixes, REX, opcode (1-3 bytes, high byte first) and a ModRM for a register
    /// <paramref name="reg"/> (or opcode extension) and a register <paramref name="rm"/>.
    /// <paramref name="byteRegs"/>: registers 4-7 mean spl-dil, which needs a REX prefix.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void OpRR(int size, int opcode, int reg, int rm, bool byteRegs = false, bool regIsByte = false, int mandatory = 0)
    {
        // The common form inline (32- or 64-bit operands, a one-byte opcode, no prefix): at the call
        // sites, where most of these tests fold away.
        if ((size == 4 || size == 8) && (uint)opcode <= 0xFF && !byteRegs && !regIsByte && mandatory == 0)
        {
            int len = _len;
            if (len + 16 > _buf.Length) Grow(16);
            ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), len);
            int rex = (size & 8) | (reg & 8) >> 1 | (rm & 8) >> 3;
            uint modrm = (uint)(0xC0 | (reg & 7) << 3 | (rm & 7));
            if (rex != 0)
            {
                Unsafe.WriteUnaligned(ref p, (uint)(0x40 | rex) | (uint)opcode << 8 | modrm << 16);
                _len = len + 3;
            }
            else
            {
                Unsafe.WriteUnaligned(ref p, (ushort)((uint)opcode | modrm << 8));
                _len = len + 2;
            }
            return;
        }
        OpRRGeneral(size, opcode, reg, rm, byteRegs, regIsByte, mandatory);
    }

    private void OpRRGeneral(int size, int opcode, int reg, int rm, bool byteRegs, bool regIsByte, int mandatory)
    {
        Need(16);
        // A local cursor: the fields are read and written once per instruction, not per byte.
        ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), _len);
        int n = Prefixes(ref p, size, mandatory);
        int rex = (size == 8 ? 8 : 0) | (reg & 8) >> 1 | (rm & 8) >> 3;
        if (byteRegs && (rm & 0xC) == 4) rex |= 0x40;
        if (regIsByte && (reg & 0xC) == 4) rex |= 0x40;
        if (rex != 0) Unsafe.Add(ref p, n++) = (byte)(0x40 | rex);
        n = Opcode(ref p, n, opcode);
        Unsafe.Add(ref p, n++) = (byte)(0xC0 | (reg & 7) << 3 | (rm & 7));
        _len += n;
    }

    /// <summary>As <see cref="OpRR"/> with a memory operand in r/m.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void OpRM(int size, int opcode, int reg, Mem m, bool regIsByte = false, int mandatory = 0)
    {
        // The common form inline: 32- or 64-bit, a one-byte opcode (or 0F and one, as movzx), no
        // prefix, a base and no index (r12, the context, and rsp take a SIB byte that names no index).
        // The operand's fields as scalars: the struct is never address-taken, so at call sites whose
        // operand is a constant (most of them: the context's fields) the encoding folds to a few stores.
        int b = m.Base, index = m.Index, disp = m.Disp;
        if ((size == 4 || size == 8) && ((uint)opcode <= 0xFF || (uint)opcode >> 8 == 0x0F) && !regIsByte && mandatory == 0
            && index < 0 && b >= 0)
        {
            int len = _len;
            if (len + 16 > _buf.Length) Grow(16);
            ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), len);
            int rex = (size & 8) | (reg & 8) >> 1 | (b & 8) >> 3;
            int n = 0;
            if (rex != 0) Unsafe.Add(ref p, n++) = (byte)(0x40 | rex);
            if (opcode > 0xFF) Unsafe.Add(ref p, n++) = 0x0F;
            Unsafe.Add(ref p, n++) = (byte)opcode;
            int rm = (reg & 7) << 3 | (b & 7);
            bool sib = (b & 7) == 4;
            int mod = disp == 0 && (b & 7) != 5 ? 0 : IsInt8(disp) ? 0x40 : 0x80;
            Unsafe.Add(ref p, n++) = (byte)(mod | rm);
            if (sib) Unsafe.Add(ref p, n++) = 0x24; // no index, the base
            if (mod == 0x40) Unsafe.Add(ref p, n++) = (byte)disp;
            else if (mod == 0x80)
            {
                Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, n), disp);
                n += 4;
            }
            _len = len + n;
            return;
        }
        OpRMGeneral(size, opcode, reg, b, index, m.Shift, disp, regIsByte, mandatory);
    }

    private void OpRMGeneral(int size, int opcode, int reg, int baseReg, int index, int shift, int disp, bool regIsByte, int mandatory)
    {
        if (baseReg < 0) throw new InvalidOperationException("memory operand without a base");
        if (index == 4) throw new InvalidOperationException("rsp cannot be an index");
        Need(24);
        ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), _len);
        int n = Prefixes(ref p, size, mandatory);
        int rex = (size == 8 ? 8 : 0) | (reg & 8) >> 1 | (index >= 0 ? (index & 8) >> 2 : 0) | (baseReg & 8) >> 3;
        if (regIsByte && (reg & 0xC) == 4) rex |= 0x40;
        if (rex != 0) Unsafe.Add(ref p, n++) = (byte)(0x40 | rex);
        n = Opcode(ref p, n, opcode);
        int b = baseReg & 7;
        int mod = disp == 0 && b != 5 ? 0 : IsInt8(disp) ? 1 : 2;
        if (index >= 0 || b == 4)
        {
            Unsafe.Add(ref p, n++) = (byte)(mod << 6 | (reg & 7) << 3 | 4);
            Unsafe.Add(ref p, n++) = (byte)(shift << 6 | (index >= 0 ? index & 7 : 4) << 3 | b);
        }
        else
        {
            Unsafe.Add(ref p, n++) = (byte)(mod << 6 | (reg & 7) << 3 | b);
        }
        if (mod == 1) Unsafe.Add(ref p, n++) = (byte)disp;
        else if (mod == 2)
        {
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, n), disp);
            n += 4;
        }
        _len += n;
    }

    /// <summary>The operand-size prefix and a mandatory prefix (a lock or rep prefix is in the code already); returns how many bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Prefixes(ref byte p, int size, int mandatory)
    {
        int n = 0;
        if (size == 2) Unsafe.Add(ref p, n++) = 0x66;
        if (mandatory != 0) Unsafe.Add(ref p, n++) = (byte)mandatory;
        return n;
    }

    /// <summary>One to three opcode bytes, high byte first, at <paramref name="n"/>; returns the next position.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Opcode(ref byte p, int n, int opcode)
    {
        if (opcode > 0xFFFF) Unsafe.Add(ref p, n++) = (byte)(opcode >> 16);
        if (opcode > 0xFF) Unsafe.Add(ref p, n++) = (byte)(opcode >> 8);
        Unsafe.Add(ref p, n++) = (byte)opcode;
        return n;
    }

    private static int SizeOf(Mem m) =>
        m.Size != 0 ? m.Size : throw new InvalidOperationException("memory operand without a size");

    // ---- arithmetic: add 0, or 1, and 4, sub 5, xor 6, cmp 7 ----

    private void AluRR(int n, int size, int dst, int src) => OpRR(size, size == 1 ? n * 8 : n * 8 + 1, src, dst);

    private void AluRM(int n, int size, int dst, Mem m) => OpRM(size, n * 8 + 3, dst, m);

    private void AluMR(int n, int size, Mem m, int src) => OpRM(size, size == 1 ? n * 8 : n * 8 + 1, src, m);

    private void AluRI(int n, int size, int dst, int imm)
    {
        int len = _len;
        // The common form (add r, 1), written as one 32-bit store: REX (when needed), 83, ModRM, imm8.
        // With room in the buffer it makes no call, so it saves no registers; the rest is apart.
        if ((size == 4 || size == 8) && IsInt8(imm) && len + 16 <= _buf.Length)
        {
            ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), len);
            int rex = (size & 8) | (dst & 8) >> 3;
            uint modrm = (uint)(0xC0 | n << 3 | (dst & 7));
            if (rex != 0)
            {
                Unsafe.WriteUnaligned(ref p, (uint)(0x40 | rex) | 0x83u << 8 | modrm << 16 | (uint)(byte)imm << 24);
                _len = len + 4;
            }
            else
            {
                Unsafe.WriteUnaligned(ref p, 0x83u | modrm << 8 | (uint)(byte)imm << 16);
                _len = len + 3;
            }
            return;
        }
        AluRIOther(n, size, dst, imm);
    }

    /// <summary>The other forms of <see cref="AluRI"/> (and its common one when the buffer must grow).</summary>
    private void AluRIOther(int n, int size, int dst, int imm)
    {
        if (size != 1 && IsInt8(imm)) { OpRR(size, 0x83, n, dst); B(imm); }
        else if (dst == 0 && size != 1)
        {
            Need(16);
            _len += Prefixes(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), _len), size, 0);
            if (size == 8) B(0x48);
            B(n * 8 + 5);
            if (size == 2) I16(imm); else I32(imm);
        }
        else if (size == 1) { OpRR(1, 0x80, n, dst, byteRegs: true); B(imm); }
        else { OpRR(size, 0x81, n, dst); if (size == 2) I16(imm); else I32(imm); }
    }

    private void AluMI(int n, Mem m, int imm)
    {
        int size = SizeOf(m);
        if (size == 1) { OpRM(1, 0x80, n, m); B(imm); }
        else if (IsInt8(imm)) { OpRM(size, 0x83, n, m); B(imm); }
        else { OpRM(size, 0x81, n, m); if (size == 2) I16(imm); else I32(imm); }
    }

    public void add(Gpr64 d, Gpr64 s) => AluRR(0, 8, d.N, s.N);
    public void add(Gpr32 d, Gpr32 s) => AluRR(0, 4, d.N, s.N);
    public void add(Gpr64 d, int imm) => AluRI(0, 8, d.N, imm);
    public void add(Gpr32 d, int imm) => AluRI(0, 4, d.N, imm);
    public void add(Gpr64 d, Mem m) => AluRM(0, 8, d.N, m);
    public void add(Mem m, int imm) => AluMI(0, m, imm);
    public void add(Mem m, Gpr64 s) => AluMR(0, 8, m, s.N);
    public void add(Mem m, Gpr32 s) => AluMR(0, 4, m, s.N);

    public void or(Gpr64 d, Gpr64 s) => AluRR(1, 8, d.N, s.N);
    public void or(Gpr32 d, Gpr32 s) => AluRR(1, 4, d.N, s.N);
    public void or(Gpr64 d, int imm) => AluRI(1, 8, d.N, imm);
    public void or(Gpr32 d, int imm) => AluRI(1, 4, d.N, imm);
    public void or(Mem m, Gpr64 s) => AluMR(1, 8, m, s.N);
    public void or(Mem m, Gpr32 s) => AluMR(1, 4, m, s.N);

    public void and(Gpr64 d, Gpr64 s) => AluRR(4, 8, d.N, s.N);
    public void and(Gpr32 d, Gpr32 s) => AluRR(4, 4, d.N, s.N);
    public void and(Gpr64 d, int imm) => AluRI(4, 8, d.N, imm);
    public void and(Gpr32 d, int imm) => AluRI(4, 4, d.N, imm);
    public void and(Mem m, Gpr64 s) => AluMR(4, 8, m, s.N);
    public void and(Mem m, Gpr32 s) => AluMR(4, 4, m, s.N);

    public void sub(Gpr64 d, Gpr64 s) => AluRR(5, 8, d.N, s.N);
    public void sub(Gpr32 d, Gpr32 s) => AluRR(5, 4, d.N, s.N);
    public void sub(Gpr64 d, int imm) => AluRI(5, 8, d.N, imm);
    public void sub(Gpr32 d, int imm) => AluRI(5, 4, d.N, imm);
    public void sub(Gpr64 d, Mem m) => AluRM(5, 8, d.N, m);
    public void sub(Mem m, int imm) => AluMI(5, m, imm);
    public void sub(Mem m, Gpr64 s) => AluMR(5, 8, m, s.N);
    public void or(Mem m, int imm) => AluMI(1, m, imm);
    public void and(Mem m, int imm) => AluMI(4, m, imm);
    public void xor(Mem m, int imm) => AluMI(6, m, imm);

    public void xor(Gpr64 d, Gpr64 s) => AluRR(6, 8, d.N, s.N);
    public void xor(Gpr32 d, Gpr32 s) => AluRR(6, 4, d.N, s.N);
    public void xor(Gpr64 d, int imm) => AluRI(6, 8, d.N, imm);
    public void xor(Gpr32 d, int imm) => AluRI(6, 4, d.N, imm);
    public void xor(Mem m, Gpr64 s) => AluMR(6, 8, m, s.N);
    public void xor(Mem m, Gpr32 s) => AluMR(6, 4, m, s.N);

    public void cmp(Gpr64 d, Gpr64 s) => AluRR(7, 8, d.N, s.N);
    public void cmp(Gpr32 d, Gpr32 s) => AluRR(7, 4, d.N, s.N);
    public void cmp(Gpr64 d, int imm) => AluRI(7, 8, d.N, imm);
    public void cmp(Gpr32 d, int imm) => AluRI(7, 4, d.N, imm);
    public void cmp(Gpr64 d, Mem m) => AluRM(7, 8, d.N, m);
    public void cmp(Gpr32 d, Mem m) => AluRM(7, 4, d.N, m);
    public void cmp(Mem m, int imm) => AluMI(7, m, imm);
    public void cmp(Mem m, Gpr64 s) => AluMR(7, 8, m, s.N);
    public void cmp(Mem m, Gpr32 s) => AluMR(7, 4, m, s.N);

    // ---- test ----

    public void test(Gpr64 d, Gpr64 s) => OpRR(8, 0x85, s.N, d.N);
    public void test(Gpr32 d, Gpr32 s) => OpRR(4, 0x85, s.N, d.N);
    public void test(Mem m, Gpr32 s) => OpRM(4, 0x85, s.N, m);
    public void test(Gpr64 d, int imm) => TestRI(8, d.N, imm);
    public void test(Gpr32 d, int imm) => TestRI(4, d.N, imm);
    public void test(Gpr8 d, byte imm) { OpRR(1, 0xF6, 0, d.N, byteRegs: true); B(imm); }

    private void TestRI(int size, int dst, int imm)
    {
        if (dst == 0)
        {
            Need(8);
            if (size == 8) B(0x48);
            B(0xA9);
            I32(imm);
        }
        else { OpRR(size, 0xF7, 0, dst); I32(imm); }
    }

    // ---- moves ----

    public void mov(Gpr64 d, Gpr64 s) => OpRR(8, 0x89, s.N, d.N);
    public void mov(Gpr32 d, Gpr32 s) => OpRR(4, 0x89, s.N, d.N);
    public void mov(Gpr64 d, Mem m) => OpRM(8, 0x8B, d.N, m);
    public void mov(Gpr32 d, Mem m) => OpRM(4, 0x8B, d.N, m);
    public void mov(Mem m, Gpr64 s) => OpRM(8, 0x89, s.N, m);
    public void mov(Mem m, Gpr32 s) => OpRM(4, 0x89, s.N, m);
    public void mov(Mem m, Gpr16 s) => OpRM(2, 0x89, s.N, m);
    public void mov(Mem m, Gpr8 s) => OpRM(1, 0x88, s.N, m, regIsByte: true);

    /// <summary>mov to memory of the operand's size; the immediate is truncated to it (sign-extended from 32 bits for qwords).</summary>
    public void mov(Mem m, int imm)
    {
        if (m.Size == 4)
        {
            // The common ones (the context's fields): the inline encoder with its sizes known.
            OpRM(4, 0xC7, 0, m);
            I32(imm);
            return;
        }
        if (m.Size == 8)
        {
            OpRM(8, 0xC7, 0, m);
            I32(imm);
            return;
        }
        MovOther(m, imm);
    }

    private void MovOther(in Mem m, int imm)
    {
        int size = SizeOf(m);
        OpRM(size, size == 1 ? 0xC6 : 0xC7, 0, m);
        if (size == 1) B(imm);
        else if (size == 2) I16(imm);
        else I32(imm);
    }

    public void mov(Gpr32 d, int imm) => mov(d, (uint)imm);

    public void mov(Gpr32 d, uint imm)
    {
        // B8+r id, written as two stores; with room in the buffer it makes no call (and saves no registers).
        int len = _len, r = d.N;
        if (len + 8 > _buf.Length)
        {
            Grow(8);
            mov(d, imm);
            return;
        }
        ref byte p = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_buf), len);
        if (r >= 8)
        {
            Unsafe.WriteUnaligned(ref p, (ushort)(0x41 | (0xB8 + (r & 7)) << 8));
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 2), imm);
            _len = len + 6;
        }
        else
        {
            p = (byte)(0xB8 + r);
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref p, 1), imm);
            _len = len + 5;
        }
    }

    /// <summary>The shortest move of a 64-bit constant: 32-bit (zero-extending), sign-extended 32-bit, or the full 64 bits.</summary>
    public void mov(Gpr64 d, long imm)
    {
        if ((ulong)imm <= uint.MaxValue) mov(new Gpr32(d.N), (uint)imm);
        else if (imm >= int.MinValue && imm <= int.MaxValue) { OpRR(8, 0xC7, 0, d.N); I32((int)imm); }
        else
        {
            Need(10);
            B(0x48 | (d.N & 8) >> 3);
            B(0xB8 + (d.N & 7));
            I64(imm);
        }
    }

    public void mov(Gpr64 d, ulong imm) => mov(d, (long)imm);

    public void lea(Gpr64 d, Mem m) => OpRM(8, 0x8D, d.N, m);
    /// <summary>The low 32 bits of the address, zero-extended.</summary>
    public void lea(Gpr32 d, Mem m) => OpRM(4, 0x8D, d.N, m);

    public void movzx(Gpr32 d, Gpr16 s) => OpRR(4, 0x0FB7, d.N, s.N);
    public void movzx(Gpr32 d, Gpr8 s) => OpRR(4, 0x0FB6, d.N, s.N, byteRegs: true);
    public void movzx(Gpr32 d, Mem m) => OpRM(4, SizeOf(m) == 1 ? 0x0FB6 : 0x0FB7, d.N, m);
    public void movsx(Gpr64 d, Gpr8 s) => OpRR(8, 0x0FBE, d.N, s.N, byteRegs: true);
    public void movsx(Gpr64 d, Gpr16 s) => OpRR(8, 0x0FBF, d.N, s.N);
    public void movsx(Gpr32 d, Gpr8 s) => OpRR(4, 0x0FBE, d.N, s.N, byteRegs: true);
    public void movsx(Gpr32 d, Gpr16 s) => OpRR(4, 0x0FBF, d.N, s.N);
    public void movsx(Gpr64 d, Mem m) => OpRM(8, SizeOf(m) == 1 ? 0x0FBE : 0x0FBF, d.N, m);
    public void movsxd(Gpr64 d, Gpr32 s) => OpRR(8, 0x63, d.N, s.N);
    public void movsxd(Gpr64 d, Mem m) => OpRM(8, 0x63, d.N, m);

    public void cmovnz(Gpr64 d, Gpr64 s) => OpRR(8, 0x0F45, d.N, s.N);
    public void cmovb(Gpr64 d, Gpr64 s) => OpRR(8, 0x0F42, d.N, s.N);
    public void cmovb(Gpr64 d, Mem m) => OpRM(8, 0x0F42, d.N, m);
    public void cmova(Gpr64 d, Gpr64 s) => OpRR(8, 0x0F47, d.N, s.N);
    /// <summary>cmovcc with the condition's encoding (0 o ... 4 e, 5 ne, ... 15 g).</summary>
    public void cmov(int cc, Gpr64 d, Gpr64 s) => OpRR(8, 0x0F40 | (cc & 15), d.N, s.N);

    public void xchg(Mem m, Gpr64 s) => OpRM(8, 0x87, s.N, m);
    public void xchg(Mem m, Gpr32 s) => OpRM(4, 0x87, s.N, m);
    public void xadd(Mem m, Gpr64 s) => OpRM(8, 0x0FC1, s.N, m);
    public void xadd(Mem m, Gpr32 s) => OpRM(4, 0x0FC1, s.N, m);
    public void cmpxchg(Mem m, Gpr64 s) => OpRM(8, 0x0FB1, s.N, m);
    public void cmpxchg(Mem m, Gpr32 s) => OpRM(4, 0x0FB1, s.N, m);

    public void pxor(Xmm d, Xmm s) => OpRR(4, 0x0FEF, d.N, s.N, mandatory: 0x66);
    public void movdqu(Mem m, Xmm s) => OpRM(4, 0x0F7F, s.N, m, mandatory: 0xF3);

    // ---- multiplication, division ----

    public void imul(Gpr64 d, Gpr64 s) => OpRR(8, 0x0FAF, d.N, s.N);
    public void imul(Gpr32 d, Gpr32 s) => OpRR(4, 0x0FAF, d.N, s.N);
    public void imul(Gpr64 d, Gpr64 s, int imm) => ImulImm(8, d.N, s.N, imm);
    public void imul(Gpr32 d, Gpr32 s, int imm) => ImulImm(4, d.N, s.N, imm);

    private void ImulImm(int size, int d, int s, int imm)
    {
        if (IsInt8(imm)) { OpRR(size, 0x6B, d, s); B(imm); }
        else { OpRR(size, 0x69, d, s); I32(imm); }
    }

    public void div(Gpr64 s) => OpRR(8, 0xF7, 6, s.N);
    public void div(Gpr32 s) => OpRR(4, 0xF7, 6, s.N);
    public void idiv(Gpr64 s) => OpRR(8, 0xF7, 7, s.N);
    public void idiv(Gpr32 s) => OpRR(4, 0xF7, 7, s.N);
    public void cdq() { Need(1); B(0x99); }
    public void cqo() { Need(2); B(0x48); B(0x99); }

    // ---- one operand ----

    public void neg(Gpr64 d) => OpRR(8, 0xF7, 3, d.N);
    public void neg(Gpr32 d) => OpRR(4, 0xF7, 3, d.N);
    public void inc(Mem m) => OpRM(SizeOf(m), 0xFF, 0, m);
    public void dec(Mem m) => OpRM(SizeOf(m), 0xFF, 1, m);
    public void dec(Gpr32 d) => OpRR(4, 0xFF, 1, d.N);
    public void dec(Gpr64 d) => OpRR(8, 0xFF, 1, d.N);
    public void inc(Gpr64 d) => OpRR(8, 0xFF, 0, d.N);

    public void bswap(Gpr32 d)
    {
        Need(3);
        if (d.N >= 8) B(0x41);
        B(0x0F);
        B(0xC8 + (d.N & 7));
    }

    public void bswap(Gpr64 d)
    {
        Need(3);
        B(0x48 | (d.N & 8) >> 3);
        B(0x0F);
        B(0xC8 + (d.N & 7));
    }

    // ---- shifts and rotations: rol 0, ror 1, shl 4, shr 5, sar 7 ----

    private void ShiftI(int n, int size, int d, byte count) { OpRR(size, 0xC1, n, d); B(count); }

    public void rol(Gpr16 d, byte count) => ShiftI(0, 2, d.N, count);
    public void ror(Gpr16 d, byte count) => ShiftI(1, 2, d.N, count);
    public void rol(Gpr64 d, byte count) => ShiftI(0, 8, d.N, count);
    public void shl(Gpr64 d, byte count) => ShiftI(4, 8, d.N, count);
    public void shl(Gpr32 d, byte count) => ShiftI(4, 4, d.N, count);
    public void shr(Gpr64 d, byte count) => ShiftI(5, 8, d.N, count);
    public void shr(Gpr32 d, byte count) => ShiftI(5, 4, d.N, count);
    public void sar(Gpr64 d, byte count) => ShiftI(7, 8, d.N, count);
    public void sar(Gpr32 d, byte count) => ShiftI(7, 4, d.N, count);

    /// <summary>Shifts by cl (the only register form x86 has).</summary>
    public void shl(Gpr64 d, Gpr8 count) { RequireCl(count); OpRR(8, 0xD3, 4, d.N); }
    public void shl(Gpr32 d, Gpr8 count) { RequireCl(count); OpRR(4, 0xD3, 4, d.N); }
    public void shr(Gpr64 d, Gpr8 count) { RequireCl(count); OpRR(8, 0xD3, 5, d.N); }
    public void shr(Gpr32 d, Gpr8 count) { RequireCl(count); OpRR(4, 0xD3, 5, d.N); }
    public void sar(Gpr64 d, Gpr8 count) { RequireCl(count); OpRR(8, 0xD3, 7, d.N); }
    public void sar(Gpr32 d, Gpr8 count) { RequireCl(count); OpRR(4, 0xD3, 7, d.N); }

    private static void RequireCl(Gpr8 r)
    {
        if (r.N != 1) throw new InvalidOperationException("x86 shifts by cl only");
    }

    // ---- stack, control ----

    public void push(Gpr64 r)
    {
        Need(2);
        if (r.N >= 8) B(0x41);
        B(0x50 + (r.N & 7));
    }

    public void pop(Gpr64 r)
    {
        Need(2);
        if (r.N >= 8) B(0x41);
        B(0x58 + (r.N & 7));
    }

    public void ret() { Need(1); B(0xC3); }
    /// <summary>An invalid instruction, for code no path may reach.</summary>
    public void ud2() { Need(2); B(0x0F); B(0x0B); }
    public void nop() { Need(1); B(0x90); }

    public void stosb()
    {
        Need(1);
        B(0xAA);
    }

    public void call(Gpr64 r) => OpRR(4, 0xFF, 2, r.N);
    public void jmp(Gpr64 r) => OpRR(4, 0xFF, 4, r.N);
    public void call(X64Label l) => Branch(l, KindCall);
    public void jmp(X64Label l) => Branch(l, KindJmp);
    public void jb(X64Label l) => Branch(l, 0x2);
    public void jc(X64Label l) => Branch(l, 0x2);
    public void jae(X64Label l) => Branch(l, 0x3);
    public void je(X64Label l) => Branch(l, 0x4);
    public void jz(X64Label l) => Branch(l, 0x4);
    public void jne(X64Label l) => Branch(l, 0x5);
    public void jnz(X64Label l) => Branch(l, 0x5);
    public void jbe(X64Label l) => Branch(l, 0x6);
    public void ja(X64Label l) => Branch(l, 0x7);
    public void jl(X64Label l) => Branch(l, 0xC);
    public void jge(X64Label l) => Branch(l, 0xD);
    public void jle(X64Label l) => Branch(l, 0xE);
    public void jg(X64Label l) => Branch(l, 0xF);

    // ---- the end ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ShortSize(short kind) => kind == KindCall ? 5 : 2;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int LongSize(short kind) => kind == KindCall ? 5 : kind == KindJmp ? 5 : 6;

    /// <summary>
    /// Sizes the branches and returns the code. Afterwards <see cref="LabelOffset"/> gives where
    /// each label landed.
    /// </summary>
    public byte[] Assemble() => AssembleInPlace().ToArray();

    /// <summary>The final code, kept by the assembler between compiles (no array per compile).</summary>
    private byte[] _out = new byte[1024];

    /// <summary>
    /// As <see cref="Assemble"/>, the code in the assembler's own buffer: valid until it is reset
    /// or assembles again (the JIT copies it straight into executable memory).
    /// </summary>
    public ReadOnlySpan<byte> AssembleInPlace()
    {
        if (PrefixPending) throw new InvalidOperationException("a prefix without an instruction");
        int n = _brCount; // _br holds at least n + 1 entries (Entry grows it ahead)
        ref BranchEntry b0 = ref MemoryMarshal.GetArrayDataReference(_br);
        ref int labelPos = ref MemoryMarshal.GetArrayDataReference(_labelPos);
        ref int labelBranches = ref MemoryMarshal.GetArrayDataReference(_labelBranches);
        // Every branch at its largest: its target, its size, the bytes before it. A branch's label
        // index came through LabelIndex, so it is inside the label arrays.
        int total = 0;
        for (int k = 0; k < n; k++)
        {
            ref BranchEntry b = ref Unsafe.Add(ref b0, k);
            int s;
            if (b.Kind == KindAlign) s = b.Label - 1;
            else
            {
                int at = Unsafe.Add(ref labelPos, b.Label);
                if (at < 0) throw new InvalidOperationException("a branch to a label never bound");
                b.TargetPos = at;
                b.TargetCount = Unsafe.Add(ref labelBranches, b.Label);
                s = LongSize(b.Kind);
            }
            b.Before = total;
            b.Size = (byte)s;
            total += s;
        }
        Unsafe.Add(ref b0, n).Before = total;
        // Bounds first: a branch that reaches with every other branch long is short for good; one
        // that does not reach with every branch short is long for good; only the rest need passes.
        bool changed = false;
        for (int k = 0; k < n; k++)
        {
            ref BranchEntry b = ref Unsafe.Add(ref b0, k);
            if (b.Kind is KindCall or KindAlign) continue;
            int c = b.TargetCount, p = b.Pos, tp = b.TargetPos;
            // Forward, this one counted long (an overestimate); backward, exact.
            int upper = tp + Unsafe.Add(ref b0, c).Before - (p + b.Before + 2);
            if (IsInt8(upper)) { b.Size = 2; continue; }
            // All short: 2 bytes per branch in between (forward: an underestimate by 2).
            int lower = c > k ? tp - p - 2 + 2 * (c - k - 1) : tp - p - 2 - 2 * (k - c);
            if (IsInt8(lower)) { b.Size = 2; changed = true; } // undecided: passes below
        }
        while (changed)
        {
            changed = false;
            total = 0;
            for (int k = 0; k < n; k++)
            {
                ref BranchEntry b = ref Unsafe.Add(ref b0, k);
                b.Before = total;
                total += b.Size;
            }
            Unsafe.Add(ref b0, n).Before = total;
            for (int k = 0; k < n; k++)
            {
                ref BranchEntry b = ref Unsafe.Add(ref b0, k);
                if (b.Size != 2 || b.Kind == KindAlign) continue;
                int rel = b.TargetPos + Unsafe.Add(ref b0, b.TargetCount).Before - (b.Pos + b.Before + 2);
                if (!IsInt8(rel))
                {
                    b.Size = (byte)LongSize(b.Kind);
                    changed = true;
                }
            }
        }
        // Final positions: each padding now takes what its place needs (at most what it was counted).
        total = 0;
        for (int k = 0; k < n; k++)
        {
            ref BranchEntry b = ref Unsafe.Add(ref b0, k);
            if (b.Kind == KindAlign) b.Size = (byte)(-(b.Pos + total) & (b.Label - 1));
            b.Before = total;
            total += b.Size;
        }
        Unsafe.Add(ref b0, n).Before = total;
        _assembled = true;
        int length = _len + total;
        if (_out.Length < length) _out = new byte[Math.Max(length, _out.Length * 2)];
        var code = _out;
        ref byte src = ref MemoryMarshal.GetArrayDataReference(_buf);
        ref byte dst = ref MemoryMarshal.GetArrayDataReference(code);
        // The code between two branches lands shifted by the bytes of the branches before it (the
        // later branch's Before): one position to carry from branch to branch.
        int from = 0;
        for (int k = 0; k < n; k++)
        {
            ref BranchEntry b = ref Unsafe.Add(ref b0, k);
            int at = b.Pos, to = at + b.Before;
            Copy(ref Unsafe.Add(ref dst, to - (at - from)), ref Unsafe.Add(ref src, from), at - from);
            from = at;
            int kind = b.Kind, sz = b.Size;
            ref byte o = ref Unsafe.Add(ref dst, to);
            if (kind == KindAlign)
            {
                Nops(MemoryMarshal.CreateSpan(ref o, sz));
                continue;
            }
            int rel = b.TargetPos + Unsafe.Add(ref b0, b.TargetCount).Before - (to + sz);
            if (sz == 2)
            {
                o = (byte)(kind == KindJmp ? 0xEB : 0x70 + kind);
                Unsafe.Add(ref o, 1) = (byte)rel;
            }
            else if (kind >= KindJmp) // jmp or call, rel32
            {
                o = (byte)(kind == KindJmp ? 0xE9 : 0xE8);
                Unsafe.WriteUnaligned(ref Unsafe.Add(ref o, 1), rel);
            }
            else
            {
                o = 0x0F;
                Unsafe.Add(ref o, 1) = (byte)(0x80 + kind);
                Unsafe.WriteUnaligned(ref Unsafe.Add(ref o, 2), rel);
            }
        }
        Copy(ref Unsafe.Add(ref dst, from + Unsafe.Add(ref b0, n).Before), ref Unsafe.Add(ref src, from), _len - from);
        return new ReadOnlySpan<byte>(code, 0, length);
    }

    /// <summary>Copies the stretch of code between two branches: most are a few dozen bytes, copied
    /// inline with two overlapping moves rather than a call.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Copy(ref byte dst, ref byte src, int count)
    {
        if (count >= 16 && count <= 32) Overlapping<System.Runtime.Intrinsics.Vector128<byte>>(ref dst, ref src, count);
        else if (count >= 8 && count < 16) Overlapping<ulong>(ref dst, ref src, count);
        else if (count >= 4 && count < 8) Overlapping<uint>(ref dst, ref src, count);
        else if (count >= 2 && count < 4) Overlapping<ushort>(ref dst, ref src, count);
        else if (count == 1) dst = src;
        else if (count > 32) Unsafe.CopyBlockUnaligned(ref dst, ref src, (uint)count);
    }

    /// <summary>Copies <paramref name="count"/> bytes, from one to two T long, as a T at each end (the two may overlap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Overlapping<T>(ref byte dst, ref byte src, int count) where T : unmanaged
    {
        int last = count - Unsafe.SizeOf<T>();
        T head = Unsafe.ReadUnaligned<T>(ref src), tail = Unsafe.ReadUnaligned<T>(ref Unsafe.Add(ref src, last));
        Unsafe.WriteUnaligned(ref dst, head);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, last), tail);
    }

    /// <summary>Fills <paramref name="pad"/> with the recommended multi-byte no-ops, at most 9 bytes each.</summary>
    private static void Nops(Span<byte> pad)
    {
        ReadOnlySpan<byte> nops =
        [
            0x90,
            0x66, 0x90,
            0x0F, 0x1F, 0x00,
            0x0F, 0x1F, 0x40, 0x00,
            0x0F, 0x1F, 0x44, 0x00, 0x00,
            0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00,
            0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00,
            0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        while (pad.Length > 0)
        {
            int n = Math.Min(9, pad.Length);
            nops.Slice(n * (n - 1) / 2, n).CopyTo(pad);
            pad = pad[n..];
        }
    }

    /// <summary>Where <paramref name="label"/> is in the code <see cref="Assemble"/> returned.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int LabelOffset(X64Label label)
    {
        if (!_assembled) NotAssembled();
        int k = LabelIndex(label);
        int at = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_labelPos), k);
        if (at < 0) NeverBound();
        // Branches before a label: at most all of them, and _br holds n + 1 entries.
        return at + Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_br), Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_labelBranches), k)).Before;
    }

    /// <summary><see cref="LabelOffset"/> of every label of <paramref name="labels"/>, into <paramref name="offsets"/>.</summary>
    public void LabelOffsets(ReadOnlySpan<X64Label> labels, Span<int> offsets)
    {
        if (!_assembled) NotAssembled();
        if (offsets.Length < labels.Length) throw new ArgumentException("fewer offsets than labels");
        ref int pos = ref MemoryMarshal.GetArrayDataReference(_labelPos);
        ref int branches = ref MemoryMarshal.GetArrayDataReference(_labelBranches);
        ref BranchEntry b0 = ref MemoryMarshal.GetArrayDataReference(_br);
        for (int k = 0; k < labels.Length; k++)
        {
            int i = LabelIndex(labels[k]);
            int at = Unsafe.Add(ref pos, i);
            if (at < 0) NeverBound();
            offsets[k] = at + Unsafe.Add(ref b0, Unsafe.Add(ref branches, i)).Before;
        }
    }

    private static void NotAssembled() => throw new InvalidOperationException("not assembled yet");

    private static void NeverBound() => throw new InvalidOperationException("label never bound");
}
