namespace Rbpf.Jit;

/// <summary>
/// What the backends size their buffers from before compiling a large program (each knows its own
/// bytes per slot and per call): the program's local and helper calls, and sizes kept inside what an
/// array can hold.
/// </summary>
internal static class CodeEstimate
{
    /// <summary>Slots from which a program's buffers may be sized up front: smaller ones fit the thread's kept buffers.</summary>
    public const int LargeProgram = 4096;

    /// <summary>The local calls and helper calls of <paramref name="code"/>.</summary>
    public static (long Local, long Helper) Calls(DecodedInsn[] code)
    {
        long local = 0, helper = 0;
        foreach (var i in code)
        {
            if (i.Op == Op.CallLocal) local++;
            else if (i.Op is Op.Call or Op.CallX) helper++;
        }
        return (local, helper);
    }

    /// <summary><paramref name="v"/>, at most half the largest array length (an estimate, not a promise).</summary>
    public static int Clamp(long v) => (int)Math.Min(v, Array.MaxLength / 2);
}
