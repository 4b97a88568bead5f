using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Rbpf.Jit;

/// <summary>
/// The accesses of a raw VM's program that are inside its input on every path, found before
/// compiling so the JIT can leave their checks out. As a raw run begins, r1 is the input's start
/// and r2 its length L. While r2 still holds L, comparing it with a constant tells how long the
/// input is at least (<c>jlt r2, 14, drop</c> falls through only with 14 bytes or more), and
/// comparing it with a register <c>x</c> tells how much of the input lies past the offset x
/// (<c>jgt x, r2, drop</c> falls through only when x &lt;= L).
/// <para>
/// Registers are also related to each other: the analysis knows when a register is exactly
/// another's value plus a constant (copies, additions of small constants that cannot wrap), a
/// constant, or the input's start plus a constant. A comparison then tells something of every
/// register in the group: clang's loops compare <c>i + 1</c> with the length and load at
/// <c>start + i</c>, which proves the load through <c>i</c>. Offsets with room after them, added
/// to the start, are pointers with as many bytes after them. A load or store whose bytes all lie
/// below what is known cannot leave the input. Loops are followed to a fixed point (facts that keep
/// shrinking at a loop head are dropped after a few rounds, so the analysis ends).
/// </para>
/// <para>
/// Pointer arithmetic is taken modulo 2^64, as the JIT's check computes it (the access's address
/// minus the start, compared unsigned with the bound), so a pointer moved back and forward again
/// is still known exactly. Offsets (registers compared with the length) must not wrap: a relation
/// is kept through an addition only when the value is known small enough.
/// </para>
/// <para>
/// Registers also carry the least and greatest value they can hold (from constants, loads, masks,
/// shifts, sums and comparisons with constants, 32-bit ones for values that fit 32 bits), and a
/// register known to be another's value plus a constant modulo 2^64 (an addition that may wrap)
/// lets a comparison of it bound the other: clang tests <c>x &lt;= 56</c> as
/// <c>x + -57 &gt; -66</c>, unsigned. Offsets may then be known to lie a little past L
/// (<c>off + l3</c> with off &lt;= L and l3 &lt;= 22 is at most L + 22), and pointers to lie at least
/// some bytes after the start: a load at a negative offset from such a pointer is proven when it
/// stays between the two.
/// </para>
/// </summary>
// Locals are not zeroed on entry (the transfer functions' 80-byte registers made it a loop in every call):
// each is assigned before it is read, and each stackalloc'd span is written before it is read.
[SkipLocalsInit]
internal static class InputBounds
{

    /// <summary>Tests set it: every settling of a step's state then checks that each register that differs from
    /// the state the step began with is one <see cref="State.Written"/> names (a write that bypassed
    /// <see cref="State.W"/> would leave a register unsettled), and throws if not.</summary>
    internal static bool CheckWritten;

    /// <summary>The pseudo-registers relations can name besides r0-r9: the constant 0 and the input's start.</summary>
    internal const int Zero = 10, Start = 11;
    /// <summary>Constants and relation offsets are kept below this, so sums of a few stay far from wrapping.</summary>
    private const long MaxPlus = 1L << 40;
    /// <summary>Room, bytes after a pointer and bytes before it: nothing known. Known ones lie within
    /// [-<see cref="MaxShort"/>, int.MaxValue].</summary>
    private const int None = int.MinValue;
    private const long MaxShort = 1L << 30;
    /// <summary>Greatest values kept (below, nothing known): sums of a few stay far from 2^64.</summary>
    private const long MaxHi = 1L << 60;
    /// <summary>The largest element size of scaled indexes and pointers: 2^3 = 8 bytes.</summary>
    private const int MaxShift = 3;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Bound(long v) => v < -MaxShort || v > int.MaxValue ? None : (int)v;

    /// <summary>What is known of one register.</summary>
    [StructLayout(LayoutKind.Auto)] // 80 bytes, not 104: states are copied often
    internal struct Reg : IEquatable<Reg>
    {
        /// <summary>The value is below 2^Bits (64: nothing known).</summary>
        public byte Bits;
        /// <summary>The value is exactly Base's plus Plus: Base is a register with no relation of its own (a
        /// group's root), <see cref="Zero"/> (the value is the constant Plus) or <see cref="Start"/> (the input's
        /// start plus Plus, modulo 2^64); -1: no such relation.</summary>
        public sbyte Base;
        public long Plus;
        /// <summary>value + Room &lt;= L (Room may be negative: value at most that much past L); <see cref="None"/>: unknown.</summary>
        public int Room;
        /// <summary>The value is the input's start plus an offset o with o + Ptr &lt;= L and o &gt;= Back; <see cref="None"/>: not known.</summary>
        public int Ptr, Back;
        /// <summary>Lo &lt;= value &lt;= Hi (Hi &lt;= <see cref="MaxHi"/> when known, else long.MaxValue).</summary>
        public long Lo, Hi;
        /// <summary>The value is WrapBase's plus WrapPlus modulo 2^64 (it may have wrapped); -1: no such relation.</summary>
        public sbyte WrapBase;
        public long WrapPlus;
        /// <summary>2 * value + Room2 &lt;= L, 4 * value + Room4 &lt;= L, 8 * value + Room8 &lt;= L, as integers (an
        /// index of 2-, 4- or 8-byte elements); <see cref="None"/>: unknown.</summary>
        public int Room2, Room4, Room8;

        /// <summary>Room2, Room4 or Room8 by the element size's log2.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly int Scaled(int shift) => shift == 1 ? Room2 : shift == 2 ? Room4 : Room8;

        /// <summary>The best room known for 2^shift times the value (1 &lt;= shift &lt;= 3): 2^shift * value &lt;= 2^t * value
        /// for t &gt;= shift, so the larger elements' room counts too.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly int ScaledAtLeast(int shift)
        {
            int room = Room8;
            if (shift <= 2) room = Math.Max(room, Room4);
            if (shift <= 1) room = Math.Max(room, Room2);
            return room;
        }

        public void SetScaled(int shift, int room)
        {
            if (shift == 1) Room2 = room;
            else if (shift == 2) Room4 = room;
            else Room8 = room;
        }
        /// <summary>The value is the input's start plus (r[Idx] &lt;&lt; IdxShift) + IdxPlus modulo 2^64 (a
        /// pointer walking with an index); Idx -1: no such relation.</summary>
        public sbyte Idx;
        public byte IdxShift;
        public long IdxPlus;
        /// <summary>The value is r[SumA]'s plus r[SumB]'s as integers (both small: no wrap); -1: not known.</summary>
        public sbyte SumA, SumB;
        /// <summary>The value plus r[PairWith]'s is at most PairHi, as integers (learnt on a register that held
        /// their sum, which may since have been overwritten); -1: not known.</summary>
        public sbyte PairWith;
        public long PairHi;

        public static readonly Reg Unknown = Below(64);

        // Made field by field in place (Make*) rather than as copies of Unknown: a copy of the 80-byte struct is
        // a call to memmove (the runtime's inline copies stop at 64 bytes), and the input analysis makes these often.
        public static Reg Below(int bits)
        {
            Unsafe.SkipInit(out Reg r);
            MakeBelow(ref r, bits);
            return r;
        }

        public static Reg Between(long lo, long hi)
        {
            Unsafe.SkipInit(out Reg r);
            MakeBetween(ref r, lo, hi);
            return r;
        }

        public static Reg Constant(ulong v)
        {
            Unsafe.SkipInit(out Reg r);
            MakeConstant(ref r, v);
            return r;
        }

        /// <summary>Makes <paramref name="r"/> a value below 2^<paramref name="bits"/> (clamped to 0-64), nothing else known.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void MakeBelow(ref Reg r, int bits)
        {
            r.Bits = (byte)Math.Clamp(bits, 0, 64);
            r.Base = -1;
            r.Plus = 0;
            r.Room = r.Ptr = r.Back = None;
            r.Lo = 0;
            r.Hi = long.MaxValue;
            r.WrapBase = -1;
            r.WrapPlus = 0;
            r.Room2 = r.Room4 = r.Room8 = None;
            r.Idx = -1;
            r.IdxShift = 0;
            r.IdxPlus = 0;
            r.SumA = r.SumB = r.PairWith = -1;
            r.PairHi = 0;
        }

        /// <summary>Makes <paramref name="r"/> a value within [lo, hi] (hi above <see cref="MaxHi"/>: no upper bound kept).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void MakeBetween(ref Reg r, long lo, long hi)
        {
            MakeBelow(ref r, hi <= MaxHi ? BitLength((ulong)hi) : 64);
            r.Lo = lo;
            r.Hi = hi <= MaxHi ? hi : long.MaxValue;
        }

        /// <summary>Makes <paramref name="r"/> the constant <paramref name="v"/> (in the group of <see cref="Zero"/> when small).</summary>
        public static void MakeConstant(ref Reg r, ulong v)
        {
            if (v >= MaxPlus)
            {
                MakeBelow(ref r, BitLength(v));
                r.Lo = v <= MaxHi ? (long)v : 0;
                return;
            }
            MakeBetween(ref r, (long)v, (long)v);
            r.Base = Zero;
            r.Plus = (long)v;
        }

        public readonly bool Equals(Reg o) => Same(in o);

        /// <summary>
        /// <paramref name="dst"/> = <paramref name="src"/>: with the struct's 80 bytes all fields (see <see cref="Same"/>)
        /// in five 16-byte moves, where a plain assignment is a call to memmove (the runtime copies structs inline
        /// only up to 64 bytes). The struct holds no references, so a copy of its bytes is a copy of it.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Copy(ref Reg dst, in Reg src)
        {
            if (Unsafe.SizeOf<Reg>() != 80)
            {
                dst = src;
                return;
            }
            ref byte d = ref Unsafe.As<Reg, byte>(ref dst), s = ref Unsafe.As<Reg, byte>(ref Unsafe.AsRef(in src));
            var v0 = Vector128.LoadUnsafe(ref s);
            var v1 = Vector128.LoadUnsafe(ref s, 16);
            var v2 = Vector128.LoadUnsafe(ref s, 32);
            var v3 = Vector128.LoadUnsafe(ref s, 48);
            var v4 = Vector128.LoadUnsafe(ref s, 64);
            v0.StoreUnsafe(ref d);
            v1.StoreUnsafe(ref d, 16);
            v2.StoreUnsafe(ref d, 32);
            v3.StoreUnsafe(ref d, 48);
            v4.StoreUnsafe(ref d, 64);
        }

        /// <summary>Equals without copying the other register: its bytes compared at once when the struct has no
        /// padding (every byte is a field's: the runtime's layout packs the fields into 80 bytes), else field by field.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly bool Same(in Reg o)
        {
            if (!Packed) return SameFields(in o);
            ref byte a = ref Unsafe.As<Reg, byte>(ref Unsafe.AsRef(in this)), b = ref Unsafe.As<Reg, byte>(ref Unsafe.AsRef(in o));
            var diff = (Vector128.LoadUnsafe(ref a) ^ Vector128.LoadUnsafe(ref b))
                | (Vector128.LoadUnsafe(ref a, 16) ^ Vector128.LoadUnsafe(ref b, 16))
                | (Vector128.LoadUnsafe(ref a, 32) ^ Vector128.LoadUnsafe(ref b, 32))
                | (Vector128.LoadUnsafe(ref a, 48) ^ Vector128.LoadUnsafe(ref b, 48))
                | (Vector128.LoadUnsafe(ref a, 64) ^ Vector128.LoadUnsafe(ref b, 64));
            return diff == Vector128<byte>.Zero;
        }

        /// <summary>Whether the struct is exactly its fields' 80 bytes (6 longs, 6 ints, 8 bytes).</summary>
        private static readonly bool Packed = Unsafe.SizeOf<Reg>() == 6 * 8 + 6 * 4 + 8;

        private readonly bool SameFields(in Reg o) => Bits == o.Bits && Base == o.Base && Plus == o.Plus && Room == o.Room && Ptr == o.Ptr
            && Back == o.Back && Lo == o.Lo && Hi == o.Hi && WrapBase == o.WrapBase && WrapPlus == o.WrapPlus
            && Room2 == o.Room2 && Room4 == o.Room4 && Room8 == o.Room8 && Idx == o.Idx && IdxShift == o.IdxShift && IdxPlus == o.IdxPlus
            && SumA == o.SumA && SumB == o.SumB && PairWith == o.PairWith && PairHi == o.PairHi;
    }

    /// <summary>
    /// States an analysis takes instead of allocating (each is 800 bytes of registers, one per slot the
    /// analysis reaches and a few scratch ones): the thread keeps one pool, which an analysis takes and its
    /// facts give back when disposed. Facts not disposed keep theirs, and the thread's next analysis
    /// starts a new pool. A pool keeps at most <see cref="Kept"/> states between analyses, so a
    /// thread holds about 220 KB at most for it.
    /// </summary>
    internal sealed class StatePool
    {
        private const int Kept = 256;
        [ThreadStatic] private static StatePool? t_free;
        private State[] _items = new State[16];
        private int _made, _used;

        /// <summary>The thread's pool (a new one when it is in use), all its states free.</summary>
        public static StatePool Take()
        {
            var pool = t_free ?? new StatePool();
            t_free = null;
            pool._used = 0;
            return pool;
        }

        /// <summary>A state with any content, to be overwritten whole (<see cref="State.CopyFrom"/>).</summary>
        public State Rent()
        {
            if (_used < _made) return _items[_used++];
            var s = new State();
            if (_made < Kept)
            {
                if (_made == _items.Length) Array.Resize(ref _items, _made * 2);
                _items[_made++] = s;
                _used++;
            }
            return s;
        }

        /// <summary>Gives the pool back to the thread: every state it lent is free again.</summary>
        public void Release()
        {
            _used = 0;
            t_free = this;
        }
    }

    /// <summary>What is known at an instruction: whether r2 still holds L, the least L, and each of r0-r9.</summary>
    internal sealed class State
    {
        public bool R2;
        public long Min;
        private Reg[] _regs = new Reg[10];
        /// <summary>r0-r9, to read: a write goes through <see cref="W"/>, which notes the register written.</summary>
        public ReadOnlySpan<Reg> R => _regs;
        /// <summary>The registers written (a bit each) since the state was last settled, or copied from one that was:
        /// the ones its next settling looks at again (with those walking with them).</summary>
        public int Written;

        /// <summary>Register <paramref name="k"/>, to write: noted in <see cref="Written"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public ref Reg W(int k)
        {
            Written |= 1 << k;
            return ref _regs[k];
        }

        /// <summary>Whether this state says exactly what <paramref name="o"/> says, field by field.</summary>
        public bool SameAs(State o)
        {
            if (R2 != o.R2 || Min != o.Min) return false;
            for (int k = 0; k < _regs.Length; k++)
                if (!_regs[k].Same(in o.R[k])) return false;
            return true;
        }

        /// <summary>Makes this state what <paramref name="o"/> is (a scratch state reused instead of a new clone).</summary>
        public State CopyFrom(State o)
        {
            R2 = o.R2;
            Min = o.Min;
            Written = o.Written;
            var from = o._regs;
            var to = _regs;
            for (int k = 0; k < to.Length; k++) Reg.Copy(ref to[k], in from[k]);
            return this;
        }

        /// <summary>The group register or pseudo-register <paramref name="k"/> belongs to, and its value's distance from the group's root.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (int Root, long Plus) Root(int k) => k < 10 && _regs[k].Base >= 0 ? (_regs[k].Base, _regs[k].Plus) : (k, 0);

        /// <summary>d with value(k) = value(j) + d, when known.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public long? Distance(int k, int j)
        {
            var (rk, pk) = Root(k);
            var (rj, pj) = Root(j);
            return rk == rj ? pk - pj : null;
        }

        /// <summary>Room after r<paramref name="k"/>'s value, with what a constant's value, the least L and r2 holding L tell.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int RoomOf(int k)
        {
            ref readonly Reg r = ref _regs[k];
            int room = r.Room;
            if (r.Base == Zero) room = Math.Max(room, Bound(Min - r.Plus));
            else if (r.Hi <= MaxHi && r.Hi < Min) room = Math.Max(room, Bound(Min - r.Hi)); // value <= Hi < the least L
            if (k == 2 && R2) room = Math.Max(room, 0);
            room = Math.Max(room, Math.Max(r.Room2, Math.Max(r.Room4, r.Room8))); // value <= 2^s * value
            return room;
        }

        /// <summary>q with (r<paramref name="k"/>'s value &lt;&lt; <paramref name="shift"/>) + q &lt;= L as integers, or <see cref="None"/>.</summary>
        public int ScaledRoomOf(int k, int shift)
        {
            if (shift == 0) return RoomOf(k);
            ref readonly Reg r = ref _regs[k];
            int room = r.ScaledAtLeast(shift);
            if (r.Base == Zero) room = Math.Max(room, Bound(Min - (r.Plus << shift)));
            return room;
        }

        /// <summary>The offset from the start of a pointer that walks with an index: (its least value, q) with
        /// offset + q &lt;= L; null when not such a pointer or the index's scaled value is not known below L
        /// (then the shift may have wrapped it).</summary>
        private (long Least, int Room)? IndexedOffset(int k)
        {
            ref readonly Reg r = ref _regs[k];
            if (r.Idx < 0) return null;
            int q = ScaledRoomOf(r.Idx, r.IdxShift);
            if (q == None) return null;
            long lo = LoOf(r.Idx);
            if (lo > MaxHi >> r.IdxShift) return null;
            return ((lo << r.IdxShift) + r.IdxPlus, Bound((long)q - r.IdxPlus));
        }

        /// <summary>Bytes of input after the pointer in r<paramref name="k"/>, with what an exact pointer and the least L tell.</summary>
        public int PtrOf(int k)
        {
            ref readonly Reg r = ref _regs[k];
            int ptr = r.Base == Start ? Math.Max(r.Ptr, Bound(Min - r.Plus)) : r.Ptr;
            return IndexedOffset(k) is { } o ? Math.Max(ptr, o.Room) : ptr;
        }

        /// <summary>Bytes of input before the pointer in r<paramref name="k"/> (its least offset).</summary>
        public int BackOf(int k)
        {
            ref readonly Reg r = ref _regs[k];
            int back = r.Base == Start ? Math.Max(r.Back, Bound(r.Plus)) : r.Back;
            return IndexedOffset(k) is { } o ? Math.Max(back, Bound(o.Least)) : back;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public long LoOf(int k) => _regs[k].Base == Zero ? Math.Max(_regs[k].Lo, _regs[k].Plus) : _regs[k].Lo;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public long HiOf(int k)
        {
            ref readonly Reg r = ref _regs[k];
            long hi = r.Hi;
            if (r.Bits < 61) hi = Math.Min(hi, (1L << r.Bits) - 1);
            if (r.Base == Zero) hi = Math.Min(hi, r.Plus);
            return hi;
        }

        /// <summary>Whether r<paramref name="k"/>'s value is known small (adding a small constant cannot wrap it).</summary>
        public bool Small(int k) => _regs[k].Bits <= 62 || RoomOf(k) != None || HiOf(k) <= MaxHi;

        /// <summary>
        /// Stores what is derived (room, bytes around a pointer, bounds) in the fields, so states compare by
        /// what they tell. For a state that was settled, with least L <paramref name="fromMin"/> and r2 flag
        /// <paramref name="fromR2"/>, and changed by a step since, only the registers <see cref="Written"/> names
        /// may differ from then (all of them when the least L or r2's flag changed; a <paramref name="fromMin"/>
        /// of -1 settles all); the others, whose index register is unchanged too, are settled already.
        /// <paramref name="check"/>: the state as it was, when <see cref="CheckWritten"/> is on.
        /// </summary>
        public void Settle(long fromMin, bool fromR2, State? check)
        {
            int changed = fromMin == Min && fromR2 == R2 ? Written : AllRegisters;
            if (CheckWritten && check != null && changed != AllRegisters)
                for (int k = 0; k < _regs.Length; k++)
                    if ((changed >> k & 1) == 0 && !_regs[k].Same(in check._regs[k]))
                        throw new InvalidOperationException($"r{k} changed without being noted as written");
            SettleRegisters(changed);
        }

        /// <summary>Settles the registers of <paramref name="changed"/> and those walking with one settled before them
        /// (settling one that is settled already changes nothing); returns them all.</summary>
        private int SettleRegisters(int changed)
        {
            Written = 0;
            if (changed == 0) return 0;
            var regs = _regs;
            for (int k = 0; k < regs.Length; k++)
            {
                ref Reg r = ref regs[k];
                if ((changed >> k & 1) == 0 && (r.Idx < 0 || (changed >> r.Idx & 1) == 0)) continue;
                changed |= 1 << k; // settled again: a register walking with it is settled again after it too
                // RoomOf, PtrOf, BackOf, LoOf, HiOf and ScaledRoomOf (from 3 down to 1) in turn, the indexed
                // offset worked out once.
                r.Room = RoomOf(k);
                var indexed = r.Idx >= 0 ? IndexedOffset(k) : null;
                int ptr = r.Base == Start ? Math.Max(r.Ptr, Bound(Min - r.Plus)) : r.Ptr;
                int back = r.Base == Start ? Math.Max(r.Back, Bound(r.Plus)) : r.Back;
                if (indexed is { } o)
                {
                    ptr = Math.Max(ptr, o.Room);
                    back = Math.Max(back, Bound(o.Least));
                }
                r.Ptr = ptr;
                r.Back = back;
                r.Lo = LoOf(k);
                r.Hi = HiOf(k);
                if (r.Base == Zero)
                {
                    r.Room8 = Math.Max(r.Room8, Bound(Min - (r.Plus << 3)));
                    r.Room4 = Math.Max(Math.Max(r.Room4, r.Room8), Bound(Min - (r.Plus << 2)));
                    r.Room2 = Math.Max(Math.Max(r.Room2, r.Room4), Bound(Min - (r.Plus << 1)));
                }
                else
                {
                    r.Room4 = Math.Max(r.Room4, r.Room8);
                    r.Room2 = Math.Max(r.Room2, r.Room4);
                }
            }
            return changed;
        }

        /// <summary>A bit for each of r0-r9.</summary>
        public const int AllRegisters = (1 << 10) - 1;

        /// <summary>
        /// Register <paramref name="r"/> is about to be written: makes it related to nothing and the
        /// root of nothing, keeping every other relation (the first member of a group whose root it
        /// was becomes the root), and r2 no longer holds L; returns how its old value relates to what
        /// remains, for instructions that compute its new value from it.
        /// </summary>
        public (int Root, long Plus) Detach(int r)
        {
            if (r == 2) R2 = false;
            var regs = _regs;
            int members = 0; // the registers whose root r is
            for (int j = 0; j < regs.Length; j++)
            {
                // Written noted by hand: this loop writes through a reference it holds (one bounds check per register).
                ref Reg x = ref regs[j];
                if (x.WrapBase == r) { x.WrapBase = -1; Written |= 1 << j; } // the value it was related to is gone
                if (x.Idx == r) Rehome(j, r);
                if (x.SumA == r || x.SumB == r) { x.SumA = x.SumB = -1; Written |= 1 << j; }
                if (x.PairWith == r) { x.PairWith = -1; Written |= 1 << j; }
                if (x.Base == r) members |= 1 << j;
            }
            if (regs[r].Base >= 0)
            {
                var was = (regs[r].Base, regs[r].Plus);
                ref Reg d = ref W(r);
                d.Base = -1;
                d.Plus = 0;
                return was;
            }
            if (members == 0) return (-1, 0);
            int m = System.Numerics.BitOperations.TrailingZeroCount(members);
            long pm = regs[m].Plus;
            ref Reg first = ref W(m);
            first.Base = -1;
            first.Plus = 0;
            for (int rest = members & (members - 1); rest != 0; rest &= rest - 1)
            {
                int j = System.Numerics.BitOperations.TrailingZeroCount(rest);
                ref Reg member = ref W(j);
                member.Base = (sbyte)m;
                member.Plus -= pm;
            }
            return (m, -pm);
        }

        /// <summary>r<paramref name="j"/> walks with r<paramref name="r"/>, about to be written: it walks with another
        /// register of r's group instead (at its distance), or with none.</summary>
        private void Rehome(int j, int r)
        {
            var rj = _regs[j];
            W(j).Idx = -1;
            if (Root(r).Root is Zero or Start) return;
            for (int m = 0; m < _regs.Length; m++)
                if (m != r && m != j && Distance(m, r) is { } d && Math.Abs(rj.IdxPlus - (d << rj.IdxShift)) < MaxPlus)
                {
                    W(j).Idx = (sbyte)m;
                    W(j).IdxPlus = rj.IdxPlus - (d << rj.IdxShift);
                    return;
                }
        }

        /// <summary>Register <paramref name="r"/> is written with a value of which <paramref name="now"/> is known
        /// (a relation in it names a root that is not r).</summary>
        public void Set(int r, in Reg now)
        {
            if (r > 9) return;
            Detach(r);
            Reg.Copy(ref W(r), in now);
        }

        /// <summary><see cref="Set"/> with <see cref="Reg.Below"/>, made in place.</summary>
        public void SetBelow(int r, int bits)
        {
            if (r > 9) return;
            Detach(r);
            Reg.MakeBelow(ref W(r), bits);
        }

        /// <summary><see cref="Set"/> with <see cref="Reg.Between"/>, made in place.</summary>
        public void SetBetween(int r, long lo, long hi)
        {
            if (r > 9) return;
            Detach(r);
            Reg.MakeBetween(ref W(r), lo, hi);
        }

        /// <summary><see cref="Set"/> with <see cref="Reg.Constant"/>, made in place.</summary>
        public void SetConstant(int r, ulong v)
        {
            if (r > 9) return;
            Detach(r);
            Reg.MakeConstant(ref W(r), v);
        }

        /// <summary>L is at least <paramref name="length"/>.</summary>
        public void AtLeast(long length)
        {
            if (length > int.MaxValue) return;
            Min = Math.Max(Min, length);
        }

        /// <summary>Register <paramref name="r"/> plus <paramref name="room"/> is at most L: so is every register of
        /// its group, by its distance; for a constant, L is at least the sum.</summary>
        public void RoomAfter(int r, long room)
        {
            if (r > 9 || room < -MaxShort || room > int.MaxValue) return;
            var (root, plus) = Root(r);
            if (root == Zero) { AtLeast(plus + room); return; }
            if (root == Start) return; // a pointer compared with a length tells nothing
            for (int j = 0; j < _regs.Length; j++)
            {
                if (Distance(j, r) is not { } d) continue;
                int rj = Bound(room - d);
                if (rj != None) W(j).Room = Math.Max(RoomOf(j), rj);
            }
        }

        /// <summary>(r<paramref name="r"/> &lt;&lt; <paramref name="shift"/>) + <paramref name="room"/> &lt;= L: so is every
        /// register of its group, by its distance scaled.</summary>
        public void ScaledRoomAfter(int r, int shift, long room)
        {
            if (r > 9 || shift is < 1 or > MaxShift || room < -MaxShort || room > int.MaxValue) return;
            var (root, plus) = Root(r);
            if (root == Zero) { AtLeast((plus << shift) + room); return; }
            if (root == Start) return;
            for (int j = 0; j < _regs.Length; j++)
            {
                if (Distance(j, r) is not { } d) continue;
                int rj = Bound(room - (d << shift));
                if (rj != None) W(j).SetScaled(shift, Math.Max(_regs[j].Scaled(shift), rj));
            }
        }

        /// <summary>c with r<paramref name="p"/>'s value = the start + (r<paramref name="x"/>'s &lt;&lt; <paramref name="shift"/>) + c
        /// modulo 2^64, when known: through p's relation and x's group, or p's distance from the start and x a constant.</summary>
        public long? IndexRelation(int p, int x, int shift)
        {
            if (p == x || x > 9) return null;
            ref readonly Reg rp = ref _regs[p];
            if (rp.Idx >= 0 && rp.IdxShift == shift && Distance(rp.Idx, x) is { } d) return rp.IdxPlus + (d << shift);
            if (rp.Base == Start && _regs[x].Base == Zero) return rp.Plus - (_regs[x].Plus << shift);
            return null;
        }

        /// <summary>r<paramref name="r"/>'s value lies within [lo, hi]: so does every register of its group, moved by its distance.</summary>
        public void Within(int r, long lo, long hi)
        {
            if (r > 9) return;
            var (root, _) = Root(r);
            if (root is Zero or Start) return;
            for (int j = 0; j < _regs.Length; j++)
            {
                if (Distance(j, r) is not { } d) continue;
                // A register holding a sum: the bound stays with the two addends after it is overwritten.
                if (_regs[j].SumA >= 0 && hi <= MaxHi && hi + d <= MaxHi)
                {
                    int a = _regs[j].SumA;
                    long pairHi = _regs[a].PairWith == _regs[j].SumB ? Math.Min(_regs[a].PairHi, hi + d) : hi + d;
                    (W(a).PairWith, W(a).PairHi) = (_regs[j].SumB, pairHi);
                }
                W(j).Lo = Math.Max(LoOf(j), Math.Max(0, lo + d));
                if (hi <= MaxHi && hi + d <= MaxHi) W(j).Hi = Math.Min(HiOf(j), hi + d);
            }
        }

        /// <summary>Room both sides have (<paramref name="widen"/>: none, when less than this side's).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int JoinedRoom(int a, int b, bool widen)
        {
            int room = Math.Min(a, b);
            return widen && room < a ? None : room;
        }

        /// <summary>
        /// Joins <paramref name="o"/> in (both states settled): what holds on both sides. With
        /// <paramref name="widen"/> (a loop head visited often), a bound that moved is dropped instead.
        /// Returns whether anything changed. <paramref name="spare"/> is an array of ten registers the
        /// join is built in; it becomes this state's, and the old one is handed back in its place.
        /// </summary>
        public bool JoinWith(State o, bool widen, bool hard, ref Reg[] spare)
        {
            bool changed = false, wasR2 = R2;
            long wasMin = Min;
            if (R2 && !o.R2) { R2 = false; changed = true; }
            long min = Math.Min(Min, o.Min); // set once the registers are joined (a constant's room is worked out with each side's)
            if (widen && min < Min) min = 0;
            var joined = spare;
            Span<int> roots = stackalloc int[12];
            roots[0] = Zero;
            roots[1] = Start;
            int nroots = 2;
            // Each register's and pseudo-register's root and distance from it, on both sides.
            Span<int> rootA = stackalloc int[12], rootB = stackalloc int[12];
            Span<long> plusA = stackalloc long[12], plusB = stackalloc long[12];
            for (int k = 0; k < 12; k++)
            {
                (rootA[k], plusA[k]) = Root(k);
                (rootB[k], plusB[k]) = o.Root(k);
            }
            // For each root on either side, the joined roots (a bit each, by their place in roots) with that root
            // there: the roots a register may join are those with its roots on both sides.
            Span<int> byRootA = stackalloc int[12], byRootB = stackalloc int[12];
            byRootA.Clear();
            byRootB.Clear();
            byRootA[Zero] = byRootB[Zero] = 1;
            byRootA[Start] = byRootB[Start] = 2;
            bool allSame = true;
            // The registers that may differ from this side's: those that differ between the sides, and those
            // whose relation or emptied fields (below) changed.
            int differ = 0;
            for (int k = 0; k < _regs.Length; k++)
            {
                ref readonly Reg a = ref _regs[k], b = ref o._regs[k]; // _regs changes only after the loop
                ref Reg j = ref joined[k];
                if (a.Same(in b))
                {
                    // The same on both sides (most registers, most joins): itself, its relation worked out below,
                    // and what the general case leaves empty when unused emptied.
                    Reg.Copy(ref j, in a);
                    j.Base = -1;
                    j.Plus = 0;
                    if (j.PairWith < 0) j.PairHi = 0;
                    if (j.Idx < 0) (j.IdxShift, j.IdxPlus) = (0, 0);
                    if (j.PairHi != a.PairHi || j.IdxShift != a.IdxShift || j.IdxPlus != a.IdxPlus) differ |= 1 << k;
                }
                else
                {
                    allSame = false;
                    differ |= 1 << k;
                    // Built in place (joined is neither side's array), every field set.
                    bool sameWrap = a.WrapBase == b.WrapBase && a.WrapPlus == b.WrapPlus;
                    bool sameSum = a.SumA == b.SumA && a.SumB == b.SumB;
                    j.Bits = Math.Max(a.Bits, b.Bits);
                    j.Base = -1;
                    j.Plus = 0;
                    j.Room = Math.Min(a.Room, b.Room);
                    j.Ptr = Math.Min(a.Ptr, b.Ptr);
                    j.Back = Math.Min(a.Back, b.Back);
                    j.Lo = Math.Min(a.Lo, b.Lo);
                    j.Hi = Math.Max(a.Hi, b.Hi);
                    j.WrapBase = sameWrap ? a.WrapBase : (sbyte)-1;
                    j.WrapPlus = sameWrap ? a.WrapPlus : 0;
                    j.Idx = -1;
                    j.IdxShift = 0;
                    j.IdxPlus = 0;
                    j.SumA = sameSum ? a.SumA : (sbyte)-1;
                    j.SumB = sameSum ? a.SumB : (sbyte)-1;
                    j.PairWith = a.PairWith == b.PairWith && !(widen && b.PairHi > a.PairHi) ? a.PairWith : (sbyte)-1;
                    j.PairHi = j.PairWith < 0 ? 0 : Math.Max(a.PairHi, b.PairHi);
                    // Scaled room (both sides settled: a constant's, worked out from the least L, is in the fields);
                    // widening drops one that shrank.
                    j.Room2 = JoinedRoom(a.Room2, b.Room2, widen);
                    j.Room4 = JoinedRoom(a.Room4, b.Room4, widen);
                    j.Room8 = JoinedRoom(a.Room8, b.Room8, widen);
                    // A pointer walking with an index on both sides: this side's relation if the other has it too, else
                    // any index both sides relate it to alike (a pointer and a counter moved on together from constants).
                    if (a.Idx >= 0 && o.IndexRelation(k, a.Idx, a.IdxShift) == a.IdxPlus)
                        (j.Idx, j.IdxShift, j.IdxPlus) = (a.Idx, a.IdxShift, a.IdxPlus);
                    else if ((a.Idx < 0 || !widen) && (a.Idx >= 0 || a.Base == Start) && (b.Idx >= 0 || b.Base == Start) && !(a.Base == Start && b.Base == Start && a.Plus == b.Plus))
                        for (int c = -1; c < _regs.Length && j.Idx < 0; c++)
                        {
                            int x = c < 0 ? b.Idx : c; // the other side's index first
                            if (x < 0) continue;
                            for (int sh = 0; sh <= MaxShift; sh++)
                                if (IndexRelation(k, x, sh) is { } ca && o.IndexRelation(k, x, sh) == ca && Math.Abs(ca) < MaxPlus)
                                {
                                    (j.Idx, j.IdxShift, j.IdxPlus) = ((sbyte)x, (byte)sh, ca);
                                    break;
                                }
                        }
                    if (widen)
                    {
                        // Bits can only grow 64 times. Bounds jump to the next power of two (a chain of
                        // them is short, and a bound that moved once, between two constants, stays useful).
                        if (j.Room < a.Room) j.Room = None;
                        if (j.Ptr < a.Ptr) j.Ptr = None;
                        if (j.Back < a.Back) j.Back = None;
                        if (j.Lo < a.Lo) j.Lo = j.Lo == 0 || hard ? 0 : (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)j.Lo + 1) / 2;
                        if (j.Hi > a.Hi) j.Hi = j.Hi >= MaxHi / 2 || hard ? long.MaxValue : (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)j.Hi + 1) - 1;
                        if (hard && j.Bits > a.Bits) j.Bits = 64;
                    }
                }
                // The relations that hold on both sides: k joins the first root it has the same distance from on both.
                for (int candidates = byRootA[rootA[k]] & byRootB[rootB[k]]; candidates != 0; candidates &= candidates - 1)
                {
                    int rc = roots[System.Numerics.BitOperations.TrailingZeroCount(candidates)];
                    long da = plusA[k] - plusA[rc];
                    if (plusB[k] - plusB[rc] == da && Math.Abs(da) < MaxPlus)
                    {
                        j.Base = (sbyte)rc;
                        j.Plus = da;
                        break;
                    }
                }
                if (j.Base < 0)
                {
                    byRootA[rootA[k]] |= 1 << nroots;
                    byRootB[rootB[k]] |= 1 << nroots;
                    roots[nroots++] = k;
                }
                if (j.Base != a.Base || j.Plus != a.Plus) differ |= 1 << k;
            }
            if (min != Min) { Min = min; changed = true; }
            // Compared once settled: what is derived again (from an index, a constant) is no change.
            var before = _regs;
            _regs = joined;
            spare = before;
            // Registers the same on both sides are this side's, settled already (Settle only adds what the
            // fields do not yet say, and a lower least L or r2 no longer holding it says less); settling
            // one the join left as it was again changes nothing. Registers neither found different nor
            // settled are as before, field for field.
            differ = allSame ? AllRegisters : SettleRegisters(Min == wasMin && R2 == wasR2 ? differ : AllRegisters);
            for (int k = 0; k < _regs.Length; k++)
                if ((differ >> k & 1) != 0 && !_regs[k].Same(in before[k])) changed = true;
            return changed;
        }
    }

    private static int BitLength(ulong v) => 64 - System.Numerics.BitOperations.LeadingZeroCount(v);

    /// <summary>A state's joins at a loop head before bounds that keep moving there are widened. Two: each
    /// join costs another pass over the loop's body, and eight (as it was) proved nothing more in the
    /// test suites or the clang objects of the tests and benchmarks (their JIT code is the same).</summary>
    private const int JoinsBeforeWidening = 2;
    /// <summary>Widenings at a loop head that move a value's bounds a power of two at a time; past them a
    /// bound that still moves is dropped (a loop to the input's length, whose count no constant bounds,
    /// took some 60 rounds to climb to 2^60 a power of two at a time). Each one costs another pass over
    /// the loop's body; the comparison that ends a loop to a constant bounds the value inside the body
    /// anyway. Two: four (as it was) proved nothing more in the test suites or the clang objects of the
    /// tests and benchmarks.</summary>
    private const int GradualWidenings = 2;
    /// <summary>What the analysis found: the accesses proven, and what is known at each slot with a state of its own:
    /// every slot more than one way leads to (loop heads among them) and every conditional jump's target. A slot
    /// only the slot before it or a ja leads to keeps none; the queries below tell nothing there.</summary>
    internal sealed class Facts(State?[] states, bool[]? proven, long steps, StatePool? pool = null) : IDisposable
    {
        /// <summary>Hands the states back to the thread's pool for its next analysis: the facts tell nothing after.</summary>
        public void Dispose()
        {
            if (pool == null) return;
            Array.Clear(states);
            pool.Release();
            pool = null;
        }

        /// <summary>Slots the analysis processed (its work, for the tests that keep it in proportion to a program's length).</summary>
        public long Steps { get; } = steps;

        /// <summary>For each slot, whether it is a plain load or store proven to stay inside the input; null when none is.</summary>
        public bool[]? Proven { get; } = proven;

        /// <summary>Whether r2 holds the input's length at <paramref name="pc"/> on every path (false where no path goes, or
        /// the slot keeps no state).</summary>
        public bool HoldsLength(int pc) => states[pc]?.R2 ?? false;

        /// <summary>How r<paramref name="r"/> relates at <paramref name="pc"/> to a group's root (a register, <see cref="Zero"/>
        /// or <see cref="Start"/>): value = root's + Plus; (r, 0) when it is a root or related to nothing.</summary>
        public (int Root, long Plus) Relation(int pc, int r) => states[pc]?.Root(r) ?? (r, 0);

        /// <summary>Whether r<paramref name="r"/>'s value at <paramref name="pc"/> is at most L on every path there.</summary>
        public bool AtMostLength(int pc, int r) => states[pc] is { } s && r < 10 && s.RoomOf(r) is var room && room != None && room >= 0;
    }

    /// <summary>
    /// For each slot, whether it is a plain load or store proven to stay inside the input (see the
    /// class remarks); null when there is none.
    /// </summary>
    public static bool[]? ProvenAccesses(DecodedInsn[] code)
    {
        using var facts = Analyze(code);
        return facts?.Proven;
    }

    /// <summary>The analysis of the class remarks; null when the program compares nothing with r2 (nothing to learn).</summary>
    public static Facts? Analyze(DecodedInsn[] code) => Analyze(code, StepBudget(code.Length));

    /// <summary>
    /// Slots the analysis may process (<see cref="MinSteps"/> and <see cref="StepsPerSlot"/> per slot of
    /// the program, at most <see cref="MaxSteps"/>) before it gives up, leaving every check and poll
    /// in: a safety net that bounds the compile time any program can cost (a step costs 1,500 to
    /// 2,500 host instructions on clang's code, so the cap is well under a second). The programs of the test
    /// suites needed at most 70 steps per slot, all of them under 50 slots long (which the floor
    /// covers); the clang kernels of <c>benchmarks/clang</c> at most 5 (<c>InputBoundsTests</c>), loops
    /// in a row about 8 (<c>LargeProgramTests</c>). A state machine of hundreds of states in one loop needs far more,
    /// and gives up; so do programs of more than about 30,000 slots that need over 32 per slot.
    /// </summary>
    private static long StepBudget(int slots) => Math.Min(MaxSteps, MinSteps + StepsPerSlot * slots);
    private const long MinSteps = 100_000, StepsPerSlot = 32, MaxSteps = 1_000_000;

    /// <summary><see cref="Analyze(DecodedInsn[])"/> within <paramref name="maxSteps"/> slots processed; null
    /// (nothing proven, every loop polled) when it needs more.</summary>
    internal static Facts? Analyze(DecodedInsn[] code, long maxSteps) => Analyze(code, maxSteps, null);

    /// <summary>
    /// The analysis as if the conditional jumps marked in <paramref name="unrefined"/> told nothing:
    /// both sides go on with what was known before them. What it proves holds however those jumps
    /// go, for code that may run past them the other way (the JIT's drops turned into a flag).
    /// </summary>
    public static Facts? Analyze(DecodedInsn[] code, bool[] unrefined) => Analyze(code, StepBudget(code.Length), unrefined);

    private static Facts? Analyze(DecodedInsn[] code, long maxSteps, bool[]? unrefined)
    {
        long budget = maxSteps;
        int n = code.Length;
        // Nothing to prove without a comparison involving r2 or a value computed from it (n = len >> 2):
        // most programs; no analysis.
        if (!Measures(code)) return null;

        // Loop heads (targets of jumps back), where joins widen after a while.
        var joins = new int[n];
        var loopHead = new bool[n];
        for (int pc = 0; pc < n; pc++)
            if ((code[pc].Op is Op.Ja or (>= Op.Jeq64Imm and <= Op.Jsle32Reg)) && code[pc].Off <= pc && code[pc].Off >= 0)
                loopHead[code[pc].Off] = true;

        // Slots one edge leads to (the entry counts as one, a call as one more for its target): what
        // comes in there is what holds there, from the latest state of the slot before, so it replaces
        // the old state instead of being joined with it.
        var single = new bool[n];
        var rank = Ranks(code, out var slotOfRank);
        {
            var edges = new byte[n];
            Span<int> succ = stackalloc int[2];
            if (n > 0) edges[0] = 1;
            for (int pc = 0; pc < n; pc++)
                for (int k = 0, count = Successors(code, pc, succ); k < count; k++)
                    if (edges[succ[k]] < 2) edges[succ[k]]++;
            for (int pc = 0; pc < n; pc++) single[pc] = edges[pc] == 1 && !loopHead[pc];
        }

        var pool = StatePool.Take();
        var states = new State?[n];
        var spare = new Reg[10]; // what joins are built in
        var work = new SlotWorklist(n);
        // Scratch states for the slot at hand and a jump's other side: Merge copies what it keeps.
        State scratch = pool.Rent(), other = pool.Rent();
        // The slot whose state the scratch state holds exactly (what the last Merge of it stored there), or -1:
        // when that slot is the next one visited, its state is not copied in again.
        int carried = -1;
        // The slot the working state goes on to at once, or -1: a slot only it leads to (the next of a block, or
        // a ja's target) has no state stored; the analysis visits it whenever the slot before it goes on.
        int next = -1;
        // The least L and r2's flag as the step began (State.Settle); checked: the whole state.
        long stepMin = -1;
        bool stepR2 = false;
        State? stepFrom = null, checkedFrom = null;
        // unchanged: s is as the step began (a store, a jump that tells nothing), settled already; chain: s is the
        // working state, which may go on to the slot at once.
        void Merge(int pc, State s, bool unchanged = false, bool chain = false)
        {
            if (pc < 0 || pc >= n) return;
            if (!unchanged) s.Settle(stepMin, stepR2, stepFrom);
            if (chain && single[pc])
            {
                next = pc;
                return;
            }
            if (states[pc] == null || single[pc])
            {
                if (states[pc] == null) states[pc] = pool.Rent().CopyFrom(s);
                else if (states[pc]!.SameAs(s)) return;
                else states[pc]!.CopyFrom(s);
                if (s == scratch) carried = pc; // the slot's state is now exactly the working state
            }
            else
            {
                int count = loopHead[pc] ? ++joins[pc] : 0;
                if (!states[pc]!.JoinWith(s, count > JoinsBeforeWidening, count > JoinsBeforeWidening + GradualWidenings, ref spare)) return;
            }
            work.Push(rank[pc]);
        }

        var entry = scratch;
        entry.R2 = true;
        entry.Min = 0;
        for (int r = 0; r < 10; r++) entry.W(r) = r is 0 or >= 3 ? Reg.Constant(0) : Reg.Unknown; // registers start at 0
        entry.W(1) = Reg.Unknown with { Base = Start, Plus = 0 };
        entry.W(2) = Reg.Unknown with { Room = 0 }; // L itself
        Merge(0, entry); // stepMin -1: settled whole
        foreach (var i in code)
            if (i.Op == Op.CallLocal) // a function may be called from anywhere
            {
                var unknown = scratch;
                unknown.R2 = false;
                unknown.Min = 0;
                for (int r = 0; r < 10; r++) unknown.W(r) = Reg.Unknown;
                Merge(i.Off, unknown);
            }
        carried = -1; // the scratch state was reused above

        // Whether each plain load or store stays inside the input, as its slot's last visit found (the last
        // visit is with the state the analysis ends with there); slots never visited stay false.
        var inside = new bool[n];
        bool anyInside = false;
        while (work.Count > 0)
        {
            int pc = slotOfRank[work.Pop()];
            var s = pc == carried ? scratch : scratch.CopyFrom(states[pc]!); // settled
            carried = -1;
            do
            {
                if (--maxSteps < 0)
                {
                    pool.Release();
                    return null;
                }
                next = -1;
                stepMin = s.Min;
                stepR2 = s.R2;
                // Checked: Settle compares with the state as the step began.
                if (CheckWritten) stepFrom = (checkedFrom ??= new State()).CopyFrom(s);
                var i = code[pc];
                switch (i.Op)
                {
                    case Op.Exit or Op.Illegal:
                        break;
                    case Op.Ja:
                        Merge(i.Off, s, unchanged: true, chain: true);
                        break;
                    case >= Op.Jeq64Imm and <= Op.Jsle32Reg when unrefined != null && unrefined[pc]:
                        Merge(i.Off, other.CopyFrom(s), unchanged: true);
                        Merge(pc + 1, s, unchanged: true, chain: true);
                        break;
                    case >= Op.Jeq64Imm and <= Op.Jsle32Reg:
                    {
                        var taken = other.CopyFrom(s);
                        // A side the register's known range rules out is not followed (its facts would be
                        // those of a path no run takes, and would only blur the others').
                        var (never, always) = Decided(i, s);
                        Refine(i, taken, s);
                        if (!never) Merge(i.Off, taken);
                        if (!always) Merge(pc + 1, s, chain: true);
                        break;
                    }
                    // Calls change r0-r5 (and say nothing of r1, r2); so do the legacy packet loads, as in the kernel.
                    case Op.Call or Op.CallX or Op.CallLocal or (>= Op.LdAbsB and <= Op.LdIndDW):
                        for (int r = 0; r <= 5; r++) s.SetBelow(r, 64);
                        Merge(pc + 1, s, chain: true);
                        break;
                    case >= Op.StB and <= Op.StxDW:
                        if (i.Dst <= 9) anyInside |= inside[pc] = Inside(i, i.Dst, s);
                        Merge(pc + 1, s, unchanged: true, chain: true);
                        break;
                    case Op.Atomic32 or Op.Atomic64: // fetching forms write the source (cmpxchg r0)
                        s.SetBelow(i.Src, 64);
                        s.SetBelow(0, 64);
                        Merge(pc + 1, s, chain: true);
                        break;
                    case Op.Lddw:
                        s.SetConstant(i.Dst, (ulong)i.Imm);
                        Merge(pc + 2, s, chain: true);
                        break;
                    default:
                        if (i.Op is >= Op.LdxB and <= Op.LdxSW && i.Src <= 9) anyInside |= inside[pc] = Inside(i, i.Src, s);
                        Assign(i, s);
                        Merge(pc + 1, s, chain: true);
                        break;
                }
                pc = next;
            } while (pc >= 0);
        }
        var proven = anyInside && Array.IndexOf(inside, true) >= 0 ? inside : null;
        return new Facts(states, proven, budget - maxSteps, pool);
    }

    /// <summary>Whether the load or store <paramref name="i"/> through r<paramref name="b"/> stays inside the input in
    /// state <paramref name="s"/>: through a pointer with bytes known before and after it (an exact one: at a
    /// constant distance from the start).</summary>
    private static bool Inside(DecodedInsn i, int b, State s)
    {
        int back = s.BackOf(b), after = s.PtrOf(b);
        return back != None && after != None && back + (long)i.Off >= 0 && i.Off + JitTarget.AccessSize(i.Op) <= after;
    }

    /// <summary>Whether the program compares r2 with anything in a conditional jump, or copies it.</summary>
    private static bool Measures(DecodedInsn[] code)
    {
        foreach (ref readonly var i in code.AsSpan())
        {
            Op op = i.Op;
            if (op is >= Op.Jeq64Imm and <= Op.Jsle32Reg)
            {
                if (i.Dst == 2 || ((op - Op.Jeq64Imm) & 1) == 1 && i.Src == 2) return true;
            }
            else if (op is Op.Mov64Reg or Op.Mov32Reg && i.Src == 2) return true;
        }
        return false;
    }

    /// <summary>Where the analysis goes from <paramref name="pc"/> (a call's target counted as a way in: a
    /// function may be called from anywhere), into <paramref name="into"/>; their count.</summary>
    private static int Successors(DecodedInsn[] code, int pc, Span<int> into)
    {
        int count = BoundedLoops.Successors(code, pc, into);
        ref readonly var i = ref code[pc];
        if (i.Op == Op.CallLocal && (uint)i.Off < (uint)code.Length)
        {
            if (count > 0) into[1] = into[0]; // the target first, as for a jump
            into[0] = i.Off;
            count++;
        }
        return count;
    }

    /// <summary>
    /// The order the analysis visits slots in: reverse postorder of a depth-first walk from the entry
    /// and then each function (slots nothing reaches last), so a slot comes after every slot that leads
    /// to it except through a loop's way back. A loop's head is visited before its body and every path
    /// through the body has arrived at a join before the join goes on (by slot number, the shared tail
    /// of a switch's cases that clang puts before them was visited once per case).
    /// </summary>
    private static int[] Ranks(DecodedInsn[] code, out int[] slotOfRank)
    {
        int n = code.Length;
        var rank = new int[n];
        slotOfRank = new int[n];
        var seen = new bool[n];
        var post = new int[n];
        int posts = 0;
        var stack = new (int Pc, int Next)[n];
        Span<int> succ = stackalloc int[2];
        void Walk(int root, Span<int> succ)
        {
            if (root < 0 || root >= n || seen[root]) return;
            int sp = 0;
            stack[sp++] = (root, 0);
            seen[root] = true;
            while (sp > 0)
            {
                var (pc, next) = stack[sp - 1];
                int count = Successors(code, pc, succ);
                if (next < count)
                {
                    stack[sp - 1].Next++;
                    int to = succ[next];
                    if (!seen[to])
                    {
                        seen[to] = true;
                        stack[sp++] = (to, 0);
                    }
                    continue;
                }
                sp--;
                post[posts++] = pc;
            }
        }
        Walk(0, succ);
        foreach (var i in code)
            if (i.Op == Op.CallLocal) Walk(i.Off, succ);
        int r = 0;
        for (int k = posts - 1; k >= 0; k--) rank[post[k]] = r++;
        for (int pc = 0; pc < n; pc++)
            if (!seen[pc]) rank[pc] = r++;
        for (int pc = 0; pc < n; pc++) slotOfRank[rank[pc]] = pc;
        return rank;
    }

    /// <summary>An instruction that writes its destination (arithmetic, moves, byte swaps, loads): what is known of it after.</summary>
    private static void Assign(DecodedInsn i, State s)
    {
        int d = i.Dst;
        if (d > 9) { s.SetBelow(d, 64); return; }
        Unsafe.SkipInit(out Reg old);
        Reg.Copy(ref old, in s.R[d]);
        // What is known of the old value, for the operations that compute from it (the others skip the work).
        int oldRoom = None, oldPtr = None, oldBack = None;
        long oldLo = 0, oldHi = long.MaxValue;
        if (i.Op is Op.Add64Imm or Op.Sub64Imm or Op.Add64Reg or Op.And64Imm or Op.And32Imm or Op.Rsh64Imm or Op.Lsh64Imm or Op.Lsh32Imm)
        {
            (oldRoom, oldPtr, oldBack) = (s.RoomOf(d), s.PtrOf(d), s.BackOf(d));
            (oldLo, oldHi) = (s.LoOf(d), s.HiOf(d));
        }
        switch (i.Op)
        {
            case Op.Mov64Imm:
                s.SetConstant(d, (ulong)i.Imm);
                return;
            case Op.Mov32Imm:
                s.SetConstant(d, (uint)i.Imm);
                return;
            case Op.Mov64Reg or Op.Mov32Reg:
            {
                if (i.Src == d)
                {
                    if (i.Op == Op.Mov32Reg && old.Bits > 32) s.SetBelow(d, 32);
                    return;
                }
                if (i.Src > 9 || i.Op == Op.Mov32Reg && s.R[i.Src].Bits > 32)
                {
                    s.SetBelow(d, i.Op == Op.Mov32Reg ? 32 : 64);
                    return;
                }
                // The same value: the same facts, in the source's group.
                s.Detach(d);
                var copy = s.R[i.Src];
                copy.Room = s.RoomOf(i.Src);
                copy.Ptr = s.PtrOf(i.Src);
                copy.Back = s.BackOf(i.Src);
                copy.Lo = s.LoOf(i.Src);
                copy.Hi = s.HiOf(i.Src);
                (int root, copy.Plus) = s.Root(i.Src);
                copy.Base = (sbyte)root;
                s.W(d) = copy;
                return;
            }
            case Op.Add64Imm or Op.Sub64Imm:
                AddConstant(s, d, i.Op == Op.Add64Imm ? i.Imm : -i.Imm, old, oldRoom, oldPtr, oldBack, oldLo, oldHi);
                return;
            case Op.Add64Reg when i.Src <= 9 && i.Src != d:
            {
                int src = i.Src;
                if (s.R[src].Base == Zero) { AddConstant(s, d, s.R[src].Plus, old, oldRoom, oldPtr, oldBack, oldLo, oldHi); return; }
                var now = Reg.Below(Math.Max(old.Bits, s.R[src].Bits) + 1);
                long srcLo = s.LoOf(src), srcHi = s.HiOf(src);
                int srcRoom = s.RoomOf(src);
                if (oldHi <= MaxHi && srcHi <= MaxHi)
                {
                    // What a comparison of their sum once told (the register that held it may be gone).
                    long hi = oldHi + srcHi;
                    if (s.R[d].PairWith == src) hi = Math.Min(hi, s.R[d].PairHi);
                    if (s.R[src].PairWith == d) hi = Math.Min(hi, s.R[src].PairHi);
                    now = Reg.Between(oldLo + srcLo, Math.Max(hi, oldLo + srcLo));
                    // d held another register's value: the new value is that register's plus src's, while both stay.
                    for (int x = 0; x < s.R.Length; x++)
                        if (x != d && x != src && s.Distance(x, d) == 0)
                        {
                            (now.SumA, now.SumB) = ((sbyte)x, (sbyte)src);
                            break;
                        }
                }
                else if (s.Small(d) && s.Small(src)) now.Lo = oldLo + srcLo; // neither wraps the sum
                // An offset plus one known at most some value: room less that value.
                if (oldRoom != None && srcHi <= MaxShort) now.Room = Bound(oldRoom - srcHi);
                if (srcRoom != None && oldHi <= MaxShort) now.Room = Math.Max(now.Room, Bound(srcRoom - oldHi));
                // The start (plus p) plus an offset: a pointer with the offset's room and least value around it,
                // either way round; a pointer plus an offset of known bounds moves them.
                if (old.Base == Start && srcRoom != None) { now.Ptr = Bound(srcRoom - old.Plus); now.Back = Bound(srcLo + old.Plus); }
                else if (s.R[src].Base == Start && oldRoom != None) { now.Ptr = Bound(oldRoom - s.R[src].Plus); now.Back = Bound(oldLo + s.R[src].Plus); }
                else if (oldPtr != None && oldBack != None && srcHi <= MaxShort) { now.Ptr = Bound(oldPtr - srcHi); now.Back = Bound(oldBack + srcLo); }
                else if (s.PtrOf(src) != None && s.BackOf(src) != None && oldHi <= MaxShort) { now.Ptr = Bound(s.PtrOf(src) - oldHi); now.Back = Bound(s.BackOf(src) + oldLo); }
                if (now.Ptr == None || now.Back == None) now.Ptr = now.Back = None;
                if (now.Ptr != None) now.Room = None; // a pointer, not an offset
                if (old.Base == Start) (now.Idx, now.IdxShift, now.IdxPlus) = ((sbyte)src, 0, old.Plus); // walks with src
                s.Set(d, now);
                return;
            }
            case Op.Add64Reg:
                s.SetBelow(d, i.Src == d ? old.Bits + 1 : 64);
                return;
            case Op.And64Imm when i.Imm >= 0:
                s.SetBetween(d, 0, Math.Min(oldHi, i.Imm));
                return;
            case Op.And32Imm:
                s.SetBetween(d, 0, Math.Min(oldHi, (uint)i.Imm));
                return;
            case Op.Rsh64Imm:
            {
                int k = (int)(i.Imm & 63);
                var now = oldHi <= MaxHi ? Reg.Between(oldLo >> k, oldHi >> k) : Reg.Below(old.Bits - k) with { Lo = oldLo >> k };
                if (oldRoom >= 0) now.Room = oldRoom; // smaller, still within L
                // ((v >> k) << k) + room <= v + room <= L: the count of 2^k-byte elements in what v leaves.
                if (oldRoom != None && k is >= 1 and <= MaxShift) now.SetScaled(k, oldRoom);
                s.Set(d, now);
                return;
            }
            case Op.Lsh64Imm or Op.Lsh32Imm:
            {
                int k = (int)(i.Imm & (i.Op == Op.Lsh64Imm ? 63 : 31));
                long limit = i.Op == Op.Lsh64Imm ? MaxHi : uint.MaxValue;
                var now = oldHi <= limit >> k ? Reg.Between(oldLo << k, oldHi << k) : Reg.Below(i.Op == Op.Lsh64Imm ? Math.Min(64, old.Bits + k) : 32);
                // An index scaled by its element size: 2^k * v + q <= L is room for the product (2^(k+t) * v's, 2^t times it).
                if (i.Op == Op.Lsh64Imm && k is >= 1 and <= MaxShift)
                {
                    now.Room = Math.Max(now.Room, s.ScaledRoomOf(d, k));
                    for (int t = 1; t + k <= MaxShift; t++) now.SetScaled(t, s.ScaledRoomOf(d, t + k));
                }
                s.Set(d, now);
                return;
            }
            case Op.LdxB: s.SetBetween(d, 0, byte.MaxValue); return;
            case Op.LdxH: s.SetBetween(d, 0, ushort.MaxValue); return;
            case Op.LdxW: s.SetBetween(d, 0, uint.MaxValue); return;
        }
        // 32-bit arithmetic leaves a zero-extended 32-bit value; anything else is unknown.
        bool alu32 = i.Op < Op.Neg64 && ((int)i.Op & 2) != 0 || i.Op is Op.Neg32 or Op.MovSx32From8 or Op.MovSx32From16 or Op.Zext32 or Op.Swap32;
        if (alu32) s.SetBelow(d, 32);
        else s.SetBelow(d, i.Op is Op.Zext16 or Op.Swap16 ? 16 : 64);
    }

    /// <summary>r<paramref name="d"/> += <paramref name="k"/>, a constant: relations, bounds, room and bytes around a
    /// pointer move by k when nothing can wrap; a sum that may wrap is remembered modulo 2^64.</summary>
    private static void AddConstant(State s, int d, long k, in Reg old, int oldRoom, int oldPtr, int oldBack, long oldLo, long oldHi)
    {
        bool small = s.Small(d);
        // Pointers walking with d: the same pointer is the start + ((d - k) << shift) + c, modulo 2^64.
        Span<int> walkers = stackalloc int[10];
        int nwalkers = 0;
        for (int p = 0; p < s.R.Length; p++)
            if (s.R[p].Idx == d && p != d) walkers[nwalkers++] = p;
        var (root, plus) = s.Detach(d);
        // No wrap: a value known small moved up, or one known at least -k moved down.
        bool exact = Math.Abs(k) < MaxPlus && (k >= 0 ? small : oldLo >= -k);
        var now = Reg.Below(k >= 0 ? Math.Max(old.Bits, BitLength((ulong)k)) + 1 : exact ? old.Bits : 64);
        if (exact && oldHi <= MaxHi) now = Reg.Between(oldLo + k, oldHi + k) with { Bits = now.Bits };
        else if (exact) now.Lo = oldLo + k;
        if (Math.Abs(k) < MaxPlus && root >= 0)
        {
            // A constant stays one while it is not negative; the start plus something is exact modulo 2^64.
            bool keep = root switch { Zero => plus + k >= 0, Start => true, _ => exact };
            if (keep && Math.Abs(plus + k) < MaxPlus)
            {
                now.Base = (sbyte)root;
                now.Plus = plus + k;
                if (root == Zero) now = Reg.Constant((ulong)now.Plus);
            }
            else if (!keep && root < 10)
            {
                // It may have wrapped: remember it modulo 2^64, for a comparison that bounds the root (see Refine).
                now.WrapBase = (sbyte)root;
                now.WrapPlus = plus + k;
            }
        }
        if (exact && oldRoom != None) now.Room = Bound(oldRoom - k);
        if (oldPtr != None && oldBack != None && Math.Abs(k) < MaxShort) { now.Ptr = Bound(oldPtr - k); now.Back = Bound(oldBack + k); }
        if (now.Ptr == None || now.Back == None) now.Ptr = now.Back = None;
        if (exact)
            for (int t = 1; t <= MaxShift; t++)
                if (old.Scaled(t) != None) now.SetScaled(t, Bound(old.Scaled(t) - (k << t)));
        if (old.Idx >= 0 && Math.Abs(old.IdxPlus + k) < MaxPlus) (now.Idx, now.IdxShift, now.IdxPlus) = (old.Idx, old.IdxShift, old.IdxPlus + k);
        Reg.Copy(ref s.W(d), in now);
        if (Math.Abs(k) < MaxPlus)
            foreach (int p in walkers[..nwalkers])
            {
                long c = s.R[p].IdxPlus - (k << s.R[p].IdxShift);
                if (Math.Abs(c) < MaxPlus) (s.W(p).Idx, s.W(p).IdxPlus) = ((sbyte)d, c);
            }
    }

    /// <summary>Whether a comparison of a register with a constant can never jump, or always does, by the register's range.</summary>
    private static (bool Never, bool Always) Decided(DecodedInsn i, State s)
    {
        int form = (i.Op - Op.Jeq64Imm) % 4;
        if (form is 1 or 3 || i.Dst > 9 || form == 2 && s.R[i.Dst].Bits > 32) return (false, false);
        ulong k = form == 0 ? (ulong)i.Imm : (uint)i.Imm;
        long lo = s.LoOf(i.Dst), hi = s.HiOf(i.Dst); // 0 <= lo <= hi; hi = long.MaxValue when unknown
        if (k > long.MaxValue) return (false, false);
        long v = (long)k;
        return (Op)((int)i.Op - form) switch
        {
            Op.Jeq64Imm => (v < lo || v > hi, lo == hi && lo == v),
            Op.Jne64Imm => (lo == hi && lo == v, v < lo || v > hi),
            Op.Jgt64Imm => (hi <= v, lo > v),
            Op.Jge64Imm => (hi < v, lo >= v),
            Op.Jlt64Imm => (lo >= v, hi < v),
            Op.Jle64Imm => (lo > v, hi <= v),
            _ => (false, false),
        };
    }

    /// <summary>
    /// What a conditional jump tells on each side: comparisons of r2 (while it holds L) with a
    /// constant bound L from below (r2 is at least its low 32 bits, so 32-bit ones count too);
    /// comparisons of a register with a constant bound it (32-bit ones too when it fits 32 bits),
    /// and the register it is a possibly wrapped sum of; 64-bit comparisons of two registers give the
    /// smaller one room below L by the larger one's (r2's is 0), plain and scaled.
    /// </summary>
    private static void Refine(DecodedInsn i, State taken, State fallthrough)
    {
        int form = (i.Op - Op.Jeq64Imm) % 4; // 64-bit imm, 64-bit reg, 32-bit imm, 32-bit reg
        var cond = (Op)((int)i.Op - form);
        if (i.Dst == 2 && fallthrough.R2 && form is 0 or 2)
        {
            ulong k = form == 0 ? (ulong)i.Imm : (uint)i.Imm;
            if (k <= int.MaxValue)
            {
                long next = (long)k + 1;
                switch (cond)
                {
                    case Op.Jeq64Imm: taken.AtLeast((long)k); if (k == 0) fallthrough.AtLeast(1); break;
                    case Op.Jne64Imm: fallthrough.AtLeast((long)k); if (k == 0) taken.AtLeast(1); break;
                    case Op.Jge64Imm: taken.AtLeast((long)k); break;
                    case Op.Jgt64Imm: taken.AtLeast(next); break;
                    case Op.Jlt64Imm: fallthrough.AtLeast((long)k); break;
                    case Op.Jle64Imm: fallthrough.AtLeast(next); break;
                }
            }
        }
        if (form is 0 or 2 && i.Dst <= 9 && (form == 0 || fallthrough.R[i.Dst].Bits <= 32))
        {
            ulong k = form == 0 ? (ulong)i.Imm : (uint)i.Imm;
            var wrap = fallthrough.R[i.Dst];
            Bounds(cond, i.Dst, k, taken, fallthrough);
            if (form == 0 && wrap.WrapBase >= 0) WrappedBounds(cond, wrap.WrapBase, wrap.WrapPlus, k, taken, fallthrough);
        }
        else if (form == 1 && i.Dst <= 9 && i.Src <= 9 && i.Dst != i.Src)
        {
            int x = i.Dst, y = i.Src;
            long rx = fallthrough.RoomOf(x), ry = fallthrough.RoomOf(y);
            void Room(State s, int r, long room, long from) { if (from != None) s.RoomAfter(r, room); }
            switch (cond)
            {
                case Op.Jgt64Imm: Room(taken, y, rx + 1, rx); Room(fallthrough, x, ry, ry); break;     // x > y; x <= y
                case Op.Jge64Imm: Room(taken, y, rx, rx); Room(fallthrough, x, ry + 1, ry); break;     // x >= y; x < y
                case Op.Jlt64Imm: Room(taken, x, ry + 1, ry); Room(fallthrough, y, rx, rx); break;     // x < y; x >= y
                case Op.Jle64Imm: Room(taken, x, ry, ry); Room(fallthrough, y, rx + 1, rx); break;     // x <= y; x > y
            }
            // The same with scaled room: u < v with (v << s) + q <= L gives (u << s) + q + 2^s <= L.
            void Scaled(State s, int u, int v, int more)
            {
                for (int t = 1; t <= MaxShift; t++)
                    if (fallthrough.R[v].Scaled(t) is var q && q != None) s.ScaledRoomAfter(u, t, q + ((long)more << t));
            }
            switch (cond)
            {
                case Op.Jgt64Imm: Scaled(taken, y, x, 1); Scaled(fallthrough, x, y, 0); break;
                case Op.Jge64Imm: Scaled(taken, y, x, 0); Scaled(fallthrough, x, y, 1); break;
                case Op.Jlt64Imm: Scaled(taken, x, y, 1); Scaled(fallthrough, y, x, 0); break;
                case Op.Jle64Imm: Scaled(taken, x, y, 0); Scaled(fallthrough, y, x, 1); break;
            }
        }
    }

    /// <summary>Unsigned x against k: the bounds each side learns.</summary>
    private static void Bounds(Op cond, int x, ulong k, State taken, State fallthrough)
    {
        const long NoHi = long.MaxValue;
        long Lo(ulong v) => v <= (ulong)MaxHi ? (long)v : -1; // -1: too large to keep
        long Hi(ulong v) => v <= (ulong)MaxHi ? (long)v : NoHi;
        void At(State s, long lo, long hi) { if (lo >= 0) s.Within(x, lo, hi); }
        switch (cond)
        {
            case Op.Jeq64Imm: At(taken, Lo(k), Hi(k)); if (k == 0) At(fallthrough, 1, NoHi); break;
            case Op.Jne64Imm: At(fallthrough, Lo(k), Hi(k)); if (k == 0) At(taken, 1, NoHi); break;
            case Op.Jgt64Imm: if (k < ulong.MaxValue) At(taken, Lo(k + 1), NoHi); At(fallthrough, 0, Hi(k)); break;
            case Op.Jge64Imm: At(taken, Lo(k), NoHi); if (k > 0) At(fallthrough, 0, Hi(k - 1)); break;
            case Op.Jlt64Imm: if (k > 0) At(taken, 0, Hi(k - 1)); At(fallthrough, Lo(k), NoHi); break;
            case Op.Jle64Imm: At(taken, 0, Hi(k)); if (k < ulong.MaxValue) At(fallthrough, Lo(k + 1), NoHi); break;
        }
    }

    /// <summary>
    /// x = y + c modulo 2^64 (c may have wrapped a small y below zero) against k of at least 2^63,
    /// unsigned, as clang tests a range (<c>y &lt;= 56</c> as <c>y + -57 &gt; -66</c>): with y known
    /// small, x is at least k only where y + c is negative, so the side where it is learns y's range.
    /// </summary>
    private static void WrappedBounds(Op cond, int y, long c, ulong k, State taken, State fallthrough)
    {
        if (k < 1UL << 63 || fallthrough.HiOf(y) > MaxHi || Math.Abs(c) >= MaxPlus) return;
        long ks = (long)k; // negative: k - 2^64
        // v = y + c as an integer; x = v when v >= 0 (then x < 2^62 < k), else v + 2^64.
        (State Side, long From)? window = cond switch
        {
            Op.Jgt64Imm => (taken, ks + 1),       // x > k: v in [ks + 1, -1]
            Op.Jge64Imm => (taken, ks),           // x >= k: v in [ks, -1]
            Op.Jlt64Imm => (fallthrough, ks),     // not x < k
            Op.Jle64Imm => (fallthrough, ks + 1), // not x <= k
            _ => null,
        };
        if (window is not { } w) return;
        long lo = w.From < -MaxHi ? 0 : Math.Max(0, w.From - c), hi = -1 - c;
        if (hi >= 0) w.Side.Within(y, lo, hi);
    }
}
