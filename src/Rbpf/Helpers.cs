using System.Diagnostics;

namespace Rbpf;

/// <summary>A helper function: arguments in r1-r5, result in r0.</summary>
public delegate ulong Helper(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5);

/// <summary>A helper that dereferences pointer arguments through <paramref name="memory"/>, which
/// checks them against the regions the running program may touch.</summary>
public delegate ulong MemoryHelper(MemoryAccess memory, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5);

/// <summary>Called before each executed instruction with its slot index and the registers r0-r10.</summary>
public delegate void InstructionObserver(int pc, ReadOnlySpan<ulong> registers);

/// <summary>One registered helper: a managed delegate, a memory-checked delegate or a native function pointer.</summary>
internal sealed unsafe class HelperEntry
{
    public HelperEntry(uint key, string name) { Key = key; Name = name; }
    public uint Key { get; }
    public string Name { get; }
    public Helper? Managed;
    public MemoryHelper? WithMemory;
    /// <summary>A native helper: r1-r5, then the run's memory pointer (uBPF's implicit sixth
    /// argument), which a five-argument function simply does not read.</summary>
    public delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, void*, ulong> Native;
}

/// <summary>
/// The helpers rbpf ships, with the Linux kernel's ids where the kernel has the function and ids of
/// our own (0x7000_00xx) where it does not. Register them all with
/// <see cref="EbpfVm.RegisterStandardHelpers"/> or one by one.
/// </summary>
public static class StandardHelpers
{
    /// <summary>Kernel id of <c>bpf_ktime_get_ns</c>.</summary>
    public const uint KtimeGetNsId = 5;
    /// <summary>Kernel id of <c>bpf_trace_printk</c>.</summary>
    public const uint TracePrintkId = 6;
    /// <summary>Our id of <c>gather_bytes</c>.</summary>
    public const uint GatherBytesId = 0x7000_0001;
    /// <summary>Our id of <c>memfrob</c>.</summary>
    public const uint MemfrobId = 0x7000_0002;
    /// <summary>Our id of <c>sqrti</c>.</summary>
    public const uint SqrtiId = 0x7000_0003;
    /// <summary>Our id of <c>strcmp</c>.</summary>
    public const uint StrcmpId = 0x7000_0004;
    /// <summary>Our id of <c>rand</c>.</summary>
    public const uint RandId = 0x7000_0005;

    /// <summary>The id of one of these helpers by its name (gather_bytes, memfrob, sqrti, strcmp,
    /// rand, and the kernel's two), or null: assembly may call them by name.</summary>
    public static uint? IdOf(string name) => name switch
    {
        "gather_bytes" => GatherBytesId,
        "memfrob" => MemfrobId,
        "sqrti" => SqrtiId,
        "strcmp" => StrcmpId,
        "rand" => RandId,
        "bpf_ktime_getns" => KtimeGetNsId,
        _ => KernelHelpers.IdOf(name) is uint id && (id == KtimeGetNsId || id == TracePrintkId) ? id : null,
    };

    private static TextWriter? _traceOutput;

    /// <summary>Where <see cref="TracePrintk"/> writes; standard output unless set.</summary>
    public static TextWriter TraceOutput
    {
        get => Volatile.Read(ref _traceOutput) ?? Console.Out;
        set => Volatile.Write(ref _traceOutput, value);
    }

    /// <summary>Monotonic time in nanoseconds (<c>bpf_ktime_get_ns</c>).</summary>
    public static ulong KtimeGetNs(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        (ulong)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary>Prints r3, r4 and r5 in hex, as rbpf's <c>bpf_trace_printf</c> does (the format string
    /// in r1 is not read); returns the number of characters written, the newline included, as rbpf
    /// counts them.</summary>
    public static ulong TracePrintk(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        string line = $"bpf_trace_printf: 0x{r3:x}, 0x{r4:x}, 0x{r5:x}";
        TraceOutput.WriteLine(line);
        return (ulong)line.Length + 1;
    }

    /// <summary>Packs the low bytes of its arguments: <c>r1 &lt;&lt; 32 | r2 &lt;&lt; 24 | r3 &lt;&lt; 16 | r4 &lt;&lt; 8 | r5</c>.</summary>
    public static ulong GatherBytes(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5) =>
        (r1 << 32) | (r2 << 24) | (r3 << 16) | (r4 << 8) | r5;

    /// <summary>XORs <c>r2</c> bytes at address <c>r1</c> with 42, in place; returns 0.</summary>
    public static ulong Memfrob(MemoryAccess memory, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r2 > int.MaxValue)
            throw new RbpfException(RbpfErrorCode.OutOfBounds, $"memfrob length {r2} is too large");
        var bytes = memory.GetSpan(r1, (int)r2, write: true);
        for (int i = 0; i < bytes.Length; i++) bytes[i] ^= 0b101010;
        return 0;
    }

    /// <summary>Integer square root of r1, rounded down.</summary>
    public static ulong Sqrti(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        ulong x = (ulong)Math.Sqrt(r1);
        // Correct the floating-point estimate so the result is exact for every 64-bit input.
        while (x > 0 && (x > uint.MaxValue || x * x > r1)) x--;
        while (x < uint.MaxValue && (x + 1) * (x + 1) <= r1) x++;
        return x;
    }

    /// <summary>Compares the NUL-terminated strings at r1 and r2 as rbpf does: 0 when equal, else the
    /// absolute difference of the first differing bytes; <c>ulong.MaxValue</c> when either is NULL.</summary>
    public static ulong Strcmp(MemoryAccess memory, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r1 == 0 || r2 == 0) return ulong.MaxValue;
        var a = memory.GetSpan(r1, memory.StringLength(r1) + 1, write: false);
        var b = memory.GetSpan(r2, memory.StringLength(r2) + 1, write: false);
        int i = 0;
        while (a[i] == b[i] && a[i] != 0) i++;
        return a[i] >= b[i] ? (ulong)(a[i] - b[i]) : (ulong)(b[i] - a[i]);
    }

    /// <summary>A pseudo-random 64-bit number; when r1 &lt; r2 it is reduced into [r1, r2].</summary>
    public static ulong Rand(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        ulong n = (ulong)Random.Shared.NextInt64() ^ ((ulong)Random.Shared.Next() << 63);
        if (r1 < r2)
        {
            ulong span = r2 - r1 + 1;
            n = span == 0 ? n : r1 + n % span;
        }
        return n;
    }
}

/// <summary>
/// How a native helper ends the run that called it: it calls <see cref="Report"/> (from C,
/// <c>rbpf_helper_fail</c>) before returning, and the engine, checking right after the call, stops
/// the run with <see cref="RbpfErrorCode.HelperFailed"/> and the message. Managed helpers throw
/// instead. A report is per thread: it belongs to the run on the calling thread.
/// </summary>
public static unsafe class HelperFailure
{
    [ThreadStatic] private static string? t_message;

    /// <summary>Reports not yet taken, on any thread: one native word the compiled code reads after each
    /// native helper call, so a run pays a compare when nothing failed.</summary>
    internal static readonly int* Pending = (int*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(sizeof(int));

    /// <summary>Ends the calling helper's run, once the helper returns, with <paramref name="message"/>.</summary>
    public static void Report(string message)
    {
        if (t_message == null) Interlocked.Increment(ref *Pending);
        t_message = string.IsNullOrEmpty(message) ? "the helper reported a failure" : message;
    }

    /// <summary>This thread's report, if any, taken (so the next run starts clean).</summary>
    internal static string? Take()
    {
        if (Volatile.Read(ref *Pending) == 0) return null;
        var m = t_message;
        if (m != null)
        {
            t_message = null;
            Interlocked.Decrement(ref *Pending);
        }
        return m;
    }
}
