using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>
/// The state of one JIT-compiled execution, on the calling thread's stack. Generated code keeps
/// its address in r12 and reads the fields at the offsets below.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
internal unsafe struct JitContext
{
    public const int Size = 256;
    public const int OffR1 = 0, OffR2 = 8, OffStackTop = 16, OffBudget = 24, OffResult = 32, OffStatus = 40,
        OffFaultPc = 44, OffFaultAddress = 48, OffFaultSize = 56, OffFaultKind = 60, OffDepth = 64,
        OffHelperSlot = 68, OffRegions = 72, OffRegionCount = 80, OffPacketStart = 88, OffPacketBound = 96,
        OffStackStart = 128, OffStackBound = 136, OffPacketLength = 168, OffCheckAccess = 176,
        OffHelperTrampoline = 184, OffSavedRsp = 192, OffCallXKey = 200, OffCallXTrampoline = 208,
        OffFaultReturn = 216, OffExtraCheck = 224, OffExtraCheckContext = 232, OffStackBottom = 240;

    [FieldOffset(OffR1)] public ulong R1;
    [FieldOffset(OffR2)] public ulong R2;
    [FieldOffset(OffStackTop)] public ulong StackTop;
    /// <summary>Instructions left; blocks subtract their length on entry and fail when it goes negative.</summary>
    [FieldOffset(OffBudget)] public long Budget;
    [FieldOffset(OffResult)] public ulong Result;
    /// <summary>0, or the error code a helper trampoline reports.</summary>
    [FieldOffset(OffStatus)] public int Status;
    [FieldOffset(OffFaultPc)] public int FaultPc;
    [FieldOffset(OffFaultAddress)] public ulong FaultAddress;
    [FieldOffset(OffFaultSize)] public int FaultSize;
    /// <summary>0 load, 1 store, 2 packet (legacy) load.</summary>
    [FieldOffset(OffFaultKind)] public int FaultKind;
    [FieldOffset(OffDepth)] public int Depth;
    [FieldOffset(OffHelperSlot)] public int HelperSlot;
    [FieldOffset(OffRegions)] public RegionEntry* Regions;
    [FieldOffset(OffRegionCount)] public int RegionCount;
    [FieldOffset(OffPacketStart)] public ulong PacketStart;
    /// <summary>For sizes 1, 2, 4, 8: an access at offset o of the packet fits when o &lt; bound.</summary>
    [FieldOffset(OffPacketBound)] public fixed ulong PacketBound[4];
    [FieldOffset(OffStackStart)] public ulong StackStart;
    [FieldOffset(OffStackBound)] public fixed ulong StackBound[4];
    [FieldOffset(OffPacketLength)] public ulong PacketLength;
    [FieldOffset(OffCheckAccess)] public nint CheckAccess;
    [FieldOffset(OffHelperTrampoline)] public nint HelperTrampoline;
    [FieldOffset(OffSavedRsp)] public ulong SavedRsp;
    [FieldOffset(OffCallXKey)] public ulong CallXKey;
    [FieldOffset(OffCallXTrampoline)] public nint CallXTrampoline;
    /// <summary>Return address of the failed check's call, which locates the instruction.</summary>
    [FieldOffset(OffFaultReturn)] public ulong FaultReturn;
    /// <summary>The embedder's bounds-check callback (see <see cref="ExecutionState.ExtraCheck"/>), or null.</summary>
    [FieldOffset(OffExtraCheck)] public delegate* unmanaged<void*, ulong, ulong, byte> ExtraCheck;
    [FieldOffset(OffExtraCheckContext)] public void* ExtraCheckContext;
    /// <summary>Frames may not go below this address.</summary>
    [FieldOffset(OffStackBottom)] public ulong StackBottom;

    /// <summary>Index into the bound arrays for an access of <paramref name="size"/> bytes.</summary>
    public static int BoundIndex(int size) => size switch { 1 => 0, 2 => 1, 4 => 2, _ => 3 };

    public static ulong Bound(ulong length, int size) => length >= (ulong)size ? length - (ulong)size + 1 : 0;
}
