namespace Rbpf.Jit;

/// <summary>
/// Registers that hold the same constant at a slot whichever way control got there (clang loads
/// 64-bit constants into registers before a loop and keeps them there), for the backends'
/// peepholes that need an operand's value. A forward analysis to a fixed point: a register is
/// known after a move of a constant (or of a known register) until something else writes it;
/// local functions start with nothing known, and calls clobber r0-r5.
/// </summary>
internal sealed class ConstantRegisters
{
    private readonly ulong[] _values; // 10 per slot
    private readonly ushort[] _known; // bit r: r's value at the slot is _values[10 * slot + r]
    private readonly bool[] _reached;

    private ConstantRegisters(int n)
    {
        _values = new ulong[10 * n];
        _known = new ushort[n];
        _reached = new bool[n];
    }

    /// <summary>r<paramref name="r"/>'s value before slot <paramref name="pc"/> runs, when it is the same constant on every path there.</summary>
    public ulong? ValueAt(int pc, int r) =>
        r < 10 && _reached[pc] && (_known[pc] & 1 << r) != 0 ? _values[10 * pc + r] : null;

    public static ConstantRegisters Analyze(DecodedInsn[] code)
    {
        int n = code.Length;
        var result = new ConstantRegisters(n);
        var work = new Stack<int>();
        var values = new ulong[10];
        // Slot 0 and every local function start with nothing known.
        void Enter(int pc, ushort known, ReadOnlySpan<ulong> v)
        {
            if (pc < 0 || pc >= n) return;
            var at = result._values.AsSpan(10 * pc, 10);
            if (!result._reached[pc])
            {
                result._reached[pc] = true;
                result._known[pc] = known;
                v.CopyTo(at);
                work.Push(pc);
                return;
            }
            ushort meet = (ushort)(result._known[pc] & known);
            for (int r = 0; r < 10; r++)
                if ((meet & 1 << r) != 0 && at[r] != v[r]) meet &= (ushort)~(1 << r);
            if (meet != result._known[pc])
            {
                result._known[pc] = meet;
                work.Push(pc);
            }
        }
        Enter(0, 0, values);
        foreach (var i in code)
            if (i.Op == Op.CallLocal) Enter(i.Off, 0, values);
        while (work.Count > 0)
        {
            int pc = work.Pop();
            var i = code[pc];
            ushort known = result._known[pc];
            result._values.AsSpan(10 * pc, 10).CopyTo(values);
            int next = pc + (i.Op == Op.Lddw ? 2 : 1);
            switch (i.Op)
            {
                case Op.Exit or Op.Illegal:
                    continue;
                case Op.Ja:
                    Enter(i.Off, known, values);
                    continue;
                case >= Op.Jeq64Imm and <= Op.Jsle32Reg:
                    Enter(i.Off, known, values);
                    Enter(next, known, values);
                    continue;
                case Op.Mov64Imm or Op.Lddw when i.Dst < 10:
                    values[i.Dst] = (ulong)i.Imm;
                    known |= (ushort)(1 << i.Dst);
                    break;
                case Op.Mov32Imm when i.Dst < 10:
                    values[i.Dst] = (uint)i.Imm;
                    known |= (ushort)(1 << i.Dst);
                    break;
                case Op.Mov64Reg when i.Dst < 10 && i.Src < 10 && (known & 1 << i.Src) != 0:
                    values[i.Dst] = values[i.Src];
                    known |= (ushort)(1 << i.Dst);
                    break;
                case Op.Atomic32 or Op.Atomic64:
                    known &= (ushort)~(1 | 1 << Math.Min((int)i.Src, 15)); // the fetching ones write src, cmpxchg r0
                    break;
                default:
                    if (RegisterUse.Of(i, out _, out int writes)) known &= (ushort)~writes;
                    else known &= 0b1111000000; // calls and packet loads: r6-r9 stay
                    break;
            }
            Enter(next, known, values);
        }
        return result;
    }
}
