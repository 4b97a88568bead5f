using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>Registers every path writes before it reads them (<see cref="RegisterUse"/>), asked one at a time and several at once.</summary>
public class RegisterUseTests
{
    private static int Dead(string text, int regs, int budget = 64, bool exitEndsRun = false)
    {
        var code = DecodedProgram.Decode(Assembler.Assemble(text)).Code;
        return RegisterUse.DeadOf(code, regs, 0, ref budget, exitEndsRun);
    }

    [Fact]
    public void SeveralRegistersInOneWalkAreEachDecidedOnEveryPath()
    {
        // r3 is written on both sides, r4 read on the taken side only, r5 read by the jump itself,
        // r6 written before the jump.
        const string text = "mov r6, 1\njeq r5, 0, +2\nmov r3, 1\nja +2\nmov r3, r4\nmov r4, 0\nmov r4, 1\nexit";
        Assert.Equal(1 << 3 | 1 << 6, Dead(text, 0b111_1000));
        // Each register alone gives the same answer.
        foreach (int r in new[] { 3, 4, 5, 6 })
        {
            var code = DecodedProgram.Decode(Assembler.Assemble(text)).Code;
            int budget = 64;
            Assert.Equal((1 << 3 | 1 << 6) >> r & 1, RegisterUse.DeadAt(code, r, 0, ref budget) ? 1 : 0);
        }
    }

    [Fact]
    public void AnExitEndsThePathOnlyWhenItEndsTheRun()
    {
        // Nothing after the exit reads r7; r0 is what an exit reads.
        Assert.Equal(1 << 7, Dead("exit", 1 << 7 | 1, exitEndsRun: true));
        Assert.Equal(0, Dead("exit", 1 << 7 | 1));
        // Unclassified instructions (a helper call) read everything.
        Assert.Equal(1 << 2, Dead("mov r2, 1\ncall 1\nmov r3, 0\nexit", 1 << 2 | 1 << 3));
    }

    [Fact]
    public void AWalkThatRunsOutOfItsBudgetDecidesNothingMore()
    {
        // r8 is written first, but only after a loop the walk follows round until its budget ends.
        const string text = "mov r1, 0\nadd r1, 1\njlt r1, 100, -2\nmov r8, 0\nexit";
        Assert.Equal(0, Dead(text, 1 << 8, budget: 64));
        // Past 70 slots that do not name it: decided with budget enough.
        string straight = string.Concat(Enumerable.Repeat("add r1, 1\n", 70)) + "mov r8, 0\nexit";
        Assert.Equal(0, Dead(straight, 1 << 8, budget: 64));
        Assert.Equal(1 << 8, Dead(straight, 1 << 8, budget: 71));
        // r1 is decided at the first slot, r8 never.
        Assert.Equal(1 << 1, Dead(text, 1 << 8 | 1 << 1, budget: 64));
        Assert.Equal(0, Dead(text, 1 << 8 | 1 << 1, budget: 0));
    }

    /// <summary>On generated programs (forward branches, calls, loads, stores), the walk over all ten
    /// registers at once finds exactly the registers each walk of its own finds, where those walks
    /// end inside their budgets (the walk for all takes no more steps than theirs together).</summary>
    [Fact]
    public void OneWalkForAllAgreesWithAWalkForEachOnGeneratedPrograms()
    {
        var rng = new Random(17);
        int programs = 0, deadFound = 0;
        for (int n = 0; n < 300; n++)
        {
            var code = DecodedProgram.Decode(Instruction.Encode(ProgramGenerator.Generate(rng, 64))).Code;
            for (int pc = 0; pc < code.Length; pc += 3)
            {
                int expected = 0, steps = 0;
                bool decided = true;
                for (int r = 0; r <= 9; r++)
                {
                    int one = 2000;
                    if (RegisterUse.DeadAt(code, r, pc, ref one, exitEndsRun: true)) expected |= 1 << r;
                    decided &= one > 0;
                    steps += 2000 - one;
                }
                if (!decided) continue;
                int budget = steps;
                Assert.Equal(expected, RegisterUse.DeadOf(code, 0x3ff, pc, ref budget, exitEndsRun: true));
                deadFound += System.Numerics.BitOperations.PopCount((uint)expected);
            }
            programs++;
        }
        Assert.True(deadFound > 100, $"only {deadFound} dead registers in {programs} programs: the comparison tells little");
    }
}
