using System.Globalization;
using System.Text;

namespace Rbpf.Cli;

/// <summary>How a program file is written.</summary>
internal enum InputFormat { Auto, Asm, Raw, Hex, Elf, Cbpf }

/// <summary>Reads programs and memory given on the command line, in any of the formats.</summary>
internal static class ProgramInput
{
    public static InputFormat ParseFormat(string s) => s.ToLowerInvariant() switch
    {
        "auto" => InputFormat.Auto,
        "asm" => InputFormat.Asm,
        "raw" or "bin" => InputFormat.Raw,
        "hex" => InputFormat.Hex,
        "elf" => InputFormat.Elf,
        "cbpf" => InputFormat.Cbpf,
        _ => throw new UsageException($"unknown format '{s}' (asm, raw, hex, elf, cbpf, auto)"),
    };

    /// <summary>The bytes of FILE, or of standard input for "-".</summary>
    public static byte[] ReadAll(string path)
    {
        if (path == "-")
        {
            using var stdin = Console.OpenStandardInput();
            using var ms = new MemoryStream();
            stdin.CopyTo(ms);
            return ms.ToArray();
        }
        if (Directory.Exists(path)) throw new InputException($"cannot read '{path}': it is a directory, not a file");
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"cannot read '{path}': {e.Message}");
        }
    }

    /// <summary>Decides the format of <paramref name="data"/> when it was not given.</summary>
    public static InputFormat Detect(byte[] data)
    {
        if (data.Length >= 4 && data[0] == 0x7f && data[1] == (byte)'E' && data[2] == (byte)'L' && data[3] == (byte)'F')
            return InputFormat.Elf;
        if (data.Length == 0) return InputFormat.Raw;
        bool text = data.All(b => b == '\n' || b == '\r' || b == '\t' || (b >= 0x20 && b < 0x7f));
        if (!text) return InputFormat.Raw;
        string s = Encoding.ASCII.GetString(data);
        return LooksLikeHex(s) ? InputFormat.Hex : InputFormat.Asm;
    }

    private static bool LooksLikeHex(string s)
    {
        // Hex dumps: pairs of hex digits, optionally 0x-prefixed, separated by whitespace or commas.
        string stripped = StripHexNoise(s);
        return stripped.Length > 0 && stripped.Length % 2 == 0 && stripped.All(Uri.IsHexDigit);
    }

    private static string StripHexNoise(string s)
    {
        var sb = new StringBuilder();
        foreach (var token in s.Split(new[] { ' ', '\n', '\r', '\t', ',' }, StringSplitOptions.RemoveEmptyEntries))
            sb.Append(token.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? token[2..] : token);
        return sb.ToString();
    }

    public static byte[] ParseHex(string s)
    {
        string digits = StripHexNoise(s);
        if (digits.Length % 2 != 0 || !digits.All(Uri.IsHexDigit))
            throw new InputException("malformed hex: expected pairs of hex digits");
        return Convert.FromHexString(digits);
    }

    /// <summary>A program read from the command line: its bytecode, and the ELF object it came from, if any.</summary>
    public sealed record LoadedProgram(byte[] Bytecode, byte[]? Elf, string? Section, string? ElfSection = null);

    /// <summary>The program in FILE, in <paramref name="format"/> (detected when Auto).</summary>
    public static LoadedProgram LoadProgram(string path, InputFormat format, string? section = null)
    {
        byte[] data = ReadAll(path);
        if (format == InputFormat.Auto) format = Detect(data);
        if (section != null && format != InputFormat.Elf) throw new UsageException("--section applies to ELF objects only");
        switch (format)
        {
            case InputFormat.Asm:
                return new LoadedProgram(Assembler.Assemble(Encoding.UTF8.GetString(data)), null, null);
            case InputFormat.Hex:
                return new LoadedProgram(ParseHex(Encoding.ASCII.GetString(data)), null, null);
            case InputFormat.Cbpf:
                // tcpdump -dd or -ddd text: a classic filter, translated for a raw VM.
                return new LoadedProgram(Rbpf.Cbpf.ClassicBpf.Translate(Rbpf.Cbpf.ClassicBpf.Parse(Encoding.UTF8.GetString(data))), null, null);
            case InputFormat.Elf:
            {
                using var linked = ElfLoader.Load(data, section);
                return new LoadedProgram(linked.Bytecode, data, section, linked.Section);
            }
            default:
                if (data.Length % Isa.InstructionSize != 0)
                    throw new InputException($"raw bytecode of {data.Length} bytes is not a multiple of 8");
                return new LoadedProgram(data, null, null);
        }
    }

    /// <summary>Loads <paramref name="program"/> into <paramref name="vm"/>: through the ELF loader
    /// (so global data becomes regions) when it came from an object.</summary>
    public static void LoadInto(EbpfVm vm, LoadedProgram program, (int DataOffset, int DataEndOffset)? fixedOffsets = null)
    {
        if (program.Elf != null)
        {
            vm.LoadElf(program.Elf, program.Section);
            if (fixedOffsets is { } f) vm.SetProgram(vm.Program!.Value.Span, f.DataOffset, f.DataEndOffset);
        }
        else if (fixedOffsets is { } f)
            vm.SetProgram(program.Bytecode, f.DataOffset, f.DataEndOffset);
        else
            vm.SetProgram(program.Bytecode);
    }

    public static ulong ParseNumber(string s, string option)
    {
        bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong v)
            : ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        if (!ok) throw new UsageException($"{option} expects a number, got '{s}'");
        return v;
    }
}

/// <summary>A command line that cannot be understood (exit code 2).</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>Input that cannot be read or loaded (exit code 3).</summary>
internal sealed class InputException(string message) : Exception(message);
