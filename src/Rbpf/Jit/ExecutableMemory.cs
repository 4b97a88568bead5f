using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>
/// Machine code in memory that is never writable and executable at one address (W^X). On x86-64
/// Linux it is a range of the <see cref="CodeArena"/> (written through a read-write mapping of the same
/// memory); elsewhere, or when the arena is not available, pages of its own, mapped read-write,
/// filled, then switched to read-execute before any call (mmap and mprotect on Linux and macOS,
/// VirtualAlloc and VirtualProtect on Windows).
/// Not finalizable: its owner releases it (a compiled program's finalizer, or Dispose), so a
/// compile registers one object for finalization, not two.
/// </summary>
internal sealed unsafe partial class ExecutableMemory : IDisposable
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 2;
    private static readonly int MapAnonymous = OperatingSystem.IsMacOS() ? 0x1000 : 0x20;

    private byte* _address;
    private readonly nuint _size;

    private readonly CodeArena.Chunk? _chunk;
    private readonly int _offset;

    private ExecutableMemory(byte* address, nuint size, int length, CodeArena.Chunk? chunk = null, int offset = 0)
    {
        _address = address;
        _size = size;
        Length = length;
        _chunk = chunk;
        _offset = offset;
    }

    /// <summary>Whether the code is in the shared <see cref="CodeArena"/> (tests).</summary>
    internal bool InArena => _chunk != null;

    /// <summary>Bytes of pages the code holds by itself (0 in the arena, whose chunks are shared).</summary>
    public long OwnPages => (long)_size;

    /// <summary>Start of the code.</summary>
    public byte* Address => _address;

    /// <summary>Bytes of code.</summary>
    public int Length { get; }

    /// <summary>Whether this platform can run generated code.</summary>
    public static bool IsSupported =>
        (RuntimeInformation.ProcessArchitecture == Architecture.X64 &&
         (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsWindows())) ||
        (RuntimeInformation.ProcessArchitecture == Architecture.Arm64 && OperatingSystem.IsLinux());

    /// <summary>Whether the host's processor is AArch64 (code needs the A64 backend and an instruction-cache flush).</summary>
    public static bool IsArm64 => RuntimeInformation.ProcessArchitecture == Architecture.Arm64;

    /// <summary>How many times code was made visible to instruction fetch (<c>__clear_cache</c> on AArch64); for tests.</summary>
    internal static long CacheFlushes;

    /// <summary>Copies <paramref name="code"/> into new pages and makes them read-execute.</summary>
    public static ExecutableMemory Create(ReadOnlySpan<byte> code)
    {
        if (!IsSupported)
            throw new RbpfException(RbpfErrorCode.Unsupported, "the JIT runs on x86-64 Linux, macOS and Windows, and on AArch64 Linux");
        byte* shared = CodeArena.TryAllocate(code, out var chunk, out int offset);
        if (shared != null) return new ExecutableMemory(shared, 0, code.Length, chunk, offset);
        nuint page = (nuint)Environment.SystemPageSize;
        nuint size = ((nuint)code.Length + page - 1) / page * page;
        if (size == 0) size = page;
        if (OperatingSystem.IsWindows()) return CreateOnWindows(code, size);
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
        if (IsArm64)
        {
            // AArch64's instruction cache does not follow data writes: clean and invalidate the
            // range before any of it runs (libgcc's __clear_cache does dc cvau / ic ivau / isb).
            Linux.__clear_cache(p, (byte*)p + code.Length);
            Interlocked.Increment(ref CacheFlushes);
        }
        return new ExecutableMemory((byte*)p, size, code.Length);
    }

    private const uint MemCommit = 0x1000, MemReserve = 0x2000, MemRelease = 0x8000;
    private const uint PageReadWrite = 0x04, PageExecuteRead = 0x20;

    private static ExecutableMemory CreateOnWindows(ReadOnlySpan<byte> code, nuint size)
    {
        void* p = Windows.VirtualAlloc(null, size, MemCommit | MemReserve, PageReadWrite);
        if (p == null)
            throw new RbpfException(RbpfErrorCode.OutOfMemory, $"VirtualAlloc of {size} bytes for JIT code failed (error {Marshal.GetLastPInvokeError()})");
        code.CopyTo(new Span<byte>(p, code.Length));
        uint old;
        if (!Windows.VirtualProtect(p, size, PageExecuteRead, &old))
        {
            int error = Marshal.GetLastPInvokeError();
            Unmap(p, size);
            throw new RbpfException(RbpfErrorCode.Unsupported, $"VirtualProtect(PAGE_EXECUTE_READ) failed (error {error})");
        }
        Windows.FlushInstructionCache(Windows.GetCurrentProcess(), p, size);
        return new ExecutableMemory((byte*)p, size, code.Length);
    }

    private static void Unmap(void* p, nuint size)
    {
        if (OperatingSystem.IsWindows()) Windows.VirtualFree(p, 0, MemRelease); // MEM_RELEASE takes size 0
        else if (OperatingSystem.IsMacOS()) MacOs.munmap(p, size);
        else Linux.munmap(p, size);
    }

    public void Dispose()
    {
        if (_address != null)
        {
            if (_chunk != null) CodeArena.Release(_chunk, _offset, Length);
            else Unmap(_address, _size);
            _address = null;
        }
    }

    private static partial class Linux
    {
        [LibraryImport("libc.so.6", SetLastError = true)]
        internal static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

        [LibraryImport("libc.so.6", SetLastError = true)]
        internal static partial int mprotect(void* addr, nuint length, int prot);

        [LibraryImport("libc.so.6", SetLastError = true)]
        internal static partial int munmap(void* addr, nuint length);

        [LibraryImport("libgcc_s.so.1")]
        internal static partial void __clear_cache(void* begin, void* end);
    }

    private static partial class Windows
    {
        [LibraryImport("kernel32.dll", SetLastError = true)]
        internal static partial void* VirtualAlloc(void* address, nuint size, uint allocationType, uint protect);

        [LibraryImport("kernel32.dll", SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        internal static partial bool VirtualProtect(void* address, nuint size, uint newProtect, uint* oldProtect);

        [LibraryImport("kernel32.dll", SetLastError = true)]
        [return: MarshalAs(UnmanagedType.Bool)]
        internal static partial bool VirtualFree(void* address, nuint size, uint freeType);

        [LibraryImport("kernel32.dll")]
        [return: MarshalAs(UnmanagedType.Bool)]
        internal static partial bool FlushInstructionCache(nint process, void* address, nuint size);

        [LibraryImport("kernel32.dll")]
        internal static partial nint GetCurrentProcess();
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
