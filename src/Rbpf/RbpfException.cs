namespace Rbpf;

/// <summary>
/// Error codes shared by the engine and the C ABI (<c>RBPF_E_*</c> in rbpf.h): 0 is success,
/// every failure is negative.
/// </summary>
public enum RbpfErrorCode
{
    /// <summary>Success.</summary>
    Ok = 0,
    /// <summary>A NULL pointer, bad length or otherwise unusable argument.</summary>
    InvalidArgument = -1,
    /// <summary>A NULL, destroyed or forged VM handle.</summary>
    InvalidHandle = -2,
    /// <summary>The verifier rejected the program, or it is malformed.</summary>
    InvalidProgram = -3,
    /// <summary>A load or store outside every region the program may touch.</summary>
    OutOfBounds = -4,
    /// <summary>A call to a helper id that has no registered function.</summary>
    UnknownHelper = -5,
    /// <summary>The instruction limit was reached.</summary>
    InstructionLimit = -6,
    /// <summary>Local calls nested deeper than the stack allows.</summary>
    CallDepthExceeded = -7,
    /// <summary>Assembly text could not be parsed.</summary>
    AssemblyError = -8,
    /// <summary>No program is loaded, or the program was not JIT-compiled.</summary>
    NoProgram = -9,
    /// <summary>The feature is not available on this platform or build.</summary>
    Unsupported = -10,
    /// <summary>A helper function failed (threw, or rejected its arguments).</summary>
    HelperFailed = -11,
    /// <summary>An instruction that cannot execute was reached (only when the verifier is off).</summary>
    IllegalInstruction = -12,
    /// <summary>An ELF object could not be loaded.</summary>
    ElfError = -13,
    /// <summary>Memory could not be allocated.</summary>
    OutOfMemory = -14,
    /// <summary>The run was stopped by <see cref="EbpfVm.Interrupt"/> (rbpf_vm_interrupt, or a signal).</summary>
    Interrupted = -15,
    /// <summary>A map has no entry for the key, or an iteration reached its end.</summary>
    NotFound = -16,
    /// <summary>A map update with <c>BPF_NOEXIST</c> found the key present.</summary>
    KeyExists = -17,
    /// <summary>A map is full (or an array index is not below max_entries).</summary>
    MapFull = -18,
    /// <summary>An unexpected internal failure; please report it.</summary>
    Internal = -99,
}

/// <summary>
/// The one error type of the engine: a code (the same numbers as the C enum), the instruction
/// index it applies to (or -1), and a message a person can act on.
/// </summary>
public class RbpfException : Exception
{
    /// <summary>Creates an error.</summary>
    public RbpfException(RbpfErrorCode code, string message, int instructionIndex = -1, Exception? inner = null)
        : base(message, inner)
    {
        Code = code;
        InstructionIndex = instructionIndex;
    }

    /// <summary>What kind of failure this is.</summary>
    public RbpfErrorCode Code { get; }

    /// <summary>Index of the instruction slot the error applies to, or -1.</summary>
    public int InstructionIndex { get; }

    /// <summary>For a program the default verifier refused, the rule it broke; else <see cref="VerifierCheck.None"/>.</summary>
    public VerifierCheck Check { get; init; }
}

/// <summary>An error in assembly text, with the line and column (both from 1) it was found at.</summary>
public sealed class AssemblyException : RbpfException
{
    /// <summary>Creates an assembly error.</summary>
    public AssemblyException(int line, int column, string message)
        : base(RbpfErrorCode.AssemblyError, $"line {line}, column {column}: {message}")
    {
        Line = line;
        Column = column;
        Reason = message;
    }

    /// <summary>Line of the error, from 1.</summary>
    public int Line { get; }

    /// <summary>Column of the error, from 1.</summary>
    public int Column { get; }

    /// <summary>The message without its position.</summary>
    public string Reason { get; }
}
