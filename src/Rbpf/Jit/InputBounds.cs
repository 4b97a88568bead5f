namespace Rbpf.Jit;

/// <summary>
/// The accesses of a raw VM's program that are inside its input on every path, found before
/// compiling so the JIT can leave their checks out. As a raw run begins, r1 is the input's start
/// and r2 its length L. While r2 still holds L, comparing it with a constant tells how long the
/// input is at least (<c>jlt r2, 14, drop</c> falls through only with 14 bytes or more), and
/// comparing it with a register <c>x</c> tells how much of the input lies past the offset x
/// (<c>jgt x, r2, drop</c> falls through only when x &lt;= L). Offsets are followed through copies,
/// additions of small constants (values known small enough that nothing wraps) and the addition of
/// the input's start, which makes them pointers into the input with a known number of bytes after
/// them. A load or store whose bytes all lie below what is known cannot leave the input. Classic
/// BPF translations guard every load this way, and so do hand-written filters.
/// </summary>
internal static class InputBounds
{
    /// <summary>What is known of one register.</summary>
    private struct Reg : IEquatable<Reg>
    {
        /// <summary>The value is below 2^Bits (64: nothing known).</summary>
        public byte Bits;
        /// <summary>The value is exactly register Base's plus Plus (no wrap); -1: no such relation.</summary>
        public sbyte Base;
        public int Plus;
        /// <summary>value + Room &lt;= L; -1: unknown.</summary>
        public int Room;
        /// <summary>The value is the input's start plus an offset o with o + Ptr &lt;= L; -1: not known to point into the input.</summary>
        public int Ptr;

        public static readonly Reg Unknown = new() { Bits = 64, Base = -1, Room = -1, Ptr = -1 };
        public static Reg Below(int bits) => Unknown with { Bits = (byte)Math.Min(64, bits) };

        public readonly Reg Join(Reg o) => new()
        {
            Bits = Math.Max(Bits, o.Bits),
            Base = Base == o.Base && Plus == o.Plus ? Base : (sbyte)-1,
            Plus = Base == o.Base && Plus == o.Plus ? Plus : 0,
            Room = Math.Min(Room, o.Room) < 0 ? -1 : Math.Min(Room, o.Room),
            Ptr = Math.Min(Ptr, o.Ptr) < 0 ? -1 : Math.Min(Ptr, o.Ptr),
        };

        public readonly bool Equals(Reg o) => Bits == o.Bits && Base == o.Base && Plus == o.Plus && Room == o.Room && Ptr == o.Ptr;
    }

    /// <summary>What is known at an instruction: whether r1 still holds the input's start, whether r2 still holds L,
    /// the least L, and each of r0-r9.</summary>
    private sealed class State
    {
        public bool R1, R2;
        public long Min;
        public readonly Reg[] R = new Reg[10];

        public State Clone()
        {
            var s = new State { R1 = R1, R2 = R2, Min = Min };
            R.CopyTo(s.R, 0);
            return s;
        }

        /// <summary>Joins <paramref name="o"/> in; whether anything changed.</summary>
        public bool JoinWith(State o)
        {
            bool changed = false;
            if (R1 && !o.R1) { R1 = false; changed = true; }
            if (R2 && !o.R2) { R2 = false; changed = true; }
            long min = Math.Min(Min, o.Min);
            if (min != Min) { Min = min; changed = true; }
            for (int k = 0; k < R.Length; k++)
            {
                var j = R[k].Join(o.R[k]);
                if (!j.Equals(R[k])) { R[k] = j; changed = true; }
            }
            return changed;
        }

        /// <summary>Register <paramref name="r"/> is written: its facts go, and every relation to it.</summary>
        public void Kill(int r, Reg now)
        {
            if (r == 1) R1 = false;
            if (r == 2) R2 = false;
            if (r > 9) return;
            for (int k = 0; k < R.Length; k++)
                if (R[k].Base == r) R[k] = R[k] with { Base = -1, Plus = 0 };
            R[r] = now;
        }

        /// <summary>L is at least <paramref name="length"/>.</summary>
        public void AtLeast(ulong length)
        {
            if (length > int.MaxValue) return;
            Min = Math.Max(Min, (long)length);
            if (R1) R[1].Ptr = Math.Max(R[1].Ptr, (int)Min);
        }

        /// <summary>Register <paramref name="r"/> plus <paramref name="room"/> is at most L (and so is what it is a known sum of).</summary>
        public void RoomAfter(int r, long room)
        {
            if (r > 9 || room < 0 || room > int.MaxValue) return;
            R[r].Room = (int)Math.Max(R[r].Room, room);
            if (R[r].Base is >= 0 and var b) R[b].Room = (int)Math.Max(R[b].Room, room + R[r].Plus);
        }
    }

    private static int BitLength(ulong v) => 64 - System.Numerics.BitOperations.LeadingZeroCount(v);

    /// <summary>
    /// For each slot, whether it is a plain load or store proven to stay inside the input (see the
    /// class remarks); null when there is none.
    /// </summary>
    public static bool[]? ProvenAccesses(DecodedInsn[] code)
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

        var states = new State?[n];
        var work = new Stack<int>();
        void Merge(int pc, State s)
        {
            if (pc < 0 || pc >= n) return;
            if (states[pc] == null) states[pc] = s.Clone();
            else if (!states[pc]!.JoinWith(s)) return;
            work.Push(pc);
        }

        var entry = new State { R1 = true, R2 = true, Min = 0 };
        for (int r = 0; r < 10; r++) entry.R[r] = r is 0 or >= 3 ? Reg.Below(0) : Reg.Unknown; // registers start at 0
        entry.R[1].Ptr = 0;
        Merge(0, entry);
        var unknown = new State { Min = 0 };
        for (int r = 0; r < 10; r++) unknown.R[r] = Reg.Unknown;
        foreach (var i in code)
            if (i.Op == Op.CallLocal) Merge(i.Off, unknown); // a function may be called from anywhere

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
                    for (int r = 0; r <= 5; r++) s.Kill(r, Reg.Unknown);
                    Merge(pc + 1, s);
                    break;
                case >= Op.StB and <= Op.StxDW:
                    Merge(pc + 1, s);
                    break;
                case >= Op.Atomic32Add and <= Op.Atomic64CmpXchg: // fetching forms write the source (cmpxchg r0)
                    s.Kill(i.Src, Reg.Unknown);
                    s.Kill(0, Reg.Unknown);
                    Merge(pc + 1, s);
                    break;
                case Op.Lddw:
                    s.Kill(i.Dst, Reg.Below(BitLength((ulong)i.Imm)));
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
            if (!(load || store) || b > 9 || states[pc] is not { } s || i.Off < 0) continue;
            if (i.Off + JitTarget.AccessSize(i.Op) <= s.R[b].Ptr)
                (proven ??= new bool[n])[pc] = true;
        }
        return proven;
    }

    /// <summary>An instruction that writes its destination (arithmetic, moves, byte swaps, loads): what is known of it after.</summary>
    private static void Assign(DecodedInsn i, State s)
    {
        int d = i.Dst;
        if (d > 9) { s.Kill(d, Reg.Unknown); return; }
        var old = s.R[d];
        var src = i.Src <= 9 ? s.R[i.Src] : Reg.Unknown;
        switch (i.Op)
        {
            case Op.Mov64Imm:
                s.Kill(d, Reg.Below(i.Imm >= 0 ? BitLength((ulong)i.Imm) : 64));
                return;
            case Op.Mov32Imm:
                s.Kill(d, Reg.Below(BitLength((uint)i.Imm)));
                return;
            case Op.Mov64Reg:
            {
                if (i.Src == d) return;
                var copy = src;
                if (src.Bits <= 62) { copy.Base = (sbyte)i.Src; copy.Plus = 0; } // the same value, nothing wraps
                else { copy.Base = -1; copy.Plus = 0; }
                if (i.Src == 1 && s.R1) copy.Ptr = Math.Max(copy.Ptr, 0);
                s.Kill(d, copy);
                return;
            }
            case Op.Mov32Reg:
            {
                var copy = Reg.Below(Math.Min(32, (int)src.Bits));
                if (src.Bits <= 32 && i.Src != d) { copy.Base = (sbyte)i.Src; copy.Room = src.Room; } // the value is unchanged
                else if (src.Bits <= 32) copy = old;
                s.Kill(d, copy);
                return;
            }
            case Op.Add64Imm when i.Imm >= 0 && i.Imm < 1 << 20:
            {
                int k = (int)i.Imm;
                var now = Reg.Below(Math.Max(old.Bits, BitLength((ulong)k)) + 1);
                if (old.Base >= 0 && old.Plus + k < 1 << 20) { now.Base = old.Base; now.Plus = old.Plus + k; }
                if (old.Room >= k) now.Room = old.Room - k;
                if (old.Ptr >= k) now.Ptr = old.Ptr - k;
                s.Kill(d, now);
                return;
            }
            case Op.Add64Reg when i.Src == 1 && s.R1 && i.Src != d && old.Room >= 0:
            {
                // An offset with room after it, plus the input's start: a pointer with as many bytes after it.
                var now = Reg.Unknown;
                now.Ptr = old.Room;
                s.Kill(d, now);
                return;
            }
            case Op.Add64Reg:
                s.Kill(d, Reg.Below(Math.Max(old.Bits, src.Bits) + 1));
                return;
            case Op.And64Imm when i.Imm >= 0:
                s.Kill(d, Reg.Below(Math.Min((int)old.Bits, BitLength((ulong)i.Imm))));
                return;
            case Op.LdxB: s.Kill(d, Reg.Below(8)); return;
            case Op.LdxH: s.Kill(d, Reg.Below(16)); return;
            case Op.LdxW: s.Kill(d, Reg.Below(32)); return;
        }
        // 32-bit arithmetic leaves a zero-extended 32-bit value; anything else is unknown.
        bool alu32 = i.Op < Op.Neg64 && ((int)i.Op & 2) != 0 || i.Op is Op.Neg32 or Op.MovSx32From8 or Op.MovSx32From16 or Op.Zext32 or Op.Swap32;
        s.Kill(d, alu32 ? Reg.Below(32) : i.Op is Op.Zext16 or Op.Swap16 ? Reg.Below(16) : Reg.Unknown);
    }

    /// <summary>
    /// What a conditional jump tells on each side: comparisons of r2 (while it holds L) with a
    /// constant bound L from below (r2 is at least its low 32 bits, so 32-bit ones count too);
    /// 64-bit comparisons of a register with r2 give it room below L.
    /// </summary>
    private static void Refine(DecodedInsn i, State taken, State fallthrough)
    {
        int form = (i.Op - Op.Jeq64Imm) % 4; // 64-bit imm, 64-bit reg, 32-bit imm, 32-bit reg
        var cond = (Op)((int)i.Op - form);
        if (i.Dst == 2 && fallthrough.R2 && form is 0 or 2)
        {
            ulong k = form == 0 ? (ulong)i.Imm : (uint)i.Imm;
            ulong next = k == ulong.MaxValue ? k : k + 1;
            switch (cond)
            {
                case Op.Jeq64Imm: taken.AtLeast(k); break;
                case Op.Jne64Imm: fallthrough.AtLeast(k); break;
                case Op.Jge64Imm: taken.AtLeast(k); break;
                case Op.Jgt64Imm: taken.AtLeast(next); break;
                case Op.Jlt64Imm: fallthrough.AtLeast(k); break;
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
    }
}
