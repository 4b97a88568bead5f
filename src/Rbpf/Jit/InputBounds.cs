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
/// </summary>
internal static class InputBounds
{
    /// <summary>The pseudo-registers relations can name besides r0-r9: the constant 0 and the input's start.</summary>
    internal const int Zero = 10, Start = 11;
    /// <summary>Constants and relation offsets are kept below this, so sums of a few stay far from wrapping.</summary>
    private const long MaxPlus = 1L << 40;

    /// <summary>What is known of one register.</summary>
    internal struct Reg : IEquatable<Reg>
    {
        /// <summary>The value is below 2^Bits (64: nothing known).</summary>
        public byte Bits;
        /// <summary>The value is exactly Base's plus Plus: Base is a register with no relation of its own (a
        /// group's root), <see cref="Zero"/> (the value is the constant Plus) or <see cref="Start"/> (the input's
        /// start plus Plus, modulo 2^64); -1: no such relation.</summary>
        public sbyte Base;
        public long Plus;
        /// <summary>value + Room &lt;= L; -1: unknown.</summary>
        public int Room;
        /// <summary>The value is the input's start plus an offset o with o + Ptr &lt;= L; -1: not known to point into the input.</summary>
        public int Ptr;

        public static readonly Reg Unknown = new() { Bits = 64, Base = -1, Room = -1, Ptr = -1 };
        public static Reg Below(int bits) => Unknown with { Bits = (byte)Math.Clamp(bits, 0, 64) };
        public static Reg Constant(ulong v) =>
            v < MaxPlus ? Below(BitLength(v)) with { Base = Zero, Plus = (long)v } : Below(BitLength(v));

        public readonly bool Equals(Reg o) => Bits == o.Bits && Base == o.Base && Plus == o.Plus && Room == o.Room && Ptr == o.Ptr;
    }

    /// <summary>What is known at an instruction: whether r2 still holds L, the least L, and each of r0-r9.</summary>
    internal sealed class State
    {
        public bool R2;
        public long Min;
        public readonly Reg[] R = new Reg[10];

        public State Clone()
        {
            var s = new State { R2 = R2, Min = Min };
            R.CopyTo(s.R, 0);
            return s;
        }

        /// <summary>The group register or pseudo-register <paramref name="k"/> belongs to, and its value's distance from the group's root.</summary>
        public (int Root, long Plus) Root(int k) => k < 10 && R[k].Base >= 0 ? (R[k].Base, R[k].Plus) : (k, 0);

        /// <summary>d with value(k) = value(j) + d, when known.</summary>
        public long? Distance(int k, int j)
        {
            var (rk, pk) = Root(k);
            var (rj, pj) = Root(j);
            return rk == rj ? pk - pj : null;
        }

        /// <summary>Room after r<paramref name="k"/>'s value, with what a constant's value and the least L tell.</summary>
        public int RoomOf(int k)
        {
            var r = R[k];
            return r.Base == Zero && r.Plus <= Min ? Math.Max(r.Room, (int)(Min - r.Plus)) : r.Room;
        }

        /// <summary>Bytes of input after the pointer in r<paramref name="k"/>, with what an exact pointer and the least L tell.</summary>
        public int PtrOf(int k)
        {
            var r = R[k];
            return r.Base == Start && r.Plus >= 0 && r.Plus <= Min ? Math.Max(r.Ptr, (int)(Min - r.Plus)) : r.Ptr;
        }

        /// <summary>Stores the derived room and bytes after each pointer in the fields, so states compare by what they tell.</summary>
        public void Settle()
        {
            for (int k = 0; k < R.Length; k++)
            {
                R[k].Room = RoomOf(k);
                R[k].Ptr = PtrOf(k);
            }
        }

        /// <summary>
        /// Register <paramref name="r"/> is about to be written: makes it related to nothing and the
        /// root of nothing, keeping every other relation (the first member of a group whose root it
        /// was becomes the root), and r2 no longer holds L; returns how its old value relates to what
        /// remains, for instructions that compute its new value from it.
        /// </summary>
        public (int Root, long Plus) Detach(int r)
        {
            if (r == 2) R2 = false;
            if (R[r].Base >= 0)
            {
                var was = (R[r].Base, R[r].Plus);
                R[r].Base = -1;
                R[r].Plus = 0;
                return was;
            }
            int m = -1;
            long pm = 0;
            for (int j = 0; j < R.Length; j++)
            {
                if (R[j].Base != r) continue;
                if (m < 0) { m = j; pm = R[j].Plus; R[j].Base = -1; R[j].Plus = 0; }
                else { R[j].Base = (sbyte)m; R[j].Plus -= pm; }
            }
            return m < 0 ? (-1, 0) : (m, -pm);
        }

        /// <summary>Register <paramref name="r"/> is written with a value of which <paramref name="now"/> is known
        /// (a relation in it names a root that is not r).</summary>
        public void Set(int r, Reg now)
        {
            if (r > 9) return;
            Detach(r);
            R[r] = now;
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
            if (r > 9 || room < 0 || room > int.MaxValue) return;
            var (root, plus) = Root(r);
            if (root == Zero) { AtLeast(plus + room); return; }
            if (root == Start) return; // a pointer compared with a length tells nothing
            for (int j = 0; j < R.Length; j++)
            {
                if (Distance(j, r) is not { } d) continue;
                long rj = room - d;
                if (rj >= 0 && rj <= int.MaxValue) R[j].Room = Math.Max(R[j].Room, (int)rj);
            }
        }

        /// <summary>
        /// Joins <paramref name="o"/> in (both states settled): what holds on both sides. With
        /// <paramref name="widen"/> (a loop head visited often), a bound that shrank is dropped instead.
        /// Returns whether anything changed.
        /// </summary>
        public bool JoinWith(State o, bool widen)
        {
            bool changed = false;
            if (R2 && !o.R2) { R2 = false; changed = true; }
            long min = Math.Min(Min, o.Min);
            if (widen && min < Min) min = 0;
            if (min != Min) { Min = min; changed = true; }
            Span<Reg> joined = stackalloc Reg[10];
            Span<int> roots = stackalloc int[12];
            roots[0] = Zero;
            roots[1] = Start;
            int nroots = 2;
            for (int k = 0; k < R.Length; k++)
            {
                Reg a = R[k], b = o.R[k];
                var j = new Reg
                {
                    Bits = Math.Max(a.Bits, b.Bits),
                    Base = -1,
                    Room = Math.Min(a.Room, b.Room) < 0 ? -1 : Math.Min(a.Room, b.Room),
                    Ptr = Math.Min(a.Ptr, b.Ptr) < 0 ? -1 : Math.Min(a.Ptr, b.Ptr),
                };
                if (widen)
                {
                    if (j.Bits > a.Bits) j.Bits = 64;
                    if (j.Room < a.Room) j.Room = -1;
                    if (j.Ptr < a.Ptr) j.Ptr = -1;
                }
                // The relations that hold on both sides: k joins the first root it has the same distance from on both.
                for (int c = 0; c < nroots; c++)
                    if (Distance(k, roots[c]) is { } da && o.Distance(k, roots[c]) == da && Math.Abs(da) < MaxPlus)
                    {
                        j.Base = (sbyte)roots[c];
                        j.Plus = da;
                        break;
                    }
                if (j.Base < 0) roots[nroots++] = k;
                joined[k] = j;
            }
            for (int k = 0; k < R.Length; k++)
                if (!joined[k].Equals(R[k])) { R[k] = joined[k]; changed = true; }
            if (changed) Settle();
            return changed;
        }
    }

    private static int BitLength(ulong v) => 64 - System.Numerics.BitOperations.LeadingZeroCount(v);

    /// <summary>A state's joins at a loop head before bounds that keep shrinking there are dropped.</summary>
    private const int JoinsBeforeWidening = 8;

    /// <summary>What the analysis found: the accesses proven, and what is known at each slot.</summary>
    internal sealed class Facts(State?[] states, bool[]? proven)
    {
        /// <summary>For each slot, whether it is a plain load or store proven to stay inside the input; null when none is.</summary>
        public bool[]? Proven { get; } = proven;

        /// <summary>Whether r2 holds the input's length at <paramref name="pc"/> on every path (false where no path goes).</summary>
        public bool HoldsLength(int pc) => states[pc]?.R2 ?? false;

        /// <summary>How r<paramref name="r"/> relates at <paramref name="pc"/> to a group's root (a register, <see cref="Zero"/>
        /// or <see cref="Start"/>): value = root's + Plus; (r, 0) when it is a root or related to nothing.</summary>
        public (int Root, long Plus) Relation(int pc, int r) => states[pc]?.Root(r) ?? (r, 0);
    }

    /// <summary>
    /// For each slot, whether it is a plain load or store proven to stay inside the input (see the
    /// class remarks); null when there is none.
    /// </summary>
    public static bool[]? ProvenAccesses(DecodedInsn[] code) => Analyze(code)?.Proven;

    /// <summary>The analysis of the class remarks; null when the program compares nothing with r2 (nothing to learn).</summary>
    public static Facts? Analyze(DecodedInsn[] code)
    {
        int n = code.Length;
        // Nothing to prove without a comparison involving r2 (most programs): no analysis.
        bool measured = false;
        foreach (var i in code)
            if (i.Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg && (i.Dst == 2 || ((i.Op - Op.Jeq64Imm) & 1) == 1 && i.Src == 2))
            {
                measured = true;
                break;
            }
        if (!measured) return null;

        // Loop heads (targets of jumps back), where joins widen after a while.
        var joins = new int[n];
        var loopHead = new bool[n];
        for (int pc = 0; pc < n; pc++)
            if ((code[pc].Op is Op.Ja or (>= Op.Jeq64Imm and <= Op.Jsle32Reg)) && code[pc].Off <= pc && code[pc].Off >= 0)
                loopHead[code[pc].Off] = true;

        var states = new State?[n];
        var work = new Stack<int>();
        void Merge(int pc, State s)
        {
            if (pc < 0 || pc >= n) return;
            s.Settle();
            if (states[pc] == null) states[pc] = s.Clone();
            else if (!states[pc]!.JoinWith(s, loopHead[pc] && ++joins[pc] > JoinsBeforeWidening)) return;
            work.Push(pc);
        }

        var entry = new State { R2 = true, Min = 0 };
        for (int r = 0; r < 10; r++) entry.R[r] = r is 0 or >= 3 ? Reg.Constant(0) : Reg.Unknown; // registers start at 0
        entry.R[1] = Reg.Unknown with { Base = Start, Plus = 0 };
        Merge(0, entry);
        var unknown = new State { Min = 0 };
        for (int r = 0; r < 10; r++) unknown.R[r] = Reg.Unknown;
        foreach (var i in code)
            if (i.Op == Op.CallLocal) Merge(i.Off, unknown.Clone()); // a function may be called from anywhere

        while (work.Count > 0)
        {
            int pc = work.Pop();
            var s = states[pc]!.Clone();
            var i = code[pc];
            switch (i.Op)
            {
                case Op.Exit or Op.Illegal:
                    break;
                case Op.Ja:
                    Merge(i.Off, s);
                    break;
                case >= Op.Jeq64Imm and <= Op.Jsle32Reg:
                {
                    var taken = s.Clone();
                    Refine(i, taken, s);
                    Merge(i.Off, taken);
                    Merge(pc + 1, s);
                    break;
                }
                // Calls change r0-r5 (and say nothing of r1, r2); so do the legacy packet loads, as in the kernel.
                case Op.Call or Op.CallX or Op.CallLocal or (>= Op.LdAbsB and <= Op.LdIndDW):
                    for (int r = 0; r <= 5; r++) s.Set(r, Reg.Unknown);
                    Merge(pc + 1, s);
                    break;
                case >= Op.StB and <= Op.StxDW:
                    Merge(pc + 1, s);
                    break;
                case >= Op.Atomic32Add and <= Op.Atomic64CmpXchg: // fetching forms write the source (cmpxchg r0)
                    s.Set(i.Src, Reg.Unknown);
                    s.Set(0, Reg.Unknown);
                    Merge(pc + 1, s);
                    break;
                case Op.Lddw:
                    s.Set(i.Dst, Reg.Constant((ulong)i.Imm));
                    Merge(pc + 2, s);
                    break;
                default:
                    Assign(i, s);
                    Merge(pc + 1, s);
                    break;
            }
        }

        bool[]? proven = null;
        for (int pc = 0; pc < n; pc++)
        {
            var i = code[pc];
            bool load = i.Op is >= Op.LdxB and <= Op.LdxSW, store = i.Op is >= Op.StB and <= Op.StxDW;
            int b = load ? i.Src : i.Dst;
            if (!(load || store) || b > 9 || states[pc] is not { } s) continue;
            int size = JitTarget.AccessSize(i.Op);
            // Through a pointer with bytes known after it, or at a constant distance from the start.
            bool inside = i.Off >= 0 && i.Off + size <= s.PtrOf(b)
                || s.R[b].Base == Start && s.R[b].Plus + i.Off >= 0 && s.R[b].Plus + i.Off + size <= s.Min;
            if (inside) (proven ??= new bool[n])[pc] = true;
        }
        return new Facts(states, proven);
    }

    /// <summary>An instruction that writes its destination (arithmetic, moves, byte swaps, loads): what is known of it after.</summary>
    private static void Assign(DecodedInsn i, State s)
    {
        int d = i.Dst;
        if (d > 9) { s.Set(d, Reg.Unknown); return; }
        var old = s.R[d];
        int oldRoom = s.RoomOf(d), oldPtr = s.PtrOf(d);
        switch (i.Op)
        {
            case Op.Mov64Imm:
                s.Set(d, Reg.Constant((ulong)i.Imm));
                return;
            case Op.Mov32Imm:
                s.Set(d, Reg.Constant((uint)i.Imm));
                return;
            case Op.Mov64Reg or Op.Mov32Reg:
            {
                if (i.Src == d)
                {
                    if (i.Op == Op.Mov32Reg && old.Bits > 32) s.Set(d, Reg.Below(32));
                    return;
                }
                if (i.Src > 9 || i.Op == Op.Mov32Reg && s.R[i.Src].Bits > 32)
                {
                    s.Set(d, Reg.Below(i.Op == Op.Mov32Reg ? 32 : 64));
                    return;
                }
                // The same value: the same facts, in the source's group.
                s.Detach(d);
                var copy = s.R[i.Src];
                copy.Room = s.RoomOf(i.Src);
                copy.Ptr = s.PtrOf(i.Src);
                (int root, copy.Plus) = s.Root(i.Src);
                copy.Base = (sbyte)root;
                s.R[d] = copy;
                return;
            }
            case Op.Add64Imm or Op.Sub64Imm:
                AddConstant(s, d, i.Op == Op.Add64Imm ? i.Imm : -i.Imm, old, oldRoom, oldPtr);
                return;
            case Op.Add64Reg when i.Src <= 9 && i.Src != d:
            {
                var src = s.R[i.Src];
                if (src.Base == Zero) { AddConstant(s, d, src.Plus, old, oldRoom, oldPtr); return; }
                var now = Reg.Below(Math.Max(old.Bits, src.Bits) + 1);
                // The start plus an offset with room after it: a pointer with as many bytes after it, either way round.
                if (old.Base == Start && old.Plus >= 0 && s.RoomOf(i.Src) - old.Plus >= 0) now.Ptr = (int)(s.RoomOf(i.Src) - old.Plus);
                if (src.Base == Start && src.Plus >= 0 && oldRoom - src.Plus >= 0) now.Ptr = (int)(oldRoom - src.Plus);
                s.Set(d, now);
                return;
            }
            case Op.Add64Reg:
                s.Set(d, Reg.Below(i.Src == d ? old.Bits + 1 : 64));
                return;
            case Op.And64Imm when i.Imm >= 0:
                s.Set(d, Reg.Below(Math.Min(old.Bits, BitLength((ulong)i.Imm))));
                return;
            case Op.Rsh64Imm:
                s.Set(d, Reg.Below(old.Bits - (int)(i.Imm & 63)));
                return;
            case Op.LdxB: s.Set(d, Reg.Below(8)); return;
            case Op.LdxH: s.Set(d, Reg.Below(16)); return;
            case Op.LdxW: s.Set(d, Reg.Below(32)); return;
        }
        // 32-bit arithmetic leaves a zero-extended 32-bit value; anything else is unknown.
        bool alu32 = i.Op < Op.Neg64 && ((int)i.Op & 2) != 0 || i.Op is Op.Neg32 or Op.MovSx32From8 or Op.MovSx32From16 or Op.Zext32 or Op.Swap32;
        s.Set(d, alu32 ? Reg.Below(32) : i.Op is Op.Zext16 or Op.Swap16 ? Reg.Below(16) : Reg.Unknown);
    }

    /// <summary>r<paramref name="d"/> += <paramref name="k"/>, a constant: relations move by k when nothing can wrap.</summary>
    private static void AddConstant(State s, int d, long k, Reg old, int oldRoom, int oldPtr)
    {
        var (root, plus) = s.Detach(d);
        var now = Reg.Below(k >= 0 ? Math.Max(old.Bits, BitLength((ulong)k)) + 1 : 64);
        if (Math.Abs(k) < MaxPlus && root >= 0)
        {
            // A constant stays one while it is not negative; the start plus something is exact modulo 2^64; a
            // register plus something is exact when the value is known small (below 2^62, or at most L) and k >= 0.
            bool exact = root switch
            {
                Zero => plus + k >= 0,
                Start => true,
                _ => k >= 0 && (old.Bits <= 62 || oldRoom >= 0),
            };
            if (exact && Math.Abs(plus + k) < MaxPlus)
            {
                now.Base = (sbyte)root;
                now.Plus = plus + k;
                if (root == Zero) now.Bits = (byte)BitLength((ulong)now.Plus);
            }
        }
        if (k >= 0 && oldRoom >= k) now.Room = (int)(oldRoom - k);
        if (k >= 0 && oldPtr >= k) now.Ptr = (int)(oldPtr - k);
        s.R[d] = now;
    }

    /// <summary>
    /// What a conditional jump tells on each side: comparisons of r2 (while it holds L) with a
    /// constant bound L from below (r2 is at least its low 32 bits, so 32-bit ones count too);
    /// 64-bit comparisons of a register with r2 give it (and its group) room below L.
    /// </summary>
    private static void Refine(DecodedInsn i, State taken, State fallthrough)
    {
        int form = (i.Op - Op.Jeq64Imm) % 4; // 64-bit imm, 64-bit reg, 32-bit imm, 32-bit reg
        var cond = (Op)((int)i.Op - form);
        if (i.Dst == 2 && fallthrough.R2 && form is 0 or 2)
        {
            ulong k = form == 0 ? (ulong)i.Imm : (uint)i.Imm;
            if (k > int.MaxValue) return;
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
        else if (form == 1 && i.Src == 2 && i.Dst != 2 && fallthrough.R2)
        {
            // x against L: jgt x, r2 falls through when x <= L, jge when x < L; jle and jlt jump then.
            switch (cond)
            {
                case Op.Jgt64Imm: fallthrough.RoomAfter(i.Dst, 0); break;
                case Op.Jge64Imm: fallthrough.RoomAfter(i.Dst, 1); break;
                case Op.Jle64Imm: taken.RoomAfter(i.Dst, 0); break;
                case Op.Jlt64Imm: taken.RoomAfter(i.Dst, 1); break;
            }
        }
        else if (form == 1 && i.Dst == 2 && i.Src != 2 && fallthrough.R2)
        {
            // L against x: jgt r2, x jumps when x < L, jge when x <= L; jlt and jle fall through then.
            switch (cond)
            {
                case Op.Jgt64Imm: taken.RoomAfter(i.Src, 1); break;
                case Op.Jge64Imm: taken.RoomAfter(i.Src, 0); break;
                case Op.Jlt64Imm: fallthrough.RoomAfter(i.Src, 0); break;
                case Op.Jle64Imm: fallthrough.RoomAfter(i.Src, 1); break;
            }
        }
    }
}
