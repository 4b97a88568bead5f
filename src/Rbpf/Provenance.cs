namespace Rbpf;

/// <summary>What a value is, for a run that tracks where pointers come from.</summary>
internal enum TagKind : byte
{
    /// <summary>A number: never dereferenceable.</summary>
    Scalar,
    /// <summary>A pointer into one region, usable within [Base, Base + Size).</summary>
    Pointer,
    /// <summary>An opaque handle: helpers may take it, the program may not dereference it.</summary>
    Handle,
}

/// <summary>A value's provenance: its kind and, for pointers, the region and window it may use.</summary>
internal readonly record struct Tag(TagKind Kind, uint Region, ulong Base, ulong Size, uint Permissions)
{
    public static readonly Tag Scalar = default;
    public bool IsPointer => Kind == TagKind.Pointer;
}

/// <summary>A region a provenance-tracking run knows by id: memory (a pointer region) or a handle.</summary>
internal readonly record struct TrackedRegion(uint Id, ulong Base, ulong Size, uint Permissions, bool IsHandle);

/// <summary>What a helper returns, for provenance: a number, a pointer into a region (and how many bytes of it), or a handle.</summary>
internal readonly record struct HelperResult(TagKind Kind, uint Region, ulong Size);

/// <summary>
/// Tracks, during an interpreted run, where every register and every 8-byte stack slot a pointer
/// was spilled to got its value, and refuses what would make a pointer out of thin air or use one
/// outside its region (uBPF's safe execution profile): a dereference through anything but a
/// pointer (a number, a handle, a pointer rebuilt by 32-bit arithmetic or loaded from a slot that
/// was overwritten), an access outside the pointer's window or without the region's permission,
/// pointer + pointer, number - pointer, and the difference of pointers into different regions.
/// r1 starts as a pointer to the input, r10 to the stack; helpers' results are described by
/// <see cref="HelperResult"/>; calls clobber r1-r5, and local calls keep r6-r9. The interpreter still
/// checks every access against its regions as it always does: this adds rules, it removes none.
/// </summary>
internal sealed unsafe class ProvenanceTracker
{
    /// <summary>Region ids of the input and the stack (ids from 0xfffffffe up are reserved for them).</summary>
    public const uint InputRegion = 0xffff_fffe, StackRegion = 0xffff_ffff;

    /// <summary>Permission bits, as uBPF numbers them.</summary>
    public const uint Read = 1, Write = 2, Atomic = 4;

    private readonly Instruction[] _program;
    private readonly Dictionary<uint, TrackedRegion> _regions;
    private readonly Func<uint, HelperResult?> _helperResult;
    private readonly Tag[] _tags = new Tag[Isa.RegisterCount];
    private readonly Dictionary<ulong, Tag> _spills = new();
    private readonly Stack<Tag[]> _saved = new();
    private uint? _pendingHelper;

    public ProvenanceTracker(ReadOnlySpan<byte> program, IEnumerable<TrackedRegion> regions, Func<uint, HelperResult?> helperResult)
    {
        _program = Instruction.ReadAll(program);
        _regions = regions.ToDictionary(r => r.Id);
        _helperResult = helperResult;
    }

    /// <summary>Called before each instruction (an <see cref="IExecutionObserver"/>); throws to stop the run.</summary>
    public void Before(int pc, ulong* r)
    {
        if (!_started) Start(r);
        if (_pendingHelper is uint helper)
        {
            _pendingHelper = null;
            _tags[0] = ResultOf(helper, r[0], pc - 1);
            Clobber();
        }
        var i = _program[pc];
        byte op = i.Opcode;
        switch (Isa.ClassOf(op))
        {
            case Isa.ClassAlu:
                _tags[i.Dst] = Tag.Scalar; // 32-bit results are numbers, whatever went in
                break;
            case Isa.ClassAlu64:
                _tags[i.Dst] = Alu64(i, pc);
                break;
            case Isa.ClassLd:
                _tags[op == Isa.Lddw ? i.Dst : 0] = op == Isa.Lddw ? Classify(((ulong)(uint)_program[pc + 1].Imm << 32) | (uint)i.Imm) : Tag.Scalar;
                break;
            case Isa.ClassLdx:
            {
                int size = SizeOf(op);
                ulong at = Access(i.Src, i.Offset, size, Read, r, pc);
                _tags[i.Dst] = size == 8 && _tags[i.Src].Region == StackRegion && _spills.TryGetValue(at, out var spilled) ? spilled : Tag.Scalar;
                break;
            }
            case Isa.ClassSt:
            case Isa.ClassStx:
            {
                int size = SizeOf(op);
                bool atomic = Isa.ClassOf(op) == Isa.ClassStx && (op & 0xe0) == Isa.ModeAtomic;
                ulong at = Access(i.Dst, i.Offset, size, atomic ? Read | Write | Atomic : Write, r, pc);
                if (_tags[i.Dst].Region == StackRegion)
                {
                    foreach (var slot in _spills.Keys.Where(s => s < at + (ulong)size && at < s + 8).ToList()) _spills.Remove(slot);
                    if (!atomic && Isa.ClassOf(op) == Isa.ClassStx && size == 8 && _tags[i.Src].Kind != TagKind.Scalar)
                        _spills[at] = _tags[i.Src];
                }
                if (atomic && (i.Imm & Isa.AtomicFetch) != 0)
                    _tags[i.Imm == Isa.AtomicCmpXchg ? 0 : i.Src] = Tag.Scalar;
                break;
            }
            case Isa.ClassJmp:
                if (op == Isa.Call && i.Src == Isa.PseudoCallLocal)
                    _saved.Push(new[] { _tags[6], _tags[7], _tags[8], _tags[9] });
                else if (op == Isa.Call) _pendingHelper = (uint)i.Imm;
                else if (op == Isa.CallX) _pendingHelper = r[i.Dst] <= uint.MaxValue ? (uint)r[i.Dst] : uint.MaxValue;
                else if (op == Isa.Exit && _saved.Count > 0)
                {
                    var kept = _saved.Pop();
                    for (int k = 0; k < 4; k++) _tags[6 + k] = kept[k];
                    Clobber();
                }
                break;
        }
    }

    private bool _started;

    private void Start(ulong* r)
    {
        _started = true;
        Array.Clear(_tags);
        if (r[1] != 0 && _regions.TryGetValue(InputRegion, out var input))
            _tags[1] = new Tag(TagKind.Pointer, InputRegion, input.Base, input.Size, input.Permissions);
        _tags[10] = new Tag(TagKind.Pointer, StackRegion, 0, ulong.MaxValue, Read | Write | Atomic); // the engine bounds the stack
    }

    /// <summary>Calls leave r1-r5 undefined: from now on they are numbers.</summary>
    private void Clobber()
    {
        for (int k = 1; k <= 5; k++) _tags[k] = Tag.Scalar;
    }

    private Tag Alu64(Instruction i, int pc)
    {
        int code = i.Opcode & 0xf0;
        bool reg = (i.Opcode & Isa.SourceX) != 0;
        Tag dst = _tags[i.Dst], src = reg ? _tags[i.Src] : Tag.Scalar;
        switch (code)
        {
            case Isa.OpMov:
                return reg && i.Offset == 0 ? src : Tag.Scalar;
            case Isa.OpAdd:
                if (dst.Kind == TagKind.Handle || src.Kind == TagKind.Handle) throw Violation(pc, "arithmetic on a handle");
                if (dst.IsPointer && src.IsPointer) throw Violation(pc, "pointer + pointer");
                return dst.IsPointer ? dst : src;
            case Isa.OpSub:
                if (dst.Kind == TagKind.Handle || src.Kind == TagKind.Handle) throw Violation(pc, "arithmetic on a handle");
                if (src.IsPointer && !dst.IsPointer) throw Violation(pc, "number - pointer");
                if (src.IsPointer && dst.Region != src.Region) throw Violation(pc, "the difference of pointers into different regions");
                return src.IsPointer ? Tag.Scalar : dst;
            default:
                return Tag.Scalar; // anything else makes a number of a pointer
        }
    }

    /// <summary>The address of an access through <paramref name="baseReg"/>, after checking its provenance.</summary>
    private ulong Access(int baseReg, short offset, int size, uint permissions, ulong* r, int pc)
    {
        var t = _tags[baseReg];
        ulong at = r[baseReg] + (ulong)(long)offset;
        if (t.Kind == TagKind.Handle) throw Violation(pc, $"r{baseReg} is a handle: it cannot be dereferenced");
        if (!t.IsPointer) throw Violation(pc, $"r{baseReg} is not a pointer (a number, or a pointer made by 32-bit arithmetic or reloaded from an overwritten slot)");
        if ((t.Permissions & permissions) != permissions) throw Violation(pc, $"the region r{baseReg} points into does not allow this access");
        if (t.Region != StackRegion && (at < t.Base || at - t.Base > t.Size || (ulong)size > t.Size - (at - t.Base)))
            throw Violation(pc, $"access of {size} bytes at 0x{at:x}, outside the {t.Size} bytes r{baseReg} may use from 0x{t.Base:x}");
        return at;
    }

    private Tag ResultOf(uint helper, ulong value, int pc)
    {
        var result = _helperResult(helper);
        if (result == null || result.Value.Kind == TagKind.Scalar) return Tag.Scalar;
        var h = result.Value;
        if (!_regions.TryGetValue(h.Region, out var region)) throw Violation(pc, $"helper {helper} returns into region {h.Region}, which is not registered");
        if (h.Kind == TagKind.Handle) return new Tag(TagKind.Handle, region.Id, value, 0, 0);
        if (region.IsHandle) throw Violation(pc, $"helper {helper} returns a pointer into region {h.Region}, which is a handle");
        if (value < region.Base || value - region.Base > region.Size || h.Size > region.Size - (value - region.Base))
            throw Violation(pc, $"helper {helper} returned 0x{value:x}, which with its {h.Size} bytes is not inside region {h.Region}");
        return new Tag(TagKind.Pointer, region.Id, value, h.Size, region.Permissions);
    }

    /// <summary>An lddw constant that lies in a registered memory region points into it (relocated global data).</summary>
    private Tag Classify(ulong value)
    {
        foreach (var region in _regions.Values)
            if (!region.IsHandle && region.Id != InputRegion && value >= region.Base && value - region.Base < region.Size)
                return new Tag(TagKind.Pointer, region.Id, region.Base, region.Size, region.Permissions);
        return Tag.Scalar;
    }

    private static int SizeOf(byte op) => (op & 0x18) switch { Isa.SizeB => 1, Isa.SizeH => 2, Isa.SizeW => 4, _ => 8 };

    private static RbpfException Violation(int pc, string what) =>
        new(RbpfErrorCode.OutOfBounds, $"insn #{pc}: pointer provenance: {what}", pc);
}

/// <summary>Runs a <see cref="ProvenanceTracker"/> (then an optional observer of the caller's) before each instruction.</summary>
internal struct ProvenanceObserver : IExecutionObserver
{
    private readonly ProvenanceTracker _tracker;
    private readonly InstructionObserver? _next;

    public ProvenanceObserver(ProvenanceTracker tracker, InstructionObserver? next)
    {
        _tracker = tracker;
        _next = next;
    }

    public readonly bool Enabled => true;

    public readonly unsafe void BeforeInstruction(int pc, ulong* registers)
    {
        _tracker.Before(pc, registers);
        _next?.Invoke(pc, new ReadOnlySpan<ulong>(registers, Isa.RegisterCount));
    }
}
