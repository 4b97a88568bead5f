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
}
