using System.Runtime.InteropServices;

namespace Rbpf.Native;

/// <summary>
/// The managed half of native/interrupt.c (Linux): each VM handle's interrupt word lives in a table
/// of native memory that is never freed, so rbpf_vm_interrupt, written in C, can move it on from
/// any thread or a signal handler without entering the runtime; and runs of a VM that names a
/// signal are armed for that signal while they last. Elsewhere rbpf_vm_interrupt is a managed
/// export over <see cref="EbpfVm.Interrupt"/> and signals are not supported.
/// </summary>
internal static unsafe class Interrupts
{
#if RBPF_FAST_SHIM
    private const int SlotBits = 24, ChunkBits = 10, ChunkSlots = 1 << ChunkBits, ChunkCount = 1 << (SlotBits - ChunkBits);

    [StructLayout(LayoutKind.Sequential)]
    private struct Word
    {
        public ulong Handle;
        public uint Epoch;
        public int Signal;
        public int Fired;
        public int Unused;
    }

    [DllImport("rbpf_fastcall", EntryPoint = "rbpf_interrupt_init")]
    private static extern void Init(Word** chunks);

    [DllImport("rbpf_fastcall", EntryPoint = "rbpf_signal_arm")]
    private static extern int Arm(Word* word);

    [DllImport("rbpf_fastcall", EntryPoint = "rbpf_signal_disarm"), SuppressGCTransition]
    private static extern void NativeDisarm(int place);

    [DllImport("rbpf_fastcall", EntryPoint = "rbpf_signal_valid"), SuppressGCTransition]
    private static extern int Valid(int signal);

    private static readonly object s_gate = new();
    private static Word** s_chunks;

    public static bool SignalsSupported => s_chunks != null;

    [DllImport("rbpf_fastcall", EntryPoint = "rbpf_map_hash_lookup_address")]
    private static extern nint HashLookupAddress();

    [DllImport("rbpf_fastcall", EntryPoint = "rbpf_map_update_present_address")]
    private static extern nint UpdatePresentAddress();

    public static void Initialize()
    {
        try
        {
            Rbpf.Maps.MapHelpers.NativeHashLookup = HashLookupAddress(); // compiled code looks hash maps up in C
            Rbpf.Maps.MapHelpers.NativeUpdatePresent = UpdatePresentAddress();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
        var chunks = (Word**)NativeMemory.AllocZeroed((nuint)ChunkCount, (nuint)sizeof(Word*));
        try
        {
            Init(chunks);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            NativeMemory.Free(chunks); // not the NativeAOT library: VMs keep their own words
            return;
        }
        s_chunks = chunks;
    }

    private static Word* WordOf(nint handle, bool create)
    {
        int index = (int)((ulong)handle & ((1u << SlotBits) - 1)) - 1;
        if (s_chunks == null || index < 0) return null;
        Word* chunk = s_chunks[index >> ChunkBits];
        if (chunk == null)
        {
            if (!create) return null;
            lock (s_gate)
            {
                chunk = s_chunks[index >> ChunkBits];
                if (chunk == null)
                {
                    chunk = (Word*)NativeMemory.AllocZeroed(ChunkSlots, (nuint)sizeof(Word));
                    Volatile.Write(ref *(nint*)&s_chunks[index >> ChunkBits], (nint)chunk);
                }
            }
        }
        return &chunk[index & (ChunkSlots - 1)];
    }

    /// <summary>Gives a new VM handle's VM its word in the table (before anything is compiled).</summary>
    public static void Attach(EbpfVm vm, nint handle)
    {
        Word* w = WordOf(handle, create: true);
        if (w == null) return;
        w->Signal = 0;
        Volatile.Write(ref w->Handle, (ulong)handle);
        vm.UseInterruptWord(&w->Epoch);
    }

    /// <summary>A destroyed handle's word no longer answers to it.</summary>
    public static void Detach(nint handle)
    {
        Word* w = WordOf(handle, create: false);
        if (w == null || w->Handle != (ulong)handle) return;
        Volatile.Write(ref w->Handle, 0);
        w->Signal = 0;
    }

    /// <summary>Sets the signal that interrupts runs of the VM (0: none).</summary>
    public static void SetSignal(EbpfVm vm, nint handle, int signal)
    {
        if (signal != 0 && Valid(signal) == 0)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, $"{signal} is not a signal a handler can catch");
        Word* w = WordOf(handle, create: false);
        if (w == null || w->Handle != (ulong)handle || &w->Epoch != vm.InterruptWord)
            throw new RbpfException(RbpfErrorCode.Unsupported, "this VM has no interrupt word of the native library");
        Volatile.Write(ref w->Signal, signal);
    }

    /// <summary>Whether runs of the VM are armed for a signal (they then skip the native fast path).</summary>
    public static bool HasSignal(EbpfVm vm) => ((int*)vm.InterruptWord)[1] != 0;

    /// <summary>Arms a run of <paramref name="vm"/> if it names a signal: a place for <see cref="Disarm"/>, or -1.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static int ArmRun(EbpfVm vm)
    {
        // The word is the Epoch field of a Word (its Signal follows) or the VM's own pair, whose second is 0.
        uint* epoch = vm.InterruptWord;
        if (((int*)epoch)[1] == 0) return -1;
        var w = (Word*)((byte*)epoch - 8);
        w->Fired = 0;
        return Arm(w);
    }

    /// <summary>The error's message, saying which signal stopped the run if one did (Python turns SIGINT into KeyboardInterrupt).</summary>
    public static string Describe(EbpfVm vm, RbpfException error)
    {
        uint* epoch = vm.InterruptWord;
        if (error.Code != RbpfErrorCode.Interrupted || ((int*)epoch)[1] == 0) return error.Message;
        int fired = Volatile.Read(ref ((Word*)((byte*)epoch - 8))->Fired);
        return fired == 0 ? error.Message : $"{error.Message} (signal {fired})";
    }

    public static void Disarm(int place)
    {
        if (place >= 0) NativeDisarm(place);
    }
#else
    public static bool SignalsSupported => false;
    public static void Initialize() { }
    public static void Attach(EbpfVm vm, nint handle) { }
    public static void Detach(nint handle) { }
    public static void SetSignal(EbpfVm vm, nint handle, int signal) =>
        throw new RbpfException(RbpfErrorCode.Unsupported, "interrupting runs with a signal needs Linux");
    public static bool HasSignal(EbpfVm vm) => false;
    public static int ArmRun(EbpfVm vm) => -1;
    public static string Describe(EbpfVm vm, RbpfException error) => error.Message;
    public static void Disarm(int place) { }
#endif
}
