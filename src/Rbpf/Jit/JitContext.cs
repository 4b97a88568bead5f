using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>The processors the JIT compiles for.</summary>
public enum JitArchitecture
{
    /// <summary>x86-64 (AMD64).</summary>
    X64,
    /// <summary>AArch64 (ARM64).</summary>
    Arm64,
}

/// <summary>
/// The state of one JIT-compiled execution. The generated entry builds it at the bottom of its own
/// native stack frame (nothing is filled by managed code), keeps its address in r12 and reads the
/// fields at the offsets below; the runtime's slow paths read it through the pointer they get.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
internal unsafe struct JitContext
{
    public const int Size = 208;
    public const int OffLink = 0, OffStackTop = 8, OffBudget = 16, OffResultPtr = 24, OffStatus = 32, OffDepth = 36,
        OffFaultPc = 40, OffFaultSize = 44, OffFaultAddress = 48, OffFaultKind = 56, OffHelperSlot = 60,
        OffPacketStart = 64, OffPacketBound = 72, OffStackStart = 104, OffStackBound = 112, OffPacketLength = 144,
        OffMetaStart = 152, OffMetaLength = 160, OffCallXKey = 168, OffStackBottom = 176, OffInterruptEpoch = 184,
        OffBatch = 192;

    /// <summary>The program's <see cref="JitLink"/> (baked into its code).</summary>
    [FieldOffset(OffLink)] public JitLink* Link;
    [FieldOffset(OffStackTop)] public ulong StackTop;
    /// <summary>Instructions left; blocks subtract their length on entry and fail when it goes negative (x86-64; AArch64 code keeps it in x28).</summary>
    [FieldOffset(OffBudget)] public long Budget;
    /// <summary>Where a successful run stores r0; NULL in a batch (<see cref="Batch"/>), whose loop takes r0.</summary>
    [FieldOffset(OffResultPtr)] public ulong* ResultPtr;
    /// <summary>0, or the error code a helper trampoline reports.</summary>
    [FieldOffset(OffStatus)] public int Status;
    [FieldOffset(OffDepth)] public int Depth;
    /// <summary>The failing instruction (a bad argument of the entry names none: its status says which, <see cref="JitRuntime.BadArgument"/>).</summary>
    [FieldOffset(OffFaultPc)] public int FaultPc;
    /// <summary>Bytes of a failed access.</summary>
    [FieldOffset(OffFaultSize)] public int FaultSize;
    [FieldOffset(OffFaultAddress)] public ulong FaultAddress;
    /// <summary>0 load, 1 store, 2 packet (legacy) load.</summary>
    [FieldOffset(OffFaultKind)] public int FaultKind;
    [FieldOffset(OffHelperSlot)] public int HelperSlot;
    [FieldOffset(OffPacketStart)] public ulong PacketStart;
    /// <summary>For sizes 1, 2, 4, 8: an access at offset o of the packet fits when o &lt; bound.</summary>
    [FieldOffset(OffPacketBound)] public fixed ulong PacketBound[4];
    /// <summary>Lowest byte of the frames entered so far (the stack region).</summary>
    [FieldOffset(OffStackStart)] public ulong StackStart;
    [FieldOffset(OffStackBound)] public fixed ulong StackBound[4];
    [FieldOffset(OffPacketLength)] public ulong PacketLength;
    /// <summary>The metadata buffer (the caller's, or the fixed one the entry built); length 0 for other kinds.</summary>
    [FieldOffset(OffMetaStart)] public ulong MetaStart;
    [FieldOffset(OffMetaLength)] public ulong MetaLength;
    [FieldOffset(OffCallXKey)] public ulong CallXKey;
    /// <summary>Frames may not go below this address.</summary>
    [FieldOffset(OffStackBottom)] public ulong StackBottom;
    /// <summary>The VM's interrupt word as the run began (<see cref="EbpfVm.Interrupt"/>).</summary>
    [FieldOffset(OffInterruptEpoch)] public uint InterruptEpoch;
    /// <summary>The batch being run by the batch entry (<see cref="JitBatch"/>); unset for single runs.</summary>
    [FieldOffset(OffBatch)] public JitBatch* Batch;

    /// <summary>Index into the bound arrays for an access of <paramref name="size"/> bytes.</summary>
    public static int BoundIndex(int size) => size switch { 1 => 0, 2 => 1, 4 => 2, _ => 3 };
}

/// <summary>
/// Unmanaged data one compiled program shares with every run of it, at an address baked into the
/// code: the way back to the managed <see cref="JitProgram"/> (for slow paths and error messages) and
/// the VM's settings that may change after compilation.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct JitLink
{
    public const int OffProgram = 0, OffBudget = 8;
    /// <summary>A weak GC handle to the <see cref="JitProgram"/>.</summary>
    public nint Program;
    /// <summary>The instruction limit as a starting budget (long.MaxValue: none).</summary>
    public long Budget;
}

/// <summary>
/// A batch of runs for the x86-64 batch entry (<see cref="JitProgram.RunBatch"/>): the inputs, as
/// <c>rbpf_buffer</c>s or packed back to back, and where each r0 goes (stored, or counted). The
/// code advances <see cref="Done"/> (and <see cref="Packed"/>) as runs succeed, so after a failure
/// <see cref="Done"/> is the index of the failed run.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct JitBatch
{
    public const int OffBuffers = 0, OffPacked = 8, OffLengths = 16, OffCount = 24, OffResults = 32, OffCounts = 40,
        OffNCounts = 48, OffDone = 56;
    /// <summary>(data, length) pairs, or NULL for packed inputs.</summary>
    public ulong* Buffers;
    /// <summary>The next packed input (advanced past each input as it is taken).</summary>
    public byte* Packed;
    public nuint* Lengths;
    public nuint Count;
    /// <summary>results[i] = r0 of input i; or NULL, and counts[min(r0, ncounts - 1)] += 1.</summary>
    public ulong* Results;
    public ulong* Counts;
    public nuint NCounts;
    public nuint Done;
}

/// <summary>What a managed caller passes besides the registers: its own stack, or a large fixed metadata buffer.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct JitExtra
{
    public const int OffStackBottom = 0, OffStackTop = 8, OffFixedBuffer = 16;
    /// <summary>0: the entry's own stack. Else the lowest usable byte and the (16-byte aligned) top.</summary>
    public ulong StackBottom, StackTop;
    /// <summary>The fixed metadata buffer, when it is too large for the entry's frame; else 0.</summary>
    public ulong FixedBuffer;
}
