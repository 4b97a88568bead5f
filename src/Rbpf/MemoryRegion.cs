using System.Runtime.CompilerServices;

namespace Rbpf;

/// <summary>
/// A block of host memory, besides its input, stack and metadata buffer, that a program may
/// load from (and store to, when <see cref="Writable"/>). The embedder keeps it alive and, for
/// managed memory, pinned for as long as it is registered.
/// </summary>
/// <param name="Address">First byte of the region.</param>
/// <param name="Length">Size in bytes.</param>
/// <param name="Writable">Whether stores and atomics may write it.</param>
/// <param name="Name">Shown in error messages.</param>
public readonly record struct MemoryRegion(nint Address, nuint Length, bool Writable, string Name = "region");

/// <summary>What an allowed region of one execution is, for error messages.</summary>
internal enum RegionKind : byte { Stack, Packet, Metadata, User }

/// <summary>One allowed region of one execution, kept unmanaged so it can live on the stack.</summary>
internal struct RegionEntry
{
    public ulong Start;
    public ulong Length;
    public bool Writable;
    public RegionKind Kind;
    public int UserIndex;
}

/// <summary>
/// The memory a running program may touch, handed to helpers that take pointers so they check
/// them exactly as the engine checks loads and stores.
/// </summary>
public readonly unsafe ref struct MemoryAccess
{
    private readonly RegionEntry* _regions;
    private readonly int _count;

    internal MemoryAccess(RegionEntry* regions, int count)
    {
        _regions = regions;
        _count = count;
    }

    /// <summary>Whether <paramref name="length"/> bytes at <paramref name="address"/> lie inside one
    /// allowed region (a writable one when <paramref name="write"/>).</summary>
    public bool IsAllowed(ulong address, ulong length, bool write) => Allowed(_regions, _count, address, length, write);

    /// <summary>The bytes at <paramref name="address"/>, or an <see cref="RbpfException"/> with code
    /// <see cref="RbpfErrorCode.OutOfBounds"/> when they are not all inside one allowed region.</summary>
    public Span<byte> GetSpan(ulong address, int length, bool write)
    {
        if (length < 0 || !Allowed(_regions, _count, address, (ulong)length, write))
            throw new RbpfException(RbpfErrorCode.OutOfBounds,
                $"helper {(write ? "write" : "read")} of {Interpreter.Bytes(length)} at 0x{address:x} is outside the allowed memory");
        return new Span<byte>((void*)address, length);
    }

    /// <summary>Length of the NUL-terminated string at <paramref name="address"/> (without the NUL),
    /// checking every byte up to and including the terminator.</summary>
    public int StringLength(ulong address)
    {
        for (int n = 0; ; n++)
        {
            if (!Allowed(_regions, _count, address + (ulong)n, 1, false))
                throw new RbpfException(RbpfErrorCode.OutOfBounds,
                    $"string at 0x{address:x} runs outside the allowed memory after {n} bytes");
            if (*(byte*)(address + (ulong)n) == 0) return n;
        }
    }

    /// <summary>Inside a region, or else accepted by the embedder's bounds-check callback (null: none).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool Allowed(RegionEntry* regions, int count, ulong address, ulong size, bool write,
        delegate* unmanaged<void*, ulong, ulong, byte> extraCheck, void* extraCheckContext) =>
        Allowed(regions, count, address, size, write) ||
        (extraCheck != null && AskEmbedder(extraCheck, extraCheckContext, address, size));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool AskEmbedder(delegate* unmanaged<void*, ulong, ulong, byte> extraCheck, void* context, ulong address, ulong size) =>
        extraCheck(context, address, size) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool Allowed(RegionEntry* regions, int count, ulong address, ulong size, bool write)
    {
        for (int k = 0; k < count; k++)
        {
            ulong offset = address - regions[k].Start;
            if (offset < regions[k].Length && regions[k].Length - offset >= size && (!write || regions[k].Writable))
                return true;
        }
        return false;
    }
}
