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
    /// <summary>The built-in bpf_map_lookup_elem, which both engines may run without a call (see MapHelpers).</summary>
    public bool IsMapLookup;
    /// <summary>The built-in bpf_map_update_elem, which compiled code may run in C for a present key.</summary>
    public bool IsMapUpdate;
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

    /// <summary>
    /// <c>bpf_trace_printk(fmt, fmt_size, a, b, c)</c> as the kernel's: when r1 points at r2
    /// readable bytes ending in a NUL, the format string is formatted with r3-r5 (at most three
    /// conversions: <c>%d %i %u %x %X %c %s %p %px %pK %pI4 %pi4 %%</c>, with <c>l</c> or <c>ll</c>
    /// for 64-bit integers, flags <c>0 - + space #</c> and a width; without <c>l</c> an integer
    /// is its low 32 bits), written to <see cref="TraceOutput"/> (with a newline when the text
    /// has none) and the number of bytes formatted returned. A conversion the kernel does not
    /// support, or a fourth one, prints nothing and returns -EINVAL (-22), as the kernel does; a
    /// <c>%s</c> or <c>%pI4</c> pointer outside the program's memory prints as an empty string.
    /// Otherwise (r1 is 0 or not such a string) it is rbpf's <see cref="TracePrintk"/>.
    /// </summary>
    public static ulong TracePrintkFormatted(MemoryAccess memory, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (r1 == 0 || r2 == 0 || r2 > 4096 || !memory.IsAllowed(r1, r2, write: false))
            return TracePrintk(r1, r2, r3, r4, r5);
        var fmt = memory.GetSpan(r1, (int)r2, write: false);
        if (fmt[^1] != 0) return TracePrintk(r1, r2, r3, r4, r5);
        string? text = FormatKernel(memory, fmt[..fmt.IndexOf((byte)0)], r3, r4, r5);
        if (text == null) return unchecked((ulong)-22L);
        // One char per byte so far: the bytes go out as UTF-8 text, and their number is returned.
        string printed = System.Text.Encoding.UTF8.GetString(System.Text.Encoding.Latin1.GetBytes(text));
        TraceOutput.Write(printed.EndsWith('\n') ? printed : printed + "\n");
        return (ulong)text.Length;
    }

    /// <summary>The kernel's bpf_trace_printk formatting of <paramref name="fmt"/>, or null where it would refuse it.</summary>
    internal static string? FormatKernel(MemoryAccess memory, ReadOnlySpan<byte> fmt, ulong a0, ulong a1, ulong a2)
    {
        Span<ulong> args = stackalloc ulong[] { a0, a1, a2 };
        int next = 0;
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < fmt.Length; i++)
        {
            byte ch = fmt[i];
            if (ch != (byte)'%') { sb.Append((char)ch); continue; }
            if (++i >= fmt.Length) return null;
            if (fmt[i] == (byte)'%') { sb.Append('%'); continue; }
            bool left = false, zero = false, plus = false, space = false, alt = false;
            for (; i < fmt.Length; i++)
            {
                if (fmt[i] == (byte)'-') left = true;
                else if (fmt[i] == (byte)'0') zero = true;
                else if (fmt[i] == (byte)'+') plus = true;
                else if (fmt[i] == (byte)' ') space = true;
                else if (fmt[i] == (byte)'#') alt = true;
                else break;
            }
            int width = 0;
            while (i < fmt.Length && fmt[i] >= (byte)'0' && fmt[i] <= (byte)'9') width = Math.Min(width * 10 + (fmt[i++] - '0'), 1024);
            if (i >= fmt.Length || next == args.Length) return null;
            ulong arg = args[next++];
            string body;
            bool numeric = true;
            switch ((char)fmt[i])
            {
                case 'c':
                    body = ((char)(byte)arg).ToString();
                    numeric = false;
                    break;
                case 's':
                    body = ReadString(memory, arg);
                    numeric = false;
                    break;
                case 'p':
                {
                    char kind = i + 1 < fmt.Length ? (char)fmt[i + 1] : '\0';
                    if (kind is 'x' or 'K') { i++; }
                    else if ((kind is 'I' or 'i') && i + 2 < fmt.Length && fmt[i + 2] == (byte)'4')
                    {
                        i += 2;
                        body = Ipv4(memory, arg, padded: kind == 'i');
                        numeric = false;
                        break;
                    }
                    else if (kind is 'I' or 'i' or 'B' or 'k' or 'u' or 'S' or 's' or 'M' or 'm') return null; // other pointer formats
                    body = arg.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
                    numeric = false;
                    break;
                }
                default:
                {
                    bool wide = false;
                    if (fmt[i] == (byte)'l') { wide = true; i++; if (i < fmt.Length && fmt[i] == (byte)'l') i++; }
                    if (i >= fmt.Length) return null;
                    ulong v = wide ? arg : (uint)arg;
                    var inv = System.Globalization.CultureInfo.InvariantCulture;
                    switch ((char)fmt[i])
                    {
                        case 'd':
                        case 'i':
                        {
                            long sv = wide ? (long)arg : (int)(uint)arg;
                            body = sv < 0 ? "-" + ((ulong)(-(sv + 1)) + 1).ToString(inv) : (plus ? "+" : space ? " " : "") + ((ulong)sv).ToString(inv);
                            break;
                        }
                        case 'u': body = v.ToString(inv); break;
                        case 'x': body = (alt && v != 0 ? "0x" : "") + v.ToString("x", inv); break;
                        case 'X': body = (alt && v != 0 ? "0X" : "") + v.ToString("X", inv); break;
                        default: return null;
                    }
                    break;
                }
            }
            if (body.Length < width)
            {
                if (left) body = body.PadRight(width);
                else if (zero && numeric)
                {
                    int sign = body.Length > 0 && body[0] is '-' or '+' or ' ' ? 1 : body.StartsWith("0x") || body.StartsWith("0X") ? 2 : 0;
                    body = body[..sign] + new string('0', width - body.Length) + body[sign..];
                }
                else body = body.PadLeft(width);
            }
            sb.Append(body);
        }
        return sb.ToString();
    }

    private static string ReadString(MemoryAccess memory, ulong address)
    {
        var sb = new System.Text.StringBuilder();
        for (ulong k = 0; k < 1024; k++)
        {
            if (!memory.IsAllowed(address + k, 1, write: false)) return "";
            byte b = memory.GetSpan(address + k, 1, write: false)[0];
            if (b == 0) return sb.ToString();
            sb.Append((char)b);
        }
        return sb.ToString();
    }

    private static string Ipv4(MemoryAccess memory, ulong address, bool padded)
    {
        if (!memory.IsAllowed(address, 4, write: false)) return "";
        var b = memory.GetSpan(address, 4, write: false);
        return padded ? $"{b[0]:D3}.{b[1]:D3}.{b[2]:D3}.{b[3]:D3}" : $"{b[0]}.{b[1]}.{b[2]}.{b[3]}";
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
