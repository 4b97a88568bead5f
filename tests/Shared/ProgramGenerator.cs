namespace Rbpf.Tests;

/// <summary>
/// Random but valid programs (arithmetic, branches, calls, loads and stores inside and outside the
/// allowed memory) for differential tests: shared by the xunit suite and the AArch64 driver.
/// r6 holds the input's address; helper 1 is called; local calls go to a small function at the end;
/// jumps go forward only, so every program ends.
/// </summary>
internal static class ProgramGenerator
{
    private static readonly byte[] AluOps =
    {
        Isa.OpAdd, Isa.OpSub, Isa.OpMul, Isa.OpDiv, Isa.OpOr, Isa.OpAnd, Isa.OpLsh, Isa.OpRsh, Isa.OpMod,
        Isa.OpXor, Isa.OpMov, Isa.OpArsh,
    };

    private static readonly byte[] JumpOps =
    {
        Isa.OpJeq, Isa.OpJgt, Isa.OpJge, Isa.OpJset, Isa.OpJne, Isa.OpJsgt, Isa.OpJsge, Isa.OpJlt, Isa.OpJle,
        Isa.OpJslt, Isa.OpJsle,
    };

    /// <summary>A data register: r0-r9 but r6, which holds the input's address (host addresses differ
    /// between runs, so they stay out of the data).</summary>
    private static int Reg(Random rng)
    {
        int r = rng.Next(0, 9);
        return r >= 6 ? r + 1 : r;
    }

    private static int Imm(Random rng) => rng.Next(6) switch
    {
        0 => 0,
        1 => -1,
        2 => rng.Next(-8, 70),
        3 => int.MinValue,
        _ => rng.Next(int.MinValue, int.MaxValue),
    };

    public static List<Instruction> Generate(Random rng, int memLength)
    {
        var p = new List<Instruction>();
        // r6 points at the input; every other register starts random.
        p.Add(new Instruction(Isa.ClassAlu64 | Isa.OpMov | Isa.SourceX, 6, 1, 0, 0));
        foreach (int r in new[] { 0, 1, 2, 3, 4, 5, 7, 8, 9 })
        {
            ulong v = (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 40);
            p.Add(new Instruction(Isa.Lddw, r, 0, 0, (int)(uint)v));
            p.Add(new Instruction(0, 0, 0, 0, (int)(uint)(v >> 32)));
        }
        int body = rng.Next(5, 40);
        bool withCall = rng.Next(3) == 0;
        var jumpsToPatch = new List<int>();
        for (int k = 0; k < body; k++)
        {
            int kind = rng.Next(120);
            if (kind >= 100)
            {
                Idiom(rng, p, jumpsToPatch, memLength);
                continue;
            }
            if (kind < 45)
            {
                bool is64 = rng.Next(2) == 0, reg = rng.Next(2) == 0;
                byte op = AluOps[rng.Next(AluOps.Length)];
                short off = (short)((op == Isa.OpDiv || op == Isa.OpMod) && rng.Next(2) == 0 ? 1 : 0);
                int dst = Reg(rng);
                if (dst == 6) dst = 0; // keep the input pointer
                byte opcode = (byte)((is64 ? Isa.ClassAlu64 : Isa.ClassAlu) | op | (reg ? Isa.SourceX : 0));
                p.Add(new Instruction(opcode, dst, reg ? Reg(rng) : 0, off, reg ? 0 : Imm(rng)));
            }
            else if (kind < 50)
            {
                int dst = Reg(rng); if (dst == 6) dst = 0;
                int w = new[] { 16, 32, 64 }[rng.Next(3)];
                byte opcode = rng.Next(3) switch { 0 => 0xd4, 1 => 0xdc, _ => 0xd7 };
                p.Add(new Instruction(opcode, dst, 0, 0, w));
            }
            else if (kind < 55)
            {
                int dst = Reg(rng); if (dst == 6) dst = 0;
                (byte opc, short off) = rng.Next(5) switch
                {
                    0 => ((byte)0xbf, (short)8), 1 => ((byte)0xbf, (short)16), 2 => ((byte)0xbf, (short)32),
                    3 => ((byte)0xbc, (short)8), _ => ((byte)0xbc, (short)16),
                };
                p.Add(new Instruction(opc, dst, Reg(rng), off, 0));
            }
            else if (kind < 75)
            {
                // Memory: through the input pointer or the stack, mostly inside, sometimes not.
                bool stack = rng.Next(2) == 0;
                int size = new[] { 1, 2, 4, 8 }[rng.Next(4)];
                byte sizeBits = size switch { 1 => Isa.SizeB, 2 => Isa.SizeH, 4 => Isa.SizeW, _ => Isa.SizeDW };
                int off = stack ? rng.Next(-520, 4) : rng.Next(-4, memLength + 4);
                if (rng.Next(4) != 0) off = stack ? -size * rng.Next(1, 512 / size + 1) : size * rng.Next(0, Math.Max(1, memLength / size));
                int baseReg = stack ? 10 : 6;
                switch (rng.Next(5))
                {
                    case 0: p.Add(new Instruction((byte)(Isa.ClassLdx | Isa.ModeMem | sizeBits), Reg(rng) is var d && d != 6 ? d : 0, baseReg, (short)off, 0)); break;
                    case 1 when size != 8: p.Add(new Instruction((byte)(Isa.ClassLdx | Isa.ModeMemSx | sizeBits), 0, baseReg, (short)off, 0)); break;
                    case 2: p.Add(new Instruction((byte)(Isa.ClassSt | Isa.ModeMem | sizeBits), baseReg, 0, (short)off, Imm(rng))); break;
                    case 3 when size >= 4:
                        int[] atomics = { 0x00, 0x40, 0x50, 0xa0, 0x01, 0x41, 0x51, 0xa1, 0xe1, 0xf1 };
                        p.Add(new Instruction((byte)(Isa.ClassStx | Isa.ModeAtomic | sizeBits), baseReg, Reg(rng) is var s && s != 6 ? s : 2, (short)off, atomics[rng.Next(atomics.Length)]));
                        break;
                    default: p.Add(new Instruction((byte)(Isa.ClassStx | Isa.ModeMem | sizeBits), baseReg, Reg(rng), (short)off, 0)); break;
                }
            }
            else if (kind < 90)
            {
                bool is32 = rng.Next(3) == 0, reg = rng.Next(2) == 0;
                byte opcode = (byte)((is32 ? Isa.ClassJmp32 : Isa.ClassJmp) | JumpOps[rng.Next(JumpOps.Length)] | (reg ? Isa.SourceX : 0));
                jumpsToPatch.Add(p.Count);
                p.Add(new Instruction(opcode, Reg(rng), reg ? Reg(rng) : 0, 0, reg ? 0 : Imm(rng)));
            }
            else if (kind < 95)
            {
                p.Add(new Instruction(Isa.Call, 0, 0, 0, 1)); // helper 1
            }
            else if (withCall)
            {
                jumpsToPatch.Add(-p.Count - 1); // a local call, patched to the function below
                p.Add(new Instruction(Isa.Call, 0, Isa.PseudoCallLocal, 0, 0));
            }
        }
        p.Add(new Instruction(Isa.Exit, 0, 0, 0, 0));
        int function = p.Count;
        if (withCall)
        {
            p.Add(new Instruction(Isa.ClassAlu64 | Isa.OpMul | Isa.SourceX, 0, 1, 0, 0));
            p.Add(new Instruction(Isa.ClassSt | Isa.ModeMem | Isa.SizeDW, 10, 0, -8, 7));
            p.Add(new Instruction(Isa.ClassLdx | Isa.ModeMem | Isa.SizeDW, 7, 10, -8, 0));
            p.Add(new Instruction(Isa.ClassAlu64 | Isa.OpAdd | Isa.SourceX, 0, 7, 0, 0));
            p.Add(new Instruction(Isa.Exit, 0, 0, 0, 0));
        }
        // Forward jumps only (to a later instruction of the body or the exit), so every program ends.
        foreach (int at in jumpsToPatch)
        {
            if (at < 0)
            {
                int c = -at - 1;
                p[c] = new Instruction(Isa.Call, 0, Isa.PseudoCallLocal, 0, function - (c + 1));
                continue;
            }
            var j = p[at];
            int target = rng.Next(at + 1, function);
            p[at] = new Instruction(j.Opcode, j.Dst, j.Src, (short)(target - (at + 1)), j.Imm);
        }
        return p;
    }

    private static readonly byte[] ThreeOperandOps = { Isa.OpAdd, Isa.OpSub, Isa.OpMul, Isa.OpOr, Isa.OpAnd, Isa.OpLsh, Isa.OpRsh, Isa.OpXor, Isa.OpArsh };

    /// <summary>
    /// A sequence as clang writes them, which the interpreter runs fused (<see cref="DecodedProgram"/>'s
    /// Fuse): registers drawn at random so that they sometimes coincide, offsets mostly inside the input
    /// (through r6) or the stack frame (through r10), immediates at the edges too. The jump of a set
    /// and jump goes forward, patched with the others.
    /// </summary>
    private static void Idiom(Random rng, List<Instruction> p, List<int> jumpsToPatch, int memLength)
    {
        int d = Reg(rng), s = Reg(rng), t = Reg(rng);
        byte SizeBits(int size) => size switch { 1 => Isa.SizeB, 2 => Isa.SizeH, 4 => Isa.SizeW, _ => Isa.SizeDW };
        (int Base, short Off) Place(int size)
        {
            bool stack = rng.Next(2) == 0;
            int off = stack ? -size * rng.Next(1, 512 / size + 1) : size * rng.Next(0, Math.Max(1, memLength / size));
            if (rng.Next(8) == 0) off += rng.Next(-9, 10); // now and then across an edge
            return (stack ? 10 : 6, (short)off);
        }
        Instruction Load(int size, int dst, int baseReg, short off) => new((byte)(Isa.ClassLdx | Isa.ModeMem | SizeBits(size)), dst, baseReg, off, 0);
        Instruction Alu(bool is64, byte op, int dst, int src, int imm, bool reg) =>
            new((byte)((is64 ? Isa.ClassAlu64 : Isa.ClassAlu) | op | (reg ? Isa.SourceX : 0)), dst, reg ? src : 0, 0, reg ? 0 : imm);
        Instruction Swap(int dst, int bits) => new(Isa.ClassAlu | Isa.OpEnd | Isa.SourceX, dst, 0, 0, bits); // be
        switch (rng.Next(8))
        {
            case 0: // mov d, s; op d, x
            {
                bool mov64 = rng.Next(2) == 0, op64 = rng.Next(2) == 0, reg = rng.Next(2) == 0;
                byte op = ThreeOperandOps[rng.Next(ThreeOperandOps.Length)];
                int imm = op is Isa.OpLsh or Isa.OpRsh or Isa.OpArsh ? rng.Next(op64 ? 64 : 32) : Imm(rng);
                p.Add(Alu(mov64, Isa.OpMov, d, s, 0, true));
                p.Add(Alu(op64, op, d, t, imm, reg));
                break;
            }
            case 1: // t = a small index; d = r6 + t; x = [d + off] (and its swap)
            {
                int size = new[] { 1, 2, 4, 8 }[rng.Next(4)];
                p.Add(Alu(true, Isa.OpMov, t, 0, rng.Next(0, Math.Max(1, memLength)), false));
                p.Add(Alu(true, Isa.OpMov, d, 6, 0, true));
                p.Add(Alu(true, Isa.OpAdd, d, t, 0, true));
                p.Add(Load(size, s, d, (short)rng.Next(-4, 4)));
                if (size > 1 && rng.Next(2) == 0) p.Add(Swap(s, size * 8));
                p.Add(Alu(true, Isa.OpMov, d, 0, 0, false)); // d held an address, which differs between runs
                break;
            }
            case 2: // one register set (mov, mov of a constant, add or sub of one), then a conditional jump
            {
                p.Add(rng.Next(5) switch
                {
                    0 => Alu(true, Isa.OpMov, d, s, 0, true),
                    1 => Alu(true, Isa.OpMov, d, 0, Imm(rng), false),
                    2 => Alu(false, Isa.OpMov, d, 0, Imm(rng), false),
                    3 => Alu(true, Isa.OpAdd, d, 0, Imm(rng), false),
                    _ => Alu(true, Isa.OpSub, d, 0, Imm(rng), false),
                });
                bool is32 = rng.Next(3) == 0, reg = rng.Next(2) == 0;
                int left = rng.Next(3) == 0 ? t : d, right = rng.Next(2) == 0 ? d : s;
                jumpsToPatch.Add(p.Count);
                p.Add(new Instruction((byte)((is32 ? Isa.ClassJmp32 : Isa.ClassJmp) | JumpOps[rng.Next(JumpOps.Length)] | (reg ? Isa.SourceX : 0)),
                    left, reg ? right : 0, 0, reg ? 0 : Imm(rng)));
                break;
            }
            case 3: // a counter in memory: x = [b + off]; x += t or k; [b + off] = x
            {
                var (b, off) = Place(8);
                p.Add(Load(8, d, b, off));
                p.Add(Alu(true, Isa.OpAdd, d, t, Imm(rng), rng.Next(2) == 0));
                p.Add(new Instruction(Isa.ClassStx | Isa.ModeMem | Isa.SizeDW, b, d, off, 0));
                break;
            }
            case 4: // a sign-extending load as clang writes it before v4
            {
                int size = new[] { 1, 2, 4 }[rng.Next(3)];
                var (b, off) = Place(size);
                int shift = rng.Next(6) == 0 ? rng.Next(64) : 64 - 8 * size;
                p.Add(Load(size, d, b, off));
                p.Add(Alu(true, Isa.OpLsh, d, 0, shift, false));
                p.Add(Alu(true, Isa.OpArsh, d, 0, rng.Next(6) == 0 ? rng.Next(64) : shift, false));
                break;
            }
            case 5: // a big-endian field read signed
            {
                int size = rng.Next(2) == 0 ? 2 : 4;
                var (b, off) = Place(size);
                p.Add(Load(size, d, b, off));
                p.Add(Swap(d, 64));
                p.Add(Alu(true, Isa.OpArsh, d, 0, rng.Next(64), false));
                break;
            }
            case 6: // mov + byte swap
                p.Add(Alu(true, Isa.OpMov, d, s, 0, true));
                p.Add(Swap(d, new[] { 16, 32, 64 }[rng.Next(3)]));
                break;
            default: // a load and the swap of its width
            {
                int size = new[] { 2, 4, 8 }[rng.Next(3)];
                var (b, off) = Place(size);
                p.Add(Load(size, d, b, off));
                p.Add(Swap(d, size * 8));
                break;
            }
        }
    }
}
