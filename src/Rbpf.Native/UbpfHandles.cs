using System.Runtime.InteropServices;

namespace Rbpf.Native;

/// <summary>
/// The <c>struct ubpf_vm *</c> handles of the uBPF API. Code written for uBPF sometimes reads a field
/// of uBPF's private structure (uBPF's own conformance plugin reads <c>vm-&gt;jitted_size</c>), so a
/// handle is the address of a block laid out like uBPF's <c>struct ubpf_vm</c> (x86-64, uBPF
/// 2a8edd11) as far as such readers go, kept current by the uBPF layer; the rest of the block is
/// zero. A handle is still checked: only blocks this table handed out and has not destroyed are
/// accepted, and a destroyed block stays allocated (never reused for another VM) until
/// <see cref="Quarantine"/> newer ones have been destroyed, so a stale handle is refused.
/// </summary>
internal static unsafe class UbpfHandles
{
    /// <summary>sizeof(struct ubpf_vm) in uBPF (3,848 bytes), rounded up.</summary>
    public const int BlockSize = 4096;

    // Offsets of the fields mirrored (uBPF's struct ubpf_vm on LP64 targets).
    public const int NumInstsOffset = 8;           // uint16_t num_insts
    public const int JittedOffset = 32;            // ubpf_jit_ex_fn jitted
    public const int JittedSizeOffset = 40;        // size_t jitted_size
    public const int JitterBufferSizeOffset = 48;  // size_t jitter_buffer_size

    private const int Quarantine = 256;

    private static readonly Dictionary<nint, UbpfVm> Live = new();
    private static readonly Queue<nint> Destroyed = new();
    private static readonly object Gate = new();

    public static nint Add(UbpfVm vm)
    {
        nint block = (nint)NativeMemory.AllocZeroed(BlockSize);
        lock (Gate) Live.Add(block, vm);
        return block;
    }

    public static UbpfVm? Find(nint handle)
    {
        if (handle == 0) return null;
        lock (Gate) return Live.GetValueOrDefault(handle);
    }

    /// <summary>Forgets the handle; false when it was not live.</summary>
    public static bool Remove(nint handle)
    {
        lock (Gate)
        {
            if (!Live.Remove(handle)) return false;
            Destroyed.Enqueue(handle);
            if (Destroyed.Count > Quarantine) NativeMemory.Free((void*)Destroyed.Dequeue());
            return true;
        }
    }

    public static void SetNumInsts(nint handle, int count) => *(ushort*)(handle + NumInstsOffset) = (ushort)count;

    public static void SetJitted(nint handle, nint function, ulong size)
    {
        *(nint*)(handle + JittedOffset) = function;
        *(ulong*)(handle + JittedSizeOffset) = size;
    }

    public static void SetJitterBufferSize(nint handle, ulong size) => *(ulong*)(handle + JitterBufferSizeOffset) = size;
}
