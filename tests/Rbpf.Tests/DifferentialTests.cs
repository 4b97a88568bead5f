using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Generated programs (random but valid: arithmetic, branches, calls, loads and stores inside and
/// outside the allowed memory) run through the interpreter and the JIT, which must agree on the
/// result, the memory afterwards, or the error.
/// </summary>
public class DifferentialTests
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

    private static List<Instruction> Generate(Random rng, int memLength)
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
            int kind = rng.Next(100);
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

    [SkippableFact]
    public void InterpreterAndJitAgreeOnGeneratedPrograms()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var rng = new Random(9669);
        int agreedResults = 0, agreedErrors = 0;
        for (int n = 0; n < 3000; n++)
        {
            int memLength = rng.Next(0, 64);
            byte[] prog = Instruction.Encode(Generate(rng, memLength));
            byte[] mem0 = new byte[memLength];
            rng.NextBytes(mem0);
            var vm = EbpfVm.CreateRaw(prog);
            vm.RegisterHelper(1, (a, b, c, d, e) => a * 31 + b * 7 + (c ^ d) + e);

            byte[] memI = mem0.ToArray();
            var codeI = vm.TryExecute(memI, Span<byte>.Empty, out ulong resI, out var errI);
            foreach (var options in JitTests.AllOptions)
            {
                if (!options.CheckedMemory && codeI != RbpfErrorCode.Ok) continue; // unchecked code would really access it
                vm.JitCompile(options);
                byte[] memJ = mem0.ToArray();
                var codeJ = vm.TryExecuteJit(memJ, Span<byte>.Empty, out ulong resJ, out var errJ);
                string where = $"program {n} ({options}):\n{Disassembler.Disassemble(prog)}";
                Assert.True(codeI == codeJ, $"interpreter {codeI} ({errI?.Message}) vs JIT {codeJ} ({errJ?.Message}) for {where}");
                if (codeI == RbpfErrorCode.Ok)
                {
                    Assert.True(resI == resJ, $"interpreter 0x{resI:x} vs JIT 0x{resJ:x} for {where}");
                    Assert.True(memI.AsSpan().SequenceEqual(memJ), $"memory differs for {where}");
                }
                else
                {
                    Assert.True(errI!.InstructionIndex == errJ!.InstructionIndex, $"error at #{errI.InstructionIndex} vs #{errJ.InstructionIndex} for {where}");
                }
            }
            if (codeI == RbpfErrorCode.Ok) agreedResults++; else agreedErrors++;
        }
        Assert.True(agreedResults > 500, $"only {agreedResults} programs ran to a result");
        Assert.True(agreedErrors > 200, $"only {agreedErrors} programs failed");
    }
}

/// <summary>Unverified random programs through the JIT: compiled or refused, then run to the same
/// result or error as the interpreter, never a crash.</summary>
public class JitFuzzTests
{
    [SkippableFact]
    public void RandomUnverifiedProgramsAgreeAndNeverCrash()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var rng = new Random(5150);
        int agreed = 0;
        var stack = GC.AllocateArray<byte>(Isa.StackSize, pinned: true);
        for (int n = 0; n < 20_000; n++)
        {
            var prog = new byte[8 * rng.Next(1, 16)];
            rng.NextBytes(prog);
            for (int k = 0; k < prog.Length; k += 8)
            {
                if (rng.Next(4) != 0) prog[k] = AssemblerTests.KnownOpcodes[rng.Next(AssemblerTests.KnownOpcodes.Length)];
                if (rng.Next(3) != 0) prog[k + 1] = (byte)(rng.Next(11) | (rng.Next(11) << 4));
                if (rng.Next(2) == 0) { prog[k + 2] = (byte)rng.Next(-3, 4); prog[k + 3] = (byte)(prog[k + 2] >= 0x80 ? 0xff : 0); }
            }
            var vm = new EbpfVm(VmKind.Raw);
            vm.SetVerifier(null);
            vm.InstructionLimit = 500;
            vm.RegisterHelper(1, (a, b, _, _, _) => a + b);
            vm.SetProgram(prog);
            // One buffer for both engines, cleared between runs, so results derived from its address agree.
            byte[] mem = new byte[32];
            // And one stack, so programs that branch on r10's value take the same way in both.
            var codeI = RunOn(vm, jit: false, mem, stack, out ulong rI, out var eI);
            var memI = mem.ToArray();
            Array.Clear(mem);
            Array.Clear(stack);
            vm.JitCompile();
            var codeJ = RunOn(vm, jit: true, mem, stack, out ulong rJ, out var eJ);
            // Both engines charge the limit per basic block, so they stop at the same instruction too.
            Assert.True(codeI == codeJ, $"interpreter {codeI} ({eI?.Message}) vs JIT {codeJ} ({eJ?.Message}):\n{Disassembler.Disassemble(prog)}");
            if (codeI == RbpfErrorCode.Ok)
            {
                Assert.True(rI == rJ, $"interpreter {rI} vs JIT {rJ}:\n{Disassembler.Disassemble(prog)}");
                Assert.Equal(memI, mem);
            }
            else Assert.True(eI!.InstructionIndex == eJ!.InstructionIndex, $"{eI.Message} vs {eJ.Message}:\n{Disassembler.Disassemble(prog)}");
            agreed++;
        }
        Assert.True(agreed > 10_000, $"only {agreed} comparable runs");
    }

    private static unsafe RbpfErrorCode RunOn(EbpfVm vm, bool jit, byte[] mem, byte[] stack, out ulong result, out RbpfException? error)
    {
        fixed (byte* m = mem)
        fixed (byte* s = stack)
            return jit
                ? vm.TryExecuteJit(m, (nuint)mem.Length, null, 0, s, (nuint)stack.Length, out result, out error)
                : vm.TryExecute(m, (nuint)mem.Length, null, 0, s, (nuint)stack.Length, out result, out error);
    }
}
