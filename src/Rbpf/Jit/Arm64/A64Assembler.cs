using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Rbpf.Jit.Arm64;

/// <summary>A position in AArch64 code, bound once, that branches may name before it is bound.</summary>
internal sealed class A64Label
{
    /// <summary>Index of the instruction the label marks; -1 while unbound.</summary>
    public int Index = -1;
}

/// <summary>AArch64 condition codes (the low four bits of b.cond and csel).</summary>
internal enum A64Cond
{
    Eq = 0, Ne = 1, Hs = 2, Lo = 3, Mi = 4, Pl = 5, Vs = 6, Vc = 7, Hi = 8, Ls = 9, Ge = 10, Lt = 11, Gt = 12, Le = 13,
}

/// <summary>A branch's reach did not cover its label: the caller recompiles with far branches.</summary>
internal sealed class A64BranchRangeException : Exception
{
    public A64BranchRangeException() : base("an AArch64 branch does not reach its target") { }
}

/// <summary>
/// A small AArch64 (A64) encoder: the instructions the JIT emits, each one 32-bit word, with labels
/// for branches. Register numbers are 0-30, and 31 means xzr/wzr or sp as the instruction's
/// encoding says (the method names keep them apart). Created with a listing, every word gets
/// its text in GNU assembler syntax (branch targets as <c>.+offset</c>), which the tests feed to
/// <c>aarch64-linux-gnu-as</c> to check each encoding against an independent encoder, and which
/// <c>rbpf jit</c> shows.
/// </summary>
internal sealed class A64Assembler
{
    public const int Sp = 31, Zr = 31, Lr = 30, Fp = 29;

    private uint[] _words;
    private int _count;
    private readonly List<(int Index, A64Label Label, int Kind)> _fixups;
    /// <summary>
    /// Without a listing (compiling to run), the word buffer, the branch list and the labels are the
    /// thread's, kept between compiles in one object: Finish copies the code out, and nothing reads
    /// them after; the next compile hands the labels out again, unbound. A listing keeps its own
    /// (its text points at its labels).
    /// </summary>
    private sealed class Scratch
    {
        public uint[] Words = new uint[256];
        public readonly List<(int Index, A64Label Label, int Kind)> Fixups = new(64);
        public readonly List<A64Label> Labels = new(64);

        /// <summary>Whether anything has grown large (a thread keeps no large buffers).</summary>
        public bool IsLarge => Words.Length > 1 << 16 || Fixups.Capacity > 1 << 14 || Labels.Count > 1 << 16;
    }
    [ThreadStatic] private static Scratch? t_scratch;
    private readonly Scratch? _scratch;
    private int _labelsUsed;
    private List<string>? _text;
    private List<A64Label?>? _textTargets;

    private const int KindImm26 = 0, KindImm19 = 1, KindAdr = 2;

    public A64Assembler(bool listing)
    {
        if (listing)
        {
            _text = new List<string>();
            _textTargets = new List<A64Label?>();
            _words = new uint[256];
            _fixups = new();
        }
        else
        {
            _scratch = t_scratch ??= new Scratch();
            _words = _scratch.Words;
            _fixups = _scratch.Fixups;
            _fixups.Clear();
        }
    }

    /// <summary>Instructions emitted so far.</summary>
    public int Count => _count;

    /// <summary>
    /// Makes room at once for about <paramref name="words"/> instructions, <paramref name="branches"/> branches
    /// and <paramref name="labels"/> labels (an estimate: past it they grow as usual), so a large program's
    /// buffers do not double their way up, leaving each smaller copy as garbage.
    /// </summary>
    public void Reserve(int words, int branches, int labels)
    {
        if (_words.Length < words)
        {
            Array.Resize(ref _words, words);
            if (_scratch != null) _scratch.Words = _words;
        }
        _fixups.EnsureCapacity(branches);
        _scratch?.Labels.EnsureCapacity(labels);
    }

    private void Emit(uint word, string? text, A64Label? target = null)
    {
        if (_count == _words.Length)
        {
            Array.Resize(ref _words, _words.Length * 2);
            if (_scratch != null) _scratch.Words = _words;
        }
        _words[_count++] = word;
        if (_text != null)
        {
            _text.Add(text ?? $".inst 0x{word:x8}");
            _textTargets!.Add(target);
        }
    }

    /// <summary>An instruction's text, built only when listing: the handler tells the compiler not to
    /// evaluate or format a single argument otherwise (a FormattableString boxed them all, and the
    /// register names were strings built on every call: 46 KB per compile of 40 instructions).</summary>
    private string? T([InterpolatedStringHandlerArgument("")] ref ListingText text) => text.ToStringAndClear();

    /// <summary>Formats an instruction's text (invariant culture) when the assembler lists, else nothing at all.</summary>
    [InterpolatedStringHandler]
    internal ref struct ListingText
    {
        private DefaultInterpolatedStringHandler _inner;
        private readonly bool _enabled;

        public ListingText(int literalLength, int formattedCount, A64Assembler assembler, out bool shouldAppend)
        {
            _enabled = shouldAppend = assembler._text != null;
            _inner = shouldAppend ? new DefaultInterpolatedStringHandler(literalLength, formattedCount, CultureInfo.InvariantCulture) : default;
        }

        public void AppendLiteral(string s) => _inner.AppendLiteral(s);
        public void AppendFormatted<T>(T value) => _inner.AppendFormatted(value);
        public void AppendFormatted<T>(T value, string? format) => _inner.AppendFormatted(value, format);
        public void AppendFormatted(string? value) => _inner.AppendFormatted(value);

        public string? ToStringAndClear() => _enabled ? _inner.ToStringAndClear() : null;
    }

    private static string X(int r) => r == 31 ? "xzr" : $"x{r}";
    private static string W(int r) => r == 31 ? "wzr" : $"w{r}";
    private static string XS(int r) => r == 31 ? "sp" : $"x{r}";
    private static string WS(int r) => r == 31 ? "wsp" : $"w{r}";
    private static string R(bool is64, int r) => is64 ? X(r) : W(r);
    private static string RS(bool is64, int r) => is64 ? XS(r) : WS(r);
    private static uint Sf(bool is64) => is64 ? 0x80000000u : 0;
    private static string Cond(A64Cond c) => c.ToString().ToLowerInvariant();

    public static A64Cond Invert(A64Cond c) => (A64Cond)((int)c ^ 1);

    /// <summary>A new, unbound label (one of the thread's, recycled, when not listing).</summary>
    public A64Label NewLabel()
    {
        if (_scratch == null) return new A64Label();
        var pool = _scratch.Labels;
        if (_labelsUsed == pool.Count) pool.Add(new A64Label());
        var label = pool[_labelsUsed++];
        label.Index = -1;
        return label;
    }

    public void Bind(A64Label label)
    {
        if (label.Index >= 0) throw new InvalidOperationException("label bound twice");
        label.Index = _count;
    }

    // ---- data processing, register ----

    private void ThreeReg(uint op, string name, bool is64, int rd, int rn, int rm) =>
        Emit(op | Sf(is64) | (uint)rm << 16 | (uint)rn << 5 | (uint)rd, T($"{name} {R(is64, rd)}, {R(is64, rn)}, {R(is64, rm)}"));

    public void Add(bool is64, int rd, int rn, int rm) => ThreeReg(0x0B000000, "add", is64, rd, rn, rm);
    public void Sub(bool is64, int rd, int rn, int rm) => ThreeReg(0x4B000000, "sub", is64, rd, rn, rm);
    public void Adds(bool is64, int rd, int rn, int rm) => ThreeReg(0x2B000000, "adds", is64, rd, rn, rm);
    public void Subs(bool is64, int rd, int rn, int rm) => ThreeReg(0x6B000000, "subs", is64, rd, rn, rm);
    public void And(bool is64, int rd, int rn, int rm) => ThreeReg(0x0A000000, "and", is64, rd, rn, rm);
    public void Orr(bool is64, int rd, int rn, int rm) => ThreeReg(0x2A000000, "orr", is64, rd, rn, rm);
    public void Eor(bool is64, int rd, int rn, int rm) => ThreeReg(0x4A000000, "eor", is64, rd, rn, rm);
    public void Ands(bool is64, int rd, int rn, int rm) => ThreeReg(0x6A000000, "ands", is64, rd, rn, rm);
    public void Udiv(bool is64, int rd, int rn, int rm) => ThreeReg(0x1AC00800, "udiv", is64, rd, rn, rm);
    public void Sdiv(bool is64, int rd, int rn, int rm) => ThreeReg(0x1AC00C00, "sdiv", is64, rd, rn, rm);
    public void Lslv(bool is64, int rd, int rn, int rm) => ThreeReg(0x1AC02000, "lslv", is64, rd, rn, rm);
    public void Lsrv(bool is64, int rd, int rn, int rm) => ThreeReg(0x1AC02400, "lsrv", is64, rd, rn, rm);
    public void Asrv(bool is64, int rd, int rn, int rm) => ThreeReg(0x1AC02800, "asrv", is64, rd, rn, rm);

    public void Cmp(bool is64, int rn, int rm) => Subs(is64, Zr, rn, rm);
    public void Tst(bool is64, int rn, int rm) => Ands(is64, Zr, rn, rm);
    /// <summary>mov between general registers (orr with the zero register); a 32-bit move clears the upper half.</summary>
    public void Mov(bool is64, int rd, int rm) => Orr(is64, rd, Zr, rm);
    public void Neg(bool is64, int rd, int rm) => Sub(is64, rd, Zr, rm);

    /// <summary>rd = ra + rn * rm (madd) / rd = ra - rn * rm (msub).</summary>
    public void Madd(bool is64, int rd, int rn, int rm, int ra) =>
        Emit(0x1B000000 | Sf(is64) | (uint)rm << 16 | (uint)ra << 10 | (uint)rn << 5 | (uint)rd,
            T($"madd {R(is64, rd)}, {R(is64, rn)}, {R(is64, rm)}, {R(is64, ra)}"));
    public void Msub(bool is64, int rd, int rn, int rm, int ra) =>
        Emit(0x1B008000 | Sf(is64) | (uint)rm << 16 | (uint)ra << 10 | (uint)rn << 5 | (uint)rd,
            T($"msub {R(is64, rd)}, {R(is64, rn)}, {R(is64, rm)}, {R(is64, ra)}"));
    public void Mul(bool is64, int rd, int rn, int rm) => Madd(is64, rd, rn, rm, Zr);

    public void Csel(bool is64, int rd, int rn, int rm, A64Cond cond) =>
        Emit(0x1A800000 | Sf(is64) | (uint)rm << 16 | (uint)cond << 12 | (uint)rn << 5 | (uint)rd,
            T($"csel {R(is64, rd)}, {R(is64, rn)}, {R(is64, rm)}, {Cond(cond)}"));

    public void Rev64(int rd, int rn) => Emit(0xDAC00C00 | (uint)rn << 5 | (uint)rd, T($"rev {X(rd)}, {X(rn)}"));
    public void Rev32(int rd, int rn) => Emit(0x5AC00800 | (uint)rn << 5 | (uint)rd, T($"rev {W(rd)}, {W(rn)}"));
    public void Rev16(int rd, int rn) => Emit(0x5AC00400 | (uint)rn << 5 | (uint)rd, T($"rev16 {W(rd)}, {W(rn)}"));

    // ---- bitfield moves: shifts by a constant, extensions ----

    public void Ubfm(bool is64, int rd, int rn, int immr, int imms) =>
        Emit((is64 ? 0xD3400000u : 0x53000000u) | (uint)immr << 16 | (uint)imms << 10 | (uint)rn << 5 | (uint)rd,
            T($"ubfm {R(is64, rd)}, {R(is64, rn)}, #{immr}, #{imms}"));
    public void Sbfm(bool is64, int rd, int rn, int immr, int imms) =>
        Emit((is64 ? 0x93400000u : 0x13000000u) | (uint)immr << 16 | (uint)imms << 10 | (uint)rn << 5 | (uint)rd,
            T($"sbfm {R(is64, rd)}, {R(is64, rn)}, #{immr}, #{imms}"));

    public void LslImm(bool is64, int rd, int rn, int shift)
    {
        int bits = is64 ? 64 : 32;
        Ubfm(is64, rd, rn, (bits - shift) % bits, bits - 1 - shift);
    }
    public void LsrImm(bool is64, int rd, int rn, int shift) => Ubfm(is64, rd, rn, shift, is64 ? 63 : 31);
    public void AsrImm(bool is64, int rd, int rn, int shift) => Sbfm(is64, rd, rn, shift, is64 ? 63 : 31);

    /// <summary>ands xzr, rn, #(2^bits - 1): tests the low bits.</summary>
    public void TstLowBits(int rn, int bits) =>
        Emit(0xF2400000 | (uint)(bits - 1) << 10 | (uint)rn << 5 | Zr, T($"tst {X(rn)}, #0x{(1L << bits) - 1:x}"));

    // ---- arithmetic with a 12-bit immediate (register 31 is sp here) ----

    private void AddSubImm(uint op, string name, bool is64, int rd, int rn, int imm12, bool shift12, bool flags)
    {
        if ((uint)imm12 > 4095) throw new ArgumentOutOfRangeException(nameof(imm12));
        Emit(op | Sf(is64) | (shift12 ? 1u << 22 : 0) | (uint)imm12 << 10 | (uint)rn << 5 | (uint)rd,
            T($"{name} {(flags ? R(is64, rd) : RS(is64, rd))}, {RS(is64, rn)}, #{imm12}{(shift12 ? ", lsl #12" : "")}"));
    }

    public void AddImm(bool is64, int rd, int rn, int imm12, bool shift12 = false) => AddSubImm(0x11000000, "add", is64, rd, rn, imm12, shift12, false);
    public void SubImm(bool is64, int rd, int rn, int imm12, bool shift12 = false) => AddSubImm(0x51000000, "sub", is64, rd, rn, imm12, shift12, false);
    public void SubsImm(bool is64, int rd, int rn, int imm12) => AddSubImm(0x71000000, "subs", is64, rd, rn, imm12, false, true);
    public void AddsImm(bool is64, int rd, int rn, int imm12) => AddSubImm(0x31000000, "adds", is64, rd, rn, imm12, false, true);
    public void CmpImm(bool is64, int rn, int imm12) => SubsImm(is64, Zr, rn, imm12);
    public void CmnImm(bool is64, int rn, int imm12) => AddsImm(is64, Zr, rn, imm12);
    /// <summary>mov to or from sp (add #0).</summary>
    public void MovSp(int rd, int rn) => AddImm(true, rd, rn, 0);

    // ---- wide moves ----

    public void Movz(bool is64, int rd, ushort imm, int shift) =>
        Emit((is64 ? 0xD2800000u : 0x52800000u) | (uint)(shift / 16) << 21 | (uint)imm << 5 | (uint)rd,
            T($"movz {R(is64, rd)}, #0x{imm:x}, lsl #{shift}"));
    public void Movn(bool is64, int rd, ushort imm, int shift) =>
        Emit((is64 ? 0x92800000u : 0x12800000u) | (uint)(shift / 16) << 21 | (uint)imm << 5 | (uint)rd,
            T($"movn {R(is64, rd)}, #0x{imm:x}, lsl #{shift}"));
    public void Movk(bool is64, int rd, ushort imm, int shift) =>
        Emit((is64 ? 0xF2800000u : 0x72800000u) | (uint)(shift / 16) << 21 | (uint)imm << 5 | (uint)rd,
            T($"movk {R(is64, rd)}, #0x{imm:x}, lsl #{shift}"));

    /// <summary>rd = value in at most four instructions (movz or movn, then movk for the other halfwords).</summary>
    public void MovImm(bool is64, int rd, long value)
    {
        if (!is64) value = (uint)value;
        int parts = is64 ? 4 : 2;
        int zeros = 0, ones = 0;
        for (int k = 0; k < parts; k++)
        {
            ushort h = (ushort)(value >> (16 * k));
            if (h == 0) zeros++;
            if (h == 0xffff) ones++;
        }
        bool inverted = ones > zeros;
        bool first = true;
        for (int k = 0; k < parts; k++)
        {
            ushort h = (ushort)(value >> (16 * k));
            ushort fill = inverted ? (ushort)0xffff : (ushort)0;
            if (h == fill) continue;
            if (first)
            {
                if (inverted) Movn(is64, rd, (ushort)~h, 16 * k); else Movz(is64, rd, h, 16 * k);
                first = false;
            }
            else Movk(is64, rd, h, 16 * k);
        }
        if (first)
        {
            if (inverted) Movn(is64, rd, 0, 0); else Movz(is64, rd, 0, 0);
        }
    }

    // ---- loads and stores ----

    /// <summary>Kinds of load and store: the base opcode of the unsigned-offset form, and the access size.</summary>
    public enum Mem
    {
        Ldrb, Ldrh, LdrW, LdrX, Ldrsb, Ldrsh, Ldrsw, Strb, Strh, StrW, StrX,
    }

    private static (uint Op, int Size, string Name, bool Wide) Info(Mem m) => m switch
    {
        Mem.Ldrb => (0x39400000, 1, "ldrb", false),
        Mem.Ldrh => (0x79400000, 2, "ldrh", false),
        Mem.LdrW => (0xB9400000, 4, "ldr", false),
        Mem.LdrX => (0xF9400000, 8, "ldr", true),
        Mem.Ldrsb => (0x39800000, 1, "ldrsb", true),
        Mem.Ldrsh => (0x79800000, 2, "ldrsh", true),
        Mem.Ldrsw => (0xB9800000, 4, "ldrsw", true),
        Mem.Strb => (0x39000000, 1, "strb", false),
        Mem.Strh => (0x79000000, 2, "strh", false),
        Mem.StrW => (0xB9000000, 4, "str", false),
        _ => (0xF9000000, 8, "str", true),
    };

    /// <summary>Whether [rn, #offset] can be encoded directly (scaled unsigned, or unscaled signed 9 bits).</summary>
    public static bool Encodable(Mem m, int offset)
    {
        int size = Info(m).Size;
        return (offset >= 0 && offset % size == 0 && offset / size < 4096) || (offset >= -256 && offset <= 255);
    }

    /// <summary>A load or store at [rn, #offset]; the offset must be <see cref="Encodable"/>.</summary>
    public void Access(Mem m, int rt, int rn, int offset)
    {
        var (op, size, name, wide) = Info(m);
        if (offset >= 0 && offset % size == 0 && offset / size < 4096)
            Emit(op | (uint)(offset / size) << 10 | (uint)rn << 5 | (uint)rt,
                T($"{name} {(wide ? X(rt) : W(rt))}, [{XS(rn)}{(offset != 0 ? $", #{offset}" : "")}]"));
        else if (offset >= -256 && offset <= 255)
        {
            // The unscaled form (ldur/stur): bit 24 clear, a signed 9-bit offset.
            Emit((op & ~0x01000000u & ~(0xfffu << 10)) | ((uint)offset & 0x1ff) << 12 | (uint)rn << 5 | (uint)rt,
                T($"{name.Replace("ldr", "ldur").Replace("str", "stur")} {(wide ? X(rt) : W(rt))}, [{XS(rn)}, #{offset}]"));
        }
        else throw new ArgumentOutOfRangeException(nameof(offset));
    }

    /// <summary>A load at [rn, rm] (register offset, not shifted).</summary>
    public void LoadIndexed(Mem m, int rt, int rn, int rm)
    {
        var (op, _, name, wide) = Info(m);
        // Register-offset form: bits 24 clear, bit 21 set, option 011 (lsl), S 0.
        uint baseOp = (op & ~0x01000000u) | 0x00206800;
        Emit(baseOp | (uint)rm << 16 | (uint)rn << 5 | (uint)rt, T($"{name} {(wide ? X(rt) : W(rt))}, [{XS(rn)}, {X(rm)}]"));
    }

    /// <summary>stp/ldp of two X registers: signed offset, pre-index (<c>[rn, #o]!</c>) or post-index (<c>[rn], #o</c>).</summary>
    public void Pair(bool load, int rt, int rt2, int rn, int offset, char mode = 'o')
    {
        if (offset % 8 != 0 || offset < -512 || offset > 504) throw new ArgumentOutOfRangeException(nameof(offset));
        uint op = mode switch { 'o' => 0xA9000000u, '!' => 0xA9800000u, _ => 0xA8800000u };
        if (load) op |= 1u << 22;
        string name = load ? "ldp" : "stp";
        string? addr = _text == null ? null : mode switch // the text only when listing
        {
            'o' => offset != 0 ? $"[{XS(rn)}, #{offset}]" : $"[{XS(rn)}]",
            '!' => $"[{XS(rn)}, #{offset}]!",
            _ => $"[{XS(rn)}], #{offset}",
        };
        Emit(op | ((uint)(offset / 8) & 0x7f) << 15 | (uint)rt2 << 10 | (uint)rn << 5 | (uint)rt, T($"{name} {X(rt)}, {X(rt2)}, {addr}"));
    }

    // ---- exclusives and barriers ----

    public void LoadExclusive(bool is64, bool acquire, int rt, int rn) =>
        Emit((is64 ? 0xC85F7C00u : 0x885F7C00u) | (acquire ? 1u << 15 : 0) | (uint)rn << 5 | (uint)rt,
            T($"{(acquire ? "ldaxr" : "ldxr")} {R(is64, rt)}, [{XS(rn)}]"));

    /// <summary>stxr/stlxr: ws is 0 when the store happened.</summary>
    public void StoreExclusive(bool is64, bool release, int ws, int rt, int rn) =>
        Emit((is64 ? 0xC8007C00u : 0x88007C00u) | (release ? 1u << 15 : 0) | (uint)ws << 16 | (uint)rn << 5 | (uint)rt,
            T($"{(release ? "stlxr" : "stxr")} {W(ws)}, {R(is64, rt)}, [{XS(rn)}]"));

    public void DmbIsh() => Emit(0xD5033BBF, T($"dmb ish"));

    // ---- branches ----

    public void B(A64Label target) => Branch(0x14000000, KindImm26, T($"b"), target);
    public void Bl(A64Label target) => Branch(0x94000000, KindImm26, T($"bl"), target);
    public void BCond(A64Cond cond, A64Label target) => Branch(0x54000000 | (uint)cond, KindImm19, T($"b.{Cond(cond)}"), target);
    public void Cbz(bool is64, int rt, A64Label target) => Branch((is64 ? 0xB4000000u : 0x34000000u) | (uint)rt, KindImm19, T($"cbz {R(is64, rt)},"), target);
    public void Cbnz(bool is64, int rt, A64Label target) => Branch((is64 ? 0xB5000000u : 0x35000000u) | (uint)rt, KindImm19, T($"cbnz {R(is64, rt)},"), target);
    public void Adr(int rd, A64Label target) => Branch(0x10000000 | (uint)rd, KindAdr, T($"adr {X(rd)},"), target);

    private void Branch(uint op, int kind, string? text, A64Label target)
    {
        _fixups.Add((_count, target, kind));
        Emit(op, text, target);
    }

    public void Br(int rn) => Emit(0xD61F0000 | (uint)rn << 5, T($"br {X(rn)}"));
    public void Blr(int rn) => Emit(0xD63F0000 | (uint)rn << 5, T($"blr {X(rn)}"));
    public void Ret() => Emit(0xD65F03C0, T($"ret"));

    /// <summary>Resolves the branches and returns the code (little-endian words); throws
    /// <see cref="A64BranchRangeException"/> when a branch cannot reach its label.</summary>
    public byte[] Finish()
    {
        foreach (var (index, label, kind) in _fixups)
        {
            if (label.Index < 0) throw new InvalidOperationException("a branch to an unbound label");
            long delta = label.Index - index; // in instructions
            switch (kind)
            {
                case KindImm26:
                    if (delta < -(1 << 25) || delta >= 1 << 25) throw new A64BranchRangeException();
                    _words[index] |= (uint)delta & 0x3ffffff;
                    break;
                case KindImm19:
                    if (delta < -(1 << 18) || delta >= 1 << 18) throw new A64BranchRangeException();
                    _words[index] |= ((uint)delta & 0x7ffff) << 5;
                    break;
                default:
                {
                    long bytes = delta * 4;
                    if (bytes < -(1 << 20) || bytes >= 1 << 20) throw new A64BranchRangeException();
                    _words[index] |= ((uint)bytes & 3) << 29 | (((uint)(bytes >> 2)) & 0x7ffff) << 5;
                    break;
                }
            }
        }
        var bytesOut = new byte[_count * 4];
        for (int k = 0; k < _count; k++) BitConverter.TryWriteBytes(bytesOut.AsSpan(4 * k), _words[k]);
        if (_scratch is { IsLarge: true }) t_scratch = null;
        return bytesOut;
    }

    /// <summary>
    /// The listing, one instruction per entry. With <paramref name="relative"/> branch targets are
    /// <c>.+offset</c> (what GNU as reads); otherwise the byte offset of the target in hex.
    /// </summary>
    public string[] Text(bool relative)
    {
        if (_text == null) throw new InvalidOperationException("the assembler was created without a listing");
        var lines = new string[_count];
        for (int k = 0; k < _count; k++)
        {
            var target = _textTargets![k];
            if (target == null) { lines[k] = _text[k]; continue; }
            long offset = (target.Index - k) * 4L;
            string t = relative ? (offset >= 0 ? $".+{offset}" : $".-{-offset}") : $"0x{target.Index * 4:x}";
            lines[k] = $"{_text[k]} {t}";
        }
        return lines;
    }

    /// <summary>The listing with each instruction's byte offset, branch targets as offsets (for <c>rbpf jit</c>).</summary>
    public IEnumerable<(int Offset, string Text)> Lines() => Text(relative: false).Select((text, k) => (4 * k, text));
}
