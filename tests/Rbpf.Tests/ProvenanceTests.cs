namespace Rbpf.Tests;

/// <summary>The provenance tracking behind uBPF's safe profile (the interpreter with a <see cref="ProvenanceTracker"/>).</summary>
public unsafe class ProvenanceTests
{
    private static readonly byte[] Input = new byte[16];

    private static (RbpfErrorCode Code, ulong R0, string Message) Run(string asm, Func<uint, HelperResult?>? helpers = null,
        IEnumerable<TrackedRegion>? regions = null, Action<EbpfVm>? setup = null)
    {
        var vm = new EbpfVm(VmKind.Raw);
        setup?.Invoke(vm);
        vm.SetProgram(Assembler.Assemble(asm));
        fixed (byte* mem = Input)
        {
            var all = (regions ?? Array.Empty<TrackedRegion>()).Append(new TrackedRegion(ProvenanceTracker.InputRegion, (ulong)mem,
                (ulong)Input.Length, ProvenanceTracker.Read | ProvenanceTracker.Write | ProvenanceTracker.Atomic, false));
            var observer = new ProvenanceObserver(new ProvenanceTracker(vm.Program!.Value.Span, all, helpers ?? (_ => null)), null);
            try
            {
                var code = vm.Run(mem, (nuint)Input.Length, null, 0, ref observer, out ulong r0, out var error);
                return (code, r0, error?.Message ?? "");
            }
            catch (RbpfException e)
            {
                return (e.Code, 0, e.Message);
            }
        }
    }

    [Theory]
    [InlineData("mov r2, r10\nadd r2, -8\nadd r1, r2\nexit", "pointer + pointer")]
    [InlineData("mov r1, 8\nmov r2, r10\nsub r1, r2\nexit", "number - pointer")]
    [InlineData("mov r2, r10\nadd r2, -8\nsub r1, r2\nexit", "different regions")]
    [InlineData("mov r1, r10\nadd32 r1, 0\nldxdw r0, [r1]\nexit", "not a pointer")]
    [InlineData("mov r1, r10\nadd r1, -16\nstxdw [r10-8], r1\nstw [r10-8], 0\nldxdw r2, [r10-8]\nstxdw [r2], r1\nexit", "not a pointer")]
    [InlineData("mov r1, r10\nadd r1, -8\ncall local f\nldxdw r0, [r1]\nexit\nf:\nstdw [r1], 7\nexit", "not a pointer")]
    [InlineData("ldxb r0, [r1+16]\nexit", "outside the 16 bytes")]
    public void Refused(string asm, string why)
    {
        var (code, _, message) = Run(asm);
        Assert.Equal(RbpfErrorCode.OutOfBounds, code);
        Assert.Contains("pointer provenance", message);
        Assert.Contains(why, message);
    }

    [Theory]
    [InlineData("mov r1, r10\nadd r1, -8\nmov r2, r10\nadd r2, -16\nsub r1, r2\nmov r0, r1\nexit", 8UL)] // same region
    [InlineData("mov r1, r10\nadd r1, -16\nstxdw [r10-8], r1\nldxdw r2, [r10-8]\nmov r3, 42\nstxdw [r2], r3\nldxdw r0, [r10-16]\nexit", 42UL)]
    [InlineData("mov r6, r1\ncall local f\nldxb r0, [r6+3]\nexit\nf:\nexit", 0UL)]                               // r6 survives a call
    [InlineData("stb [r1+3], 5\nldxb r0, [r1+3]\nexit", 5UL)]
    public void Allowed(string asm, ulong expected)
    {
        var (code, r0, message) = Run(asm);
        Assert.True(code == RbpfErrorCode.Ok, message);
        Assert.Equal(expected, r0);
    }

    [Fact]
    public void HelperResultsFollowTheirDescription()
    {
        var cell = new byte[8];
        fixed (byte* c = cell)
        {
            ulong address = (ulong)c;
            nint cellAddress = (nint)c;
            var regions = new[]
            {
                new TrackedRegion(1, address, 8, ProvenanceTracker.Read | ProvenanceTracker.Write, false),
                new TrackedRegion(2, address, 8, ProvenanceTracker.Read, true),
            };
            Func<uint, HelperResult?> results = id => id switch
            {
                1 => new HelperResult(TagKind.Pointer, 1, 8),
                2 => new HelperResult(TagKind.Handle, 2, 8),
                3 => new HelperResult(TagKind.Pointer, 2, 8),
                _ => null,
            };
            void Helpers(EbpfVm vm)
            {
                vm.AddMemoryRegion(new MemoryRegion(cellAddress, 8, true, "cell"));
                foreach (uint id in new uint[] { 1, 2, 3 }) vm.RegisterHelper(id, (_, _, _, _, _) => address, $"h{id}");
            }
            var ok = Run("call 1\nstdw [r0], 99\nldxdw r0, [r0]\nexit", results, regions, Helpers);
            Assert.Equal((RbpfErrorCode.Ok, 99UL), (ok.Code, ok.R0));
            Assert.Contains("handle", Run("call 2\nldxdw r0, [r0]\nexit", results, regions, Helpers).Message);
            Assert.Contains("which is a handle", Run("call 3\nldxdw r0, [r0]\nexit", results, regions, Helpers).Message);
            Assert.Contains("not a pointer", Run("call 4\nldxdw r0, [r0]\nexit", results, regions, v => { Helpers(v); v.RegisterHelper(4, (_, _, _, _, _) => address, "h4"); }).Message);
        }
    }
}
