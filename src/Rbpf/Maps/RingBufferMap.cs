namespace Rbpf.Maps;

/// <summary>Gets one ring buffer record; a non-zero result stops the draining.</summary>
public delegate int RingRecordHandler(ReadOnlySpan<byte> record);

/// <summary>
/// A ring buffer: programs reserve records and submit (or discard) them, or output a copy in one
/// step; the host drains submitted records in order. A record is an 8-byte header (length with a
/// busy and a discard bit, and a check word) and its data, rounded up to 8 bytes, as the kernel
/// lays them out. A record never wraps: when one would not fit before the end, a discarded filler
/// takes the rest and the record starts at the beginning.
/// </summary>
public sealed unsafe class RingBufferMap : BpfMap
{
    private const uint Busy = 1u << 31, Discarded = 1u << 30, LengthMask = Discarded - 1;
    private readonly byte* _data;
    private readonly ulong _size;
    private ulong _producer, _consumer;
    private readonly object _producers = new();
    private readonly object _consumers = new();

    internal RingBufferMap(uint size, uint flags, string name) : base(MapType.RingBuffer, 0, 0, size, flags, name)
    {
        _size = size;
        _data = AllocPool(size);
    }

    /// <summary>Frees the buffer's memory.</summary>
    ~RingBufferMap() => FreePool(_data);

    internal override (nint Address, nuint Length) ProgramMemory => ((nint)_data, (nuint)_size);

    /// <inheritdoc/>
    public override int Count => 0;

    /// <summary>Empties the buffer and starts it again at offset 0, as when it was made (for the
    /// fuzzing targets, which run one program twice from the same state; not while programs run).</summary>
    internal void Reset()
    {
        lock (_producers)
            lock (_consumers)
            {
                new Span<byte>(_data, (int)_size).Clear();
                Volatile.Write(ref _producer, 0);
                Volatile.Write(ref _consumer, 0);
            }
    }

    /// <summary>The word that marks a real record header at byte <paramref name="offset"/>.</summary>
    private static uint Check(ulong offset) => (uint)offset ^ 0x5bf5_ab1e;

    /// <summary>Reserves <paramref name="size"/> bytes: their address, or 0 when there is no room.</summary>
    internal nint Reserve(ulong size)
    {
        if (size == 0 || size > LengthMask || size + 8 > _size) return 0;
        ulong total = (size + 8 + 7) & ~7UL;
        lock (_producers)
        {
            ulong consumer = Volatile.Read(ref _consumer);
            ulong offset = _producer & (_size - 1);
            if (offset + total > _size)
            {
                ulong pad = _size - offset;
                if (_producer + pad + total - consumer > _size) return 0;
                *(uint*)(_data + offset + 4) = Check(offset);
                Volatile.Write(ref *(uint*)(_data + offset), (uint)(pad - 8) | Discarded);
                Volatile.Write(ref _producer, _producer + pad);
                offset = 0;
            }
            if (_producer + total - consumer > _size) return 0;
            *(uint*)(_data + offset + 4) = Check(offset);
            Volatile.Write(ref *(uint*)(_data + offset), (uint)size | Busy);
            Volatile.Write(ref _producer, _producer + total);
            return (nint)(_data + offset + 8);
        }
    }

    /// <summary>Commits (or discards) the record whose data is at <paramref name="data"/>; false when it is not a reserved record.</summary>
    internal bool Commit(ulong data, bool discard)
    {
        ulong start = (ulong)_data;
        if (data < start + 8 || data >= start + _size || (data - start) % 8 != 0) return false;
        ulong offset = data - start - 8;
        uint* header = (uint*)(_data + offset);
        uint len = Volatile.Read(ref *header);
        if ((len & Busy) == 0 || header[1] != Check(offset)) return false;
        Volatile.Write(ref *header, (len & ~Busy) | (discard ? Discarded : 0));
        return true;
    }

    /// <summary>Whether <paramref name="data"/> lies in this buffer's memory.</summary>
    internal bool Holds(ulong data) => data >= (ulong)_data && data < (ulong)_data + _size;

    /// <summary>Writes one record (as <c>bpf_ringbuf_output</c>): false when there is no room.</summary>
    public bool Output(ReadOnlySpan<byte> bytes)
    {
        nint p = Reserve((ulong)bytes.Length);
        if (p == 0) return false;
        bytes.CopyTo(new Span<byte>((void*)p, bytes.Length));
        Commit((ulong)p, discard: false);
        return true;
    }

    /// <summary>bpf_ringbuf_query: 0 data waiting, 1 size, 2 consumer position, 3 producer position.</summary>
    public ulong Query(ulong what = 0) => what switch
    {
        0 => Volatile.Read(ref _producer) - Volatile.Read(ref _consumer),
        1 => _size,
        2 => Volatile.Read(ref _consumer),
        3 => Volatile.Read(ref _producer),
        _ => 0,
    };

    /// <summary>
    /// Hands each submitted record, in order, to <paramref name="handler"/> until one is still being
    /// written or the callback returns non-zero; returns how many it handed over (or the callback's
    /// non-zero result when it stopped early, as libbpf's ring_buffer__consume).
    /// </summary>
    public long Consume(RingRecordHandler handler) =>
        Consume((p, n) => handler(new ReadOnlySpan<byte>((void*)p, n)));

    /// <summary>As <see cref="Consume(RingRecordHandler)"/>, with each record's address and length.</summary>
    internal long Consume(Func<nint, int, int> record)
    {
        lock (_consumers)
        {
            long count = 0;
            while (true)
            {
                ulong consumer = _consumer;
                if (consumer >= Volatile.Read(ref _producer)) return count;
                ulong offset = consumer & (_size - 1);
                uint len = Volatile.Read(ref *(uint*)(_data + offset));
                if ((len & Busy) != 0) return count;
                ulong size = len & LengthMask;
                ulong total = (size + 8 + 7) & ~7UL;
                if (*(uint*)(_data + offset + 4) != Check(offset) || offset + total > _size)
                    throw new RbpfException(RbpfErrorCode.Internal, $"ring buffer '{Name}': the record header at offset {offset} was overwritten");
                int rc = 0;
                if ((len & Discarded) == 0)
                {
                    rc = record((nint)(_data + offset + 8), (int)size);
                    count++;
                }
                Volatile.Write(ref _consumer, consumer + total);
                if (rc != 0) return rc;
            }
        }
    }

    internal override nint LookupPointer(ReadOnlySpan<byte> key) => 0;
    internal override int UpdateRaw(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags) => -22;
    internal override int DeleteRaw(ReadOnlySpan<byte> key) => -22;
    /// <inheritdoc/>
    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => false;
}
