namespace Rbpf;

/// <summary>
/// Constants of the eBPF instruction set (RFC 9669): instruction classes, sizes, modes,
/// operation codes and the limits this runtime enforces.
/// </summary>
public static class Isa
{
    /// <summary>Size in bytes of one instruction slot.</summary>
    public const int InstructionSize = 8;

    /// <summary>Largest program accepted, in instruction slots: rbpf's <c>PROG_MAX_INSNS</c>, and the
    /// Linux kernel's limit for programs loaded with <c>CAP_BPF</c>. The uBPF API keeps uBPF's
    /// 65,536 (<c>UBPF_MAX_INSTS</c>).</summary>
    public const int MaxInstructions = 1_000_000;

    /// <summary>Stack bytes given to each call frame (the Linux kernel's value).</summary>
    public const int StackFrameSize = 512;

    /// <summary>Deepest nesting of frames in the default <see cref="StackLayout"/>: the entry frame plus seven local calls.</summary>
    public const int MaxCallDepth = 8;

    /// <summary>Total stack of one execution.</summary>
    public const int StackSize = StackFrameSize * MaxCallDepth;

    /// <summary>Number of registers, r0 to r10.</summary>
    public const int RegisterCount = 11;

    /// <summary>The read-only frame pointer register.</summary>
    public const int FramePointer = 10;

    // Instruction classes (low three bits of the opcode).
    /// <summary>Non-standard loads: 64-bit immediate and legacy packet loads.</summary>
    public const byte ClassLd = 0x00;
    /// <summary>Loads into a register.</summary>
    public const byte ClassLdx = 0x01;
    /// <summary>Stores of an immediate.</summary>
    public const byte ClassSt = 0x02;
    /// <summary>Stores of a register, and atomics.</summary>
    public const byte ClassStx = 0x03;
    /// <summary>32-bit arithmetic.</summary>
    public const byte ClassAlu = 0x04;
    /// <summary>64-bit jumps, calls and exit.</summary>
    public const byte ClassJmp = 0x05;
    /// <summary>32-bit jumps.</summary>
    public const byte ClassJmp32 = 0x06;
    /// <summary>64-bit arithmetic.</summary>
    public const byte ClassAlu64 = 0x07;

    // Sizes of load and store instructions.
    /// <summary>4 bytes.</summary>
    public const byte SizeW = 0x00;
    /// <summary>2 bytes.</summary>
    public const byte SizeH = 0x08;
    /// <summary>1 byte.</summary>
    public const byte SizeB = 0x10;
    /// <summary>8 bytes.</summary>
    public const byte SizeDW = 0x18;

    // Modes of load and store instructions.
    /// <summary>64-bit immediate (lddw).</summary>
    public const byte ModeImm = 0x00;
    /// <summary>Legacy absolute packet load.</summary>
    public const byte ModeAbs = 0x20;
    /// <summary>Legacy indirect packet load.</summary>
    public const byte ModeInd = 0x40;
    /// <summary>Regular memory access.</summary>
    public const byte ModeMem = 0x60;
    /// <summary>Sign-extending load.</summary>
    public const byte ModeMemSx = 0x80;
    /// <summary>Atomic operation.</summary>
    public const byte ModeAtomic = 0xc0;

    /// <summary>Source is the immediate.</summary>
    public const byte SourceK = 0x00;
    /// <summary>Source is the src register.</summary>
    public const byte SourceX = 0x08;

    // Arithmetic operations (high four bits of the opcode).
#pragma warning disable CS1591 // the names are the RFC's
    public const byte OpAdd = 0x00, OpSub = 0x10, OpMul = 0x20, OpDiv = 0x30, OpOr = 0x40, OpAnd = 0x50,
        OpLsh = 0x60, OpRsh = 0x70, OpNeg = 0x80, OpMod = 0x90, OpXor = 0xa0, OpMov = 0xb0, OpArsh = 0xc0,
        OpEnd = 0xd0;

    // Jump operations (high four bits of the opcode).
    public const byte OpJa = 0x00, OpJeq = 0x10, OpJgt = 0x20, OpJge = 0x30, OpJset = 0x40, OpJne = 0x50,
        OpJsgt = 0x60, OpJsge = 0x70, OpCall = 0x80, OpExit = 0x90, OpJlt = 0xa0, OpJle = 0xb0, OpJslt = 0xc0,
        OpJsle = 0xd0;

    // Atomic operations (immediate field of an atomic instruction).
    public const int AtomicAdd = 0x00, AtomicOr = 0x40, AtomicAnd = 0x50, AtomicXor = 0xa0,
        AtomicFetch = 0x01, AtomicXchg = 0xe0 | AtomicFetch, AtomicCmpXchg = 0xf0 | AtomicFetch;

    // Whole opcodes used by name elsewhere.
    public const byte Lddw = ClassLd | ModeImm | SizeDW;   // 0x18
    public const byte Call = ClassJmp | OpCall;            // 0x85
    public const byte CallX = ClassJmp | OpCall | SourceX; // 0x8d
    public const byte Exit = ClassJmp | OpExit;            // 0x95
    public const byte Ja = ClassJmp | OpJa;                // 0x05
    public const byte Ja32 = ClassJmp32 | OpJa;            // 0x06 (gotol)
#pragma warning restore CS1591

    /// <summary>Source-register value of a call that targets a local function (pc-relative).</summary>
    public const int PseudoCallLocal = 1;
    /// <summary>lddw source 1: the immediate is a map's file descriptor (BPF_PSEUDO_MAP_FD).</summary>
    public const int PseudoMapFd = 1;

    /// <summary>Class of an opcode.</summary>
    public static byte ClassOf(byte opcode) => (byte)(opcode & 0x07);

    /// <summary>Size in bytes encoded in a load or store opcode.</summary>
    public static int SizeOf(byte opcode) => (opcode & 0x18) switch
    {
        SizeW => 4,
        SizeH => 2,
        SizeB => 1,
        _ => 8,
    };
}
