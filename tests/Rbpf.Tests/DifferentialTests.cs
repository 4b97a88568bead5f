using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Generated programs (random but valid: arithmetic, branches, calls, loads and stores inside and
/// outside the allowed memory) run through the interpreter and the JIT, which must agree on the
/// result, the memory afterwards, or the error, its instruction and its message (<see cref="JitAgreement"/>).
/// </summary>
public class DifferentialTests
{
    [SkippableFact]
    public void InterpreterAndJitAgreeOnGeneratedPrograms()
    {
        Skip.IfNot(EbpfVm.IsJitSupported, "the JIT needs x86-64 Linux, macOS or Windows");
        var rng = new Random(9669);
        int agreedResults = 0, agreedErrors = 0;
        for (int n = 0; n < 3000; n++)
        {
            int memLength = rng.Next(0, 64);
            byte[] prog = Instruction.Encode(ProgramGenerator.Generate(rng, memLength));
            byte[] mem0 = new byte[memLength];
            rng.NextBytes(mem0);
            var (codeI, disagreements) = JitAgreement.Compare(prog, mem0, JitTests.AllOptions);
            Assert.True(disagreements.Count == 0, $"program {n}: {string.Join("\n", disagreements)}");
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
