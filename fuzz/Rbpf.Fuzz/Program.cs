using SharpFuzz;

// Usage: Rbpf.Fuzz TARGET  (under afl-fuzz, through fuzz/run.sh), Rbpf.Fuzz TARGET FILE... to
// replay inputs (a finding, a corpus) without the fuzzer, Rbpf.Fuzz --seeds TARGET DIR REPO to
// write the target's starting inputs.
if (args.Length == 4 && args[0] == "--seeds")
{
    Directory.CreateDirectory(args[2]);
    foreach (var (name, data) in Rbpf.Fuzz.Seeds.For(args[1], args[3])) File.WriteAllBytes(Path.Combine(args[2], name), data);
    return 0;
}
if (args.Length == 0 || !Rbpf.Fuzz.Targets.Names.Contains(args[0]))
{
    Console.Error.WriteLine($"usage: Rbpf.Fuzz TARGET [FILE...]   targets: {string.Join(", ", Rbpf.Fuzz.Targets.Names)}");
    return 2;
}
string target = args[0];
if (args.Length > 1)
{
    foreach (var file in args.Skip(1)) Rbpf.Fuzz.Targets.Run(target, File.ReadAllBytes(file));
    Console.WriteLine($"{args.Length - 1} input(s) replayed without a finding");
    return 0;
}
Fuzzer.OutOfProcess.Run(stream =>
{
    using var ms = new MemoryStream();
    stream.CopyTo(ms);
    Rbpf.Fuzz.Targets.Run(target, ms.ToArray());
});
return 0;
