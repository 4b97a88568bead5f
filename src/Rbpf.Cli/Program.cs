using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Runtime.InteropServices;

namespace Rbpf.Cli;

/// <summary>
/// The rbpf command. Exit codes: 0 success; 1 the eBPF program failed while running; 2 bad command
/// line; 3 input that cannot be read, parsed or verified; 4 a feature this build lacks.
/// </summary>
internal static class Program
{
    private const int ExitOk = 0, ExitRunFailed = 1, ExitUsage = 2, ExitInput = 3, ExitUnsupported = 4;
    /// <summary>Stopped by Ctrl-C (SIGINT): 128 + 2, as shells report it.</summary>
    private const int ExitInterrupted = 130;

    /// <summary>Set by Ctrl-C during <c>rbpf run</c>.</summary>
    private static volatile bool s_cancelled;

    private const string MainHelp = """
        usage: rbpf <command> [options]

        commands:
          asm FILE|-       assemble eBPF assembly into bytecode
          disasm FILE|-    disassemble bytecode into assembly
          run PROG         run a program and print r0
          jit PROG         show the machine code the JIT generates (x86-64 or AArch64)
          plugin [MEM]     bpf_conformance plugin mode (program as hex on stdin)
          version          print the version

        'rbpf <command> --help' describes a command. Programs (PROG) may be assembly text, raw
        bytecode, hex or an ELF object: the format is detected, or given with --format.
        Exit codes: 0 ok, 1 the program failed at run time, 2 usage error, 3 bad input,
        4 not supported on this platform.
        """;

    private const string AsmHelp = """
        usage: rbpf asm FILE|- [-o OUT] [--hex]

        Assembles FILE (or standard input) and writes the bytecode to standard output or OUT:
        raw bytes, or hex (one instruction per line) with --hex. Errors name the line and column.
        Reads rbpf's syntax (mov r0, 1), the conformance suite's (%r0) and LLVM's (r0 = 1,
        as clang -S and llvm-objdump -d print it; pasted objdump listings keep their bytes).
        """;

    private const string DisasmHelp = """
        usage: rbpf disasm FILE|- [--format raw|hex|elf|auto] [--section NAME] [--syntax rbpf|llvm]
                                  [--no-labels]
               rbpf disasm --cbpf FILTER

        Disassembles bytecode (raw, hex or an ELF object's section) into text that 'rbpf asm'
        assembles back to the same bytes. Jump and call targets get labels (L7: before slot 7)
        unless --no-labels; --syntax llvm writes the LLVM/kernel syntax (r0 = 1,
        if r1 > r2 goto L7), which 'rbpf asm' reads too. With --cbpf, FILTER is a classic BPF
        program as 'tcpdump -dd' or '-ddd' prints it, and the output its eBPF translation.
        """;

    private const string RunHelp = """
        usage: rbpf run PROG [options]

          --format F            asm, raw, hex, elf, cbpf or auto (default: auto)
          --cbpf                PROG is a classic BPF filter ('tcpdump -dd' or '-ddd' output),
                                run on a raw VM: r0 is libpcap's verdict (0 drops)

        An ELF program whose section names an XDP program (SEC("xdp")) runs as one unless --kind
        is given: --mem is the frame, and the verdict is printed with its name (and the frame,
        if the program changed it).

          --type T              xdp, tc or socket: run PROG as that kernel program type (ELF sections
                                xdp, tc and classifier choose it themselves; none: a VM kind)
          --pcap FILE           run over every packet of a pcap or pcapng capture (XDP, tc, socket,
                                or a raw VM) and print the verdicts counted and any errors;
                                --trace N then follows packet N (from 0) instruction by instruction
          --write-pcap OUT      with --verdict V: write the packets with that verdict (a number,
                                or pass, drop, tx, aborted, redirect for XDP) as the program left them
          --section NAME        ELF objects: the program's section or function
          --mem FILE            input memory from a file
          --mem-hex HEX         input memory as hex ("aa bb 11" or "aabb11")
          --kind K              raw (default), mbuff, fixed or nodata
          --mbuff-hex HEX       metadata buffer for --kind mbuff
          --data-offset N       fixed kind: where the data pointer goes (default 0)
          --data-end-offset N   fixed kind: where the data end pointer goes (default 8)
          --jit                 run JIT-compiled code (x86-64 Linux, macOS, Windows; AArch64 Linux)
          --unchecked           with --jit: no memory checks (trusted programs only)
          --limit N             stop a run that would go past N instructions
          --trace               print each executed instruction with the registers
          --repeat N            run N times and print runs per second
          --no-verify           skip the verifier (the engine still refuses what cannot execute)
          --stub-helpers N      bind every helper the program calls that is not registered to a
                                stub that prints its id and arguments on stderr and returns N
          --dump-maps           after the run, print the maps the ELF object declared (keys and
                                values in hex; ring buffer records, drained)

        Prints r0 in hex (0x...). The standard helpers are registered (bpf_trace_printk is 6).
        Ctrl-C stops the run at its next loop head or function entry (exit status 130).
        """;

    private const string JitHelp = """
        usage: rbpf jit PROG [--format F] [--section NAME] [--arch x64|arm64] [--unchecked] [--blind] [--no-verify]

        Prints the machine code generated for each eBPF instruction (memory checks included
        unless --unchecked; --blind blinds immediates), for the host's processor or --arch:
        arm64 (AArch64) listings work on any host, x64 ones need an x86-64 host.
        """;

    private const string PluginHelp = """
        usage: rbpf plugin [MEMORY-HEX] [--jit|--interpret] [--blind] [--unchecked]
               rbpf-plugin [MEMORY-HEX] [--jit|--interpret] [--blind] [--unchecked]

        The bpf_conformance plugin protocol: the program arrives on standard input as hex bytes,
        the input memory (when the test has one) as the first argument, options after it. Prints
        r0 in hex and exits 0, or prints a message on standard error and exits 1. Helper 5 is
        the unwind helper (returns r1; a zero result ends the program), as the suite expects.
        With --jit, --blind compiles with constant blinding and --unchecked without memory checks.
        """;

    private static int Main(string[] args)
    {
        try
        {
            if (args.Length == 0)
            {
                Console.Error.Write(MainHelp);
                return ExitUsage;
            }
            string command = args[0];
            var rest = args.AsSpan(1).ToArray();
            return command switch
            {
                "asm" => Asm(rest),
                "disasm" => Disasm(rest),
                "run" => Run(rest),
                "jit" => Jit(rest),
                "plugin" => Plugin(rest),
                "version" or "--version" => Print($"rbpf {typeof(EbpfVm).Assembly.GetName().Version?.ToString(3)}"),
                "help" or "--help" or "-h" => Print(MainHelp),
                _ => throw new UsageException($"unknown command '{command}'"),
            };
        }
        catch (UsageException e)
        {
            Console.Error.WriteLine($"rbpf: {e.Message}");
            Console.Error.WriteLine("try 'rbpf --help'");
            return ExitUsage;
        }
        catch (InputException e)
        {
            Console.Error.WriteLine($"rbpf: {e.Message}");
            return ExitInput;
        }
        catch (RbpfException e)
        {
            Console.Error.WriteLine($"rbpf: {e.Message}");
            return e.Code switch
            {
                RbpfErrorCode.AssemblyError or RbpfErrorCode.InvalidProgram or RbpfErrorCode.ElfError
                    or RbpfErrorCode.InvalidArgument => ExitInput,
                RbpfErrorCode.Unsupported => ExitUnsupported,
                RbpfErrorCode.Interrupted => ExitInterrupted,
                _ => ExitRunFailed,
            };
        }
    }

    private static int Print(string text)
    {
        Console.Out.Write(text.EndsWith('\n') ? text : text + "\n");
        return ExitOk;
    }

    /// <summary>A minimal option reader: flags, options with a value, and positionals.</summary>
    private sealed class Options
    {
        private readonly Dictionary<string, string?> _values = new();
        public List<string> Positionals { get; } = new();
        public bool Help { get; private set; }

        public Options(string[] args, string[] flags, string[] valued)
        {
            for (int i = 0; i < args.Length; i++)
            {
                string a = args[i];
                if (a == "--help" || a == "-h") { Help = true; continue; }
                if (a.Length > 1 && a[0] == '-' && a != "-")
                {
                    string name = a, value = "";
                    int eq = a.IndexOf('=');
                    if (eq > 0) { name = a[..eq]; value = a[(eq + 1)..]; }
                    if (flags.Contains(name)) { _values[name] = null; continue; }
                    if (!valued.Contains(name)) throw new UsageException($"unknown option '{name}'");
                    if (eq < 0)
                    {
                        if (i + 1 >= args.Length) throw new UsageException($"option '{name}' needs a value");
                        value = args[++i];
                    }
                    _values[name] = value;
                    continue;
                }
                Positionals.Add(a);
            }
        }

        public bool Has(string name) => _values.ContainsKey(name);
        public string? Get(string name) => _values.TryGetValue(name, out var v) ? v : null;
    }

    private static string OnePositional(Options o, string what)
    {
        if (o.Positionals.Count == 0) throw new UsageException($"missing {what}");
        if (o.Positionals.Count > 1) throw new UsageException($"unexpected argument '{o.Positionals[1]}'");
        return o.Positionals[0];
    }

    private static int Asm(string[] args)
    {
        var o = new Options(args, new[] { "--hex" }, new[] { "-o", "--output" });
        if (o.Help) return Print(AsmHelp);
        string file = OnePositional(o, "FILE (or - for standard input)");
        byte[] source = ProgramInput.ReadAll(file);
        byte[] prog = Assembler.Assemble(Encoding.UTF8.GetString(source));
        byte[] output = prog;
        if (o.Has("--hex"))
        {
            var sb = new StringBuilder();
            for (int i = 0; i < prog.Length; i += 8)
                sb.Append(Convert.ToHexString(prog, i, 8).ToLowerInvariant()).Append('\n');
            output = Encoding.ASCII.GetBytes(sb.ToString());
        }
        string? outPath = o.Get("-o") ?? o.Get("--output");
        if (outPath != null && outPath != "-")
        {
            if (Directory.Exists(outPath)) throw new InputException($"cannot write '{outPath}': it is a directory");
            try { File.WriteAllBytes(outPath, output); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InputException($"cannot write '{outPath}': {e.Message}");
            }
        }
        else
        {
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(output);
        }
        return ExitOk;
    }

    private static int Disasm(string[] args)
    {
        var o = new Options(args, new[] { "--no-labels", "--cbpf" }, new[] { "--format", "--section", "--syntax" });
        if (o.Help) return Print(DisasmHelp);
        var syntax = (o.Get("--syntax") ?? "rbpf") switch
        {
            "rbpf" => AsmSyntax.Rbpf,
            "llvm" => AsmSyntax.Llvm,
            var other => throw new UsageException($"unknown syntax '{other}' (rbpf or llvm)"),
        };
        string file = OnePositional(o, "FILE (or - for standard input)");
        if (o.Has("--cbpf"))
        {
            // A classic filter's translation, labelled by the classic instruction each part comes from.
            var cbpf = Rbpf.Cbpf.ClassicBpf.Parse(Encoding.UTF8.GetString(ProgramInput.ReadAll(file)));
            Console.Out.Write(Rbpf.Cbpf.ClassicBpf.TranslateToAssembly(cbpf));
            return ExitOk;
        }
        var format = ProgramInput.ParseFormat(o.Get("--format") ?? "auto");
        if (format == InputFormat.Asm) throw new UsageException("disasm reads bytecode, not assembly");
        byte[] data = ProgramInput.ReadAll(file);
        if (format == InputFormat.Auto)
        {
            format = ProgramInput.Detect(data);
            // Text that is not hex is taken as raw bytes here: disasm never assembles.
            if (format == InputFormat.Asm) format = InputFormat.Raw;
        }
        string? section = o.Get("--section");
        if (section != null && format != InputFormat.Elf) throw new UsageException("--section applies to ELF objects only");
        byte[] prog;
        switch (format)
        {
            case InputFormat.Hex:
                prog = ProgramInput.ParseHex(Encoding.ASCII.GetString(data));
                break;
            case InputFormat.Elf:
                using (var linked = ElfLoader.Load(data, section)) prog = linked.Bytecode;
                break;
            default:
                prog = data.Length % 8 == 0 ? data : throw new InputException($"raw bytecode of {data.Length} bytes is not a multiple of 8");
                break;
        }
        Console.Out.Write(Disassembler.Disassemble(prog, syntax, labels: !o.Has("--no-labels")));
        return ExitOk;
    }

    private static int Jit(string[] args)
    {
        var o = new Options(args, new[] { "--unchecked", "--blind", "--no-verify" }, new[] { "--format", "--section", "--arch" });
        if (o.Help) return Print(JitHelp);
        var arch = (o.Get("--arch") ?? (RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "arm64" : "x64")).ToLowerInvariant() switch
        {
            "x64" or "x86-64" or "x86_64" or "amd64" => Rbpf.Jit.JitArchitecture.X64,
            "arm64" or "aarch64" => Rbpf.Jit.JitArchitecture.Arm64,
            var other => throw new UsageException($"unknown architecture '{other}' (x64, arm64)"),
        };
        string file = OnePositional(o, "PROG");
        var loaded = ProgramInput.LoadProgram(file, ProgramInput.ParseFormat(o.Get("--format") ?? "auto"), o.Get("--section"));
        byte[] prog = loaded.Bytecode;
        var vm = new EbpfVm(VmKind.Raw);
        if (o.Has("--no-verify")) vm.SetVerifier(null);
        vm.RegisterStandardHelpers();
        ProgramInput.LoadInto(vm, loaded);
        Console.Out.Write(vm.JitListing(arch, new Rbpf.Jit.JitOptions { CheckedMemory = !o.Has("--unchecked"), ConstantBlinding = o.Has("--blind") }));
        return ExitOk;
    }

    private static VmKind ParseKind(string s) => s.ToLowerInvariant() switch
    {
        "raw" => VmKind.Raw,
        "mbuff" => VmKind.Mbuff,
        "fixed" or "fixed-mbuff" => VmKind.FixedMbuff,
        "nodata" or "no-data" => VmKind.NoData,
        _ => throw new UsageException($"unknown VM kind '{s}' (raw, mbuff, fixed, nodata)"),
    };

    /// <summary>Binds each helper id the program calls and nobody registered to a stub that logs its call and returns <paramref name="value"/>.</summary>
    private static void StubMissingHelpers(EbpfVm vm, byte[] program, ulong value)
    {
        var stderr = Console.Error;
        foreach (var i in Instruction.ReadAll(program))
        {
            if (i.Opcode != Isa.Call || i.Src != 0 || vm.HasHelper((uint)i.Imm)) continue;
            uint id = (uint)i.Imm;
            vm.RegisterHelper(id, (a, b, c, d, e) =>
            {
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"rbpf: stub helper {id} called with 0x{a:x}, 0x{b:x}, 0x{c:x}, 0x{d:x}, 0x{e:x}: returns 0x{value:x}"));
                return value;
            }, $"stub_{id}");
        }
    }

    private static int Run(string[] args)
    {
        // With --pcap, "--trace N" follows packet N (counted from 0): the flag takes a number there.
        if (args.Contains("--pcap"))
        {
            int t = Array.IndexOf(args, "--trace");
            if (t >= 0 && t + 1 < args.Length && args[t + 1].Length > 0 && char.IsDigit(args[t + 1][0]))
            {
                args = (string[])args.Clone();
                args[t] = "--trace-packet";
            }
        }
        var o = new Options(args, new[] { "--jit", "--unchecked", "--trace", "--no-verify", "--dump-maps", "--cbpf" },
            new[] { "--format", "--section", "--mem", "--mem-hex", "--kind", "--mbuff-hex", "--data-offset", "--data-end-offset", "--limit", "--repeat",
                    "--stub-helpers", "--pcap", "--write-pcap", "--verdict", "--type", "--trace-packet" });
        if (o.Help) return Print(RunHelp);
        string file = OnePositional(o, "PROG");
        if (o.Has("--mem") && o.Has("--mem-hex")) throw new UsageException("give --mem or --mem-hex, not both");
        var kind = ParseKind(o.Get("--kind") ?? "raw");
        ulong repeat = o.Has("--repeat") ? ProgramInput.ParseNumber(o.Get("--repeat")!, "--repeat") : 1;
        if (repeat == 0) throw new UsageException("--repeat must be at least 1");
        if (o.Has("--trace") && repeat > 1) throw new UsageException("--trace and --repeat do not go together");
        var loaded = ProgramInput.LoadProgram(file, CbpfOr(o), o.Get("--section"));
        if (o.Has("--cbpf") && kind != VmKind.Raw) throw new UsageException("a classic filter runs on a raw VM: drop --kind");
        byte[] prog = loaded.Bytecode;
        byte[] mem = o.Has("--mem") ? ProgramInput.ReadAll(o.Get("--mem")!)
            : o.Has("--mem-hex") ? ProgramInput.ParseHex(o.Get("--mem-hex")!) : Array.Empty<byte>();
        byte[] mbuff = o.Has("--mbuff-hex") ? ProgramInput.ParseHex(o.Get("--mbuff-hex")!) : Array.Empty<byte>();

        // An XDP program in an ELF object runs as one (its section, as libbpf reads it) unless a VM
        // kind is given. Other sections run on a VM kind, as before (socket and tc contexts are not
        // there yet, and objects written for rbpf's raw VM often use SEC("socket")).
        var sectionType = loaded.ElfSection != null ? Rbpf.Programs.ProgramTypes.FromSection(loaded.ElfSection) : Rbpf.Programs.ProgramType.None;
        var type = o.Get("--type") switch
        {
            null => !o.Has("--kind") && sectionType is Rbpf.Programs.ProgramType.Xdp or Rbpf.Programs.ProgramType.SchedCls
                or Rbpf.Programs.ProgramType.SchedAct ? sectionType : Rbpf.Programs.ProgramType.None,
            "xdp" => Rbpf.Programs.ProgramType.Xdp,
            "tc" => Rbpf.Programs.ProgramType.SchedCls,
            "socket" => Rbpf.Programs.ProgramType.SocketFilter,
            "none" => Rbpf.Programs.ProgramType.None,
            var other => throw new UsageException($"unknown program type '{other}' (xdp, tc, socket, none)"),
        };
        if (type != Rbpf.Programs.ProgramType.None && o.Has("--kind")) throw new UsageException("give --type or --kind, not both");
        var vm = type != Rbpf.Programs.ProgramType.None ? EbpfVm.ForProgramType(type) : new EbpfVm(kind);
        if (o.Has("--no-verify")) vm.SetVerifier(null);
        vm.RegisterStandardHelpers();
        (int, int)? offsets = null;
        if (kind == VmKind.FixedMbuff)
        {
            ulong off = o.Has("--data-offset") ? ProgramInput.ParseNumber(o.Get("--data-offset")!, "--data-offset") : 0;
            ulong end = o.Has("--data-end-offset") ? ProgramInput.ParseNumber(o.Get("--data-end-offset")!, "--data-end-offset") : 8;
            if (off > int.MaxValue || end > int.MaxValue) throw new UsageException("data offsets are too large");
            offsets = ((int)off, (int)end);
        }
        ProgramInput.LoadInto(vm, loaded, offsets);
        if (o.Has("--stub-helpers")) StubMissingHelpers(vm, prog, ProgramInput.ParseNumber(o.Get("--stub-helpers")!, "--stub-helpers"));
        if (o.Has("--limit")) vm.InstructionLimit = ProgramInput.ParseNumber(o.Get("--limit")!, "--limit");
        bool jit = o.Has("--jit");
        if (jit && o.Has("--trace")) throw new UsageException("--trace follows the interpreter: drop --jit");
        if (jit) vm.JitCompile(new Rbpf.Jit.JitOptions { CheckedMemory = !o.Has("--unchecked") });

        // Ctrl-C stops the run (a runaway loop too) with its instruction, rather than killing the process.
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            s_cancelled = true;
            vm.Interrupt();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            return RunLoaded(vm, o, prog, mem, mbuff, repeat, jit);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>The --format, with --cbpf for "cbpf" (tcpdump -dd or -ddd text).</summary>
    private static InputFormat CbpfOr(Options o)
    {
        if (!o.Has("--cbpf")) return ProgramInput.ParseFormat(o.Get("--format") ?? "auto");
        if (o.Has("--format")) throw new UsageException("give --cbpf or --format, not both");
        return InputFormat.Cbpf;
    }

    private static int RunLoaded(EbpfVm vm, Options o, byte[] prog, byte[] mem, byte[] mbuff, ulong repeat, bool jit)
    {
        if (o.Has("--pcap")) return RunCapture(vm, o, jit);
        if (o.Has("--write-pcap") || o.Has("--verdict")) throw new UsageException("--write-pcap and --verdict go with --pcap");
        if (vm.ProgramType == Rbpf.Programs.ProgramType.Xdp) return RunXdp(vm, o, mem, repeat, jit);
        if (vm.ProgramType != Rbpf.Programs.ProgramType.None && !o.Has("--pcap")) return RunSkb(vm, o, mem, jit);
        RbpfErrorCode code;
        ulong result;
        RbpfException? error;
        if (o.Has("--trace"))
        {
            code = vm.TryExecute(mem, mbuff, Tracer(prog), out result, out error);
        }
        else
        {
            code = jit ? vm.TryExecuteJit(mem, mbuff, out result, out error) : vm.TryExecute(mem, mbuff, out result, out error);
            if (code == RbpfErrorCode.Ok && repeat > 1)
                Repeat(vm, mem, mbuff, repeat, jit);
        }
        if (code != RbpfErrorCode.Ok)
        {
            Console.Error.WriteLine($"rbpf: {error!.Message}");
            return code == RbpfErrorCode.Interrupted ? ExitInterrupted : ExitRunFailed;
        }
        Console.Out.WriteLine($"0x{result:x}");
        if (o.Has("--dump-maps")) DumpMaps(vm);
        return ExitOk;
    }

    /// <summary>Prints each instruction before it runs, with r0-r10.</summary>
    private static InstructionObserver Tracer(byte[] prog)
    {
        var lines = Disassembler.DisassembleLines(prog).ToDictionary(l => l.Slot, l => l.Text);
        var stdout = Console.Out;
        return (pc, regs) =>
        {
            var sb = new StringBuilder();
            sb.Append(pc.ToString(CultureInfo.InvariantCulture).PadLeft(5)).Append(": ")
              .Append((lines.TryGetValue(pc, out var t) ? t : "?").PadRight(32));
            for (int k = 0; k < regs.Length; k++)
                sb.Append(" r").Append(k).Append("=0x").Append(regs[k].ToString("x", CultureInfo.InvariantCulture));
            stdout.WriteLine(sb.ToString());
        };
    }

    private static string XdpName(ulong r0) => r0 switch
    {
        0 => "XDP_ABORTED", 1 => "XDP_DROP", 2 => "XDP_PASS", 3 => "XDP_TX", 4 => "XDP_REDIRECT",
        _ => $"0x{r0:x}",
    };

    /// <summary>
    /// The program over every packet of a pcap or pcapng capture: the verdicts counted (by name for
    /// XDP), errors with the first one's message, and with --write-pcap the packets whose verdict is
    /// --verdict (as the program left them).
    /// </summary>
    private static int RunCapture(EbpfVm vm, Options o, bool jit)
    {
        if (o.Has("--mem") || o.Has("--mem-hex") || o.Has("--trace") || o.Has("--repeat"))
            throw new UsageException("--pcap gives the input: drop --mem, --mem-hex and --repeat (--trace N follows packet N)");
        long tracePacket = o.Has("--trace-packet") ? (long)ProgramInput.ParseNumber(o.Get("--trace-packet")!, "--trace") : -1;
        if (tracePacket >= 0 && jit) throw new UsageException("--trace follows the interpreter: drop --jit");
        var prog = vm.Program?.ToArray() ?? Array.Empty<byte>();
        bool xdp = vm.ProgramType == Rbpf.Programs.ProgramType.Xdp;
        bool skb = vm.ProgramType is Rbpf.Programs.ProgramType.SchedCls or Rbpf.Programs.ProgramType.SchedAct or Rbpf.Programs.ProgramType.SocketFilter;
        if (!xdp && !skb && vm.Kind != VmKind.Raw) throw new UsageException("--pcap runs XDP, tc and socket programs and raw VMs (--kind raw)");
        var (link, packets) = Rbpf.Programs.Capture.Read(ProgramInput.ReadAll(o.Get("--pcap")!));
        ulong? keep = null;
        if (o.Has("--verdict"))
        {
            string v = o.Get("--verdict")!;
            string[] names = { "aborted", "drop", "pass", "tx", "redirect" };
            int named = Array.IndexOf(names, v.ToLowerInvariant());
            keep = xdp && named >= 0 ? (ulong)named : ProgramInput.ParseNumber(v, "--verdict");
        }
        else if (o.Has("--write-pcap")) throw new UsageException("--write-pcap needs --verdict: which packets to keep");
        var counts = new SortedDictionary<ulong, int>();
        var kept = new List<Rbpf.Programs.CapturedPacket>();
        int errors = 0;
        string? firstError = null;
        for (int n = 0; n < packets.Count; n++)
        {
            if (s_cancelled) { Console.Error.WriteLine($"rbpf: interrupted after {n} of {packets.Count} packets"); return ExitInterrupted; }
            var p = packets[n];
            var observer = n == tracePacket ? Tracer(prog) : null;
            if (observer != null) Console.Out.WriteLine($"packet {n} ({p.Data.Length} bytes):");
            try
            {
                ulong verdict;
                byte[] after;
                if (xdp)
                {
                    // 256 bytes of headroom, as the kernel gives, for bpf_xdp_adjust_head.
                    var buffer = new byte[256 + p.Data.Length];
                    p.Data.CopyTo(buffer, 256);
                    var options = new Rbpf.Programs.XdpOptions { Headroom = 256 };
                    var r = observer != null ? vm.ExecuteXdp(buffer, options, observer)
                        : jit ? vm.ExecuteXdpJit(buffer, options) : vm.ExecuteXdp(buffer, options);
                    verdict = r.Result;
                    after = buffer.AsSpan(r.Offset, r.Length).ToArray();
                }
                else if (skb)
                {
                    after = (byte[])p.Data.Clone();
                    verdict = observer != null ? vm.ExecuteSkb(after, null, observer).Result : vm.ExecuteSkb(after, jit: jit).Result;
                }
                else
                {
                    after = (byte[])p.Data.Clone();
                    if (observer != null)
                    {
                        if (vm.TryExecute(after, Span<byte>.Empty, observer, out verdict, out var error) != RbpfErrorCode.Ok) throw error!;
                    }
                    else verdict = jit ? vm.ExecuteJit(after) : vm.Execute(after);
                }
                counts[verdict] = counts.GetValueOrDefault(verdict) + 1;
                if (keep == verdict) kept.Add(p with { Data = after });
            }
            catch (RbpfException e)
            {
                if (e.Code == RbpfErrorCode.Interrupted) { Console.Error.WriteLine($"rbpf: packet {n}: {e.Message}"); return ExitInterrupted; }
                errors++;
                firstError ??= $"packet {n}: {e.Message}";
            }
        }
        Console.Out.WriteLine($"{packets.Count} packet{(packets.Count == 1 ? "" : "s")}");
        foreach (var (verdict, count) in counts)
            Console.Out.WriteLine($"  {(xdp ? XdpName(verdict) : $"0x{verdict:x}")}: {count}");
        if (errors > 0) Console.Out.WriteLine($"  errors: {errors} (first: {firstError})");
        if (o.Has("--write-pcap"))
        {
            string output = o.Get("--write-pcap")!;
            if (Directory.Exists(output)) throw new InputException($"cannot write '{output}': it is a directory");
            try { File.WriteAllBytes(output, Rbpf.Programs.Capture.WritePcap(kept, link)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InputException($"cannot write '{output}': {e.Message}");
            }
            Console.Out.WriteLine($"wrote {kept.Count} packet{(kept.Count == 1 ? "" : "s")} to {output}");
        }
        if (o.Has("--dump-maps")) DumpMaps(vm);
        return errors > 0 ? ExitRunFailed : ExitOk;
    }

    /// <summary>A tc program or socket filter on the frame in --mem: r0 (named for tc) and the sk_buff fields it set.</summary>
    private static int RunSkb(EbpfVm vm, Options o, byte[] mem, bool jit)
    {
        if (o.Has("--trace") || o.Has("--repeat")) throw new UsageException("--trace and --repeat do not run tc programs or socket filters yet");
        Rbpf.Programs.SkbResult r;
        try { r = vm.ExecuteSkb(mem, jit: jit); }
        catch (RbpfException e)
        {
            Console.Error.WriteLine($"rbpf: {e.Message}");
            return e.Code == RbpfErrorCode.Interrupted ? ExitInterrupted : ExitRunFailed;
        }
        bool tc = vm.ProgramType != Rbpf.Programs.ProgramType.SocketFilter;
        string name = !tc ? (r.Result == 0 ? "drop" : $"keep {r.Result} bytes") : (long)r.Result switch
        {
            -1 => "TC_ACT_UNSPEC", 0 => "TC_ACT_OK", 1 => "TC_ACT_RECLASSIFY", 2 => "TC_ACT_SHOT", 3 => "TC_ACT_PIPE",
            4 => "TC_ACT_STOLEN", 5 => "TC_ACT_QUEUED", 6 => "TC_ACT_REPEAT", 7 => "TC_ACT_REDIRECT", _ => "not a TC_ACT code",
        };
        Console.Out.WriteLine($"0x{r.Result:x} ({name})");
        var set = new List<string>();
        if (r.Mark != 0) set.Add($"mark=0x{r.Mark:x}");
        if (r.Priority != 0) set.Add($"priority={r.Priority}");
        if (r.TcClassid != 0) set.Add($"tc_classid=0x{r.TcClassid:x}");
        if (r.TcIndex != 0) set.Add($"tc_index={r.TcIndex}");
        if (r.QueueMapping != 0) set.Add($"queue_mapping={r.QueueMapping}");
        for (int k = 0; k < 5; k++) if (r.Cb[k] != 0) set.Add($"cb[{k}]={r.Cb[k]}");
        if (set.Count > 0) Console.Out.WriteLine("set: " + string.Join(' ', set));
        if (o.Has("--dump-maps")) DumpMaps(vm);
        return ExitOk;
    }

    /// <summary>An XDP program on the frame in --mem: its verdict, and the frame if the program changed it.</summary>
    private static int RunXdp(EbpfVm vm, Options o, byte[] mem, ulong repeat, bool jit)
    {
        if (o.Has("--trace")) throw new UsageException("--trace does not follow XDP programs yet");
        if (o.Has("--mbuff-hex")) throw new UsageException("an XDP program's context is built from the frame: drop --mbuff-hex");
        var frame = (byte[])mem.Clone();
        Rbpf.Programs.XdpResult r;
        try
        {
            r = jit ? vm.ExecuteXdpJit(frame) : vm.ExecuteXdp(frame);
            for (ulong k = 1; k < repeat; k++)
            {
                if (s_cancelled) throw new RbpfException(RbpfErrorCode.Interrupted, $"interrupted after {k} of {repeat} runs");
                var copy = (byte[])mem.Clone();
                if (jit) vm.ExecuteXdpJit(copy); else vm.ExecuteXdp(copy);
            }
        }
        catch (RbpfException e)
        {
            Console.Error.WriteLine($"rbpf: {e.Message}");
            return e.Code == RbpfErrorCode.Interrupted ? ExitInterrupted : ExitRunFailed;
        }
        string action = r.Action switch
        {
            Rbpf.Programs.XdpAction.Aborted => "XDP_ABORTED", Rbpf.Programs.XdpAction.Drop => "XDP_DROP",
            Rbpf.Programs.XdpAction.Pass => "XDP_PASS", Rbpf.Programs.XdpAction.Tx => "XDP_TX",
            Rbpf.Programs.XdpAction.Redirect => "XDP_REDIRECT", _ => "not an XDP verdict",
        };
        Console.Out.WriteLine($"0x{r.Result:x} ({action})");
        var after = frame.AsSpan(r.Offset, r.Length);
        if (!after.SequenceEqual(mem))
            Console.Out.WriteLine($"frame ({r.Length} bytes): {string.Join(' ', after.ToArray().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)))}");
        if (o.Has("--dump-maps")) DumpMaps(vm);
        return ExitOk;
    }

    /// <summary>Prints every map the program's ELF object declared: entries in hex, ring buffer records drained.</summary>
    private static void DumpMaps(EbpfVm vm)
    {
        static string Hex(ReadOnlySpan<byte> b) => string.Join(' ', b.ToArray().Select(x => x.ToString("x2", CultureInfo.InvariantCulture)));
        foreach (var (name, map) in vm.ElfMaps.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            if (map is Rbpf.Maps.RingBufferMap ring)
            {
                var records = new List<string>();
                ring.Consume(r => { records.Add(Hex(r)); return 0; });
                Console.Out.WriteLine($"map {name} (ring buffer, {map.MaxEntries} bytes): {records.Count} record{(records.Count == 1 ? "" : "s")}");
                foreach (var r in records) Console.Out.WriteLine($"  {r}");
                continue;
            }
            if (map is Rbpf.Maps.ProgramArrayMap)
            {
                Console.Out.WriteLine($"map {name} (program array, {map.MaxEntries} entries)");
                continue;
            }
            Console.Out.WriteLine($"map {name} ({Rbpf.Maps.BpfMap.Describe(map.Type)}, key {map.KeySize} bytes, value {map.ValueSize} bytes, " +
                $"{map.Count} of {map.MaxEntries} entries):");
            var value = new byte[map.ValueSize];
            foreach (var key in map.Keys())
            {
                if (!map.TryLookup(key, value)) continue;
                // Arrays list every index: only those that are not all zero.
                if (map.Type is Rbpf.Maps.MapType.Array or Rbpf.Maps.MapType.PerCpuArray && value.All(b => b == 0)) continue;
                Console.Out.WriteLine($"  {Hex(key)}: {Hex(value)}");
            }
        }
    }

    private static void Repeat(EbpfVm vm, byte[] mem, byte[] mbuff, ulong repeat, bool jit)
    {
        var sw = Stopwatch.StartNew();
        long nextReport = Stopwatch.Frequency;
        bool reported = false;
        for (ulong i = 1; i < repeat; i++)
        {
            if (s_cancelled) throw new RbpfException(RbpfErrorCode.Interrupted, $"interrupted after {i} of {repeat} runs");
            var code = jit ? vm.TryExecuteJit(mem, mbuff, out _, out var error) : vm.TryExecute(mem, mbuff, out _, out error);
            if (code != RbpfErrorCode.Ok) throw error!;
            if ((i & 1023) == 0 && sw.ElapsedTicks > nextReport)
            {
                Console.Error.Write($"\r{i}/{repeat} runs ({100.0 * i / repeat:F0}%)");
                nextReport = sw.ElapsedTicks + Stopwatch.Frequency;
                reported = true;
            }
        }
        sw.Stop();
        if (reported) Console.Error.WriteLine();
        double seconds = Math.Max(sw.Elapsed.TotalSeconds, 1e-9);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{repeat} runs in {seconds:F3} s: {repeat / seconds:F0} runs/s ({seconds * 1e9 / repeat:F1} ns per run)"));
    }

    private static int Plugin(string[] args)
    {
        string? memHex = null;
        bool jit = false, blind = false, noChecks = false;
        foreach (var a in args)
        {
            if (a == "--help" || a == "-h") return Print(PluginHelp);
            if (a == "--jit") jit = true;
            else if (a == "--interpret") jit = false;
            else if (a == "--blind") blind = true;
            else if (a == "--unchecked") noChecks = true;
            else if (a.StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"unknown plugin option '{a}'");
            else if (memHex == null) memHex = a;
            else throw new UsageException("the plugin takes one memory argument");
        }
        string programHex = Console.In.ReadToEnd();
        byte[] prog = ProgramInput.ParseHex(programHex);
        byte[] mem = string.IsNullOrWhiteSpace(memHex) ? Array.Empty<byte>() : ProgramInput.ParseHex(memHex);
        var vm = EbpfVm.CreateRaw(prog);
        vm.RegisterHelper(5, (r1, _, _, _, _) => r1, "unwind");
        vm.UnwindHelper = 5;
        RbpfErrorCode code;
        ulong result;
        RbpfException? error;
        if (jit)
        {
            vm.JitCompile(new Rbpf.Jit.JitOptions { ConstantBlinding = blind, CheckedMemory = !noChecks });
            code = vm.TryExecuteJit(mem, Span<byte>.Empty, out result, out error);
        }
        else
        {
            code = vm.TryExecute(mem, Span<byte>.Empty, out result, out error);
        }
        if (code != RbpfErrorCode.Ok)
        {
            Console.Error.WriteLine(error!.Message);
            return ExitRunFailed;
        }
        Console.Out.WriteLine(result.ToString("x", CultureInfo.InvariantCulture));
        return ExitOk;
    }
}
