using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>
/// Pages of machine code that are never writable and executable at once (W^X): mapped
/// read-write, filled, then switched to read-execute before any call.
/// </summary>
internal sealed unsafe partial class ExecutableMemory : IDisposable
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 2;
    private static readonly int MapAnonymous = OperatingSystem.IsMacOS() ? 0x1000 : 0x20;

    private byte* _address;
    private readonly nuint _size;

    private ExecutableMemory(byte* address, nuint size, int length)
    {
        _address = address;
        _size = size;
        Length = length;
    }

    /// <summary>Start of the code.</summary>
    public byte* Address => _address;

    /// <summary>Bytes of code.</summary>
    public int Length { get; }

    /// <summary>Whether this platform can run generated code.</summary>
    public static bool IsSupported =>
        RuntimeInformation.ProcessArchitecture == Architecture.X64 && (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS());

    /// <summary>Copies <paramref name="code"/> into new pages and makes them read-execute.</summary>
    public static ExecutableMemory Create(ReadOnlySpan<byte> code)
    {
        if (!IsSupported)
            throw new RbpfException(RbpfErrorCode.Unsupported, "the JIT runs on x86-64 Linux and macOS only");
        nuint page = (nuint)Environment.SystemPageSize;
        nuint size = ((nuint)code.Length + page - 1) / page * page;
        if (size == 0) size = page;
        void* p = OperatingSystem.IsMacOS()
            ? MacOs.mmap(null, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0)
            : Linux.mmap(null, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (p == null || p == (void*)-1)
            throw new RbpfException(RbpfErrorCode.OutOfMemory, $"mmap of {size} bytes for JIT code failed (errno {Marshal.GetLastPInvokeError()})");
        code.CopyTo(new Span<byte>(p, code.Length));
        int rc = OperatingSystem.IsMacOS()
            ? MacOs.mprotect(p, size, ProtRead | ProtExec)
            : Linux.mprotect(p, size, ProtRead | ProtExec);
        if (rc != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Unmap(p, size);
            throw new RbpfException(RbpfErrorCode.Unsupported, $"mprotect(PROT_READ|PROT_EXEC) failed (errno {errno})");
        }
        return new ExecutableMemory((byte*)p, size, code.Length);
    }

    private static void Unmap(void* p, nuint size)
    {
        if (OperatingSystem.IsMacOS()) MacOs.munmap(p, size);
        else Linux.munmap(p, size);
    }

    public void Dispose()
    {
        if (_address != null)
        {
            Unmap(_address, _size);
            _address = null;
        }
        GC.SuppressFinalize(this);
    }

    ~ExecutableMemory() => Dispose();

    private static partial class Linux
    {
        [LibraryImport("libc.so.6", SetLastError = true)]
        internal static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

        [LibraryImport("libc.so.6", SetLastError = true)]
        internal static partial int mprotect(void* addr, nuint length, int prot);

        [LibraryImport("libc.so.6", SetLastError = true)]
        internal static partial int munmap(void* addr, nuint length);
    }

    private static partial class MacOs
    {
        [LibraryImport("libSystem.dylib", SetLastError = true)]
        internal static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

        [LibraryImport("libSystem.dylib", SetLastError = true)]
        internal static partial int mprotect(void* addr, nuint length, int prot);

        [LibraryImport("libSystem.dylib", SetLastError = true)]
        internal static partial int munmap(void* addr, nuint length);
    }
}
