using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Rbpf.Jit;

namespace Rbpf;

/// <summary>How a VM hands its input to the program (the numbers are the C enum's).</summary>
public enum VmKind
{
    /// <summary>r1 points at a metadata buffer the caller fills (as the kernel's <c>sk_buff</c>);
    /// the program loads the packet pointers from it. r2 is the buffer's length. Without a
    /// buffer, r1 and r2 describe the packet, as in rbpf.</summary>
    Mbuff = 0,
    /// <summary>The VM builds the metadata buffer: it writes the packet's start and end addresses at
    /// two offsets given at creation; r1 points at that buffer.</summary>
    FixedMbuff = 1,
    /// <summary>r1 points at the packet data, r2 is its length (uBPF's behaviour).</summary>
    Raw = 2,
    /// <summary>The program gets no input.</summary>
    NoData = 3,
}

/// <summary>
/// An eBPF virtual machine: one loaded program, its helpers, its verifier and its limits. The four
/// kinds of <see cref="VmKind"/> differ only in how r1 and r2 are built.
/// </summary>
/// <remarks>
/// Executing the same VM from several threads at once is safe: every execution keeps its registers,
/// stack and metadata buffer on its own thread's stack. Changing the VM (program, helpers, verifier,
/// limits, regions) while it executes on another thread is not.
/// </remarks>
/// <example>
/// <code>
/// var vm = EbpfVm.CreateNoData(Assembler.Assemble("mov32 r0, 1\nadd32 r0, 2\nexit"));
/// ulong r0 = vm.Execute(); // 3
/// </code>
/// </example>
public sealed class EbpfVm : IDisposable
{
    private const int MaxMbuffOffset = 1 << 20;
    internal const int InlineMbuffLimit = 1024;

    private readonly HelperTable _helpers = new();
    /// <summary>
    /// The VM's own regions, replaced whole (copy on write, under <see cref="_regionLock"/>) and
    /// never changed in place: a run reads one snapshot while another thread adds or clears regions
    /// (a List changed by two threads at once broke: the C stress test found it).
    /// </summary>
    private MemoryRegion[] _regions = Array.Empty<MemoryRegion>();
    private readonly object _regionLock = new();

    /// <summary>Replaces the regions with those of <paramref name="keep"/>, plus <paramref name="add"/>; returns the index of the first added.</summary>
    private int EditRegions(Func<MemoryRegion, bool> keep, params MemoryRegion[] add)
    {
        lock (_regionLock)
        {
            var next = new List<MemoryRegion>(_regions.Length + add.Length);
            foreach (var r in _regions)
                if (keep(r)) next.Add(r);
            int first = next.Count;
            next.AddRange(add);
            Volatile.Write(ref _regions, next.ToArray());
            return first;
        }
    }
    private ProgramVerifier? _verifier = Verifier.Default;
    private DecodedProgram? _program;
    private JitProgram? _jit;
    /// <summary>_jit compiled again with a batch entry, made when a batch first runs (<see cref="RunJitBatch"/>); null until then.</summary>
    private JitProgram? _jitBatch;
    private ElfProgram? _elf;
    private uint? _unwindHelper;
    private long _unwindHelperKey = -1;
    private int _dataOffset;
    private int _dataEndOffset;

    /// <summary>The word <see cref="Interrupt"/> moves on; runs compare it with its value as they began.
    /// Pinned (its address is baked into compiled code) unless the host gives one (<see cref="UseInterruptWord"/>).</summary>
    private readonly uint[] _ownInterruptWord = GC.AllocateArray<uint>(2, pinned: true); // [1]: no signal (see Rbpf.Native)
    private unsafe uint* _interruptWord;

    /// <summary>Creates a VM of <paramref name="kind"/> with no program yet (load one with <see cref="SetProgram(ReadOnlySpan{byte})"/>).</summary>
    public EbpfVm(VmKind kind)
    {
        unsafe { _interruptWord = (uint*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _ownInterruptWord[0]); }
        if (kind is < VmKind.Mbuff or > VmKind.NoData)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, $"unknown VM kind {(int)kind}");
        Kind = kind;
    }

    /// <summary>Creates a VM of <paramref name="kind"/> and loads <paramref name="program"/>
    /// (for <see cref="VmKind.FixedMbuff"/>, use <see cref="CreateFixedMbuff"/>).</summary>
    public EbpfVm(VmKind kind, ReadOnlySpan<byte> program) : this(kind)
    {
        if (kind == VmKind.FixedMbuff) SetDataOffsets(0, 8);
        SetProgram(program);
    }

    /// <summary>A VM whose program gets a metadata buffer in r1.</summary>
    public static EbpfVm CreateMbuff(ReadOnlySpan<byte> program) => new(VmKind.Mbuff, program);

    /// <summary>A VM that writes the packet's start and end addresses into its own metadata buffer at
    /// <paramref name="dataOffset"/> and <paramref name="dataEndOffset"/> and passes that buffer in r1.</summary>
    public static EbpfVm CreateFixedMbuff(ReadOnlySpan<byte> program, int dataOffset, int dataEndOffset)
    {
        var vm = new EbpfVm(VmKind.FixedMbuff);
        vm.SetProgram(program, dataOffset, dataEndOffset);
        return vm;
    }

    /// <summary>A VM whose program gets the packet in r1 and its length in r2.</summary>
    public static EbpfVm CreateRaw(ReadOnlySpan<byte> program) => new(VmKind.Raw, program);

    /// <summary>A VM whose program gets no input.</summary>
    public static EbpfVm CreateNoData(ReadOnlySpan<byte> program) => new(VmKind.NoData, program);

    /// <summary>How this VM passes its input.</summary>
    public VmKind Kind { get; }

    /// <summary>The loaded program's bytes, or null.</summary>
    public ReadOnlyMemory<byte>? Program => _program is null ? default(ReadOnlyMemory<byte>?) : new ReadOnlyMemory<byte>(_program.Bytes);

    /// <summary>
    /// Maximum number of instructions one execution may run; 0 (the default) means no limit. An
    /// execution that would go past it fails with <see cref="RbpfErrorCode.InstructionLimit"/>. Both
    /// engines charge the limit one basic block at a time, as the block begins (a straight run of
    /// instructions up to a jump, call or exit, at most 255 long): a block that would take the count
    /// past the limit does not start, and the error names its first instruction. A program whose run
    /// takes N instructions succeeds with any limit of N or more, in the interpreter and the JIT
    /// alike. The JIT counts only in code compiled while a limit was set: switching between no limit
    /// and a limit discards the compiled code (compile again after setting it).
    /// </summary>
    public ulong InstructionLimit
    {
        get => _instructionLimit;
        set
        {
            if ((_instructionLimit == 0) != (value == 0)) DropJit();
            _instructionLimit = value;
            _jit?.SetInstructionLimit(value);
            _jitBatch?.SetInstructionLimit(value);
        }
    }

    private ulong _instructionLimit;
    private Programs.ProgramType _programType;

    /// <summary>
    /// The kernel program type the loaded program was written for (<see cref="Programs.ProgramType.None"/>:
    /// one of rbpf's VM kinds). With a type, r1 is the type's context (for XDP a <c>struct xdp_md</c>),
    /// accesses to it are checked and rewritten at load as the kernel's verifier does, and runs go
    /// through <see cref="ExecuteXdp(Span{byte}, Programs.XdpOptions?)"/>. Set it before loading
    /// (a metadata-buffer VM: the context is its buffer).
    /// </summary>
    public Programs.ProgramType ProgramType
    {
        get => _programType;
        set
        {
            if (value != Programs.ProgramType.None && Kind != VmKind.Mbuff)
                throw new RbpfException(RbpfErrorCode.InvalidArgument, "a kernel program type needs a metadata-buffer VM (its context is the buffer): use EbpfVm.ForProgramType");
            if (value is not (Programs.ProgramType.None or Programs.ProgramType.Xdp or Programs.ProgramType.SchedCls
                or Programs.ProgramType.SchedAct or Programs.ProgramType.SocketFilter))
                throw new RbpfException(RbpfErrorCode.Unsupported, $"program type {value} is not supported (XDP, tc and socket filters are)");
            if (_program != null && value != _programType)
                throw new RbpfException(RbpfErrorCode.InvalidArgument, "set the program type before loading the program");
            _programType = value;
            KernelPacketLoads = value is Programs.ProgramType.SocketFilter or Programs.ProgramType.SchedCls or Programs.ProgramType.SchedAct;
            if (value == Programs.ProgramType.Xdp) Programs.KernelContexts.RegisterXdpHelpers(this);
            else if (value != Programs.ProgramType.None) Programs.KernelContexts.RegisterSkbHelpers(this);
        }
    }

    /// <summary>Whether LD_ABS and LD_IND have the kernel's meaning (socket and tc programs): network
    /// byte order, and a load outside the packet ends the program with 0.</summary>
    internal bool KernelPacketLoads { get; private set; }

    /// <summary>A VM for programs of a kernel type (see <see cref="ProgramType"/>).</summary>
    public static EbpfVm ForProgramType(Programs.ProgramType type) => new(VmKind.Mbuff) { ProgramType = type };

    /// <summary>
    /// Loads a kernel program from an ELF object: its type from <paramref name="type"/>, else from its
    /// section name as libbpf reads it (<c>xdp</c>, <c>xdp.frags</c>, ...).
    /// </summary>
    public static EbpfVm FromKernelObject(ReadOnlySpan<byte> elf, string? sectionOrFunction = null,
        Programs.ProgramType type = Programs.ProgramType.None)
    {
        var vm = new EbpfVm(VmKind.Mbuff);
        if (type == Programs.ProgramType.None)
        {
            using var probe = ElfLoader.Load(elf, sectionOrFunction, _ => 0u);
            type = Programs.ProgramTypes.FromSection(probe.Section);
            if (type == Programs.ProgramType.None)
                throw new RbpfException(RbpfErrorCode.ElfError,
                    $"ELF: section '{probe.Section}' does not name a program type libbpf knows (xdp, socket, tc, ...): give the type");
        }
        vm.ProgramType = type;
        vm.LoadElf(elf, sectionOrFunction);
        return vm;
    }

    /// <summary>
    /// Runs an XDP program on the frame at <paramref name="buffer"/> (see <see cref="Programs.XdpOptions"/>
    /// for headroom and interfaces): its verdict, and where the frame is afterwards (programs may
    /// move its start and end with bpf_xdp_adjust_head and bpf_xdp_adjust_tail, and rewrite it).
    /// </summary>
    public unsafe Programs.XdpResult ExecuteXdp(Span<byte> buffer, Programs.XdpOptions? options = null) =>
        Programs.KernelContexts.RunXdp(this, buffer, options ?? new Programs.XdpOptions(), jit: false);

    /// <summary>
    /// Runs a tc program or socket filter on <paramref name="frame"/> (an Ethernet frame) with the
    /// packet's metadata (<see cref="Programs.SkbOptions"/>): its result and the <c>__sk_buff</c> fields it may set.
    /// </summary>
    public unsafe Programs.SkbResult ExecuteSkb(Span<byte> frame, Programs.SkbOptions? options = null, bool jit = false) =>
        Programs.KernelContexts.RunSkb(this, frame, options ?? new Programs.SkbOptions(), jit);

    /// <summary>As <see cref="ExecuteXdp(Span{byte}, Programs.XdpOptions?)"/>, interpreted, calling <paramref name="observer"/> before each instruction.</summary>
    public unsafe Programs.XdpResult ExecuteXdp(Span<byte> buffer, Programs.XdpOptions? options, InstructionObserver observer) =>
        Programs.KernelContexts.RunXdp(this, buffer, options ?? new Programs.XdpOptions(), jit: false, observer);

    /// <summary>As <see cref="ExecuteSkb(Span{byte}, Programs.SkbOptions?, bool)"/>, interpreted, calling <paramref name="observer"/> before each instruction.</summary>
    public unsafe Programs.SkbResult ExecuteSkb(Span<byte> frame, Programs.SkbOptions? options, InstructionObserver observer) =>
        Programs.KernelContexts.RunSkb(this, frame, options ?? new Programs.SkbOptions(), jit: false, observer);

    /// <summary>As <see cref="ExecuteXdp(Span{byte}, Programs.XdpOptions?)"/>, JIT-compiled (compile first).</summary>
    public unsafe Programs.XdpResult ExecuteXdpJit(Span<byte> buffer, Programs.XdpOptions? options = null) =>
        Programs.KernelContexts.RunXdp(this, buffer, options ?? new Programs.XdpOptions(), jit: true);

    /// <summary>
    /// Stops every run of this VM in progress, on any thread, soon: each fails with
    /// <see cref="RbpfErrorCode.Interrupted"/> at its next loop head or function entry (a program
    /// with neither ends on its own within its length). Runs that begin afterwards are not affected,
    /// so an interrupt that arrives between runs is lost. Thread-safe, lock-free and allocation-free.
    /// </summary>
    public unsafe void Interrupt() => Interlocked.Increment(ref *_interruptWord);

    /// <summary>Where the interrupt word lives (compiled code reads it there).</summary>
    internal unsafe uint* InterruptWord => _interruptWord;

    /// <summary>
    /// Makes the VM use <paramref name="word"/> (native memory that outlives it, which something other
    /// than managed code, such as a signal handler, may increment) as its interrupt word. Discards
    /// compiled code, which has the old word's address in it.
    /// </summary>
    internal unsafe void UseInterruptWord(uint* word)
    {
        _interruptWord = word;
        DropJit();
    }
    private StackLayout _stackLayout = StackLayout.Default;

    /// <summary>
    /// How local calls lay out the stack (<see cref="Rbpf.StackLayout.Default"/>: 512 bytes a
    /// function, 8 frames). Setting it applies it to the loaded program (which it may refuse, through
    /// its frame sizes) and discards the compiled code.
    /// </summary>
    public StackLayout StackLayout
    {
        get => _stackLayout;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (_program != null) value.Apply(_program);
            _stackLayout = value;
            DropJit();
        }
    }
    private unsafe delegate* unmanaged<void*, ulong, ulong, byte> _extraCheck;
    private unsafe void* _extraCheckContext;

    /// <summary>
    /// Sets a native function that may allow accesses outside every region (it gets the context,
    /// the address and the size, and returns non-zero to allow); null removes it. Whatever it allows,
    /// the program may read and write: it is the embedder's promise that the memory is there.
    /// </summary>
    public unsafe void SetBoundsCheckCallback(delegate* unmanaged<void*, ulong, ulong, byte> callback, void* context)
    {
        _extraCheck = callback;
        _extraCheckContext = context;
    }

    /// <summary>Unloads the program (and its compiled code); helpers, verifier and regions stay.</summary>
    public void UnloadProgram()
    {
        _program = null;
        DropJit();
    }

    /// <summary>Offsets of the packet pointers in the fixed metadata buffer.</summary>
    public (int DataOffset, int DataEndOffset) DataOffsets => (_dataOffset, _dataEndOffset);

    /// <summary>
    /// Helper id whose zero result ends the program at once with r0 = 0 (uBPF's unwind helper,
    /// used by the conformance suite), or null.
    /// </summary>
    public uint? UnwindHelper
    {
        get => _unwindHelper;
        set
        {
            _unwindHelper = value;
            _unwindHelperKey = value.HasValue ? value.Value : -1;
            DropJit(); // the JIT compiles the check in
        }
    }

    /// <summary>Loads (verifies and decodes) a program, replacing the current one.</summary>
    public void SetProgram(ReadOnlySpan<byte> program)
    {
        RunVerifier(program);
        if (_programType != Programs.ProgramType.None)
        {
            // The kernel's context rewriting: loads of the context's fields become loads of ours.
            var insns = Instruction.ReadAll(program);
            Programs.KernelContexts.Rewrite(_programType, insns);
            program = Instruction.Encode(insns);
        }
        var decoded = DecodeOrThrow(program);
        _stackLayout.Apply(decoded);
        _helpers.Link(decoded);
        _program = decoded;
        DropJit();
    }

    private void RunVerifier(ReadOnlySpan<byte> program)
    {
        if (_verifier == null) return;
        try
        {
            _verifier(program);
        }
        catch (RbpfException) { throw; }
        catch (Exception e)
        {
            throw new RbpfException(RbpfErrorCode.InvalidProgram, $"verifier rejected the program: {e.Message}", -1, e);
        }
    }

    private static DecodedProgram DecodeOrThrow(ReadOnlySpan<byte> program)
    {
        if (program.Length % Isa.InstructionSize != 0)
            throw new RbpfException(RbpfErrorCode.InvalidProgram,
                $"program length {program.Length} is not a multiple of {Isa.InstructionSize} bytes");
        if (program.Length / Isa.InstructionSize > Isa.MaxInstructions)
            throw new RbpfException(RbpfErrorCode.InvalidProgram,
                $"program has {program.Length / Isa.InstructionSize} instructions, more than the limit of {Isa.MaxInstructions}");
        return DecodedProgram.Decode(program);
    }

    /// <summary>Loads a program into a <see cref="VmKind.FixedMbuff"/> VM with new buffer offsets.</summary>
    public void SetProgram(ReadOnlySpan<byte> program, int dataOffset, int dataEndOffset)
    {
        if (Kind != VmKind.FixedMbuff)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, "data offsets apply only to fixed-mbuff VMs");
        var (oldOffset, oldEnd) = (_dataOffset, _dataEndOffset);
        SetDataOffsets(dataOffset, dataEndOffset);
        try { SetProgram(program); }
        catch { _dataOffset = oldOffset; _dataEndOffset = oldEnd; throw; }
    }

    private void SetDataOffsets(int dataOffset, int dataEndOffset)
    {
        if (dataOffset < 0 || dataEndOffset < 0 || dataOffset > MaxMbuffOffset || dataEndOffset > MaxMbuffOffset)
            throw new RbpfException(RbpfErrorCode.InvalidArgument,
                $"data offsets must be between 0 and {MaxMbuffOffset} (got {dataOffset} and {dataEndOffset})");
        if (Math.Abs((long)dataOffset - dataEndOffset) < 8)
            throw new RbpfException(RbpfErrorCode.InvalidArgument,
                $"data offsets {dataOffset} and {dataEndOffset} overlap: the two 8-byte pointers need distinct slots");
        _dataOffset = dataOffset;
        _dataEndOffset = dataEndOffset;
    }

    /// <summary>
    /// Replaces the verifier; null disables verification (the engines still refuse, at run time,
    /// any instruction that cannot execute). The loaded program, if any, is checked again at once,
    /// and stays loaded only if the new verifier accepts it.
    /// </summary>
    public void SetVerifier(ProgramVerifier? verifier)
    {
        var old = _verifier;
        _verifier = verifier;
        if (_program != null)
        {
            try { RunVerifier(_program.Bytes); }
            catch { _verifier = old; throw; }
        }
    }

    /// <summary>Registers (or replaces) helper <paramref name="key"/>.</summary>
    public void RegisterHelper(uint key, Helper helper, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(helper);
        AddHelper(new HelperEntry(key, name ?? helper.Method.Name) { Managed = helper });
    }

    /// <summary>Registers (or replaces) helper <paramref name="key"/> that dereferences pointers through a <see cref="MemoryAccess"/>.</summary>
    public void RegisterHelper(uint key, MemoryHelper helper, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(helper);
        AddHelper(new HelperEntry(key, name ?? helper.Method.Name) { WithMemory = helper });
    }

    /// <summary>Registers (or replaces) helper <paramref name="key"/> as a native function, called directly
    /// with r1-r5 and, as a sixth argument, the memory pointer of the run (the <c>mem</c> given to
    /// execute; uBPF passes the same), which a function of five arguments does not see.</summary>
    public unsafe void RegisterHelper(uint key, delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, ulong> function, string? name = null)
    {
        if (function == null) throw new RbpfException(RbpfErrorCode.InvalidArgument, "helper function pointer is NULL");
        AddHelper(new HelperEntry(key, name ?? $"native_{key}") { Native = (delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, void*, ulong>)function });
    }

    /// <summary>Removes helper <paramref name="key"/> (calls to it then fail as unknown helpers); false if it was not registered.</summary>
    public bool UnregisterHelper(uint key)
    {
        if (!_helpers.Remove(key)) return false;
        if (_program != null) _helpers.Link(_program);
        DropJit();
        return true;
    }

    private void AddHelper(HelperEntry entry)
    {
        _helpers.Set(entry);
        if (_program != null) _helpers.Link(_program);
        DropJit(); // compiled code calls the helpers it knew
    }

    /// <summary>Discards the compiled code (the uBPF layer, when the code breaks one of its limits).</summary>
    internal void DiscardJit() => DropJit();

    private void DropJit()
    {
        _jitDirect = null;
        var old = Interlocked.Exchange(ref _jit, null);
        old?.Dispose();
        Interlocked.Exchange(ref _jitBatch, null)?.Dispose();
        JitChanged?.Invoke();
    }

    /// <summary>Raised when the compiled code is discarded or replaced (the uBPF layer clears its fast path).</summary>
    internal event Action? JitChanged;

    /// <summary>
    /// The program compiled for AArch64 on any host, not run: for the tests, which check every
    /// encoding against GNU as. Addresses baked into the code (the link, the runtime) are this
    /// process's, so the bytes are only for reading.
    /// </summary>
    internal Jit.Arm64.A64Compiler.Output CompileArm64(JitOptions? options = null, bool listing = true, int seed = 1) =>
        CompileArm64(options, listing, seed, out _, out _);

    /// <summary>The AArch64 code of the loaded program as <see cref="JitProgram"/> would make it on an AArch64 host
    /// (threaded as there), and what it was compiled from: the program or its threaded form, with the slot map.</summary>
    internal unsafe Jit.Arm64.A64Compiler.Output CompileArm64(JitOptions? options, bool listing, int seed, out DecodedProgram compiled, out int[]? origin)
    {
        var program = _program ?? throw new RbpfException(RbpfErrorCode.NoProgram, "no program is loaded");
        var target = new JitTarget(Kind, _dataOffset, _dataEndOffset, 0x10000, _stackLayout.MaxFrames, _stackLayout.FullFrames,
            (nint)InterruptWord, KernelPacketLoads: KernelPacketLoads);
        options ??= new JitOptions();
        (compiled, origin) = JumpThreading.ForCompiling(program, Kind, options, InstructionLimit != 0);
        return Jit.Arm64.A64Compiler.Compile(compiled, _helpers, options, UnwindHelper.HasValue ? UnwindHelper.Value : -1,
            InstructionLimit != 0, target, seed, listing);
    }

    /// <summary>
    /// Compiles the loaded program to machine code (x86-64 or AArch64, the host's) for <see cref="ExecuteJit(Span{byte}, Span{byte})"/>.
    /// Register helpers first: loading a program, registering a helper or changing
    /// <see cref="UnwindHelper"/> discards the compiled code.
    /// </summary>
    public void JitCompile(JitOptions? options = null)
    {
        var program = _program ?? throw new RbpfException(RbpfErrorCode.NoProgram, "no program is loaded");
        var jit = new JitProgram(this, program, _helpers, options ?? JitOptions.Default, UnwindHelper.HasValue ? UnwindHelper.Value : -1,
            InstructionLimit != 0, Kind, _dataOffset, _dataEndOffset, InstructionLimit, _stackLayout);
        var old = Interlocked.Exchange(ref _jit, jit);
        _jitDirect = jit.NeedsFixedBuffer ? null : jit;
        old?.Dispose();
        // A batch twin is of the old code (batches check its Source): dropped, when there is one.
        if (Volatile.Read(ref _jitBatch) != null) Interlocked.Exchange(ref _jitBatch, null)?.Dispose();
        JitChanged?.Invoke();
    }

    /// <summary>Whether the JIT can run on this platform (x86-64 Linux, macOS and Windows).</summary>
    public static bool IsJitSupported => ExecutableMemory.IsSupported;

    /// <summary>Whether compiled code is ready for <see cref="ExecuteJit(Span{byte}, Span{byte})"/>.</summary>
    public bool IsJitCompiled => _jit != null;

    /// <summary>
    /// Lists the machine code the JIT makes for the loaded program on <paramref name="architecture"/>,
    /// under the eBPF instruction each part comes from, without replacing this VM's compiled code.
    /// AArch64 listings can be made on any host; x86-64 ones need an x86-64 host.
    /// </summary>
    public string JitListing(JitArchitecture architecture, JitOptions? options = null)
    {
        var program = _program ?? throw new RbpfException(RbpfErrorCode.NoProgram, "no program is loaded");
        options ??= new JitOptions();
        if (architecture == JitArchitecture.Arm64)
        {
            var output = CompileArm64(options, listing: true, seed: Random.Shared.Next(), out var compiled, out var origin);
            string bytes = $"; {output.Code.Length} bytes of AArch64 code for {program.Code.Length - 1} eBPF slots\n";
            return JitProgram.FormatListing(program.Bytes, output.PcOffsets, output.Assembler.Lines(), compiled, origin) + bytes;
        }
        if (System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64 || !IsJitSupported)
            throw new RbpfException(RbpfErrorCode.Unsupported, "x86-64 listings need an x86-64 host (AArch64 listings work anywhere)");
        var jit = new JitProgram(this, program, _helpers, options, UnwindHelper.HasValue ? UnwindHelper.Value : -1,
            InstructionLimit != 0, Kind, _dataOffset, _dataEndOffset, InstructionLimit, _stackLayout);
        try
        {
            return jit.Disassemble() + $"; {jit.Code.Length} bytes of x86-64 code for {program.Code.Length - 1} eBPF slots\n";
        }
        finally
        {
            jit.Dispose();
        }
    }

    /// <summary>The compiled code read back from its executable pages (tests).</summary>
    internal byte[] JitExecutableBytes() =>
        (_jit ?? throw new RbpfException(RbpfErrorCode.NoProgram, "the program is not JIT-compiled")).ExecutableBytes();

    /// <summary>The generated x86-64 code, listed under the eBPF instruction each part comes from.</summary>
    public string JitDisassembly() =>
        (_jit ?? throw new RbpfException(RbpfErrorCode.NoProgram, "the program is not JIT-compiled")).Disassemble();

    /// <summary>A copy of the generated machine code (it expects the engine's execution context: for inspection).</summary>
    public byte[] JitMachineCode() =>
        (_jit ?? throw new RbpfException(RbpfErrorCode.NoProgram, "the program is not JIT-compiled")).Code;

    /// <summary>
    /// The compiled program as a native function, <c>int fn(byte* mem, nuint memLength, byte* mbuff,
    /// nuint mbuffLength, ulong* result)</c>, returning 0 or an <see cref="RbpfErrorCode"/> (C's
    /// <c>rbpf_jit_fn</c>). It runs exactly as <see cref="TryExecuteJit(byte*, nuint, byte*, nuint, out ulong, out RbpfException?)"/>
    /// but is meant for native callers. It stays valid while this VM keeps the compiled code: after
    /// <see cref="Dispose"/>, recompiling, or anything else that discards the code, calling it is
    /// undefined.
    /// </summary>
    /// <exception cref="RbpfException"><see cref="RbpfErrorCode.NoProgram"/> when not compiled;
    /// <see cref="RbpfErrorCode.Unsupported"/> for a fixed metadata buffer over 1024 bytes.</exception>
    public nint JitFunction
    {
        get
        {
            var jit = _jit ?? throw new RbpfException(RbpfErrorCode.NoProgram, "the program is not JIT-compiled");
            if (jit.NeedsFixedBuffer)
                throw new RbpfException(RbpfErrorCode.Unsupported,
                    $"the fixed metadata buffer ({jit.FixedLength} bytes) is too large for the bare function (at most {JitTarget.InlineFixedLimit}): run through the VM");
            return jit.DirectEntry;
        }
    }

    /// <summary>Whether the compiled code runs a batch in one call (x86-64, System V; see <see cref="RunJitBatch"/>).</summary>
    internal bool JitRunsBatchesInCode => _jit is { } jit && jit.SupportsBatch;

    /// <summary>Size in bytes of the generated code, or 0.</summary>
    public int JitCodeSize => _jit?.CodeLength ?? 0;

    /// <summary>Frees the compiled code (safe while other threads still run it: it goes when they finish).</summary>
    public void Dispose() => DropJit();

    /// <summary>Registers every helper of <see cref="StandardHelpers"/> under its id.</summary>
    public void RegisterStandardHelpers()
    {
        RegisterHelper(StandardHelpers.KtimeGetNsId, StandardHelpers.KtimeGetNs, "bpf_ktime_getns");
        RegisterHelper(StandardHelpers.TracePrintkId, StandardHelpers.TracePrintkFormatted, "bpf_trace_printk");
        RegisterHelper(StandardHelpers.GatherBytesId, StandardHelpers.GatherBytes, "gather_bytes");
        RegisterHelper(StandardHelpers.MemfrobId, StandardHelpers.Memfrob, "memfrob");
        RegisterHelper(StandardHelpers.SqrtiId, StandardHelpers.Sqrti, "sqrti");
        RegisterHelper(StandardHelpers.StrcmpId, StandardHelpers.Strcmp, "strcmp");
        RegisterHelper(StandardHelpers.RandId, StandardHelpers.Rand, "rand");
    }

    /// <summary>Whether helper <paramref name="key"/> is registered.</summary>
    public bool HasHelper(uint key) => _helpers.Find(key) != null;

    /// <summary>The id of the helper registered under <paramref name="name"/>, or null.</summary>
    public uint? HelperIdByName(string name) => _helpers.KeyOf(name);

    /// <summary>
    /// Allows the program to touch one more block of host memory. The embedder keeps it valid (and
    /// pinned) while registered. Returns the region's index.
    /// </summary>
    public int AddMemoryRegion(MemoryRegion region)
    {
        if (region.Address == 0 && region.Length != 0)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, "memory region address is NULL");
        if ((ulong)region.Address + (ulong)region.Length < (ulong)region.Address)
            throw new RbpfException(RbpfErrorCode.InvalidArgument, "memory region wraps around the address space");
        return EditRegions(_ => true, region);
    }

    /// <summary>
    /// Loads a program from an ELF object (see <see cref="ElfLoader"/>): the named section or
    /// function, or the default program. Its global data (.rodata, .data, .bss) becomes memory
    /// regions of this VM, replacing those of a previous ELF load; calls to undefined functions go
    /// to helpers registered by name, so register helpers first.
    /// </summary>
    public ElfProgram LoadElf(ReadOnlySpan<byte> elf, string? sectionOrFunction = null, DataRelocator? relocateData = null)
    {
        var loaded = ElfLoader.Load(elf, sectionOrFunction, HelperIdByName, relocateData);
        try
        {
            SetProgram(loaded.Bytecode);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
        EditRegions(r => !r.Name.StartsWith("elf:", StringComparison.Ordinal),
            loaded.DataRegions.Select(d => new MemoryRegion(d.Address, d.Length, d.Writable, "elf:" + d.Name)).ToArray());
        // The object's maps, new and empty, at the fds its loads use (a previous object's go).
        var created = new Dictionary<string, Maps.BpfMap>();
        foreach (var def in loaded.Maps)
        {
            try
            {
                created[def.Name] = Maps.BpfMap.Create(def.Type, def.KeySize, def.ValueSize, def.MaxEntries, def.Flags, def.Name);
            }
            catch (RbpfException e)
            {
                throw new RbpfException(RbpfErrorCode.ElfError, $"ELF: map '{def.Name}': {e.Message}");
            }
        }
        foreach (var (fd, old) in _maps.ToList())
            if (_elfMaps.ContainsValue(old)) UnbindMap(fd);
        foreach (var def in loaded.Maps) BindMap((uint)def.Index, created[def.Name]);
        _elfMaps = created;
        // The previous object's data is freed when nothing refers to it any more (its finalizer),
        // never under a running execution.
        _elf = loaded;
        return loaded;
    }

    /// <summary>Creates a VM of <paramref name="kind"/> from an ELF object (fixed-mbuff VMs get
    /// offsets 0 and 8; use <see cref="SetProgram(ReadOnlySpan{byte}, int, int)"/> to change them).</summary>
    public static EbpfVm CreateFromElf(VmKind kind, ReadOnlySpan<byte> elf, string? sectionOrFunction = null)
    {
        var vm = new EbpfVm(kind);
        if (kind == VmKind.FixedMbuff) vm.SetDataOffsets(0, 8);
        vm.LoadElf(elf, sectionOrFunction);
        return vm;
    }

    /// <summary>The ELF object last loaded with <see cref="LoadElf"/>, or null.</summary>
    public ElfProgram? Elf => _elf;

    /// <summary>Removes every region added with <see cref="AddMemoryRegion"/> (and the global data of a
    /// loaded ELF object); the memory of bound maps stays.</summary>
    public void ClearMemoryRegions() => EditRegions(r => r.Name.StartsWith("map:", StringComparison.Ordinal));

    private readonly Dictionary<uint, Maps.BpfMap> _maps = new();
    private Dictionary<string, Maps.BpfMap> _elfMaps = new();

    /// <summary>
    /// Binds <paramref name="map"/> to file descriptor <paramref name="fd"/>: the program names it
    /// with <c>lddw rN, fd</c> and source 1 (BPF_PSEUDO_MAP_FD), as the kernel's loader writes it,
    /// and passes it to the map helpers (registered here for every id not taken: lookup 1, update 2,
    /// delete 3, prandom 7, processor id 8, tail call 12, csum_diff 28, ring buffer 130-134). The
    /// map's values become memory the program may read and write. A fd bound again is replaced.
    /// </summary>
    public void BindMap(uint fd, Maps.BpfMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        string? oldName = _maps.TryGetValue(fd, out var old) ? MapRegionName(fd, old) : null;
        _maps[fd] = map;
        var (address, length) = map.ProgramMemory;
        EditRegions(r => r.Name != oldName,
            length != 0 ? new[] { new MemoryRegion(address, length, Writable: true, MapRegionName(fd, map)) } : Array.Empty<MemoryRegion>());
        Maps.MapHelpers.RegisterMissing(this);
        HasProgramArray = _maps.Values.Any(m => m is Maps.ProgramArrayMap);
        DropJit(); // compiled code has the bound maps in a table: compile again
    }

    private static string MapRegionName(uint fd, Maps.BpfMap map) => $"map:{map.Name} (fd {fd})";

    /// <summary>Unbinds whatever map is bound to <paramref name="fd"/>; false when none was.</summary>
    public bool UnbindMap(uint fd)
    {
        if (!_maps.Remove(fd, out var old)) return false;
        string name = MapRegionName(fd, old);
        EditRegions(r => r.Name != name);
        HasProgramArray = _maps.Values.Any(m => m is Maps.ProgramArrayMap);
        DropJit();
        return true;
    }

    /// <summary>The maps the loaded ELF object declared, by name.</summary>
    public IReadOnlyDictionary<string, Maps.BpfMap> ElfMaps => _elfMaps;

    /// <summary>The map bound to <paramref name="fd"/>, or null.</summary>
    public Maps.BpfMap? MapByFd(uint fd) => _maps.TryGetValue(fd, out var m) ? m : null;

    /// <summary>The map the loaded ELF object declared under <paramref name="name"/>, or null.</summary>
    public Maps.BpfMap? GetMap(string name) => _elfMaps.TryGetValue(name, out var m) ? m : null;

    /// <summary>Every bound map by fd.</summary>
    public IReadOnlyDictionary<uint, Maps.BpfMap> MapsByFd => _maps;

    internal IEnumerable<Maps.BpfMap> BoundMaps => _maps.Values;

    /// <summary>Most fds the compiled code's table of maps covers (larger fds go through the helper).</summary>
    private const uint MaxTableFd = 4096;

    /// <summary>A native table of the bound maps' descriptors by fd, for compiled code (free it with NativeMemory.Free), and its length.</summary>
    internal unsafe (nint Table, int Length) BuildMapTable()
    {
        uint length = 0;
        foreach (var fd in _maps.Keys)
            if (fd < MaxTableFd) length = Math.Max(length, fd + 1);
        if (length == 0) return (0, 0);
        var table = (Maps.MapDescriptor**)NativeMemory.AllocZeroed(length, (nuint)sizeof(nint));
        foreach (var (fd, map) in _maps)
            if (fd < MaxTableFd) table[fd] = map.Descriptor;
        return ((nint)table, (int)length);
    }

    /// <summary>The bound maps' program memory as native (start, length) pairs (free with NativeMemory.Free), and their count.</summary>
    internal unsafe (nint Pairs, int Count) BuildMapRegions()
    {
        if (_maps.Count == 0) return (0, 0);
        var memory = _maps.Values.Distinct().Select(m => m.ProgramMemory).Where(m => m.Length != 0).ToList();
        if (memory.Count == 0) return (0, 0);
        var pairs = (ulong*)NativeMemory.Alloc((nuint)memory.Count * 16);
        for (int k = 0; k < memory.Count; k++)
        {
            pairs[2 * k] = (ulong)memory[k].Address;
            pairs[2 * k + 1] = (ulong)memory[k].Length;
        }
        return ((nint)pairs, memory.Count);
    }

    /// <summary>Whether a program array is bound (tail calls need the managed run loop, not the bare compiled function).</summary>
    internal bool HasProgramArray { get; private set; }

    /// <summary>The regions added with <see cref="AddMemoryRegion"/>.</summary>
    public IReadOnlyList<MemoryRegion> MemoryRegions => _regions;

    /// <summary>Runs the program with no input (any kind).</summary>
    public ulong Execute() => Execute(Span<byte>.Empty, Span<byte>.Empty);

    /// <summary>Runs the program on <paramref name="mem"/> (raw, fixed-mbuff and no-data kinds).</summary>
    public ulong Execute(Span<byte> mem) => Execute(mem, Span<byte>.Empty);

    /// <summary>Runs the program; throws <see cref="RbpfException"/> when it fails.
    /// Input a kind does not use must be empty (a no-data VM takes no memory; only a metadata-buffer
    /// VM takes a metadata buffer): given anyway, it is refused with <see cref="RbpfErrorCode.InvalidArgument"/>.</summary>
    public ulong Execute(Span<byte> mem, Span<byte> mbuff)
    {
        var code = TryExecute(mem, mbuff, out ulong result, out var error);
        if (code != RbpfErrorCode.Ok) throw error!;
        return result;
    }

    /// <summary>Runs the program and reports failure as a code and an error instead of throwing.</summary>
    public unsafe RbpfErrorCode TryExecute(Span<byte> mem, Span<byte> mbuff, out ulong result, out RbpfException? error)
    {
        fixed (byte* m = mem)
        fixed (byte* b = mbuff)
        {
            var observer = default(NoObserver);
            return Run(m, (nuint)mem.Length, b, (nuint)mbuff.Length, ref observer, out result, out error);
        }
    }

    /// <summary>Runs the JIT-compiled program; throws <see cref="RbpfException"/> when it fails.</summary>
    public ulong ExecuteJit(Span<byte> mem, Span<byte> mbuff)
    {
        var code = TryExecuteJit(mem, mbuff, out ulong result, out var error);
        if (code != RbpfErrorCode.Ok) throw error!;
        return result;
    }

    /// <summary>Runs the JIT-compiled program on <paramref name="mem"/>.</summary>
    public ulong ExecuteJit(Span<byte> mem) => ExecuteJit(mem, Span<byte>.Empty);

    /// <summary>Runs the JIT-compiled program with no input.</summary>
    public ulong ExecuteJit() => ExecuteJit(Span<byte>.Empty, Span<byte>.Empty);

    /// <summary>Runs the JIT-compiled program and reports failure as a code and an error.</summary>
    public unsafe RbpfErrorCode TryExecuteJit(Span<byte> mem, Span<byte> mbuff, out ulong result, out RbpfException? error)
    {
        fixed (byte* m = mem)
        fixed (byte* b = mbuff)
            return TryExecuteJit(m, (nuint)mem.Length, b, (nuint)mbuff.Length, out result, out error);
    }

    /// <summary>Runs the JIT-compiled program on unmanaged memory.</summary>
    public unsafe RbpfErrorCode TryExecuteJit(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        out ulong result, out RbpfException? error) =>
        TryExecuteJit(mem, memLength, mbuff, mbuffLength, null, 0, out result, out error);

    /// <summary>
    /// Runs the JIT-compiled program on a stack the caller provides (at least 512 bytes; r10 starts
    /// at its end, rounded down to 16 bytes; each frame is zeroed, as far as the program can read
    /// it, when entered; local calls fail when the next frame would not fit). NULL and 0 use a stack
    /// of the VM's own.
    /// </summary>
    public unsafe RbpfErrorCode TryExecuteJit(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* stack, nuint stackLength, out ulong result, out RbpfException? error)
    {
        error = RunJit(mem, memLength, mbuff, mbuffLength, stack, stackLength, out result);
        return error == null ? RbpfErrorCode.Ok : error.Code;
    }

    /// <summary>Runs the program on unmanaged memory (the C ABI's entry point). The memory must stay
    /// valid for the duration of the call; a NULL pointer is allowed only with a length of 0.</summary>
    public unsafe RbpfErrorCode TryExecute(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        out ulong result, out RbpfException? error) =>
        TryExecute(mem, memLength, mbuff, mbuffLength, null, 0, out result, out error);

    /// <summary>
    /// Runs the program on a stack the caller provides (at least 512 bytes; r10 starts at its end,
    /// rounded down to 16 bytes; each frame is zeroed, as far as the program can read it, when
    /// entered; local calls fail when the next frame would not fit). NULL and 0 use the VM's own stack.
    /// </summary>
    public unsafe RbpfErrorCode TryExecute(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* stack, nuint stackLength, out ulong result, out RbpfException? error)
    {
        var observer = default(NoObserver);
        result = 0;
        error = RunInterpreter(mem, memLength, mbuff, mbuffLength, stack, stackLength, ref observer, ref result);
        return error == null ? RbpfErrorCode.Ok : error.Code;
    }

    /// <summary>
    /// Runs the program and calls <paramref name="observer"/> before each instruction with its slot
    /// index and the registers r0-r10 (for tracing and debugging; slower than a plain run).
    /// </summary>
    public unsafe RbpfErrorCode TryExecute(Span<byte> mem, Span<byte> mbuff, InstructionObserver observer,
        out ulong result, out RbpfException? error)
    {
        ArgumentNullException.ThrowIfNull(observer);
        var adapter = new DelegateObserver(observer);
        fixed (byte* m = mem)
        fixed (byte* b = mbuff)
            return Run(m, (nuint)mem.Length, b, (nuint)mbuff.Length, ref adapter, out result, out error);
    }

    /// <summary>Runs the program in the interpreter with an observer called before each instruction.</summary>
    internal unsafe RbpfErrorCode Run<TObserver>(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        ref TObserver observer, out ulong result, out RbpfException? error, byte* userStack = null, nuint userStackLength = 0)
        where TObserver : struct, IExecutionObserver
    {
        result = 0;
        error = RunInterpreter(mem, memLength, mbuff, mbuffLength, userStack, userStackLength, ref observer, ref result);
        return error == null ? RbpfErrorCode.Ok : error.Code;
    }

    // What the interpreter and the JIT's runtime read of the VM.
    internal DecodedProgram? Decoded => _program;
    internal HelperTable Helpers => _helpers;
    internal ElfProgram? LoadedElf => _elf;
    internal int FixedBufferLength => FixedBufferLengthOf(Kind, _dataOffset, _dataEndOffset);

    /// <summary>Bytes of the metadata buffer a <see cref="VmKind.FixedMbuff"/> VM builds (0 for the other kinds).</summary>
    internal static int FixedBufferLengthOf(VmKind kind, int dataOffset, int dataEndOffset) =>
        kind == VmKind.FixedMbuff ? Math.Max(dataOffset, dataEndOffset) + 8 : 0;
    internal int DataOffset => _dataOffset;
    internal int DataEndOffset => _dataEndOffset;
    internal long UnwindHelperKey => _unwindHelperKey;
    internal unsafe delegate* unmanaged<void*, ulong, ulong, byte> ExtraCheck => _extraCheck;
    internal unsafe void* ExtraCheckContext => _extraCheckContext;

    /// <summary>The regions every run has before the VM's own: stack, memory, metadata buffer.</summary>
    internal const int BuiltInRegions = 3;


    /// <summary>How many regions the VM adds to every run.</summary>
    internal int UserRegionCount => Volatile.Read(ref _regions).Length;

    /// <summary>
    /// Writes the allowed regions of a run into <paramref name="regions"/> (room for
    /// <paramref name="capacity"/>): the stack frames in use, the memory, the metadata buffer (length
    /// 0 when the kind has none), then the VM's own regions. Returns how many it wrote.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal unsafe int FillRegions(RegionEntry* regions, int capacity, ulong stackStart, ulong stackLength,
        ulong mem, ulong memLength, ulong meta, ulong metaLength)
    {
        regions[0] = new RegionEntry { Start = stackStart, Length = stackLength, Writable = true, Kind = RegionKind.Stack };
        regions[1] = new RegionEntry { Start = mem, Length = memLength, Writable = true, Kind = RegionKind.Packet };
        regions[2] = new RegionEntry { Start = meta, Length = metaLength, Writable = true, Kind = RegionKind.Metadata };
        var list = Volatile.Read(ref _regions); // one snapshot: other threads replace the array, never change it
        int n = Math.Min(list.Length, capacity - BuiltInRegions); // never past the caller's buffer, even if regions were just added
        for (int k = 0; k < n; k++)
        {
            var u = list[k];
            regions[BuiltInRegions + k] = new RegionEntry
            {
                Start = (ulong)u.Address, Length = (ulong)u.Length, Writable = u.Writable, Kind = RegionKind.User, UserIndex = k,
            };
        }
        return BuiltInRegions + n;
    }

    internal static RbpfException BadStack(StackLayout layout) => new(RbpfErrorCode.InvalidArgument,
        layout.AlignTop
            ? $"the stack must be at least {layout.MinimumStack} bytes (after aligning its end to 16)"
            : $"the stack must be at least {layout.MinimumStack} bytes and not NULL");

    /// <summary>The top of a caller's stack (r10 of the entry frame) under <paramref name="layout"/>, or 0 when it is too small.</summary>
    internal static unsafe ulong UserStackTop(StackLayout layout, byte* stack, nuint length)
    {
        if (stack == null) return 0;
        ulong top = (ulong)stack + length;
        if (layout.AlignTop) top &= ~15UL;
        return top < (ulong)stack + (ulong)layout.MinimumStack || top < (ulong)stack ? 0 : top;
    }

    /// <summary>The error for input a VM kind does not use (refused rather than silently ignored).</summary>
    internal static RbpfException UnusedInput(VmKind kind, bool mbuff) => new(RbpfErrorCode.InvalidArgument, mbuff
        ? $"a {KindName(kind)} VM takes no metadata buffer, but one was given (mbuff_len is not 0)"
        : $"a {KindName(kind)} VM takes no input memory, but some was given (mem_len is not 0)");

    private static string KindName(VmKind kind) => kind switch
    {
        VmKind.Mbuff => "metadata-buffer", VmKind.FixedMbuff => "fixed-metadata-buffer", VmKind.Raw => "raw-data", _ => "no-data",
    };

    internal static RbpfException NullWithLength() =>
        new(RbpfErrorCode.InvalidArgument, "memory pointer is NULL but its length is not 0");

    /// <summary>
    /// One interpreted run: the stack (the caller's, or 4 KiB of this thread's), the metadata buffer
    /// of a fixed-mbuff VM, the table of allowed regions, all on this thread's stack. Returns null on
    /// success, else the error (nothing is thrown). <paramref name="result"/> is written only on
    /// success, so a C caller's own result can be passed: a failed run leaves it as it was.
    /// </summary>
    internal unsafe RbpfException? RunInterpreter<TObserver>(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* userStack, nuint userStackLength, ref TObserver observer, ref ulong result)
        where TObserver : struct, IExecutionObserver
    {
        var error = RunInterpreterOnce(mem, memLength, mbuff, mbuffLength, userStack, userStackLength, ref observer, ref result);
        return error == null ? null : Maps.TailCalls.Follow(error, jit: false, mem, memLength, mbuff, mbuffLength, userStack, userStackLength, ref result);
    }

    /// <summary>One interpreted run, without following a tail call it ends with.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // into the exports: one frame fewer per call
    internal unsafe RbpfException? RunInterpreterOnce<TObserver>(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* userStack, nuint userStackLength, ref TObserver observer, ref ulong result)
        where TObserver : struct, IExecutionObserver
    {
        if (_instructionLimit != 0)
            return Interpreter.Run<TObserver, CountedRun>(this, mem, memLength, mbuff, mbuffLength, userStack, userStackLength, ref observer, ref result);
        // The common case (decided per call: the program and the layout may change between runs) takes the lean path.
        var program = Decoded;
        if (!observer.Enabled && userStack == null && userStackLength == 0 && program != null && Interpreter.RunsPlain(this, program))
            return Interpreter.RunPlain(this, program, mem, memLength, mbuff, mbuffLength, ref result);
        return Interpreter.Run<TObserver, UncountedRun>(this, mem, memLength, mbuff, mbuffLength, userStack, userStackLength, ref observer, ref result);
    }

    /// <summary>The compiled program, when a C caller can run it with no extra arguments (else null).</summary>
    internal JitProgram? JitForDirectCalls => _jitDirect;

    private JitProgram? _jitDirect; // _jit when it needs no extra arguments, else null

    /// <summary>One JIT-compiled run: the generated entry builds its context, stack and buffers itself.</summary>
    internal unsafe RbpfException? RunJit(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* userStack, nuint userStackLength, out ulong result)
    {
        var error = RunJitOnce(mem, memLength, mbuff, mbuffLength, userStack, userStackLength, out result);
        return error == null ? null : Maps.TailCalls.Follow(error, jit: true, mem, memLength, mbuff, mbuffLength, userStack, userStackLength, ref result);
    }

    /// <summary>
    /// Runs the JIT-compiled program once per input of <paramref name="batch"/> (no metadata buffer,
    /// the VM's own stack), storing or counting each r0 as the batch says; stops at the first run
    /// that fails and returns its error, with <see cref="JitBatch.Done"/> at that input's index.
    /// On x86-64 (System V) the whole batch is one call into the code, which pays its entry once;
    /// tail calls are followed here, between calls.
    /// </summary>
    internal unsafe RbpfException? RunJitBatch(JitBatch* batch)
    {
        var jit = _jit;
        if (batch->Done >= batch->Count) return null;
        if (jit == null) return new RbpfException(RbpfErrorCode.NoProgram, "the program is not JIT-compiled: compile it first (JitCompile, rbpf_vm_jit_compile, jit_compile())");
        if (jit.SupportsBatch)
        {
            // The code with a batch entry, compiled on the first batch (single runs never pay for the entry).
            var twin = _jitBatch;
            if (twin == null || twin.Source != jit)
            {
                twin = jit.WithBatchEntry();
                twin.Source = jit;
                if (_jit == jit) Interlocked.Exchange(ref _jitBatch, twin)?.Dispose();
            }
            jit = twin;
        }
        var elf = _elf;
        try
        {
            while (batch->Done < batch->Count)
            {
                nuint k = batch->Done;
                byte* mem;
                nuint length;
                RbpfException? error;
                ulong r0 = 0;
                if (jit.BatchEntry != null)
                {
                    if (jit.RunBatch(batch) == 0) return null;
                    error = JitRuntime.TakeFailure() ?? new RbpfException(RbpfErrorCode.Internal, "JIT-compiled batch failed without an error");
                    k = batch->Done;
                    if (batch->Buffers != null)
                    {
                        mem = (byte*)batch->Buffers[2 * k];
                        length = (nuint)batch->Buffers[2 * k + 1];
                    }
                    else
                    {
                        length = batch->Lengths[k];
                        mem = batch->Packed - length; // the code had taken this input
                    }
                    error = Maps.TailCalls.Follow(error, jit: true, mem, length, null, 0, null, 0, ref r0);
                }
                else
                {
                    if (batch->Buffers != null)
                    {
                        mem = (byte*)batch->Buffers[2 * k];
                        length = (nuint)batch->Buffers[2 * k + 1];
                    }
                    else
                    {
                        length = batch->Lengths[k];
                        mem = batch->Packed;
                        batch->Packed += length;
                    }
                    error = RunJit(mem, length, null, 0, null, 0, out r0);
                }
                if (error != null) return error;
                if (batch->Results != null) batch->Results[k] = r0;
                else batch->Counts[r0 < batch->NCounts ? r0 : batch->NCounts - 1]++;
                batch->Done = k + 1;
            }
            return null;
        }
        finally
        {
            GC.KeepAlive(elf);
        }
    }

    /// <summary>One JIT-compiled run, without following a tail call it ends with.</summary>
    [SkipLocalsInit]
    internal unsafe RbpfException? RunJitOnce(byte* mem, nuint memLength, byte* mbuff, nuint mbuffLength,
        byte* userStack, nuint userStackLength, out ulong result)
    {
        result = 0;
        var jit = _jit;
        if (jit == null) return new RbpfException(RbpfErrorCode.NoProgram, "the program is not JIT-compiled: compile it first (JitCompile, rbpf_vm_jit_compile, jit_compile())");
        JitExtra extra;
        JitExtra* px = null;
        byte[]? heap = null;
        if (userStack != null || userStackLength != 0)
        {
            ulong top = UserStackTop(jit.Layout, userStack, userStackLength);
            if (top == 0) return BadStack(jit.Layout);
            extra.StackBottom = (ulong)userStack;
            extra.StackTop = top;
            extra.FixedBuffer = 0;
            px = &extra;
        }
        if (jit.NeedsFixedBuffer)
        {
            if (px == null)
            {
                extra = default;
                px = &extra;
            }
            heap = GC.AllocateUninitializedArray<byte>(jit.FixedLength, pinned: true);
            extra.FixedBuffer = (ulong)Unsafe.AsPointer(ref heap[0]);
        }
        var elf = _elf;
        ulong r0;
        int status = jit.Run(mem, memLength, mbuff, mbuffLength, &r0, px);
        GC.KeepAlive(elf);
        GC.KeepAlive(heap);
        if (status == 0)
        {
            result = r0;
            return null;
        }
        return JitRuntime.TakeFailure() ?? new RbpfException((RbpfErrorCode)status, $"JIT-compiled program failed with {(RbpfErrorCode)status}");
    }
}
