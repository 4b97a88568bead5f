using System.Runtime.InteropServices;
using Rbpf.Jit;

namespace Rbpf.Native;

/// <summary>
/// The managed half of native/fastcall.c, which exports rbpf_vm_execute_jit on Linux: a table in
/// native memory giving each VM handle its compiled entry, kept current as VMs compile, drop their
/// code and are destroyed, and the release of replaced code once no native caller can still be
/// running it (see the file's comment for the protocol). Elsewhere the managed export is the only
/// one and these calls do nothing.
/// </summary>
internal static unsafe class FastCalls
{
#if RBPF_FAST_SHIM
    private const int SlotBits = 24, ChunkBits = 10, ChunkSlots = 1 << ChunkBits, ChunkCount = 1 << (SlotBits - ChunkBits);

    [StructLayout(LayoutKind.Sequential)]
    private struct Slot
    {
        public ulong Handle;
        public nint Entry;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Reader
    {
        public ulong State;
        public Reader* Next;
        public int InUse;
        public int Nesting;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct State
    {
        public Slot** Chunks;
        public nint Slow;
        public Reader* Readers;
    }

    [DllImport("rbpf_fastcall", EntryPoint = "rbpf_fastcall_init")] // linked in (DirectPInvoke): native/fastcall.c
    private static extern void Init(State* state);

    private static readonly object s_gate = new();
    private static State* s_state;
    /// <summary>What each slot's entry belongs to, so that published code stays alive.</summary>
    private static JitProgram?[] s_published = new JitProgram?[64];

    /// <summary>Replaced code, held until every native call that might run it has returned.</summary>
    private static readonly List<(JitProgram Program, (nint Reader, ulong State)[] Inside)> s_retired = new();

    /// <summary>
    /// Replaced code waiting for the process-wide barrier that <see cref="s_retired"/> needs. The
    /// barrier (membarrier: an interrupt of every processor running one of the host's threads) cost
    /// about 0.7 us per compile here when taken for each replaced program, a sixth of a 40-instruction
    /// program's compile (docs/performance.md, session 25); one barrier now serves up to <see cref="PendingLimit"/> programs or
    /// <see cref="PendingBytesLimit"/> bytes of their code, which is all it holds back meanwhile.
    /// </summary>
    private static readonly List<JitProgram> s_pending = new();
    private static long s_pendingBytes;
    private const int PendingLimit = 16;
    private const long PendingBytesLimit = 256 << 10;

    /// <summary>Sets the table up and hands it to the native half (as the library starts).</summary>
    public static void Initialize()
    {
        var state = (State*)NativeMemory.AllocZeroed((nuint)sizeof(State));
        state->Chunks = (Slot**)NativeMemory.AllocZeroed((nuint)ChunkCount, (nuint)sizeof(Slot*));
        state->Slow = (nint)(delegate* unmanaged<nint, byte*, nuint, byte*, nuint, ulong*, int>)&Exports.VmExecuteJit;
        try
        {
            Init(state);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not the NativeAOT library (the assembly loaded some other way): nothing calls the shim.
            NativeMemory.Free(state->Chunks);
            NativeMemory.Free(state);
            return;
        }
        s_state = state;
    }

    /// <summary>Keeps <paramref name="handle"/>'s slot current from now on.</summary>
    public static void Track(EbpfVm vm, nint handle)
    {
        if (s_state == null) return;
        vm.JitChanged += () => Publish(handle);
    }

    /// <summary>
    /// Makes the slot of <paramref name="handle"/> show its VM's current compiled entry, or nothing
    /// if the VM has none usable without extra arguments or is destroyed.
    /// </summary>
    public static void Publish(nint handle)
    {
        if (s_state == null) return;
        ulong h = (ulong)handle;
        int index = (int)(h & ((1u << SlotBits) - 1)) - 1;
        if (index < 0 || (h & VmHandles.TagMask) != 0) return;
        lock (s_gate)
        {
            var vm = VmHandles.TryGet(handle);
            var jit = vm != null && !Interrupts.HasSignal(vm) && !vm.HasProgramArray ? vm.JitForDirectCalls : null;
            Slot* chunk = s_state->Chunks[index >> ChunkBits];
            if (chunk == null)
            {
                if (jit == null) return; // nothing published here, nothing to publish
                chunk = (Slot*)NativeMemory.AllocZeroed(ChunkSlots, (nuint)sizeof(Slot));
                Volatile.Write(ref *(nint*)&s_state->Chunks[index >> ChunkBits], (nint)chunk);
            }
            Slot* slot = &chunk[index & (ChunkSlots - 1)];
            if (index >= s_published.Length) Array.Resize(ref s_published, Math.Max(index + 1, s_published.Length * 2));
            nint entry = jit?.DirectEntry ?? 0;
            if (vm == null && slot->Handle != h) return; // a destroyed VM whose slot another VM holds now
            if (slot->Handle == (entry == 0 ? 0 : h) && slot->Entry == entry && s_published[index] == jit) return;

            // Empty the handle first and write it last, so that a reader never pairs one VM's handle
            // with another's entry (fastcall.c reads the handle on both sides of the entry).
            Volatile.Write(ref slot->Handle, 0);
            Volatile.Write(ref slot->Entry, entry);
            if (entry != 0) Volatile.Write(ref slot->Handle, h);
            var old = s_published[index];
            s_published[index] = jit;
            if (old != null && old != jit) Retire(old);
            Reclaim();
        }
    }

    /// <summary>Holds <paramref name="old"/> (no longer in any slot) until the native callers inside now have left.</summary>
    private static void Retire(JitProgram old)
    {
        // The slot's new contents must be visible before the records are read, and a reader's odd
        // state before its read of the slot: a full barrier here, and one on every processor for them.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref *(nint*)&s_state->Readers) == 0) return; // no native caller ever: the code can go at once
        s_pending.Add(old);
        s_pendingBytes += old.CodeLength;
        if (s_pending.Count >= PendingLimit || s_pendingBytes >= PendingBytesLimit) Barrier();
    }

    /// <summary>The barrier for the pending programs, as <see cref="Retire"/> once took it for each: after
    /// it, every call still inside shows an odd record, and the programs wait in <see cref="s_retired"/>
    /// for those records to move. Taking it later than the slot's change is as safe as taking it at once:
    /// a call that has returned since no longer runs the old code, and one still inside is seen.</summary>
    private static void Barrier()
    {
        Interlocked.MemoryBarrierProcessWide();
        var inside = new List<(nint, ulong)>();
        for (var r = (Reader*)Volatile.Read(ref *(nint*)&s_state->Readers); r != null; r = r->Next)
        {
            ulong state = Volatile.Read(ref r->State);
            if ((state & 1) != 0) inside.Add(((nint)r, state));
        }
        if (inside.Count > 0)
        {
            var records = inside.ToArray();
            foreach (var program in s_pending) s_retired.Add((program, records));
        }
        s_pending.Clear();
        s_pendingBytes = 0;
    }

    /// <summary>Lets go of retired code whose callers have all returned.</summary>
    private static void Reclaim()
    {
        s_retired.RemoveAll(item =>
        {
            foreach (var (reader, state) in item.Inside)
                if (Volatile.Read(ref ((Reader*)reader)->State) == state) return false;
            return true;
        });
    }
#else
    public static void Initialize() { }
    public static void Track(EbpfVm vm, nint handle) { }
    public static void Publish(nint handle) { }
#endif
}
