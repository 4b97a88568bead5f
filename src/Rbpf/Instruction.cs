using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Rbpf;

/// <summary>
/// One 8-byte eBPF instruction slot as it is encoded: opcode, destination and source registers
/// (four bits each), a signed 16-bit offset and a signed 32-bit immediate, little-endian.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public readonly struct Instruction : IEquatable<Instruction>
{
    /// <summary>The opcode byte.</summary>
    public readonly byte Opcode;
    private readonly byte _regs;
    /// <summary>The signed offset field.</summary>
    public readonly short Offset;
    /// <summary>The signed immediate field.</summary>
    public readonly int Imm;

    /// <summary>Builds an instruction from its fields; registers are masked to four bits.</summary>
    public Instruction(byte opcode, int dst, int src, short offset, int imm)
    {
        Opcode = opcode;
        _regs = (byte)((dst & 0x0f) | ((src & 0x0f) << 4));
        Offset = offset;
        Imm = imm;
    }

    /// <summary>Destination register field (0-15).</summary>
    public int Dst => _regs & 0x0f;

    /// <summary>Source register field (0-15).</summary>
    public int Src => _regs >> 4;

    /// <summary>Instruction class (low three bits of the opcode).</summary>
    public byte Class => (byte)(Opcode & 0x07);

    /// <summary>Reads the instruction at slot <paramref name="index"/> of a program.</summary>
    public static Instruction Read(ReadOnlySpan<byte> program, int index)
    {
        var s = program.Slice(index * Isa.InstructionSize, Isa.InstructionSize);
        return new Instruction(s[0], s[1] & 0x0f, s[1] >> 4,
            BinaryPrimitives.ReadInt16LittleEndian(s[2..]), BinaryPrimitives.ReadInt32LittleEndian(s[4..]));
    }

    /// <summary>Decodes a whole program; its length must be a multiple of 8.</summary>
    public static Instruction[] ReadAll(ReadOnlySpan<byte> program)
    {
        if (program.Length % Isa.InstructionSize != 0)
            throw new RbpfException(RbpfErrorCode.InvalidProgram,
                $"program length {program.Length} is not a multiple of {Isa.InstructionSize}");
        var result = new Instruction[program.Length / Isa.InstructionSize];
        for (int i = 0; i < result.Length; i++) result[i] = Read(program, i);
        return result;
    }

    /// <summary>Writes the 8 encoded bytes into <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        destination[0] = Opcode;
        destination[1] = _regs;
        BinaryPrimitives.WriteInt16LittleEndian(destination[2..], Offset);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], Imm);
    }

    /// <summary>The 8 encoded bytes.</summary>
    public byte[] ToBytes()
    {
        var b = new byte[Isa.InstructionSize];
        WriteTo(b);
        return b;
    }

    /// <summary>Encodes a sequence of instructions as a program.</summary>
    public static byte[] Encode(IReadOnlyList<Instruction> instructions)
    {
        var b = new byte[instructions.Count * Isa.InstructionSize];
        for (int i = 0; i < instructions.Count; i++) instructions[i].WriteTo(b.AsSpan(i * Isa.InstructionSize));
        return b;
    }

    /// <inheritdoc/>
    public bool Equals(Instruction other) =>
        Opcode == other.Opcode && _regs == other._regs && Offset == other.Offset && Imm == other.Imm;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Instruction i && Equals(i);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Opcode, _regs, Offset, Imm);

    /// <summary>Equality of all fields.</summary>
    public static bool operator ==(Instruction a, Instruction b) => a.Equals(b);

    /// <summary>Inequality of any field.</summary>
    public static bool operator !=(Instruction a, Instruction b) => !a.Equals(b);

    /// <inheritdoc/>
    public override string ToString() =>
        $"op=0x{Opcode:x2} dst=r{Dst} src=r{Src} off={Offset} imm={Imm}";
}
