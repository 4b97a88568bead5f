namespace Rbpf;

/// <summary>
/// How a VM lays out the stack for local calls (bpf-to-bpf calls). A function is the code from
/// slot 0 or a local call target up to the next local call target; when a function makes a local
/// call, r10 moves down by that function's frame size, so the callee's frame sits below the
/// caller's. Whatever the layout, a program may touch the stack only between the stack's bottom and
/// its top, and at most 512 bytes below the deepest r10 of the run so far, and every byte it can
/// read there was zeroed or written by the program first.
/// </summary>
/// <example>
/// uBPF's layout: 256 bytes a function unless told otherwise, up to 9 frames, r10 at the exact end
/// of the caller's stack, which may be of any size:
/// <code>
/// vm.StackLayout = new StackLayout(start => 256, maxFrames: 9, alignTop: false, minimumStack: 0);
/// </code>
/// </example>
public sealed class StackLayout
{
    /// <summary>The deepest nesting any layout may ask for.</summary>
    public const int MaxFramesLimit = 16;

    /// <summary>rbpf's layout (the default): 512 bytes for every function (the kernel's frame), up to
    /// 8 frames (the entry function and 7 nested local calls), r10 at the caller's stack end rounded
    /// down to 16 bytes, and a caller's stack of at least 512 bytes.</summary>
    public static StackLayout Default { get; } = new(_ => Isa.StackFrameSize, Isa.MaxCallDepth, alignTop: true, minimumStack: Isa.StackFrameSize) { _isDefault = true };

    /// <summary>Set on <see cref="Default"/> only: a field read, where comparing with the static property cost a class-initialization check on every run.</summary>
    private bool _isDefault;

    /// <summary>Creates a layout.</summary>
    /// <param name="frameSize">The frame size of the function starting at the given slot (called when
    /// a program is loaded): a multiple of 16 from 0 to 512. It may throw <see cref="RbpfException"/>
    /// to refuse the program.</param>
    /// <param name="maxFrames">Frames that may be active at once (the entry function's included), 1 to 16.</param>
    /// <param name="alignTop">Whether r10 starts at a caller's stack end rounded down to 16 bytes
    /// (else at the end itself).</param>
    /// <param name="minimumStack">The smallest stack a caller may give, in bytes.</param>
    public StackLayout(Func<int, int> frameSize, int maxFrames, bool alignTop, int minimumStack)
    {
        ArgumentNullException.ThrowIfNull(frameSize);
        if (maxFrames is < 1 or > MaxFramesLimit)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, $"a stack layout has 1 to {MaxFramesLimit} frames (got {maxFrames})");
        if (minimumStack is < 0 or > Isa.StackSize)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, $"the minimum stack must be 0 to {Isa.StackSize} bytes (got {minimumStack})");
        FrameSize = frameSize;
        MaxFrames = maxFrames;
        AlignTop = alignTop;
        MinimumStack = minimumStack;
    }

    /// <summary>The frame size of the function starting at a slot.</summary>
    public Func<int, int> FrameSize { get; }

    /// <summary>Frames that may be active at once.</summary>
    public int MaxFrames { get; }

    /// <summary>Whether r10 starts at the caller's stack end rounded down to 16 bytes.</summary>
    public bool AlignTop { get; }

    /// <summary>The smallest stack a caller may give.</summary>
    public int MinimumStack { get; }

    /// <summary>
    /// Whether every frame is sure to have its 512 bytes below r10 inside the stack (the default
    /// layout): the JIT then checks no access through r10 with a constant offset inside them.
    /// </summary>
    internal bool FullFrames => _isDefault;

    /// <summary>
    /// Writes into each local call of <paramref name="program"/> how far it moves r10 down (its
    /// function's frame) and the frame its callee needs, as <c>Imm = drop | callee &lt;&lt; 32</c>.
    /// </summary>
    internal void Apply(DecodedProgram program)
    {
        var code = program.Code;
        var starts = new SortedSet<int> { 0 };
        for (int pc = 0; pc < code.Length; pc++)
            if (code[pc].Op == Op.CallLocal) starts.Add(code[pc].Off);
        var sizes = new Dictionary<int, long>();
        foreach (int start in starts)
        {
            int size = FrameSize(start);
            if (size < 0 || size > Isa.StackFrameSize || size % 16 != 0)
                throw new RbpfException(RbpfErrorCode.InvalidProgram,
                    $"insn #{start}: the function starting here has a frame of {size} bytes (a multiple of 16 from 0 to {Isa.StackFrameSize})", start);
            sizes[start] = size;
        }
        var ordered = starts.ToArray();
        int f = 0;
        for (int pc = 0; pc < code.Length; pc++)
        {
            while (f + 1 < ordered.Length && ordered[f + 1] <= pc) f++;
            if (code[pc].Op == Op.CallLocal)
                program.SetCallOperands(pc, code[pc].Off, sizes[ordered[f]] | sizes[code[pc].Off] << 32);
        }
    }
}
