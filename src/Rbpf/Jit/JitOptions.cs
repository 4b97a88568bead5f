namespace Rbpf.Jit;

/// <summary>Options of the JIT compiler.</summary>
public sealed record JitOptions
{
    /// <summary>The defaults (immutable, so one instance serves every compile that names none).</summary>
    internal static readonly JitOptions Default = new();

    /// <summary>
    /// Check every load and store against the allowed regions (the default). Turning it off makes
    /// memory accesses as fast as native code but lets a faulty or hostile program read and write
    /// any host memory: use it only for trusted programs.
    /// </summary>
    public bool CheckedMemory { get; init; } = true;

    /// <summary>XOR every immediate with a random key in the generated code, so a program cannot
    /// plant chosen byte sequences in executable memory.</summary>
    public bool ConstantBlinding { get; init; }

    /// <summary>
    /// Check at every loop head and function entry whether <see cref="EbpfVm.Interrupt"/> was
    /// called (the default). The check costs a load and a compare per loop iteration: on the tightest
    /// loops up to a fifth of their time (docs/performance.md). Turned off, a run of the code can
    /// only be stopped by the instruction limit.
    /// </summary>
    public bool Interruptible { get; init; } = true;

    /// <summary>The calling convention at the code's edges (tests: Windows' on a System V host).</summary>
    internal JitAbi Abi { get; init; }

    /// <summary>Compile state machines threaded (<see cref="JumpThreading"/>; tests turn it off to compare).</summary>
    internal bool ThreadJumps { get; init; } = true;
}

/// <summary>Which calling convention generated code follows where it meets other code.</summary>
internal enum JitAbi
{
    /// <summary>The platform's: System V AMD64 on Linux and macOS, Microsoft x64 on Windows.</summary>
    Host,
    /// <summary>
    /// Microsoft x64 at the edges, wrapped in adapters from and to System V so that it runs on a System
    /// V host: the tests run the Windows code paths on Linux this way.
    /// </summary>
    Win64Emulated,
}

/// <summary>What the code is compiled for: the VM's kind, its fixed buffer's offsets, its link cell,
/// and its stack layout (frames at most; whether every frame is sure to have 512 bytes below r10).</summary>
internal readonly record struct JitTarget(VmKind Kind, int DataOffset, int DataEndOffset, nint Link, int MaxFrames, bool FullFrames,
    nint InterruptWord, nint MapTable = 0, int MapTableLength = 0, nint MapRegions = 0, int MapRegionCount = 0,
    bool KernelPacketLoads = false)
{
    /// <summary>Largest fixed metadata buffer an entry builds in its own frame; larger ones come from the caller.</summary>
    public const int InlineFixedLimit = EbpfVm.InlineMbuffLimit; // the same limit as the interpreter

    /// <summary>Bytes of the fixed metadata buffer of a <see cref="VmKind.FixedMbuff"/> VM, else 0.</summary>
    public int FixedLength => EbpfVm.FixedBufferLengthOf(Kind, DataOffset, DataEndOffset);

    /// <summary>An access through r10 with a constant offset inside the frame: no check needed, when
    /// the stack layout gives every frame its 512 bytes.</summary>
    public bool InsideFrame(int baseReg, int off, int size) =>
        FullFrames && baseReg == Isa.FramePointer && off >= -Isa.StackFrameSize && off <= -size;

    /// <summary>Bytes a load, store or atomic accesses (for the backends' checks).</summary>
    public static int AccessSize(Op op)
    {
        // By position from LdxB: the loads, the stores, the 32-bit and the 64-bit atomics (a
        // table: compiling asks for every access several times).
        ReadOnlySpan<byte> sizes =
        [
            1, 2, 4, 8, 1, 2, 4,
            1, 2, 4, 8, 1, 2, 4, 8,
            4, 8,
        ];
        uint k = (uint)(op - Op.LdxB);
        return k < (uint)sizes.Length ? sizes[(int)k] : 8;
    }
}
