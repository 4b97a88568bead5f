namespace Rbpf.Tests;

/// <summary>Finds the repository and the shared folder beside it.</summary>
internal static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Rbpf.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root (Rbpf.slnx) not found");
    }

    /// <summary>The conformance suite's folder, or null when ../shared is absent (a fresh clone).</summary>
    public static string? ConformanceDir
    {
        get
        {
            string? env = Environment.GetEnvironmentVariable("RBPF_CONFORMANCE_DIR");
            string dir = env ?? Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "conformance"));
            return Directory.Exists(Path.Combine(dir, "tests")) ? dir : null;
        }
    }
}
