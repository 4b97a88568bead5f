namespace Rbpf.Tests;

/// <summary>Stack layouts for local calls: the interpreter and the JIT lay frames out the same way.</summary>
public unsafe class StackLayoutTests
{
    private static StackLayout UbpfLike(int frame = 256) => new(_ => frame, maxFrames: 9, alignTop: false, minimumStack: 0);

    // main keeps 0x55 at [r10-4] across a call to f, which writes 0x66 at its own [r10-4].
    private const string UseStack = "mov r0, 0x55\nstxw [r10-4], r0\ncall local f\nldxw r0, [r10-4]\nexit\n" +
                                    "f:\nmov r0, 0x66\nstxw [r10-4], r0\nexit";

    private static (RbpfErrorCode Code, ulong R0, RbpfException? Error) Run(EbpfVm vm, byte[] stack, bool jit)
    {
        fixed (byte* s = stack)
        {
            RbpfException? error;
            ulong r0;
            var code = jit
                ? vm.TryExecuteJit(null, 0, null, 0, s, (nuint)stack.Length, out r0, out error)
                : vm.TryExecute(null, 0, null, 0, s, (nuint)stack.Length, out r0, out error);
            return (code, r0, error);
        }
    }

    private static EbpfVm Vm(string asm, StackLayout layout, bool jit)
    {
        var vm = new EbpfVm(VmKind.NoData) { StackLayout = layout };
        vm.SetProgram(Assembler.Assemble(asm));
        if (jit) vm.JitCompile();
        return vm;
    }

    public static TheoryData<bool> Engines => EbpfVm.IsJitSupported ? new TheoryData<bool> { false, true } : new TheoryData<bool> { false };

    [Theory]
    [MemberData(nameof(Engines))]
    public void FramesFollowTheLayout(bool jit)
    {
        var stack = new byte[512];
        var (code, r0, _) = Run(Vm(UseStack, UbpfLike(), jit), stack, jit);
        Assert.Equal(RbpfErrorCode.Ok, code);
        Assert.Equal(0x55UL, r0);
        Assert.Equal(0x55, stack[512 - 4]);
        Assert.Equal(0x66, stack[512 - 256 - 4]);

        // The default layout needs 512 bytes a frame: the call does not fit in 512 (aligned) bytes.
        byte* aligned = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(512, 16);
        try
        {
            var vm = Vm(UseStack, StackLayout.Default, jit);
            RbpfException? error;
            code = jit ? vm.TryExecuteJit(null, 0, null, 0, aligned, 512, out _, out error)
                       : vm.TryExecute(null, 0, null, 0, aligned, 512, out _, out error);
            Assert.Equal(RbpfErrorCode.CallDepthExceeded, code);
            Assert.Contains("too little stack", error!.Message);
        }
        finally { System.Runtime.InteropServices.NativeMemory.AlignedFree(aligned); }
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void SmallStacksAreCheckedAtTheirBottom(bool jit)
    {
        var stack = new byte[48];
        var (code, r0, _) = Run(Vm(UseStack, UbpfLike(16), jit), stack, jit);
        Assert.Equal(RbpfErrorCode.Ok, code);
        Assert.Equal(0x55UL, r0);
        Assert.Equal(0x66, stack[48 - 16 - 4]);
        // Below the stack's bottom is outside, even within 512 bytes of r10.
        (code, _, var error) = Run(Vm("stxw [r10-52], r1\nexit", UbpfLike(16), jit), stack, jit);
        Assert.Equal(RbpfErrorCode.OutOfBounds, code);
        Assert.Contains("store of 4 bytes", error!.Message);
        // The frames a run zeroes never reach below the bottom: the bytes before the stack stay.
        var block = new byte[64];
        block.AsSpan().Fill(0xee);
        fixed (byte* b = block)
        {
            var vm = Vm("ldxdw r0, [r10-8]\nexit", UbpfLike(16), jit);
            ulong r;
            var c = jit ? vm.TryExecuteJit(null, 0, null, 0, b + 32, 32, out r, out _) : vm.TryExecute(null, 0, null, 0, b + 32, 32, out r, out _);
            Assert.Equal(RbpfErrorCode.Ok, c);
            Assert.Equal(0UL, r);
        }
        Assert.All(block[..32], x => Assert.Equal(0xee, x));
        Assert.All(block[32..], x => Assert.Equal(0, x));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void DepthFollowsTheLayout(bool jit)
    {
        // Each function calls the next; the last returns 9.
        string Chain(int calls) => string.Concat(Enumerable.Range(0, calls).Select(k => $"call local f{k}\nexit\nf{k}:\n")) + "mov r0, 9\nexit";
        var ok = Run(Vm(Chain(8), UbpfLike(16), jit), new byte[4096], jit);
        Assert.Equal((RbpfErrorCode.Ok, 9UL), (ok.Code, ok.R0));
        var deep = Run(Vm(Chain(9), UbpfLike(16), jit), new byte[4096], jit);
        Assert.Equal(RbpfErrorCode.CallDepthExceeded, deep.Code);
        Assert.Contains("deeper than 9 frames", deep.Error!.Message);
    }

    [Fact]
    public void FrameSizesAreChecked()
    {
        var vm = new EbpfVm(VmKind.NoData) { StackLayout = UbpfLike(24) };
        var e = Assert.Throws<RbpfException>(() => vm.SetProgram(Assembler.Assemble(UseStack)));
        Assert.Equal(RbpfErrorCode.InvalidProgram, e.Code);
        Assert.Contains("multiple of 16", e.Message);
        Assert.Throws<RbpfException>(() => new StackLayout(_ => 16, maxFrames: 17, alignTop: true, minimumStack: 0));
        // The default layout still wants 512 bytes of the caller's stack.
        var d = EbpfVm.CreateNoData(Assembler.Assemble("mov r0, 1\nexit"));
        Assert.Equal(RbpfErrorCode.InvalidArgument, Run(d, new byte[256], jit: false).Code); // under 512 however it is aligned
    }

    /// <summary>
    /// Each local call moves the stack region down when its frame is the deepest yet; the compiled
    /// code does that in one routine all call sites share (it was repeated at each, about fifty bytes
    /// a site on x86-64). A checked store at the bottom of a frame two and three calls deep must land
    /// in the region, under the default layout and uBPF's; the region's start is stored by the entry
    /// and by the shared routine only, however many call sites there are (x86-64 listing and run on
    /// an x86-64 host; the AArch64 listing on any host, its runs under QEMU by the AArch64 driver).
    /// </summary>
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void CallSitesShareTheStackRegionUpdate(bool ubpfLayout)
    {
        int frame = ubpfLayout ? 256 : 512;
        // f stores through a copy of r10 (a checked access) at its frame's lowest 8 bytes and reads it back.
        string asm = $"mov r6, 0\ncall local f\nadd r6, r0\ncall local g\nadd r6, r0\ncall local h\nadd r0, r6\nexit\n" +
                     $"f:\nmov r2, r10\nmov r3, 7\nstxdw [r2-{frame}], r3\nldxdw r0, [r2-{frame}]\nexit\n" +
                     "g:\ncall local f\nadd r0, 1\nexit\n" +
                     "h:\ncall local g\nadd r0, 2\nexit";
        var vm = new EbpfVm(VmKind.NoData);
        if (ubpfLayout) vm.StackLayout = UbpfLike(frame);
        vm.SetProgram(Assembler.Assemble(asm));
        var expected = 7UL + 8 + 10; // f, g (f + 1), h (g + 2)
        Assert.Equal(expected, Run(vm, new byte[4096], jit: false).R0);
        // AArch64: the update stores x16 (the new start) at the context's (x24) StackStart; the entry stores
        // another register there, except under uBPF's layout, whose entry lowers the region as a call does.
        var arm64 = System.Text.RegularExpressions.Regex.Matches(vm.JitListing(Jit.JitArchitecture.Arm64, new Jit.JitOptions()),
            $@"str x16, \[x24, #{Jit.JitContext.OffStackStart}\]").Count;
        Assert.Equal(ubpfLayout ? 2 : 1, arm64);
        Skip.IfNot(EbpfVm.IsJitSupported && !Jit.ExecutableMemory.IsArm64, "x86-64 JIT listings");
        vm.JitCompile();
        var jitted = Run(vm, new byte[4096], jit: true);
        Assert.Null(jitted.Error);
        Assert.Equal(expected, jitted.R0);
        var stores = System.Text.RegularExpressions.Regex.Matches(vm.JitDisassembly(),
            $@"mov\s+\[r12\+{Jit.JitContext.OffStackStart:X}h\],r10").Count;
        Assert.Equal(2, stores); // the entry's and the shared routine's, not one per call site (five)
    }
}
