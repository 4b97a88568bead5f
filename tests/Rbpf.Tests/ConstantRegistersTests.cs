using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>Registers known to hold one constant at a slot on every path (<see cref="ConstantRegisters"/>).</summary>
public class ConstantRegistersTests
{
    private static ulong? At(string text, int pc, int r)
    {
        var code = DecodedProgram.Decode(Assembler.Assemble(text)).Code;
        return ConstantRegisters.Analyze(code).ValueAt(pc, r);
    }

    [Theory]
    // Moves of constants and copies of known registers; lddw's full 64 bits; mov32's zero extension.
    [InlineData("mov r6, -2\nmov r7, r6\nexit", 2, 7, 0xfffffffffffffffeUL)]
    [InlineData("lddw r6, 0x88a129ea80000000\nexit", 2, 6, 0x88a129ea80000000UL)]
    [InlineData("mov32 r6, -1\nexit", 1, 6, 0xffffffffUL)]
    // Kept through a loop that does not write it; the same value on both paths of a branch.
    [InlineData("mov r6, 5\nmov r1, 0\nadd r1, 1\njlt r1, 9, -2\nexit", 2, 6, 5UL)]
    [InlineData("jeq r1, 0, +2\nmov r6, 3\nja +1\nmov r6, 3\nexit", 4, 6, 3UL)]
    // A call clobbers r0-r5, not r6-r9.
    [InlineData("mov r6, 4\nmov r1, 4\ncall 1\nexit", 3, 6, 4UL)]
    public void KnowsConstants(string text, int pc, int r, ulong value)
    {
        Assert.Equal(value, At(text, pc, r));
    }

    [Theory]
    // Written in the loop; different values on two paths; the program's arguments; clobbered by a call;
    // fetched into by an atomic; inside a local function (called from anywhere); after arithmetic.
    [InlineData("mov r6, 5\nadd r6, 1\njlt r6, 9, -2\nexit", 1, 6)]
    [InlineData("jeq r1, 0, +2\nmov r6, 3\nja +1\nmov r6, 4\nexit", 4, 6)]
    [InlineData("exit", 0, 1)]
    [InlineData("mov r1, 4\ncall 1\nexit", 2, 1)]
    [InlineData("mov r7, 4\nlock fetch add64 [r10-8], r7\nexit", 2, 7)]
    [InlineData("mov r6, 4\ncall f\nexit\nf:\nmov r0, r6\nexit", 3, 6)]
    [InlineData("mov r6, 4\nadd r6, 1\nexit", 2, 6)]
    public void DoesNotClaimWhatIsNotKnown(string text, int pc, int r)
    {
        Assert.Null(At(text, pc, r));
    }
}
