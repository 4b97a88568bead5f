using System.Runtime.InteropServices;

namespace Rbpf.Jit;

/// <summary>
/// Where compiled code lives on x86-64 Linux: chunks of shared memory mapped twice, once read-write (where
/// code is written) and once read-execute (where it runs), at addresses that have nothing to do with
/// each other. No page is ever writable and executable at one address (W^X), as with a mapping per
/// program, but compiling needs no system call once a chunk exists, and freeing needs none at all:
/// a mapping per program cost an mmap and an mprotect per compile and an munmap per free, whose
/// TLB shootdowns and address-space lock dominated compile time (see docs/performance.md). The
/// .NET runtime keeps its own code the same way.
/// Programs take 64-byte-aligned ranges of a chunk (first fit, freed ranges merge and are filled
/// with int3). A program larger than a chunk gets a chunk of its own, unmapped when it is freed.
/// Unavailable (no memfd_create, or memfds may not be executable): <see cref="ExecutableMemory"/>
/// maps each program by itself, as it does elsewhere; RBPF_JIT_SEPARATE_PAGES=1 asks for that too.
/// AArch64 keeps pages per program: reusing a range written through the other mapping is right on
/// the hardware (the instruction cache is invalidated by the executable address), but QEMU, where
/// this project tests AArch64, keeps code it translated from the old bytes and runs that.
/// </summary>
internal static unsafe partial class CodeArena
{
    internal const int ChunkSize = 1 << 20;
    private const int Align = 64;

    internal sealed class Chunk
    {
        public byte* Rw, Rx;
        public int Size;
        /// <summary>Free ranges (offset, length), sorted by offset, never adjacent.</summary>
        public readonly List<(int Offset, int Length)> Free = new();
        public int Used;
        public bool Dedicated;
    }

    private static readonly object s_lock = new();
    private static readonly List<Chunk> s_chunks = new();
    /// <summary>0: not tried yet; 1: works; -1: not available here.</summary>
    private static int s_state = Supported && Environment.GetEnvironmentVariable("RBPF_JIT_SEPARATE_PAGES") != "1" ? 0 : -1;

    private static bool Supported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    /// <summary>Chunks mapped now (tests and the footprint documentation).</summary>
    internal static int ChunkCount { get { lock (s_lock) return s_chunks.Count; } }

    /// <summary>For tests: turns the arena off (each program maps its own pages) or back on.</summary>
    internal static bool Disabled
    {
        get => s_state < 0;
        set => s_state = value || !Supported ? -1 : 0;
    }

    /// <summary>
    /// Copies <paramref name="code"/> into the arena and returns its executable address, with the
    /// chunk and offset to free it by; null when the arena is not available.
    /// </summary>
    public static byte* TryAllocate(ReadOnlySpan<byte> code, out Chunk? chunk, out int offset)
    {
        chunk = null;
        offset = 0;
        if (s_state < 0) return null;
        int need = Math.Max(Align, (code.Length + Align - 1) & ~(Align - 1));
        lock (s_lock)
        {
            if (need <= ChunkSize)
                foreach (var c in s_chunks)
                    if (!c.Dedicated && Take(c, need, out offset))
                    {
                        chunk = c;
                        break;
                    }
            if (chunk == null)
            {
                int page = Environment.SystemPageSize;
                int size = need <= ChunkSize ? ChunkSize : (need + page - 1) / page * page;
                var c = Map(size);
                if (c == null) return null;
                c.Dedicated = need > ChunkSize;
                c.Free.Add((0, size));
                s_chunks.Add(c);
                Take(c, need, out offset);
                chunk = c;
            }
        }
        code.CopyTo(new Span<byte>(chunk.Rw + offset, code.Length));
        return chunk.Rx + offset;
    }

    /// <summary>Returns a program's range: filled with int3 (a stale pointer into it traps) and merged with its free neighbours.</summary>
    public static void Release(Chunk chunk, int offset, int length)
    {
        int size = Math.Max(Align, (length + Align - 1) & ~(Align - 1));
        // The range is still the caller's until it is on the free list: trapping bytes go in
        // before the lock (finalizers release programs in bursts while other threads compile).
        if (!chunk.Dedicated) new Span<byte>(chunk.Rw + offset, size).Fill(0xCC);
        lock (s_lock)
        {
            if (chunk.Dedicated)
            {
                s_chunks.Remove(chunk);
                Unmap(chunk);
                return;
            }
            var free = chunk.Free;
            int k = 0;
            while (k < free.Count && free[k].Offset < offset) k++;
            free.Insert(k, (offset, size));
            if (k + 1 < free.Count && free[k].Offset + free[k].Length == free[k + 1].Offset)
            {
                free[k] = (free[k].Offset, free[k].Length + free[k + 1].Length);
                free.RemoveAt(k + 1);
            }
            if (k > 0 && free[k - 1].Offset + free[k - 1].Length == free[k].Offset)
            {
                free[k - 1] = (free[k - 1].Offset, free[k - 1].Length + free[k].Length);
                free.RemoveAt(k);
            }
            chunk.Used -= size;
            // An empty chunk goes back to the system when another empty one is kept.
            if (chunk.Used == 0 && EmptyChunks() > 1)
            {
                s_chunks.Remove(chunk);
                Unmap(chunk);
            }
        }
    }

    /// <summary>Shared chunks with no program in them (under the lock).</summary>
    private static int EmptyChunks()
    {
        int n = 0;
        foreach (var c in s_chunks)
            if (c.Used == 0 && !c.Dedicated) n++;
        return n;
    }

    private static bool Take(Chunk c, int need, out int offset)
    {
        var free = c.Free;
        for (int k = 0; k < free.Count; k++)
        {
            var (start, length) = free[k];
            if (length < need) continue;
            if (length == need) free.RemoveAt(k);
            else free[k] = (start + need, length - need);
            c.Used += need;
            offset = start;
            return true;
        }
        offset = 0;
        return false;
    }

    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapShared = 1;
    private const uint MfdCloexec = 1, MfdExec = 0x10;

    /// <summary>A new chunk: a memfd of <paramref name="size"/> bytes mapped read-write and read-execute; null (and the arena off) when that fails.</summary>
    private static Chunk? Map(int size)
    {
        int fd = -1;
        try
        {
            fd = memfd_create("rbpf-jit", MfdCloexec | MfdExec); // MFD_EXEC: where memfds are sealed non-executable by default
            if (fd < 0) fd = memfd_create("rbpf-jit", MfdCloexec); // kernels before 6.3 do not know MFD_EXEC
        }
        catch (EntryPointNotFoundException) { }
        if (fd < 0) return Off();
        try
        {
            if (ftruncate(fd, size) != 0) return Off();
            void* rw = mmap(null, (nuint)size, ProtRead | ProtWrite, MapShared, fd, 0);
            if (rw == (void*)-1) return Off();
            void* rx = mmap(null, (nuint)size, ProtRead | ProtExec, MapShared, fd, 0);
            if (rx == (void*)-1)
            {
                munmap(rw, (nuint)size);
                return Off();
            }
            s_state = 1; // not filled: pages stay untouched until code needs them
            return new Chunk { Rw = (byte*)rw, Rx = (byte*)rx, Size = size };
        }
        finally
        {
            close(fd); // the mappings keep the memory
        }
    }

    private static Chunk? Off()
    {
        if (s_state == 0) s_state = -1; // never worked: do not try again for every program
        return null;
    }

    private static void Unmap(Chunk c)
    {
        munmap(c.Rw, (nuint)c.Size);
        munmap(c.Rx, (nuint)c.Size);
    }

    [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int memfd_create(string name, uint flags);

    [LibraryImport("libc.so.6")]
    private static partial int ftruncate(int fd, long length);

    [LibraryImport("libc.so.6")]
    private static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc.so.6")]
    private static partial int munmap(void* addr, nuint length);

    [LibraryImport("libc.so.6")]
    private static partial int close(int fd);
}
