namespace Rbpf.Programs;

/// <summary>A field of a kernel context structure as programs see it, and where the engine keeps it.</summary>
/// <param name="Name">The field's name (<c>data_end</c>).</param>
/// <param name="Offset">Its offset in the structure programs are compiled against.</param>
/// <param name="Size">Its size there (4 for the kernel's u32 pointer fields).</param>
/// <param name="RealOffset">Its offset in the context the engine builds.</param>
/// <param name="IsPointer">A pointer (read only whole: the load becomes an 8-byte load of the real pointer).</param>
/// <param name="Writable">Programs may store to it.</param>
internal readonly record struct ContextField(string Name, int Offset, int Size, int RealOffset, bool IsPointer, bool Writable);

/// <summary>
/// What the kernel's verifier does to context accesses, at load time: follows which registers and
/// stack slots hold the context pointer (r1 at entry; copies, spills and fills keep it; anything
/// else makes a register something else), rewrites each load from a context field into a load of
/// the engine's own context (a pointer field's 32-bit load into a 64-bit load of the real pointer),
/// and refuses with the instruction and the field what the kernel refuses: a field the type does
/// not have, a narrow or misaligned read of a pointer field, a write to a read-only field, an
/// access through a context pointer moved by arithmetic, or a register that may or may not hold it.
/// </summary>
internal static class ContextRewriter
{
    /// <summary>What a register or stack slot holds: nothing known yet, anything else, the context,
    /// the context moved by arithmetic, what a call or legacy packet load left in r1-r5 (which the
    /// kernel refuses to read: here it may still be the context's address), or different things on
    /// different paths.</summary>
    private enum Kind : byte { Unset, Other, Context, Moved, Clobbered, Mixed }

    private static Kind Join(Kind a, Kind b) => a == Kind.Unset ? b : b == Kind.Unset ? a : a == b ? a : Kind.Mixed;

    private sealed class State
    {
        public readonly Kind[] Regs = new Kind[11];
        public readonly Dictionary<int, Kind> Slots = new(); // 8-byte stack slots below r10 holding the context

        public State Clone()
        {
            var s = new State();
            Regs.CopyTo(s.Regs, 0);
            foreach (var (k, v) in Slots) s.Slots[k] = v;
            return s;
        }

        /// <summary>Merges <paramref name="other"/> in; true when this changed.</summary>
        public bool Merge(State other)
        {
            bool changed = false;
            for (int r = 0; r < 11; r++)
            {
                var j = Join(Regs[r], other.Regs[r]);
                if (j != Regs[r]) { Regs[r] = j; changed = true; }
            }
            foreach (var key in Slots.Keys.Union(other.Slots.Keys).ToList())
            {
                var a = Slots.TryGetValue(key, out var x) ? x : Kind.Other;
                var b = other.Slots.TryGetValue(key, out var y) ? y : Kind.Other;
                var j = Join(a, b);
                if (!Slots.TryGetValue(key, out var old) || old != j) { Slots[key] = j; changed = true; }
            }
            return changed;
        }
    }

    private static RbpfException Bad(int pc, string message) =>
        new(RbpfErrorCode.InvalidProgram, $"insn #{pc}: {message}", pc) { Check = VerifierCheck.ContextAccess };

    /// <summary>Rewrites the context accesses of <paramref name="insns"/> (in place) for <paramref name="typeName"/>'s <paramref name="fields"/>.</summary>
    public static void Rewrite(Instruction[] insns, IReadOnlyList<ContextField> fields, string typeName, string structName)
    {
        int n = insns.Length;
        var states = new State?[n];
        var entry = new State();
        for (int r = 0; r < 11; r++) entry.Regs[r] = Kind.Other;
        entry.Regs[1] = Kind.Context;
        states[0] = entry;
        var work = new Stack<int>();
        work.Push(0);
        var rewrites = new Dictionary<int, Instruction>();

        void Flow(int target, State s)
        {
            if (target < 0 || target >= n) return;
            if (states[target] == null) { states[target] = s.Clone(); work.Push(target); }
            else if (states[target]!.Merge(s)) work.Push(target);
        }

        ContextField Field(int pc, int off, int size, bool write, string reg)
        {
            foreach (var f in fields)
            {
                if (off < f.Offset || off >= f.Offset + f.Size) continue;
                if (write && !f.Writable) throw Bad(pc, $"write to {structName}.{f.Name}, which is read-only for {typeName} programs");
                if (f.IsPointer && (off != f.Offset || size != f.Size))
                    throw Bad(pc, $"{size}-byte access at offset {off - f.Offset} of {structName}.{f.Name}: a pointer field is read whole ({f.Size} bytes)");
                if (off + size > f.Offset + f.Size || (off - f.Offset) % size != 0)
                    throw Bad(pc, $"{size}-byte access at offset {off} of {structName} crosses or misaligns field {f.Name}");
                return f;
            }
            throw Bad(pc, $"{typeName} programs have no {structName} field at offset {off} ({size}-byte {(write ? "store" : "load")} through {reg})");
        }

        while (work.Count > 0)
        {
            int pc = work.Pop();
            var s = states[pc]!.Clone();
            var i = insns[pc];
            byte op = i.Opcode;
            int cls = op & 7;
            int size = (op & 0x18) switch { Isa.SizeB => 1, Isa.SizeH => 2, Isa.SizeW => 4, _ => 8 };
            int next = pc + 1;

            // The kernel keeps r10-based accesses inside the 512-byte frame below r10.
            void StackOffset(int at, int off, int bytes)
            {
                if (off >= 0 || off < -Isa.StackFrameSize || off + bytes > 0)
                    throw Bad(at, $"{bytes}-byte stack access at r10{(off < 0 ? "" : "+")}{off} is outside the frame [r10-{Isa.StackFrameSize}, r10)");
            }

            void CheckBase(int reg, bool write, out bool isContext)
            {
                isContext = false;
                switch (s.Regs[reg])
                {
                    case Kind.Context: isContext = true; break;
                    case Kind.Moved: throw Bad(pc, $"access through r{reg}, the context pointer moved by arithmetic (the kernel refuses it)");
                    case Kind.Clobbered: throw Bad(pc, $"access through r{reg}, which a helper call or legacy packet load left undefined (the kernel refuses to read it)");
                    case Kind.Mixed: throw Bad(pc, $"r{reg} holds the context on some paths and not on others");
                }
            }

            switch (cls)
            {
                case Isa.ClassAlu:
                case Isa.ClassAlu64:
                {
                    int code = op & 0xf0;
                    bool reg = (op & Isa.SourceX) != 0;
                    if (cls == Isa.ClassAlu64 && code == Isa.OpMov && reg && i.Offset == 0) s.Regs[i.Dst] = s.Regs[i.Src];
                    else if (reg && s.Regs[i.Src] is Kind.Context or Kind.Moved)
                        s.Regs[i.Dst] = Kind.Moved; // a value made from the context's address is not a pointer a program may use
                    else if (code == Isa.OpMov) s.Regs[i.Dst] = reg && s.Regs[i.Src] == Kind.Clobbered ? Kind.Clobbered : Kind.Other;
                    else if (s.Regs[i.Dst] is Kind.Context or Kind.Moved) s.Regs[i.Dst] = Kind.Moved;
                    else if (s.Regs[i.Dst] is Kind.Clobbered or Kind.Mixed) { /* stays what it was */ }
                    else s.Regs[i.Dst] = reg && s.Regs[i.Src] == Kind.Clobbered ? Kind.Clobbered : Kind.Other;
                    break;
                }
                case Isa.ClassLd:
                    if (op == Isa.Lddw) { s.Regs[i.Dst] = Kind.Other; next = pc + 2; }
                    else
                    {
                        if (typeName == "XDP") throw Bad(pc, "legacy packet loads (LD_ABS, LD_IND) are not allowed in XDP programs");
                        // The kernel's meaning here (the engine gives it for these types): network byte
                        // order, a load outside the packet ends the program with 0; no 8-byte form.
                        if ((op & 0x18) == Isa.SizeDW) throw Bad(pc, "an 8-byte LD_ABS or LD_IND does not exist for the kernel");
                        s.Regs[0] = Kind.Other;
                        for (int r = 1; r <= 5; r++) s.Regs[r] = Kind.Clobbered;
                    }
                    break;
                case Isa.ClassLdx:
                {
                    if (i.Src == Isa.FramePointer)
                    {
                        StackOffset(pc, i.Offset, size);
                        s.Regs[i.Dst] = size == 8 && s.Slots.TryGetValue(i.Offset, out var k) ? k : Kind.Other;
                        break;
                    }
                    CheckBase(i.Src, write: false, out bool ctx);
                    if (ctx)
                    {
                        var f = Field(pc, i.Offset, size, write: false, $"r{i.Src}");
                        bool sx = (op & 0xe0) == Isa.ModeMemSx;
                        if (f.IsPointer)
                            rewrites[pc] = new Instruction((byte)(Isa.ClassLdx | Isa.ModeMem | Isa.SizeDW), i.Dst, i.Src, (short)f.RealOffset, 0);
                        else
                            rewrites[pc] = new Instruction(op, i.Dst, i.Src, (short)(f.RealOffset + (i.Offset - f.Offset)), 0);
                        _ = sx;
                    }
                    s.Regs[i.Dst] = Kind.Other;
                    break;
                }
                case Isa.ClassSt:
                case Isa.ClassStx:
                {
                    bool atomic = cls == Isa.ClassStx && (op & 0xe0) == Isa.ModeAtomic;
                    if (i.Dst == Isa.FramePointer)
                    {
                        StackOffset(pc, i.Offset, size);
                        // A spill of the context keeps it; anything else written over a slot clears it.
                        foreach (var key in s.Slots.Keys.ToList())
                            if (key < i.Offset + size && i.Offset < key + 8) s.Slots.Remove(key);
                        if (cls == Isa.ClassStx && !atomic && size == 8 && s.Regs[i.Src] is Kind.Context or Kind.Mixed or Kind.Moved or Kind.Clobbered)
                            s.Slots[i.Offset] = s.Regs[i.Src];
                        if (atomic && (i.Imm & Isa.AtomicFetch) != 0) s.Regs[i.Imm == Isa.AtomicCmpXchg ? 0 : i.Src] = Kind.Other;
                        break;
                    }
                    CheckBase(i.Dst, write: true, out bool ctx);
                    if (ctx)
                    {
                        if (atomic) throw Bad(pc, $"atomic operation on the {structName} context");
                        var f = Field(pc, i.Offset, size, write: true, $"r{i.Dst}");
                        rewrites[pc] = new Instruction(op, i.Dst, i.Src, (short)(f.RealOffset + (i.Offset - f.Offset)), i.Imm);
                    }
                    if (atomic && (i.Imm & Isa.AtomicFetch) != 0) s.Regs[i.Imm == Isa.AtomicCmpXchg ? 0 : i.Src] = Kind.Other;
                    break;
                }
                default: // jumps, calls, exit
                {
                    if (op == Isa.Exit) { next = -1; break; }
                    if (op == Isa.Call || op == Isa.CallX)
                    {
                        if (op == Isa.Call && i.Src == Isa.PseudoCallLocal)
                        {
                            // The callee starts with the arguments' kinds and a stack of its own.
                            var callee = new State();
                            for (int r = 0; r < 11; r++) callee.Regs[r] = r is >= 1 and <= 5 ? s.Regs[r] : Kind.Other;
                            Flow(pc + 1 + i.Imm, callee);
                        }
                        s.Regs[0] = Kind.Other;
                        for (int r = 1; r <= 5; r++) s.Regs[r] = Kind.Clobbered;
                        break;
                    }
                    int code = op & 0xf0;
                    if (op == Isa.Ja) { Flow(pc + 1 + i.Offset, s); next = -1; break; }
                    if (op == Isa.Ja32) { Flow(pc + 1 + i.Imm, s); next = -1; break; }
                    _ = code;
                    Flow(pc + 1 + i.Offset, s);
                    break;
                }
            }
            if (next >= 0) Flow(next, s);
        }
        foreach (var (pc, insn) in rewrites) insns[pc] = insn;
    }
}
