using System.Runtime.InteropServices;
using System.Text;

namespace Rbpf.Native;

/// <summary>The thread-local last error behind rbpf_last_error(): a code and a NUL-terminated UTF-8 message.</summary>
internal static unsafe class LastError
{
    [ThreadStatic] private static byte* _message;
    [ThreadStatic] private static int _code;

    public static int Code => _code;

    public static byte* Message => _message;

    public static int Set(RbpfErrorCode code, string message)
    {
        if (_message != null) NativeMemory.Free(_message);
        _message = Utf8.Alloc(message);
        _code = (int)code;
        return (int)code;
    }

    public static int From(Exception e) => e switch
    {
        RbpfException r => Set(r.Code, r.Message),
        OutOfMemoryException => Set(RbpfErrorCode.OutOfMemory, "out of memory"),
        _ => Set(RbpfErrorCode.Internal, $"internal error: {e.GetType().Name}: {e.Message}"),
    };
}

/// <summary>UTF-8 strings in memory the C caller frees with rbpf_free (malloc'd).</summary>
internal static unsafe class Utf8
{
    public static byte* Alloc(string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        byte* p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
        p[n] = 0;
        return p;
    }

    public static string? Read(byte* p) => p == null ? null : Marshal.PtrToStringUTF8((nint)p);
}
