using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// The JIT's loop analyses kept in proportion to a program's length on thousands of loops in a row
/// (the loop search grew with the square of the number of loops).
/// </summary>
public class LargeProgramTests
{
    private static void Put(byte[] p, int pc, byte op, int dst, int src, short off, int imm) =>
        new Instruction(op, dst, src, off, imm).WriteTo(p.AsSpan(8 * pc));

    /// <summary>
    /// <paramref name="loops"/> loops in a row, each bounded by the input (r3 counts up to r2, then r0
    /// adds it): the input analysis, then the loop search, as the JIT runs them.
    /// </summary>
    private static byte[] LoopsInARow(int loops)
    {
        var p = new byte[8 * (4 + 4 * loops)];
        int pc = 0;
        Put(p, pc++, 0xb7, 0, 0, 0, 0);                          // mov r0, 0
        Put(p, pc++, 0x55, 2, 0, 1, 0);                          // jne r2, 0, +1
        Put(p, pc++, Isa.Ja32, 0, 0, 0, 4 * loops);              // gotol exit
        for (int k = 0; k < loops; k++)
        {
            Put(p, pc++, 0xb7, 3, 0, 0, 0);                      // mov r3, 0
            Put(p, pc++, 0x07, 3, 0, 0, 1);                      // head: add r3, 1
            Put(p, pc++, 0xad, 3, 2, -2, 0);                     // jlt r3, r2, head
            Put(p, pc++, 0x0f, 0, 3, 0, 0);                      // add r0, r3
        }
        Put(p, pc, Isa.Exit, 0, 0, 0, 0);
        return p;
    }

    [Fact]
    public void TheLoopAnalysesOfThousandsOfLoopsInARowStayLinear()
    {
        const int loops = 4_000; // 16,004 slots
        var program = DecodedProgram.Decode(LoopsInARow(loops));
        int slots = program.Code.Length;
        var facts = InputBounds.Analyze(program.Code);
        Assert.NotNull(facts); // finished within its budget
        // Each loop settles before the code after it is visited: about 33 steps per slot (a stack of
        // pending slots, which followed each loop's first rounds on to the end, took 116).
        Assert.True(facts!.Steps <= 40L * slots, $"{facts.Steps} steps for {slots} slots");
        var polls = BoundedLoops.PollsFor(program, VmKind.Raw, facts, out long visits);
        // Every head is bounded by the input: no poll is left in any loop.
        int heads = Enumerable.Range(0, slots).Count(pc => program.PollPoints[pc]);
        Assert.Equal(loops, heads);
        Assert.DoesNotContain(true, polls);
        // Each head's search stays inside its loop (before, it walked every slot after the head: some
        // 2,000 visits per slot of this program).
        Assert.True(visits <= 4L * slots, $"{visits} visits for {slots} slots");
    }

    [Fact]
    public void ThousandsOfLoopsInARowCompileAndAgree()
    {
        var vm = EbpfVm.CreateRaw(LoopsInARow(4_000));
        var input = new byte[5];
        Assert.Equal(4_000UL * 5, vm.Execute(input));
        vm.JitCompile();
        Assert.Equal(RbpfErrorCode.Ok, vm.TryExecuteJit(input, Span<byte>.Empty, out ulong jitted, out var error));
        Assert.Null(error);
        Assert.Equal(4_000UL * 5, jitted);
    }
}
