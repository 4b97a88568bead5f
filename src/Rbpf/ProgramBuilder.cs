namespace Rbpf;

/// <summary>Operand source of an arithmetic or jump instruction.</summary>
public enum Source
{
    /// <summary>The immediate field.</summary>
    Imm,
    /// <summary>The src register.</summary>
    Reg,
}

/// <summary>Operand width of an arithmetic instruction.</summary>
public enum Arch
{
    /// <summary>64-bit (ALU64 class).</summary>
    X64,
    /// <summary>32-bit, result zero-extended (ALU class).</summary>
    X32,
}

/// <summary>Byte order a byte-swap instruction converts to.</summary>
public enum Endian
{
    /// <summary><c>le16/32/64</c>.</summary>
    Little,
    /// <summary><c>be16/32/64</c>.</summary>
    Big,
}

/// <summary>Size of a memory access.</summary>
public enum MemSize
{
    /// <summary>1 byte.</summary>
    Byte,
    /// <summary>2 bytes.</summary>
    HalfWord,
    /// <summary>4 bytes.</summary>
    Word,
    /// <summary>8 bytes.</summary>
    DoubleWord,
}

/// <summary>Condition of a conditional jump.</summary>
public enum Cond
{
    /// <summary><c>jeq</c></summary>
    Equals = Isa.OpJeq,
    /// <summary><c>jgt</c> (unsigned)</summary>
    Greater = Isa.OpJgt,
    /// <summary><c>jge</c> (unsigned)</summary>
    GreaterEquals = Isa.OpJge,
    /// <summary><c>jset</c></summary>
    BitAnd = Isa.OpJset,
    /// <summary><c>jne</c></summary>
    NotEquals = Isa.OpJne,
    /// <summary><c>jsgt</c></summary>
    GreaterSigned = Isa.OpJsgt,
    /// <summary><c>jsge</c></summary>
    GreaterEqualsSigned = Isa.OpJsge,
    /// <summary><c>jlt</c> (unsigned)</summary>
    Lower = Isa.OpJlt,
    /// <summary><c>jle</c> (unsigned)</summary>
    LowerEquals = Isa.OpJle,
    /// <summary><c>jslt</c></summary>
    LowerSigned = Isa.OpJslt,
    /// <summary><c>jsle</c></summary>
    LowerEqualsSigned = Isa.OpJsle,
}

/// <summary>Atomic read-modify-write operations.</summary>
public enum AtomicOp
{
    /// <summary><c>lock add</c></summary>
    Add = Isa.AtomicAdd,
    /// <summary><c>lock or</c></summary>
    Or = Isa.AtomicOr,
    /// <summary><c>lock and</c></summary>
    And = Isa.AtomicAnd,
    /// <summary><c>lock xor</c></summary>
    Xor = Isa.AtomicXor,
    /// <summary><c>lock fetch add</c>: the old value lands in src.</summary>
    FetchAdd = Isa.AtomicAdd | Isa.AtomicFetch,
    /// <summary><c>lock fetch or</c></summary>
    FetchOr = Isa.AtomicOr | Isa.AtomicFetch,
    /// <summary><c>lock fetch and</c></summary>
    FetchAnd = Isa.AtomicAnd | Isa.AtomicFetch,
    /// <summary><c>lock fetch xor</c></summary>
    FetchXor = Isa.AtomicXor | Isa.AtomicFetch,
    /// <summary><c>lock xchg</c></summary>
    Exchange = Isa.AtomicXchg,
    /// <summary><c>lock cmpxchg</c>: compares with r0, old value in r0.</summary>
    CompareExchange = Isa.AtomicCmpXchg,
}

/// <summary>
/// Builds programs instruction by instruction, in the spirit of rbpf's <c>insn_builder</c>:
/// pick an operation, set its fields, <see cref="InstructionBuilder.Push"/> it.
/// </summary>
/// <example>
/// <code>
/// var prog = new ProgramBuilder()
///     .Mov(Source.Imm, Arch.X64).SetDst(0).SetImm(7).Push()
///     .Exit().Push()
///     .ToBytes();
/// </code>
/// </example>
public sealed class ProgramBuilder
{
    private readonly List<Instruction> _instructions = new();

    /// <summary>The instructions pushed so far.</summary>
    public IReadOnlyList<Instruction> Instructions => _instructions;

    /// <summary>The program's bytecode.</summary>
    public byte[] ToBytes() => Instruction.Encode(_instructions);

    internal ProgramBuilder Append(Instruction insn)
    {
        _instructions.Add(insn);
        return this;
    }

    private InstructionBuilder Alu(byte op, Source source, Arch arch, short offset = 0) =>
        new(this, (byte)((arch == Arch.X64 ? Isa.ClassAlu64 : Isa.ClassAlu) | op | (source == Source.Reg ? Isa.SourceX : 0)), offset);

    /// <summary><c>dst += src</c></summary>
    public InstructionBuilder Add(Source source, Arch arch) => Alu(Isa.OpAdd, source, arch);
    /// <summary><c>dst -= src</c></summary>
    public InstructionBuilder Sub(Source source, Arch arch) => Alu(Isa.OpSub, source, arch);
    /// <summary><c>dst *= src</c></summary>
    public InstructionBuilder Mul(Source source, Arch arch) => Alu(Isa.OpMul, source, arch);
    /// <summary><c>dst /= src</c> (unsigned; 0 when src is 0)</summary>
    public InstructionBuilder Div(Source source, Arch arch) => Alu(Isa.OpDiv, source, arch);
    /// <summary><c>dst /= src</c> (signed)</summary>
    public InstructionBuilder SignedDiv(Source source, Arch arch) => Alu(Isa.OpDiv, source, arch, 1);
    /// <summary><c>dst |= src</c></summary>
    public InstructionBuilder BitOr(Source source, Arch arch) => Alu(Isa.OpOr, source, arch);
    /// <summary><c>dst &amp;= src</c></summary>
    public InstructionBuilder BitAnd(Source source, Arch arch) => Alu(Isa.OpAnd, source, arch);
    /// <summary><c>dst &lt;&lt;= src</c></summary>
    public InstructionBuilder LeftShift(Source source, Arch arch) => Alu(Isa.OpLsh, source, arch);
    /// <summary><c>dst &gt;&gt;= src</c> (logical)</summary>
    public InstructionBuilder RightShift(Source source, Arch arch) => Alu(Isa.OpRsh, source, arch);
    /// <summary><c>dst = -dst</c></summary>
    public InstructionBuilder Negate(Arch arch) => Alu(Isa.OpNeg, Source.Imm, arch);
    /// <summary><c>dst %= src</c> (unsigned; dst kept when src is 0)</summary>
    public InstructionBuilder Modulo(Source source, Arch arch) => Alu(Isa.OpMod, source, arch);
    /// <summary><c>dst %= src</c> (signed)</summary>
    public InstructionBuilder SignedModulo(Source source, Arch arch) => Alu(Isa.OpMod, source, arch, 1);
    /// <summary><c>dst ^= src</c></summary>
    public InstructionBuilder BitXor(Source source, Arch arch) => Alu(Isa.OpXor, source, arch);
    /// <summary><c>dst = src</c></summary>
    public InstructionBuilder Mov(Source source, Arch arch) => Alu(Isa.OpMov, source, arch);
    /// <summary><c>dst = (signed) src</c> truncated to <paramref name="fromBits"/> (8, 16, or 32 for X64)</summary>
    public InstructionBuilder MovSignExtend(int fromBits, Arch arch) => Alu(Isa.OpMov, Source.Reg, arch, (short)fromBits);
    /// <summary><c>dst &gt;&gt;= src</c> (arithmetic)</summary>
    public InstructionBuilder SignedRightShift(Source source, Arch arch) => Alu(Isa.OpArsh, source, arch);

    /// <summary>Converts dst to <paramref name="endian"/> byte order; set the width (16, 32, 64) with <c>SetImm</c>.</summary>
    public InstructionBuilder SwapBytes(Endian endian) =>
        new(this, (byte)(Isa.ClassAlu | Isa.OpEnd | (endian == Endian.Big ? Isa.SourceX : 0)));

    /// <summary>Unconditional byte swap (<c>bswap16/32/64</c>); set the width with <c>SetImm</c>.</summary>
    public InstructionBuilder ByteSwap() => new(this, Isa.ClassAlu64 | Isa.OpEnd);

    private static byte Size(MemSize size) => size switch
    {
        MemSize.Byte => Isa.SizeB,
        MemSize.HalfWord => Isa.SizeH,
        MemSize.Word => Isa.SizeW,
        _ => Isa.SizeDW,
    };

    /// <summary><c>lddw dst, imm64</c>: pushes both slots; the value is given here.</summary>
    public ProgramBuilder LoadImm64(int dst, ulong value) =>
        Append(new Instruction(Isa.Lddw, dst, 0, 0, (int)(uint)value)).Append(new Instruction(0, 0, 0, 0, (int)(uint)(value >> 32)));

    /// <summary>Legacy absolute packet load into r0.</summary>
    public InstructionBuilder LoadAbs(MemSize size) => new(this, (byte)(Isa.ClassLd | Isa.ModeAbs | Size(size)));
    /// <summary>Legacy indirect packet load into r0.</summary>
    public InstructionBuilder LoadInd(MemSize size) => new(this, (byte)(Isa.ClassLd | Isa.ModeInd | Size(size)));
    /// <summary><c>dst = *(src + off)</c></summary>
    public InstructionBuilder LoadX(MemSize size) => new(this, (byte)(Isa.ClassLdx | Isa.ModeMem | Size(size)));
    /// <summary><c>dst = (signed) *(src + off)</c> (not for double words)</summary>
    public InstructionBuilder LoadXSignExtend(MemSize size) => new(this, (byte)(Isa.ClassLdx | Isa.ModeMemSx | Size(size)));
    /// <summary><c>*(dst + off) = imm</c></summary>
    public InstructionBuilder Store(MemSize size) => new(this, (byte)(Isa.ClassSt | Isa.ModeMem | Size(size)));
    /// <summary><c>*(dst + off) = src</c></summary>
    public InstructionBuilder StoreX(MemSize size) => new(this, (byte)(Isa.ClassStx | Isa.ModeMem | Size(size)));
    /// <summary>Atomic operation on <c>*(dst + off)</c> with src (word or double word).</summary>
    public InstructionBuilder Atomic(AtomicOp op, MemSize size) =>
        new InstructionBuilder(this, (byte)(Isa.ClassStx | Isa.ModeAtomic | Size(size))).SetImm((int)op);

    /// <summary><c>ja +off</c></summary>
    public InstructionBuilder JumpUnconditional() => new(this, Isa.Ja);
    /// <summary><c>gotol +imm</c> (32-bit offset in the immediate)</summary>
    public InstructionBuilder JumpLong() => new(this, Isa.Ja32);
    /// <summary>Conditional 64-bit jump by <c>off</c> slots.</summary>
    public InstructionBuilder JumpConditional(Cond cond, Source source) =>
        new(this, (byte)(Isa.ClassJmp | (int)cond | (source == Source.Reg ? Isa.SourceX : 0)));
    /// <summary>Conditional 32-bit jump by <c>off</c> slots.</summary>
    public InstructionBuilder JumpConditional32(Cond cond, Source source) =>
        new(this, (byte)(Isa.ClassJmp32 | (int)cond | (source == Source.Reg ? Isa.SourceX : 0)));
    /// <summary>Calls helper <c>imm</c>.</summary>
    public InstructionBuilder Call() => new(this, Isa.Call);
    /// <summary>Calls the local function <c>imm</c> slots after the next instruction.</summary>
    public InstructionBuilder CallLocal() => new InstructionBuilder(this, Isa.Call).SetSrc(Isa.PseudoCallLocal);
    /// <summary>Calls the helper whose id is in dst.</summary>
    public InstructionBuilder CallX() => new(this, Isa.CallX);
    /// <summary>Returns r0.</summary>
    public InstructionBuilder Exit() => new(this, Isa.Exit);
}

/// <summary>One instruction being built: set its fields, then <see cref="Push"/> it.</summary>
public sealed class InstructionBuilder
{
    private readonly ProgramBuilder _owner;
    private readonly byte _opcode;
    private int _dst, _src;
    private short _off;
    private int _imm;

    internal InstructionBuilder(ProgramBuilder owner, byte opcode, short offset = 0)
    {
        _owner = owner;
        _opcode = opcode;
        _off = offset;
    }

    /// <summary>Sets the destination register (0-10).</summary>
    public InstructionBuilder SetDst(int register) { _dst = CheckRegister(register); return this; }
    /// <summary>Sets the source register (0-10).</summary>
    public InstructionBuilder SetSrc(int register) { _src = CheckRegister(register); return this; }
    /// <summary>Sets the offset field.</summary>
    public InstructionBuilder SetOff(short offset) { _off = offset; return this; }
    /// <summary>Sets the immediate field.</summary>
    public InstructionBuilder SetImm(int imm) { _imm = imm; return this; }

    /// <summary>The instruction as built so far.</summary>
    public Instruction Instruction => new(_opcode, _dst, _src, _off, _imm);

    /// <summary>Appends the instruction to its program and returns the program.</summary>
    public ProgramBuilder Push() => _owner.Append(Instruction);

    private static int CheckRegister(int register) =>
        register is >= 0 and <= 10 ? register : throw new ArgumentOutOfRangeException(nameof(register), register, "registers are r0 to r10");
}
