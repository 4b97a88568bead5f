using System.Globalization;
using System.Text;

namespace Rbpf.Cli;

/// <summary>How a program file is written.</summary>
internal enum InputFormat { Auto, Asm, Raw, Hex, Elf }

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
        _ => throw new UsageException($"unknown format '{s}' (asm, raw, hex, elf, auto)"),
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

    /// <summary>The program's bytecode from FILE in <paramref name="format"/> (detected when Auto).</summary>
    public static byte[] LoadProgram(string path, InputFormat format, string? section = null)
    {
        byte[] data = ReadAll(path);
        if (format == InputFormat.Auto) format = Detect(data);
        switch (format)
        {
            case InputFormat.Asm:
                return Assembler.Assemble(Encoding.UTF8.GetString(data));
            case InputFormat.Hex:
                return ParseHex(Encoding.ASCII.GetString(data));
            case InputFormat.Elf:
                throw new InputException("ELF objects are not supported by this build yet" + (section != null ? $" (section '{section}')" : ""));
            default:
                if (data.Length % Isa.InstructionSize != 0)
                    throw new InputException($"raw bytecode of {data.Length} bytes is not a multiple of 8");
                return data;
        }
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
