using System.Globalization;
using System.Text;

namespace Rbpf.Tests;

/// <summary>One bpf_conformance data file: its program (assembly or raw slots), input memory and expectation
/// (shared with the AArch64 driver; the xunit part lists and skips).</summary>
internal sealed partial record ConformanceCase(string Name, string? Asm, byte[]? Raw, byte[] Memory, ulong? Result, string? Error)
{
    public static ConformanceCase Load(string path)
    {
        var sections = new Dictionary<string, StringBuilder>();
        StringBuilder? current = null;
        foreach (var rawLine in File.ReadAllLines(path))
        {
            if (rawLine.StartsWith("-- ", StringComparison.Ordinal))
            {
                current = new StringBuilder();
                sections[rawLine[3..].Trim()] = current;
                continue;
            }
            if (current == null) continue; // header comments
            current.Append(rawLine).Append('\n');
        }
        string? asm = sections.TryGetValue("asm", out var a) ? a.ToString() : null;
        byte[]? raw = null;
        if (sections.TryGetValue("raw", out var r))
        {
            var bytes = new List<byte>();
            foreach (var line in r.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                ulong v = ulong.Parse(line.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                bytes.AddRange(BitConverter.GetBytes(v));
            }
            raw = bytes.ToArray();
        }
        byte[] mem = sections.TryGetValue("mem", out var m) ? ParseHexBytes(m.ToString()) : Array.Empty<byte>();
        ulong? result = null;
        if (sections.TryGetValue("result", out var res))
        {
            string t = res.ToString().Trim();
            result = ulong.Parse(t.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? t[2..] : t, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        string? error = sections.TryGetValue("error", out var e) ? e.ToString().Trim() : null;
        return new ConformanceCase(Path.GetFileNameWithoutExtension(path), asm, raw, mem, result, error);
    }

    public static byte[] ParseHexBytes(string text)
    {
        var parts = text.Split(new[] { ' ', '\n', '\t', '\r' }, StringSplitOptions.RemoveEmptyEntries);
        return parts.Select(p => byte.Parse(p, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
    }

    /// <summary>The program: the raw slots when the file has them, else our assembly of its text.</summary>
    public byte[] Program => Raw ?? Assembler.Assemble(Asm ?? throw new InvalidOperationException($"{Name} has no program"));

    /// <summary>Runs the case as the suite's plugins do: a raw VM, and helper 5 as the unwind helper returning r1.</summary>
    public static EbpfVm CreateVm(byte[] program)
    {
        var vm = EbpfVm.CreateRaw(program);
        vm.RegisterHelper(5, (r1, _, _, _, _) => r1, "unwind");
        vm.UnwindHelper = 5;
        return vm;
    }
}
