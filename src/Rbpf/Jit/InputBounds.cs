namespace Rbpf.Jit;

/// <summary>
/// The accesses of a raw VM's program that are inside its input on every path, found before
/// compiling so the JIT can leave their checks out. As a raw run begins, r1 is the input's start
/// and r2 its length; while neither has been written, a comparison of r2 with a constant tells how
/// long the input is at least on each side of the jump (<c>jlt r2, 14, drop</c> falls through only
/// when there are 14 bytes or more). A load or store at <c>[r1 + off]</c> whose bytes all lie below
/// that length cannot leave the input. Classic BPF translations test the length before every load
/// this way, and so do hand-written filters.
/// </summary>
internal static class InputBounds
{
    /// <summary>What is known at an instruction: whether r1 is still the input's start, and the
    /// input's least length when r2 is still its length (-1 when it is not).</summary>
    private readonly record struct State(bool R1, long Min)
    {
        public State Join(State other) => new(R1 && other.R1, Min < 0 || other.Min < 0 ? -1 : Math.Min(Min, other.Min));
        public State Kill(int register) => register switch
        {
            1 => this with { R1 = false },
            2 => this with { Min = -1 },
            _ => this,
        };
        public State AtLeast(ulong length) => Min < 0 || length > int.MaxValue ? this : this with { Min = Math.Max(Min, (long)length) };
    }

    private static readonly State Unknown = new(false, -1);

    /// <summary>
    /// For each slot, whether it is a plain load or store through r1 proven to stay inside the input
    /// (see the class remarks); null when there is none.
    /// </summary>
    public static bool[]? ProvenAccesses(DecodedInsn[] code)
    {
        int n = code.Length;
        // Nothing to prove without a comparison of r2 with a constant (most programs): no analysis.
        bool measured = false;
        foreach (var i in code)
            if (i.Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg && i.Dst == 2 && ((i.Op - Op.Jeq64Imm) & 1) == 0)
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
            var joined = states[pc] is { } old ? old.Join(s) : s;
            if (states[pc] == joined) return;
            states[pc] = joined;
            work.Push(pc);
        }

        Merge(0, new State(true, 0));
        foreach (var i in code)
            if (i.Op == Op.CallLocal) Merge(i.Off, Unknown); // a function may be called from anywhere
        while (work.Count > 0)
        {
            int pc = work.Pop();
            var s = states[pc]!.Value;
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
                    var (taken, fallthrough) = Refine(i, s);
                    Merge(i.Off, taken);
                    Merge(pc + 1, fallthrough);
                    break;
                }
                // Calls change r1-r5; so do the legacy packet loads (as in the kernel).
                case Op.Call or Op.CallX or Op.CallLocal or (>= Op.LdAbsB and <= Op.LdIndDW):
                    Merge(pc + 1, Unknown);
                    break;
                case >= Op.StB and <= Op.StxDW:
                    Merge(pc + 1, s);
                    break;
                case >= Op.Atomic32Add and <= Op.Atomic64CmpXchg: // fetching forms write the source (cmpxchg r0)
                    Merge(pc + 1, s.Kill(i.Src));
                    break;
                case Op.Lddw:
                    Merge(pc + 2, s.Kill(i.Dst));
                    break;
                default: // arithmetic, moves, byte swaps, loads: they write the destination
                    Merge(pc + 1, s.Kill(i.Dst));
                    break;
            }
        }

        bool[]? proven = null;
        for (int pc = 0; pc < n; pc++)
        {
            var i = code[pc];
            bool load = i.Op is >= Op.LdxB and <= Op.LdxSW, store = i.Op is >= Op.StB and <= Op.StxDW;
            if (!(load || store) || (load ? i.Src : i.Dst) != 1 || states[pc] is not { R1: true, Min: >= 0 } s) continue;
            if (i.Off >= 0 && i.Off + JitTarget.AccessSize(i.Op) <= s.Min)
                (proven ??= new bool[n])[pc] = true;
        }
        return proven;
    }

    /// <summary>What a comparison of r2 with a constant tells on each side (r2 is at least its low 32 bits, so 32-bit comparisons count too).</summary>
    private static (State Taken, State Fallthrough) Refine(DecodedInsn i, State s)
    {
        if (i.Dst != 2 || s.Min < 0) return (s, s);
        int form = (i.Op - Op.Jeq64Imm) % 4; // 64-bit imm, 64-bit reg, 32-bit imm, 32-bit reg
        if (form is 1 or 3) return (s, s);
        ulong k = form == 0 ? (ulong)i.Imm : (uint)i.Imm;
        ulong next = k == ulong.MaxValue ? k : k + 1;
        return (Op)((int)i.Op - form) switch
        {
            Op.Jeq64Imm => (s.AtLeast(k), s),
            Op.Jne64Imm => (s, s.AtLeast(k)),
            Op.Jge64Imm => (s.AtLeast(k), s),
            Op.Jgt64Imm => (s.AtLeast(next), s),
            Op.Jlt64Imm => (s, s.AtLeast(k)),
            Op.Jle64Imm => (s, s.AtLeast(next)),
            _ => (s, s),
        };
    }
}
