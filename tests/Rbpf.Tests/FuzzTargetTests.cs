namespace Rbpf.Tests;

/// <summary>
/// The coverage-guided fuzzing targets (fuzz/Rbpf.Fuzz, run on demand with fuzz/run.sh), here on
/// their seeds and on random damage to them, so that every target keeps working and the ordinary
/// test run covers what the fuzzer starts from.
/// </summary>
public class FuzzTargetTests
{
    public static IEnumerable<object[]> Targets() => Rbpf.Fuzz.Targets.Names.Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(Targets))]
    public void EachTargetRunsItsSeedsAndDamagedCopiesWithoutAFinding(string target)
    {
        var seeds = Rbpf.Fuzz.Seeds.For(target, TestPaths.RepoRoot).ToList();
        Assert.NotEmpty(seeds);
        var rng = new Random(18);
        foreach (var (_, data) in seeds)
        {
            Rbpf.Fuzz.Targets.Run(target, data);
            for (int n = 0; n < 150; n++)
            {
                var copy = (byte[])data.Clone();
                for (int k = rng.Next(1, 4); k > 0 && copy.Length > 0; k--) copy[rng.Next(copy.Length)] = (byte)rng.Next(256);
                var input = rng.Next(5) == 0 ? copy[..rng.Next(copy.Length + 1)] : copy;
                try { Rbpf.Fuzz.Targets.Run(target, input); }
                catch (Exception e) { Assert.Fail($"{target} on {Convert.ToHexString(input)}: {e}"); }
            }
        }
    }

    /// <summary>
    /// Every input a campaign kept (fuzz/corpus/TARGET.tar.gz, minimised by fuzz/keep-corpus.sh)
    /// runs without a finding: what the fuzzer once reached stays covered, and a finding that was
    /// fixed stays fixed.
    /// </summary>
    [Theory]
    [MemberData(nameof(Targets))]
    public void EachTargetReplaysItsKeptCorpusWithoutAFinding(string target)
    {
        var path = Path.Combine(TestPaths.RepoRoot, "fuzz", "corpus", target + ".tar.gz");
        Assert.True(File.Exists(path), $"no kept corpus for '{target}': run fuzz/run.sh {target}, then fuzz/keep-corpus.sh {target}");
        int count = 0;
        using var gzip = new System.IO.Compression.GZipStream(File.OpenRead(path), System.IO.Compression.CompressionMode.Decompress);
        using var tar = new System.Formats.Tar.TarReader(gzip);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.EntryType != System.Formats.Tar.TarEntryType.RegularFile || entry.DataStream == null) continue;
            using var ms = new MemoryStream();
            entry.DataStream.CopyTo(ms);
            var input = ms.ToArray();
            try { Rbpf.Fuzz.Targets.Run(target, input); }
            catch (Exception e) { Assert.Fail($"{target}, kept input {entry.Name} ({Convert.ToHexString(input)}): {e}"); }
            count++;
        }
        Assert.True(count > 0, $"the kept corpus of '{target}' is empty");
    }
}
