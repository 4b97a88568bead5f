namespace Rbpf.Jit;

/// <summary>
/// Which registers a straight-line instruction reads and writes, for the backends' peepholes that
/// leave out a value nothing reads. Conservative: what ends a block or uses registers implicitly
/// (jumps, calls, exit, packet loads, atomics, illegal slots) is not classified, and callers take
/// it as reading every register.
/// </summary>
internal static class RegisterUse
{
    /// <summary>The registers <paramref name="i"/> reads and writes (bit n for rn); false when it is not straight-line.</summary>
    public static bool Of(in DecodedInsn i, out int reads, out int writes)
    {
        int d = 1 << i.Dst, s = 1 << i.Src;
        reads = 0;
        writes = 0;
        switch (i.Op)
        {
            case Op.Mov64Imm or Op.Mov32Imm or Op.Lddw:
                writes = d;
                return true;
            case Op.Mov64Reg or Op.Mov32Reg or >= Op.MovSx64From8 and <= Op.MovSx32From16:
            case >= Op.LdxB and <= Op.LdxSW:
                reads = s;
                writes = d;
                return true;
            case Op.Neg64 or Op.Neg32 or Op.Zext16 or Op.Zext32 or Op.Swap16 or Op.Swap32 or Op.Swap64:
                reads = writes = d;
                return true;
            case Op.Nop:
                return true;
            case >= Op.StB and <= Op.StDW:
                reads = d;
                return true;
            case >= Op.StxB and <= Op.StxDW:
                reads = d | s;
                return true;
            case <= Op.SMod32Reg: // the ALU groups: imm64, reg64, imm32, reg32
                reads = ((int)i.Op & 1) != 0 ? d | s : d;
                writes = d;
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// Whether register <paramref name="reg"/> is written before anything reads it, from slot
    /// <paramref name="from"/> on, inside the basic block (<paramref name="blockStarts"/>: nonzero where
    /// a block starts); false when the block ends first or an instruction is not straight-line.
    /// </summary>
    public static bool OverwrittenBeforeRead(DecodedInsn[] code, int[] blockStarts, int reg, int from)
    {
        int bit = 1 << reg;
        for (int k = from; k < code.Length && blockStarts[k] == 0; k++)
        {
            if (!Of(code[k], out int reads, out int writes) || (reads & bit) != 0) return false;
            if ((writes & bit) != 0) return true;
            if (code[k].Op == Op.Lddw) k++; // its second slot
        }
        return false;
    }

    /// <summary>
    /// Whether nothing reads register <paramref name="reg"/> from slot <paramref name="pc"/> on,
    /// whichever way the jumps go: every path writes it first. Follows jumps forward and back for
    /// at most <paramref name="budget"/> slots in all; false when it runs out, or a path reaches
    /// what is not classified (calls, exit, packet loads) before a write. With
    /// <paramref name="exitEndsRun"/> (the program makes no local calls) an exit reads r0 only.
    /// </summary>
    public static bool DeadAt(DecodedInsn[] code, int reg, int pc, ref int budget, bool exitEndsRun = false) =>
        DeadOf(code, 1 << reg, pc, ref budget, exitEndsRun) != 0;

    /// <summary>
    /// <see cref="DeadAt"/> for several registers in one walk: of <paramref name="regs"/> (bit n
    /// for rn), those every path from <paramref name="pc"/> writes before it reads them. The walk
    /// goes on while any of them is undecided, in the order <see cref="DeadAt"/> takes, so for one
    /// register it is the same walk.
    /// </summary>
    public static int DeadOf(DecodedInsn[] code, int regs, int pc, ref int budget, bool exitEndsRun = false)
    {
        int dead = 0; // written first on every path walked so far
        while (regs != 0 && budget-- > 0 && pc >= 0 && pc < code.Length)
        {
            var i = code[pc];
            if (Of(i, out int reads, out int writes))
            {
                regs &= ~reads;
                dead |= regs & writes;
                regs &= ~writes;
                pc += i.Op == Op.Lddw ? 2 : 1;
                continue;
            }
            if (i.Op == Op.Ja)
            {
                pc = i.Off;
                continue;
            }
            if (i.Op is >= Op.Jeq64Imm and <= Op.Jsle32Reg)
            {
                bool byRegister = ((i.Op - Op.Jeq64Imm) & 1) != 0;
                regs &= ~(1 << i.Dst | (byRegister ? 1 << i.Src : 0));
                if (regs != 0) regs = DeadOf(code, regs, i.Off, ref budget, exitEndsRun); // those the taken side writes first
                pc++;
                continue;
            }
            return i.Op == Op.Exit && exitEndsRun ? dead | regs & ~1 : dead;
        }
        return dead;
    }
}
