namespace Rbpf.Jit;

/// <summary>
/// Jump threading for state machines, a rewrite of the program the JIT compiles (never of what the
/// interpreter runs). clang compiles <c>switch (state)</c> in a loop to a tree of compares of one
/// register with constants, which every round walks again although the round before has just set
/// the state to a constant: gcc, compiling the same C natively, gives each state its own loop.
/// <para>
/// Here the state register x is the register compared most often with constants it is also given
/// by <c>mov</c> (<see cref="StateRegister"/>). A jump whose block has just set x to a constant K
/// (<c>mov x, K</c>, nothing writing x after it) is sent to a copy of its target specialised for
/// x = K, made when x is read there (live). A copy runs the same instructions as the block it copies
/// except that a conditional jump comparing x with an immediate is decided (it becomes a jump, or
/// nothing); its own ways on go to copies for the value x has there (the same K, or the constant a
/// <c>mov</c> in it gave), to one copy shared by every value for a block that writes x before
/// reading it (a state's own code: its copy's ways on know the next state, where the original's
/// fallthroughs could only reach the original), or back to the original blocks when x is not known.
/// So a run goes through the same instructions, less the compares whose outcome was known, in the
/// same order, with the same register values: a copy for K is only entered when x holds K, which
/// every way into it guarantees, and a copy never writes x differently from the block it copies.
/// </para>
/// <para>
/// Copies are appended after the program, whose slots keep their numbers; the origin table maps a
/// copy's slots back to the slots they copy, for error messages; copies from which no decided compare
/// can be reached are dropped. Threading is left out when the run counts instructions (the compares
/// it decides would not be counted) and for programs with local calls; past
/// <see cref="GrowthLimit"/> times the program's length (or <see cref="MaxAdded"/> slots) no more
/// copies are made and ways go to the original blocks. Copies contain only ALU instructions, jumps,
/// loads and stores: a block with anything else (calls, exits, atomics, lddw, legacy packet loads)
/// is never copied.
/// </para>
/// </summary>
internal static class JumpThreading
{
    /// <summary>The copies may add at most this many times the program's length.</summary>
    internal const int GrowthLimit = 4;
    /// <summary>Nor more than this many slots in all.</summary>
    private const int MaxAdded = 1 << 16;

    /// <summary>What a backend compiles: the threaded form of <paramref name="program"/> and its slot map, or,
    /// when the run counts instructions, the options turn threading off or nothing is worth threading,
    /// the program itself (no map).</summary>
    public static (DecodedProgram Program, int[]? Origin) ForCompiling(DecodedProgram program, VmKind kind, JitOptions options, bool countInstructions) =>
        !countInstructions && options.ThreadJumps && Apply(program, kind) is { } t ? (t.Program, t.Origin) : (program, null);

    /// <summary>The accesses a backend leaves unchecked (null: none) and the slots where it polls: the input
    /// and loop analyses of <paramref name="program"/>, or, for a threaded one, those of its original.</summary>
    public static (bool[]? Proven, bool[] Polls) ProofsAndPolls(DecodedProgram program, VmKind kind)
    {
        if (program.ThreadedPolls is { } polls) return (program.ThreadedProven, polls);
        using var facts = kind == VmKind.Raw ? InputBounds.Analyze(program.Code) : null;
        return (facts?.Proven, BoundedLoops.PollsFor(program, kind, facts));
    }

    /// <summary>The threaded program and, for each of its slots, the slot of the original it copies
    /// (identity below the original's length); null when nothing is worth threading.</summary>
    public static (DecodedProgram Program, int[] Origin)? Apply(DecodedProgram program, VmKind kind)
    {
        if (Copies(program) is not { } t) return null;
        int n = program.Code.Length;
        // A run of the copies is a run of the original, block for block, so whatever holds at a slot
        // on every run holds at its copies. Polling where the original polls (its loop analysis
        // decided where) stops a run as often: a copy polls on entry if the block it copies does, the
        // original keeps its polls. An access the input analysis proved for the original is proven
        // for its copies: the copies need no analysis of their own.
        var (original, polls) = ProofsAndPolls(program, kind);
        var mapped = new bool[t.Code.Length];
        Array.Copy(polls, mapped, n);
        foreach (var (slot, block) in t.Entries) mapped[slot] |= polls[block];
        bool[]? proven = null;
        if (original != null)
        {
            proven = new bool[t.Code.Length];
            for (int s = 0; s < proven.Length; s++) proven[s] = original[t.Origin[s]];
        }
        return (program.WithCode(t.Code, mapped, proven, fuse: false), t.Origin); // compiled, not interpreted
    }

    /// <summary>
    /// The threaded program the interpreter runs when it neither observes nor counts, and its slot map;
    /// null when nothing is worth threading. It needs neither proofs nor polls: the interpreter checks
    /// every access, and polls at every jump back, which every cycle makes, through copies too.
    /// </summary>
    public static (DecodedProgram Program, int[] Origin)? ForInterpreter(DecodedProgram program) =>
        Copies(program) is { } t ? (program.WithCode(t.Code, null, null), t.Origin) : null;

    /// <summary>The original's code followed by the copies, the slot map and the copies' entries; null when
    /// the program makes local calls, has no state register or nothing is worth copying.</summary>
    private static (DecodedInsn[] Code, int[] Origin, List<(int Slot, int Block)> Entries)? Copies(DecodedProgram program)
    {
        if (program.HasLocalCalls || program.Code.Length < 4) return null;
        int x = program.StateRegister;
        return x < 0 ? null : new Threader(program.Code, x, program.PollPoints).Run();
    }

    /// <summary>
    /// The state register: the one compared most often with the constants it is given (<c>mov r, K</c>
    /// somewhere, <c>jeq r, K</c> or a range test against K elsewhere), at least three times; -1 if
    /// none. A register of data (a character compared with many constants) is rarely given them.
    /// </summary>
    internal static int StateRegister(DecodedInsn[] code)
    {
        // One pass for most programs: per register, the tests against immediates and a 64-bit mask of
        // the constants it is given; only a register with three tests and some constant is scored.
        Span<int> tests = stackalloc int[10];
        Span<ulong> given = stackalloc ulong[10];
        tests.Clear();
        given.Clear();
        for (int k = 0; k < code.Length; k++)
        {
            ref readonly var i = ref code[k];
            if (i.Dst >= 10) continue;
            if (i.Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg && IsImmediate(i.Op)) tests[i.Dst]++;
            else if (i.Op is Op.Mov64Imm or Op.Mov32Imm) given[i.Dst] |= 1UL << (int)(i.Imm & 63);
        }
        int best = -1, bestScore = 2;
        for (int r = 0; r < 10; r++)
        {
            if (tests[r] <= bestScore || given[r] == 0) continue;
            var constants = new HashSet<uint>();
            foreach (ref readonly var i in code.AsSpan())
                if (i.Op is Op.Mov64Imm or Op.Mov32Imm && i.Dst == r) constants.Add((uint)i.Imm);
            int score = 0;
            foreach (ref readonly var i in code.AsSpan())
                if (i.Dst == r && i.Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg && IsImmediate(i.Op)
                    && (given[r] & 1UL << (int)(i.Imm & 63)) != 0 && constants.Contains((uint)i.Imm)) score++;
            if (score > bestScore) (best, bestScore) = (r, score);
        }
        return best;
    }

    internal static bool IsConditional(Op op) => op is >= Op.Jeq64Imm and <= Op.Jsle32Reg;
    private static bool IsImmediate(Op op) => ((op - Op.Jeq64Imm) & 1) == 0;

    /// <summary>Whether a conditional jump on (<paramref name="dst"/>, <paramref name="src"/>) is taken.</summary>
    internal static bool Taken(Op op, ulong dst, ulong src)
    {
        int k = op - Op.Jeq64Imm;
        if ((k & 2) != 0) { dst = (uint)dst; src = (uint)src; }
        long sd = (k & 2) != 0 ? (int)dst : (long)dst, ss = (k & 2) != 0 ? (int)src : (long)src;
        return (k >> 2) switch
        {
            0 => dst == src,
            1 => dst > src,
            2 => dst >= src,
            3 => (dst & src) != 0,
            4 => dst != src,
            5 => sd > ss,
            6 => sd >= ss,
            7 => dst < src,
            8 => dst <= src,
            9 => sd < ss,
            _ => sd <= ss,
        };
    }

    /// <summary>The jump taken exactly when <paramref name="op"/> is not (none for jset: -1).</summary>
    internal static Op Inverse(Op op)
    {
        int k = op - Op.Jeq64Imm;
        int inverse = (k >> 2) switch { 0 => 4, 4 => 0, 1 => 8, 8 => 1, 2 => 7, 7 => 2, 5 => 10, 10 => 5, 6 => 9, 9 => 6, _ => -1 };
        return inverse < 0 ? (Op)255 : (Op)((int)Op.Jeq64Imm + inverse * 4 + (k & 3));
    }

    /// <summary>What an instruction does to x: reads it (before writing), writes it (to <paramref name="value"/>
    /// when <paramref name="constant"/>). Anything not known here reads and writes it.</summary>
    private static void Effect(in DecodedInsn i, int x, out bool reads, out bool writes, out bool constant, out ulong value)
    {
        constant = false;
        value = 0;
        var op = i.Op;
        if (op is Op.Mov64Imm or Op.Mov32Imm)
        {
            reads = false;
            writes = i.Dst == x;
            constant = writes;
            value = op == Op.Mov64Imm ? (ulong)i.Imm : (uint)i.Imm;
        }
        else if (op is Op.Mov64Reg or Op.Mov32Reg or >= Op.MovSx64From8 and <= Op.MovSx32From16)
        {
            reads = i.Src == x;
            writes = i.Dst == x;
        }
        else if (op <= Op.Swap64 && op != Op.Nop) // the other ALU operations, byte swaps and extensions
        {
            bool reg = op < Op.Neg64 && ((int)op & 1) == 1;
            reads = i.Dst == x || (reg && i.Src == x);
            writes = i.Dst == x;
        }
        else if (op == Op.Nop || op == Op.Ja)
        {
            reads = writes = false;
        }
        else if (op is >= Op.LdxB and <= Op.LdxSW)
        {
            reads = i.Src == x;
            writes = i.Dst == x;
        }
        else if (op is >= Op.StB and <= Op.StDW)
        {
            reads = i.Dst == x;
            writes = false;
        }
        else if (op is >= Op.StxB and <= Op.StxDW)
        {
            reads = i.Dst == x || i.Src == x;
            writes = false;
        }
        else if (IsConditional(op))
        {
            reads = i.Dst == x || (!IsImmediate(op) && i.Src == x);
            writes = false;
        }
        else if (op is Op.Call or Op.CallX)
        {
            reads = x is >= 1 and <= 5 || (op == Op.CallX && i.Dst == x);
            writes = x <= 5;
        }
        else if (op == Op.Exit)
        {
            reads = x == 0;
            writes = false;
        }
        else
        {
            reads = writes = true;
        }
    }

    /// <summary>Whether a block of these instructions may be copied.</summary>
    private static bool Copyable(Op op) =>
        op < Op.Lddw || op is >= Op.LdxB and <= Op.StxDW || op == Op.Ja || IsConditional(op);

    private sealed class Threader(DecodedInsn[] code, int x, bool[] pollPoints)
    {
        private readonly int _n = code.Length;
        private int[] _blockOf = [];       // slot -> its block, at block starts; -1 elsewhere
        private readonly List<(int Start, int End)> _blocks = [];
        private bool[] _liveIn = [];
        private bool[] _copyable = [];

        // The copies: block and value, their instructions (jump targets symbolic: >= 0 a slot of the
        // original, < 0 ~copy), the slot each copies, and where the copy goes on when it ends
        // without a jump (a symbolic target, or int.MinValue: nowhere).
        private readonly Dictionary<(int Block, ulong K, bool Dead), int> _ids = new(CopyKeyComparer.Instance);
        private readonly List<(int Block, ulong K, bool Dead)> _nodes = [];
        private readonly List<List<(DecodedInsn Insn, int Origin)>> _bodies = [];
        private readonly List<int> _next = [];
        private int _added, _folded;
        private readonly List<bool> _decides = []; // whether the copy decided a compare

        public (DecodedInsn[] Code, int[] Origin, List<(int Slot, int Block)> Entries)? Run()
        {
            FindBlocks();
            Liveness();
            var redirected = new List<(int Slot, int Target)>();
            // The original's jumps that leave a block having just set x.
            foreach (var (start, end) in _blocks)
            {
                bool known = false;
                ulong k = 0;
                for (int s = start; s < end; s++)
                {
                    var i = code[s];
                    if (s == end - 1 && (i.Op == Op.Ja || IsConditional(i.Op)) && known)
                    {
                        int t = Target(i.Off, true, k);
                        if (t < 0) redirected.Add((s, t));
                        break;
                    }
                    Effect(i, x, out _, out bool writes, out bool constant, out ulong value);
                    if (writes) (known, k) = (constant, value);
                }
            }
            for (int c = 0; c < _nodes.Count; c++) Build(c);
            if (_folded == 0) return null;
            Prune();
            redirected.RemoveAll(r => !_useful[~r.Target]);
            if (redirected.Count == 0) return null;
            return Lay(redirected);
        }

        private bool[] _useful = [];

        /// <summary>Keeps the copies from which a decided compare can be reached through copies; the
        /// ways to the others go to the original blocks (a copy that decides nothing only moves code).</summary>
        private void Prune()
        {
            int count = _nodes.Count;
            _useful = new bool[count];
            for (int c = 0; c < count; c++) _useful[c] = _decides[c];
            for (bool changed = true; changed;)
            {
                changed = false;
                for (int c = 0; c < count; c++)
                {
                    if (_useful[c]) continue;
                    bool useful = _next[c] is < 0 and not int.MinValue && _useful[~_next[c]];
                    foreach (var (insn, _) in _bodies[c])
                        useful |= IsConditional(insn.Op) && insn.Off < 0 && _useful[~insn.Off];
                    if (useful) { _useful[c] = true; changed = true; }
                }
            }
            // The ways to a copy left out go to the block it copies.
            int Keep(int t) => t is < 0 and not int.MinValue && !_useful[~t] ? _blocks[_nodes[~t].Block].Start : t;
            for (int c = 0; c < count; c++)
            {
                _next[c] = Keep(_next[c]);
                var body = _bodies[c];
                for (int j = 0; j < body.Count; j++)
                {
                    var (insn, from) = body[j];
                    if (IsConditional(insn.Op)) { insn.Off = Keep(insn.Off); body[j] = (insn, from); }
                }
            }
        }

        private int Limit => Math.Min(MaxAdded, GrowthLimit * _n);

        private void FindBlocks()
        {
            var start = new bool[_n + 1];
            start[0] = true;
            for (int pc = 0; pc < _n; pc += code[pc].Op == Op.Lddw ? 2 : 1)
            {
                var i = code[pc];
                bool jump = i.Op == Op.Ja || IsConditional(i.Op);
                if (jump && i.Off >= 0 && i.Off < _n) start[i.Off] = true;
                if (jump || i.Op is Op.Call or Op.CallX or Op.CallLocal or Op.Exit or Op.Illegal)
                    start[Math.Min(_n, pc + (i.Op == Op.Lddw ? 2 : 1))] = true;
            }
            for (int pc = 1; pc < _n; pc++)
                if (code[pc - 1].Op == Op.Lddw) start[pc] = false;
            _blockOf = new int[_n];
            Array.Fill(_blockOf, -1);
            for (int pc = 0; pc < _n;)
            {
                int end = pc + 1;
                while (end < _n && !start[end]) end++;
                _blockOf[pc] = _blocks.Count;
                _blocks.Add((pc, end));
                pc = end;
            }
            _copyable = new bool[_blocks.Count];
            for (int b = 0; b < _blocks.Count; b++)
            {
                bool ok = true;
                for (int s = _blocks[b].Start; s < _blocks[b].End && ok; s++) ok = Copyable(code[s].Op);
                // A block that would fall off the end is not copied (its copy would fall into the next one).
                _copyable[b] = ok && (_blocks[b].End < _n || code[_n - 1].Op == Op.Ja);
            }
        }

        /// <summary>Whether x is read at each block's entry before being written (on some path).</summary>
        private void Liveness()
        {
            int count = _blocks.Count;
            var uses = new bool[count];
            var defs = new bool[count];
            for (int b = 0; b < count; b++)
            {
                for (int s = _blocks[b].Start; s < _blocks[b].End; s++)
                {
                    Effect(code[s], x, out bool reads, out bool writes, out _, out _);
                    if (reads && !defs[b]) uses[b] = true;
                    if (writes) defs[b] = true;
                }
            }
            _liveIn = new bool[count];
            for (bool changed = true; changed;)
            {
                changed = false;
                for (int b = count - 1; b >= 0; b--)
                {
                    bool outLive = false;
                    int last = _blocks[b].End - 1;
                    var op = code[last].Op;
                    if ((op == Op.Ja || IsConditional(op)) && code[last].Off >= 0 && code[last].Off < _n)
                        outLive |= _liveIn[_blockOf[code[last].Off]];
                    if (op != Op.Ja && op != Op.Exit && _blocks[b].End < _n) outLive |= _liveIn[_blockOf[_blocks[b].End]];
                    bool live = uses[b] || (outLive && !defs[b]);
                    if (live && !_liveIn[b]) { _liveIn[b] = true; changed = true; }
                }
            }
        }

        /// <summary>
        /// Where a way to <paramref name="slot"/> goes (symbolic: ~copy): a copy for x's value when x is known
        /// there and read; one copy for every way when x is not read there before being written (a state's
        /// own code, which sets the next state: its copy's ways on know it, where the original's fall
        /// through to the original code); else, or when the block may not be copied or the copies have
        /// grown the program enough, the slot itself.
        /// </summary>
        private int Target(int slot, bool known, ulong k)
        {
            if (slot < 0 || slot >= _n) return slot;
            int b = _blockOf[slot];
            if (b < 0 || !_copyable[b]) return slot;
            bool dead = !_liveIn[b];
            if (!known && !dead) return slot;
            var key = (b, dead ? 0 : k, dead);
            if (!_ids.TryGetValue(key, out int id))
            {
                int size = _blocks[b].End - _blocks[b].Start + 1;
                if (_added + size > Limit) return slot;
                id = _nodes.Count;
                _ids[key] = id;
                _nodes.Add(key);
                _bodies.Add(new List<(DecodedInsn Insn, int Origin)>(size)); // at most the block's instructions
                _next.Add(int.MinValue);
                _decides.Add(false);
                _added += size;
            }
            return ~id;
        }

        /// <summary>Fills copy <paramref name="c"/>'s instructions and its way on.</summary>
        private void Build(int c)
        {
            var (b, k, dead) = _nodes[c];
            var (start, end) = _blocks[b];
            var body = _bodies[c];
            bool known = !dead;
            for (int s = start; s < end; s++)
            {
                var i = code[s];
                if (i.Op == Op.Ja)
                {
                    _next[c] = Target(i.Off, known, k); // laid out as a jump only if the target does not follow
                    return;
                }
                if (IsConditional(i.Op))
                {
                    if (known && i.Dst == x && IsImmediate(i.Op))
                    {
                        _folded++;
                        _decides[c] = true;
                        _next[c] = Taken(i.Op, k, (ulong)i.Imm) ? Target(i.Off, true, k) : Target(s + 1, true, k);
                        return;
                    }
                    i.Off = Target(i.Off, known, k);
                    body.Add((i, s));
                    _next[c] = Target(s + 1, known, k);
                    return;
                }
                body.Add((i, s));
                Effect(i, x, out _, out bool writes, out bool constant, out ulong value);
                if (writes) (known, k) = (constant, value);
            }
            _next[c] = end < _n ? Target(end, known, k) : int.MinValue;
        }

        /// <summary>The original followed by the copies, each chain of copies that fall into each other
        /// in a row; a copy whose way on is placed elsewhere ends with a jump there.</summary>
        private (DecodedInsn[] Code, int[] Origin, List<(int Slot, int Block)> Entries) Lay(List<(int Slot, int Target)> redirected)
        {
            int count = _nodes.Count;
            var order = new List<int>(count);
            var placed = new bool[count];
            for (int c = 0; c < count; c++) placed[c] = !_useful[c];
            for (int c = 0; c < count; c++)
            {
                for (int d = c; d >= 0 && !placed[d]; d = Follow(d, placed))
                {
                    placed[d] = true;
                    order.Add(d);
                }
            }
            // Slots: each copy's body, plus a jump unless its way on is the copy placed right after it.
            var at = new int[count];
            int pos = _n;
            for (int o = 0; o < order.Count; o++)
            {
                int c = order[o];
                at[c] = pos;
                pos += _bodies[c].Count + (NeedsNop(c) ? 1 : 0) + (NeedsJump(c, o, order) ? 1 : 0);
            }
            var result = new DecodedInsn[pos + 1];
            var origin = new int[pos + 1];
            Array.Copy(code, result, _n);
            for (int s = 0; s < _n; s++) origin[s] = s;
            int Resolve(int t) => t >= 0 ? t : at[~t];
            foreach (var (slot, target) in redirected) result[slot].Off = Resolve(target);
            pos = _n;
            for (int o = 0; o < order.Count; o++)
            {
                int c = order[o];
                var body = _bodies[c];
                int last = _blocks[_nodes[c].Block].End - 1;
                if (NeedsNop(c))
                {
                    // A copy left empty (its compares all decided) of a block that may poll: a slot of
                    // its own, so that an interrupt there names the block, as in the original.
                    result[pos] = new DecodedInsn { Op = Op.Nop };
                    origin[pos++] = _blocks[_nodes[c].Block].Start;
                }
                for (int j = 0; j < body.Count; j++)
                {
                    var (insn, from) = body[j];
                    if (insn.Op == Op.Ja || IsConditional(insn.Op)) insn.Off = Resolve(insn.Off);
                    result[pos] = insn;
                    origin[pos++] = from;
                }
                if (NeedsJump(c, o, order))
                {
                    result[pos] = new DecodedInsn { Op = Op.Ja, Off = Resolve(_next[c]) };
                    origin[pos++] = last;
                }
            }
            // Nothing falls off the copies (each ends with a jump); the slot is there as at the end of every program.
            result[pos] = code[_n - 1].Op == Op.Illegal ? code[_n - 1] : new DecodedInsn { Op = Op.Illegal };
            origin[pos] = _n - 1;
            var entries = new List<(int Slot, int Block)>(order.Count);
            foreach (int c in order) entries.Add((at[c], _blocks[_nodes[c].Block].Start));
            return (result, origin, entries);
        }

        /// <summary>The copy to place after <paramref name="d"/>: its way on when that is a copy not yet
        /// placed, else its jump's target, the jump turned round (a loop's test whose way on leaves the
        /// copies: the loop then goes on by falling through); -1: none.</summary>
        private int Follow(int d, bool[] placed)
        {
            int next = _next[d];
            if (next is < 0 and not int.MinValue && !placed[~next]) return ~next;
            var body = _bodies[d];
            if (body.Count == 0 || next == int.MinValue) return -1;
            var (jump, from) = body[^1];
            if (!IsConditional(jump.Op) || jump.Off >= 0 || placed[~jump.Off] || Inverse(jump.Op) == (Op)255) return -1;
            int taken = jump.Off;
            jump.Op = Inverse(jump.Op);
            jump.Off = next;
            body[^1] = (jump, from);
            _next[d] = taken;
            return ~taken;
        }

        private bool NeedsNop(int c) => _bodies[c].Count == 0 && pollPoints[_blocks[_nodes[c].Block].Start];

        private bool NeedsJump(int c, int o, List<int> order) =>
            _next[c] != int.MinValue && !(o + 1 < order.Count && _next[c] == ~order[o + 1]);
    }

    /// <summary>Compares and hashes a copy's key field by field (the default comparer of a tuple goes through
    /// each element's default comparer).</summary>
    private sealed class CopyKeyComparer : IEqualityComparer<(int Block, ulong K, bool Dead)>
    {
        public static readonly CopyKeyComparer Instance = new();

        public bool Equals((int Block, ulong K, bool Dead) a, (int Block, ulong K, bool Dead) b) =>
            a.Block == b.Block && a.K == b.K && a.Dead == b.Dead;

        public int GetHashCode((int Block, ulong K, bool Dead) key) =>
            (int)((key.K * 0x9E3779B97F4A7C15UL) >> 32) ^ key.Block * 31 ^ (key.Dead ? 1 : 0);
    }
}
