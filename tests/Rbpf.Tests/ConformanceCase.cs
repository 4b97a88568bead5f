namespace Rbpf.Tests;

internal sealed partial record ConformanceCase
{
    public static IEnumerable<object[]> All()
    {
        string? dir = TestPaths.ConformanceDir;
        if (dir == null)
        {
            yield return new object[] { "" };
            yield break;
        }
        foreach (var f in Directory.GetFiles(Path.Combine(dir, "tests"), "*.data").OrderBy(f => f, StringComparer.Ordinal))
            yield return new object[] { Path.GetFileNameWithoutExtension(f) };
    }

    public static ConformanceCase Get(string name)
    {
        Skip.If(name == "", "../shared/conformance is absent: conformance tests skipped (set RBPF_CONFORMANCE_DIR to run them)");
        return Load(Path.Combine(TestPaths.ConformanceDir!, "tests", name + ".data"));
    }
}
