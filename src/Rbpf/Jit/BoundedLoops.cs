using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>
/// Loops of a raw VM's program that go round at most once per byte of input (plus one), whose
/// heads the JIT need not poll for interrupts: such a loop ends on its own after work in
/// proportion to the input the host gave, like a helper working through it would.
/// <para>
/// A loop head h qualifies when its body (the slots on a cycle through h) has no cycle that avoids
/// h and makes no call, r2 holds the input's length L at h and nothing in the body writes it, and
/// some register x moves on every round: on every way back to h from the body, x is its value at
/// h (X) plus a constant k from 1 to 2^20, and the round has found, by a 64-bit unsigned
/// comparison with r2, that X + e &lt;= L for one constant e the same on every way back (clang's
/// <c>i + 1 &lt; len</c>, <c>off + 64 &lt;= len</c>). Registers are followed through the round as
/// x's head value plus a constant; other registers the input analysis (<see cref="InputBounds"/>)
/// knows to be x plus a constant at h count as such (x is then the root of their group).
/// Then y = X + e (modulo 2^64) is at most L whenever a round goes back, and the next round's y is
/// that plus k without wrapping (L is far below 2^63): y grows every time and never passes L, so
/// the loop goes back at most L + 1 times. Rounds entered in the middle of the body (a jump into
/// the loop from outside) add at most one. Another loop head every cycle through which passes a
/// qualifying head needs no poll either: it goes round no more often.
/// </para>
/// <para>
/// A head also qualifies, without r2, when x moves down by a constant from 1 to 2^20 on every way
/// back and the input analysis knows x to be at most L at h on every path there (clang's
/// <c>while (j &gt; 0) j--</c> from an index): x cannot pass 0 without wrapping to near 2^64, above
/// L, so it goes back at most L + 1 times. And an inner loop whose own rounds are bounded so, but
/// which the outer loop enters again and again, has its poll moved to the outer ways back
/// (<see cref="MovedPolls(DecodedInsn[], bool[], InputBounds.Facts, bool[])"/>).
/// </para>
/// </summary>
internal static class BoundedLoops
{
    /// <summary>Constants and distances are kept below this; steps must be below <see cref="MaxStep"/>.</summary>
    private const long MaxDelta = 1L << 40, MaxStep = 1L << 20;
    private const int Zero = InputBounds.Zero, Start = InputBounds.Start;

    /// <summary>A register's value as a register's value at the loop head (or a constant, or the input's start) plus Delta,
    /// modulo 2^64; Origin -1: unknown.</summary>
    private struct Val
    {
        public sbyte Origin;
        public long Delta;
        public static readonly Val Unknown = new() { Origin = -1 };
    }

    /// <summary>What a path through the body knows: each register, and facts (x, e): X + e &lt;= L for x's head value X.</summary>
    private sealed class State
    {
        public readonly Val[] R = new Val[10];
        public List<(int X, long E)> Facts = new();

        public State Clone()
        {
            var s = new State { Facts = new List<(int, long)>(Facts) };
            R.CopyTo(s.R, 0);
            return s;
        }

        public void JoinWith(State o)
        {
            for (int r = 0; r < R.Length; r++)
                if (R[r].Origin != o.R[r].Origin || R[r].Delta != o.R[r].Delta) R[r] = Val.Unknown;
            Facts.RemoveAll(f => !o.Facts.Contains(f));
        }

        /// <summary>Register <paramref name="r"/> is at most L (64-bit unsigned).</summary>
        public void AtMostL(int r)
        {
            if (r > 9 || R[r].Origin is < 0 or Zero or Start) return;
            var f = ((int)R[r].Origin, R[r].Delta);
            if (!Facts.Contains(f)) Facts.Add(f);
        }
    }

    /// <summary>
    /// The slots compiled code polls for interrupts at: the program's poll points, less the heads of
    /// loops bounded by the input when the VM is raw (r1 and r2 are the input and its length).
    /// </summary>
    public static bool[] PollsFor(DecodedProgram program, VmKind kind, InputBounds.Facts? facts) => PollsFor(program, kind, facts, out _);

    /// <summary><see cref="PollsFor(DecodedProgram, VmKind, InputBounds.Facts?)"/>, and the slots its searches visited (its work).</summary>
    internal static bool[] PollsFor(DecodedProgram program, VmKind kind, InputBounds.Facts? facts, out long visits)
    {
        visits = 0;
        if (kind != VmKind.Raw || facts == null || Array.IndexOf(program.PollPoints, true) < 0) return program.PollPoints;
        var code = program.Code;
        var g = new LoopGraph(code);
        var bounded = Find(g, program.PollPoints, facts);
        var moved = MovedPolls(g, program.PollPoints, facts, bounded);
        visits = g.Visits;
        if (bounded == null && moved.Count == 0) return program.PollPoints;
        var polls = (bool[])program.PollPoints.Clone();
        for (int pc = 0; pc < polls.Length; pc++)
            if (bounded?[pc] ?? false) polls[pc] = false;
        foreach (var (head, outer) in moved)
        {
            polls[head] = false;
            foreach (int q in outer) polls[BlockStart(code, q)] = true;
        }
        return polls;
    }

    /// <summary>The first slot of the basic block <paramref name="pc"/> is in.</summary>
    private static int BlockStart(DecodedInsn[] code, int pc)
    {
        while (pc > 0 && code[pc].Charge == 0) pc--;
        return pc;
    }

    /// <summary>
    /// Loop heads whose poll can move out to the paths that come back to them from farther away:
    /// the inner loop of a nest (an insertion sort's <c>while (j &gt; 0 &amp;&amp; a[j - 1] &gt; v) j--</c>,
    /// which the outer loop enters again and again). For a head h not bounded as a whole, take one
    /// latch p (a slot that jumps or falls back to h) and the inner body B: the slots on a path from
    /// h to p that does not pass h. When the rounds within B are bounded as the class remarks say
    /// (per entry: the outer paths set the counter anew), every other way back to h comes from a latch
    /// outside B (a path that left B and came back to a latch in B would put its slots in B), so
    /// polling the blocks of those latches instead of h leaves no cycle without a poll that can go
    /// round more than L + 1 times in a row. Returns each such head with its outer latches.
    /// </summary>
    public static List<(int Head, List<int> OuterLatches)> MovedPolls(DecodedInsn[] code, bool[] pollPoints, InputBounds.Facts facts, bool[]? unpolled) =>
        MovedPolls(new LoopGraph(code), pollPoints, facts, unpolled);

    private static List<(int Head, List<int> OuterLatches)> MovedPolls(LoopGraph g, bool[] pollPoints, InputBounds.Facts facts, bool[]? unpolled)
    {
        var moved = new List<(int, List<int>)>();
        var comp = g.Component;
        for (int h = 0; h < g.Code.Length; h++)
        {
            if (!pollPoints[h] || (unpolled?[h] ?? false) || g.CallTarget[h]) continue;
            // The ways back: predecessors h reaches (those in its component), itself included.
            var latches = new List<int>();
            foreach (int p in g.Preds(h))
                if (comp[p] == comp[h] && !latches.Contains(p)) latches.Add(p);
            if (latches.Count < 2) continue; // one latch: the whole loop, which Find did not bound
            foreach (int p in latches)
            {
                if (g.Body(h, new[] { p }) is not { } nodes) return moved; // out of budget: the rest keep their polls
                if (!RoundsBounded(g, h, nodes, facts)) continue;
                moved.Add((h, latches.Where(q => q != h && !g.InBody(q)).ToList()));
                break;
            }
        }
        return moved;
    }

    /// <summary>
    /// For each slot, whether it is the head of a loop that goes round at most once per input byte
    /// (see the class remarks); null when there is none.
    /// </summary>
    public static bool[]? Find(DecodedInsn[] code, bool[] pollPoints, InputBounds.Facts facts) =>
        Array.IndexOf(pollPoints, true) < 0 ? null : Find(new LoopGraph(code), pollPoints, facts); // no loop heads (nor functions)

    private static bool[]? Find(LoopGraph g, bool[] pollPoints, InputBounds.Facts facts)
    {
        int n = g.Code.Length;
        bool[]? bounded = null;
        for (int h = 0; h < n; h++)
        {
            if (!pollPoints[h] || g.CallTarget[h]) continue;
            if (g.Body(h, g.Preds(h)) is not { } nodes) break; // out of budget: the rest keep their polls
            if (RoundsBounded(g, h, nodes, facts)) (bounded ??= new bool[n])[h] = true;
        }
        if (bounded == null) return null;
        // A loop head every cycle through which passes a bounded head goes round no more often than that one.
        var unpolled = (bool[])bounded.Clone();
        for (int h = 0; h < n; h++)
            if (pollPoints[h] && !g.CallTarget[h] && !bounded[h] && !g.OnCycle(h, bounded))
                unpolled[h] = true;
        return unpolled;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsJump(Op op) => op is Op.Ja or (>= Op.Jeq64Imm and <= Op.Jsle32Reg);

    /// <summary>Whether an instruction may change r2 (calls and the legacy packet loads clobber r1-r5).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool WritesR2(in DecodedInsn i) => i.Op switch
    {
        Op.Call or Op.CallX or Op.CallLocal or (>= Op.LdAbsB and <= Op.LdIndDW) => true,
        >= Op.StB and <= Op.StxDW => false,
        Op.Atomic32 or Op.Atomic64 => i.Src == 2,
        Op.Ja or (>= Op.Jeq64Imm and <= Op.Jsle32Reg) or Op.Exit or Op.Illegal or Op.Nop => false,
        _ => i.Dst == 2,
    };

    /// <summary>Where control can go from <paramref name="pc"/> (at most two slots, into <paramref name="into"/>); their count.</summary>
    internal static int Successors(DecodedInsn[] code, int pc, Span<int> into)
    {
        ref readonly DecodedInsn i = ref code[pc];
        Op op = i.Op;
        int off = i.Off, count = 0;
        if (IsJump(op) && (uint)off < (uint)code.Length) into[count++] = off;
        int next = pc + (op == Op.Lddw ? 2 : 1);
        if (op is not (Op.Ja or Op.Exit or Op.Illegal) && next < code.Length) into[count++] = next;
        return count;
    }

    /// <summary>
    /// The control flow of a program for the loop searches: predecessors, local call targets, and
    /// each slot's strongly connected component. Every cycle through a slot stays inside its
    /// component, and a slot of h's component other than h is reached from h without passing h
    /// (after the last time a path from h passes h), so the searches for one head visit only its
    /// component, not everything after it: programs of many loops one after another are analysed
    /// in time linear in their length. A budget of visits (in proportion to the program's length)
    /// bounds the rest, such as a long outer loop around many inner ones: past it, heads keep their
    /// polls.
    /// </summary>
    private sealed class LoopGraph
    {
        public readonly DecodedInsn[] Code;
        /// <summary>Each slot's predecessors, in order, at <c>_predList[_predStart[pc].._predStart[pc + 1]]</c>.</summary>
        private readonly int[] _predStart, _predList;
        public readonly bool[] CallTarget;
        public readonly int[] Component;
        private readonly int[] _mark;
        /// <summary>Scratch for one loop's search at a time, by slot: in-degrees and states (cleared after each).</summary>
        public readonly int[] Indegree;
        public readonly State?[] States;
        /// <summary>Scratch stacks: of the searches (<see cref="Body"/>, <see cref="OnCycle"/>), and of the slots ready in a
        /// loop's ordering (one search at a time each).</summary>
        private readonly IntStack _stack = new();
        public readonly IntStack Ready = new();
        private int _stamp;
        private long _budget;
        private readonly long _allowed;

        /// <summary>Slots the searches have visited so far.</summary>
        public long Visits => _allowed - Math.Max(0, _budget);

        /// <summary>Slot visits allowed per slot of the program (and a floor for small programs).</summary>
        private const int VisitsPerSlot = 32, MinVisits = 100_000;

        public LoopGraph(DecodedInsn[] code)
        {
            Code = code;
            int n = code.Length;
            Span<int> succ = stackalloc int[2];
            _predStart = new int[n + 1];
            for (int pc = 0; pc < n; pc += code[pc].Op == Op.Lddw ? 2 : 1)
                for (int k = 0, count = Successors(code, pc, succ); k < count; k++) _predStart[succ[k] + 1]++;
            for (int pc = 0; pc < n; pc++) _predStart[pc + 1] += _predStart[pc];
            _predList = new int[_predStart[n]];
            var fill = _predStart.AsSpan(0, n).ToArray();
            for (int pc = 0; pc < n; pc += code[pc].Op == Op.Lddw ? 2 : 1)
                for (int k = 0, count = Successors(code, pc, succ); k < count; k++) _predList[fill[succ[k]]++] = pc;
            CallTarget = new bool[n];
            foreach (var i in code)
                if (i.Op == Op.CallLocal && i.Off >= 0 && i.Off < n) CallTarget[i.Off] = true;
            Component = Components(code);
            _mark = new int[n];
            Indegree = new int[n];
            States = new State?[n];
            _budget = _allowed = MinVisits + (long)VisitsPerSlot * n;
        }

        /// <summary>Whether the last <see cref="Body"/> holds <paramref name="pc"/>.</summary>
        public bool InBody(int pc) => _mark[pc] == _stamp;

        /// <summary>The slots control can come to <paramref name="pc"/> from.</summary>
        public ReadOnlySpan<int> Preds(int pc) => _predList.AsSpan(_predStart[pc], _predStart[pc + 1] - _predStart[pc]);

        /// <summary>The body of the loop at <paramref name="h"/> through <paramref name="latches"/> (slots
        /// that go to h): the slots on a path from the head to one of them (reached from it, and reaching
        /// the latch, without passing it), wherever they are in the program, less the head;
        /// <see cref="InBody"/> tells them until the next search. Null when the budget is spent.</summary>
        public List<int>? Body(int h, ReadOnlySpan<int> latches)
        {
            _stamp++;
            var nodes = new List<int>();
            var stack = _stack;
            stack.Clear();
            foreach (int p in latches) stack.Push(p);
            int component = Component[h];
            while (stack.Count > 0)
            {
                int pc = stack.Pop();
                if (pc == h || _mark[pc] == _stamp || Component[pc] != component) continue;
                if (--_budget < 0) return null;
                _mark[pc] = _stamp;
                nodes.Add(pc);
                foreach (int p in Preds(pc)) stack.Push(p);
            }
            return nodes;
        }

        /// <summary>Whether <paramref name="h"/> is on a cycle that passes none of <paramref name="avoid"/>
        /// (true, as the safe answer, when the budget is spent).</summary>
        public bool OnCycle(int h, bool[] avoid)
        {
            _stamp++;
            int component = Component[h];
            Span<int> succ = stackalloc int[2];
            var stack = _stack;
            stack.Clear();
            for (int k = Successors(Code, h, succ) - 1; k >= 0; k--) stack.Push(succ[k]);
            while (stack.Count > 0)
            {
                int pc = stack.Pop();
                if (pc == h) return true;
                if (_mark[pc] == _stamp || avoid[pc] || Component[pc] != component) continue;
                if (--_budget < 0) return true;
                _mark[pc] = _stamp;
                for (int k = Successors(Code, pc, succ) - 1; k >= 0; k--) stack.Push(succ[k]);
            }
            return false;
        }

        /// <summary>Each slot's strongly connected component (Tarjan's algorithm, without recursion).</summary>
        private static int[] Components(DecodedInsn[] code)
        {
            int n = code.Length;
            var index = new int[n]; // order of discovery + 1; 0: not yet
            var low = new int[n];
            var component = new int[n];
            Array.Fill(component, -1); // -1 once discovered: still on the stack
            var stack = new int[n];
            var path = new int[n];  // the depth-first path
            var edge = new int[n];  // the next successor to try, for each slot of the path
            Span<int> succ = stackalloc int[2];
            int sp = 0, depth = 0, counter = 0, components = 0;
            for (int root = 0; root < n; root++)
            {
                if (index[root] != 0) continue;
                index[root] = low[root] = ++counter;
                stack[sp++] = root;
                path[0] = root;
                edge[0] = 0;
                depth = 1;
                while (depth > 0)
                {
                    int v = path[depth - 1];
                    if (edge[depth - 1] < Successors(code, v, succ))
                    {
                        int w = succ[edge[depth - 1]++];
                        if (index[w] == 0)
                        {
                            index[w] = low[w] = ++counter;
                            stack[sp++] = w;
                            path[depth] = w;
                            edge[depth] = 0;
                            depth++;
                        }
                        else if (component[w] < 0) low[v] = Math.Min(low[v], index[w]);
                        continue;
                    }
                    depth--;
                    if (low[v] == index[v])
                    {
                        int w;
                        do component[w = stack[--sp]] = components; while (w != v);
                        components++;
                    }
                    if (depth > 0)
                    {
                        int u = path[depth - 1];
                        low[u] = Math.Min(low[u], low[v]);
                    }
                }
            }
            return component;
        }
    }

    /// <summary>
    /// Whether the rounds of the loop at <paramref name="h"/> through the body <paramref name="nodes"/> (the last <see cref="LoopGraph.Body"/>)
    /// are bounded: every way back to h from the body (or from h itself) moves one register on as the
    /// class remarks say (up, compared with r2), or moves it down by 1 to 2^20 when the input analysis
    /// knows it to be at most L at h whichever way control got there. Then it never wraps (past 0 it
    /// would be near 2^64, far above L), so the rounds within the body number at most L + 1 in a row.
    /// Leaving the body (to slots outside it other than h) ends the count.
    /// </summary>
    private static bool RoundsBounded(LoopGraph g, int h, List<int> nodes, InputBounds.Facts facts)
    {
        var code = g.Code;
        Span<int> succ = stackalloc int[2];
        bool loops = false;
        foreach (int p in g.Preds(h)) loops |= p == h || g.InBody(p);
        if (!loops || WritesR2(code[h])) return false;
        foreach (int pc in CollectionsMarshal.AsSpan(nodes))
            if (WritesR2(code[pc])) return false; // also every call

        // Every other cycle of the body passes the head: without it the body is acyclic. Its slots in
        // an order where each comes after those that lead to it (Kahn's).
        var indegree = g.Indegree;
        foreach (int pc in CollectionsMarshal.AsSpan(nodes)) indegree[pc] = 0;
        foreach (int pc in CollectionsMarshal.AsSpan(nodes))
            for (int k = 0, count = Successors(code, pc, succ); k < count; k++)
                if (succ[k] != h && g.InBody(succ[k])) indegree[succ[k]]++;
        var order = new List<int>(nodes.Count + 1) { h };
        var ready = g.Ready;
        ready.Clear();
        foreach (int pc in CollectionsMarshal.AsSpan(nodes))
            if (indegree[pc] == 0) ready.Push(pc);
        while (ready.Count > 0)
        {
            int pc = ready.Pop();
            order.Add(pc);
            for (int k = 0, count = Successors(code, pc, succ); k < count; k++)
                if (succ[k] != h && g.InBody(succ[k]) && --indegree[succ[k]] == 0) ready.Push(succ[k]);
        }
        if (order.Count != nodes.Count + 1) return false; // an inner loop

        // At the head, each register as its group's root plus a distance, as the input analysis found
        // on every path there (clang keeps an index twice: r3 = r4 at the checksum's head).
        try
        {
            return WalkRounds(g, h, order, facts);
        }
        finally
        {
            g.States[h] = null;
            foreach (int pc in CollectionsMarshal.AsSpan(nodes)) g.States[pc] = null;
        }
    }

    /// <summary>The walk of <see cref="RoundsBounded(LoopGraph, int, List{int}, InputBounds.Facts)"/> through the body in
    /// <paramref name="order"/> (the head first), with <see cref="LoopGraph.States"/> empty for its slots.</summary>
    private static bool WalkRounds(LoopGraph g, int h, List<int> order, InputBounds.Facts facts)
    {
        var code = g.Code;
        var states = g.States;
        int n = code.Length;
        var head = new State();
        for (int r = 0; r < 10; r++)
        {
            var (root, plus) = facts.Relation(h, r);
            head.R[r] = new Val { Origin = (sbyte)root, Delta = plus };
        }
        states[h] = head;
        bool up = facts.HoldsLength(h); // comparisons with r2 are with L
        List<(int X, long E)>? candidates = null;
        List<int>? down = null;
        bool Arrive(int to, State s)
        {
            if (to == h)
            {
                // Back at the head: which registers moved on by a step, with a fact about their head value.
                var found = new List<(int, long)>();
                if (up)
                    foreach (var f in s.Facts)
                        if (s.R[f.X].Origin == f.X && s.R[f.X].Delta is >= 1 and < MaxStep) found.Add(f);
                if (candidates == null) candidates = found;
                else candidates.RemoveAll(c => !found.Contains(c));
                // Which moved down by a step, at most L at the head.
                var fell = new List<int>();
                for (int x = 0; x < 10; x++)
                    if (s.R[x].Origin == x && s.R[x].Delta is <= -1 and > -MaxStep && facts.AtMostLength(h, x)) fell.Add(x);
                if (down == null) down = fell;
                else down.RemoveAll(x => !fell.Contains(x));
                return candidates.Count > 0 || down.Count > 0;
            }
            if (to < 0 || to >= n || !g.InBody(to)) return true; // leaves the loop
            // The walk never uses s again after it arrives (each slot is walked once, and a jump's two sides
            // are two states), so the first arrival keeps it instead of a copy.
            if (states[to] is { } there) there.JoinWith(s);
            else states[to] = s;
            return true;
        }
        foreach (int pc in CollectionsMarshal.AsSpan(order))
        {
            // Every slot of the body is reached from the head through the body, so has a state by now.
            var s = states[pc]!;
            var i = code[pc];
            int next = pc + (i.Op == Op.Lddw ? 2 : 1);
            switch (i.Op)
            {
                case Op.Exit or Op.Illegal:
                    break;
                case Op.Ja:
                    if (!Arrive(i.Off, s)) return false;
                    break;
                case >= Op.Jeq64Imm and <= Op.Jsle32Reg:
                {
                    var taken = s.Clone();
                    Refine(i, taken, s);
                    if (!Arrive(i.Off, taken) || !Arrive(next, s)) return false;
                    break;
                }
                default:
                    Assign(i, s);
                    if (!Arrive(next, s)) return false;
                    break;
            }
        }
        return candidates is { Count: > 0 } || down is { Count: > 0 };
    }

    /// <summary>What an instruction that is not a jump leaves in the register it writes.</summary>
    private static void Assign(DecodedInsn i, State s)
    {
        int d = i.Dst;
        switch (i.Op)
        {
            case >= Op.StB and <= Op.StxDW or Op.Nop:
                return;
            case Op.Atomic32 or Op.Atomic64:
                if (i.Src <= 9) s.R[i.Src] = Val.Unknown;
                s.R[0] = Val.Unknown;
                return;
        }
        if (d > 9) return;
        var src = i.Src <= 9 ? s.R[i.Src] : Val.Unknown;
        s.R[d] = i.Op switch
        {
            Op.Mov64Imm => new Val { Origin = Zero, Delta = i.Imm },
            Op.Lddw => new Val { Origin = Zero, Delta = i.Imm },
            Op.Mov64Reg => src,
            Op.Add64Imm => Move(s.R[d], i.Imm),
            Op.Sub64Imm => Move(s.R[d], -i.Imm),
            Op.Add64Reg when src.Origin == Zero && i.Src != d => Move(s.R[d], src.Delta),
            Op.Sub64Reg when src.Origin == Zero && i.Src != d => Move(s.R[d], -src.Delta),
            _ => Val.Unknown,
        };
    }

    private static Val Move(Val v, long k) =>
        v.Origin >= 0 && Small(k) && Small(v.Delta) && Small(v.Delta + k) ? v with { Delta = v.Delta + k } : Val.Unknown;

    private static bool Small(long v) => v > -MaxDelta && v < MaxDelta;

    /// <summary>64-bit unsigned comparisons of a register with r2 (which holds L in the body): the side
    /// where the register is at most L learns it.</summary>
    private static void Refine(DecodedInsn i, State taken, State fallthrough)
    {
        int form = (i.Op - Op.Jeq64Imm) % 4;
        if (form != 1) return; // 64-bit, register against register
        var cond = (Op)((int)i.Op - form);
        if (i.Src == 2 && i.Dst != 2)
        {
            switch (cond)
            {
                case Op.Jlt64Imm or Op.Jle64Imm: taken.AtMostL(i.Dst); break;     // x < L, x <= L
                case Op.Jgt64Imm or Op.Jge64Imm: fallthrough.AtMostL(i.Dst); break; // not x > L, not x >= L
            }
        }
        else if (i.Dst == 2 && i.Src != 2)
        {
            switch (cond)
            {
                case Op.Jgt64Imm or Op.Jge64Imm: taken.AtMostL(i.Src); break;     // L > x, L >= x
                case Op.Jlt64Imm or Op.Jle64Imm: fallthrough.AtMostL(i.Src); break; // not L < x, not L <= x
            }
        }
    }

    /// <summary>A stack of ints kept between searches (no allocation per search, and its operations inlined).</summary>
    private sealed class IntStack
    {
        private int[] _items = new int[16];
        public int Count;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Push(int value)
        {
            if (Count == _items.Length) Array.Resize(ref _items, Count * 2);
            _items[Count++] = value;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Pop() => _items[--Count];

        public void Clear() => Count = 0;
    }
}
