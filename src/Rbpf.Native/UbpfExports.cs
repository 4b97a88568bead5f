using System.Runtime.InteropServices;
using Rbpf.Jit.X64;
using static Rbpf.Jit.X64.X64Registers;
using Rbpf.Jit.Arm64;
using Rbpf.Jit;

namespace Rbpf.Native;

/// <summary>The state uBPF keeps per VM, around the engine's VM (raw kind: r1 = mem, r2 = length).</summary>
internal sealed unsafe class UbpfVm
{
    public const int MaxHelpers = 64;

    public readonly EbpfVm Vm = new(VmKind.Raw);
    public bool BoundsCheck = true;
    public bool ConstantBlinding;
    public bool UndefinedBehaviorCheck;
    public bool ReadonlyBytecode = true;
    public nint ErrorPrint;
    public nint Dispatcher;
    public nint Validator;
    public nint DataRelocation;
    public void* DataRelocationContext;
    public bool HasBoundsCallback;
    public nint DebugFunction;
    public void* DebugContext;
    public nuint JitCodeSize = 65536;
    public bool SafeProfile;
    /// <summary>Set once a program was loaded, compiled or run: the execution profile no longer changes.</summary>
    public bool ProfileFixed;
    /// <summary>Every safe region, pointer or handle, for the safe profile's provenance checks.</summary>
    public readonly Dictionary<uint, TrackedRegion> Tracked = new();
    /// <summary>What each helper registered with ubpf_register_safe_helper returns (the safe profile runs only these).</summary>
    public readonly Dictionary<uint, HelperResult> SafeHelperResults = new();
    /// <summary>Helpers registered through ubpf_register and ubpf_register_safe_helper, by index.</summary>
    public readonly Dictionary<uint, (nint Fn, string Name)> Registered = new();
    /// <summary>Whether the program was compiled: changes to its helpers then compile it again, so the
    /// functions handed out keep working (uBPF patches its compiled code in place).</summary>
    public bool Compiled;
    public ExecutableMemory? JitEntry;
    public ExecutableMemory? JitEntryEx;
    public nint Handle;

    /// <summary>
    /// The bare entry of the compiled code that ubpf_compile's function may call directly, or 0 (the
    /// function then goes through the runtime): set by a compile, cleared whenever the engine drops
    /// or replaces the code. Native memory, so the function reads it with one load.
    /// </summary>
    public readonly ulong* FastEntry = (ulong*)NativeMemory.AllocZeroed(8);

    /// <summary>Every program ever put in <see cref="FastEntry"/>: kept until ubpf_destroy, so a call that
    /// read the cell just before it changed still runs code that exists.</summary>
    public readonly List<JitProgram> Published = new();

    public nint StackCalculator;
    public void* StackCalculatorCookie;

    /// <summary>uBPF's default frame of a local function (UBPF_EBPF_LOCAL_FUNCTION_STACK_SIZE).</summary>
    public const int DefaultFrame = 256;

    public UbpfVm()
    {
        Vm.JitChanged += () => *FastEntry = 0;
        // uBPF's stack: each function's frame from the stack usage calculator (256 bytes without
        // one), 8 nested local calls, r10 at the very end of a caller's stack of any size.
        Vm.StackLayout = new StackLayout(FrameSize, maxFrames: Isa.MaxCallDepth + 1, alignTop: false, minimumStack: 0);
    }

    /// <summary>The frame of the function starting at <paramref name="start"/>, as uBPF computes it at load.</summary>
    public int FrameSize(int start)
    {
        if (StackCalculator == 0) return DefaultFrame;
        int size = ((delegate* unmanaged<nint, ushort, void*, int>)StackCalculator)(Handle, (ushort)start, StackCalculatorCookie);
        if (size % 16 != 0)
            throw new RbpfException(RbpfErrorCode.InvalidProgram, $"local function (at PC {start}) has improperly sized stack use ({size})", start);
        return size;
    }

    public bool Loaded => Vm.Program != null;
}

/// <summary>
/// uBPF's API (include/ubpf.h) over the engine: the same names, types and conventions (0 / -1,
/// error strings through <c>char **errmsg</c> freed with free(), runtime errors through the error
/// print function).
/// </summary>
internal static unsafe class UbpfExports
{
    /// <summary>uBPF's <c>UBPF_MAX_INSTS</c>: its API takes programs of fewer slots (the engine itself takes up to <see cref="Isa.MaxInstructions"/>).</summary>
    internal const int UbpfMaxInstructions = 65536;
    [ThreadStatic] private static void* t_cookie;

    private static UbpfVm? Find(nint vm) => UbpfHandles.Find(vm);

    private static void SetError(byte** errmsg, string message)
    {
        if (errmsg != null) *errmsg = Utf8.Alloc(message);
    }

    /// <summary>Reports a runtime error the way uBPF does: error_printf(stderr, fmt, message).</summary>
    private static void Report(UbpfVm? u, string message)
    {
        LastError.Set(RbpfErrorCode.Internal, message);
        try
        {
            if (u == null || u.ErrorPrint == 0)
            {
                Console.Error.WriteLine(message);
                return;
            }
            byte* format = Utf8.Alloc("%s\n");
            byte* text = Utf8.Alloc(message);
            try
            {
                ((delegate* unmanaged<void*, byte*, byte*, int>)u.ErrorPrint)(StandardError, format, text);
            }
            finally
            {
                NativeMemory.Free(format);
                NativeMemory.Free(text);
            }
        }
        catch (Exception)
        {
            // Reporting must never fail the caller.
        }
    }

    /// <summary>The C library's stderr stream (FILE *), for error print functions.</summary>
    private static void* StandardError
    {
        get
        {
            if (NativeLibrary.TryGetExport(NativeLibrary.GetMainProgramHandle(), "stderr", out var p) && p != 0)
                return *(void**)p;
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_create")]
    public static nint Create()
    {
        try
        {
            var u = new UbpfVm();
            u.Handle = UbpfHandles.Add(u);
            UbpfHandles.SetJitterBufferSize(u.Handle, u.JitCodeSize);
            return u.Handle;
        }
        catch (Exception) { return 0; }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_destroy")]
    public static void Destroy(nint vm)
    {
        var u = Find(vm);
        if (u == null || !UbpfHandles.Remove(vm)) return;
        try
        {
            u.Vm.Dispose();
            u.JitEntry?.Dispose();
            u.JitEntryEx?.Dispose();
            NativeMemory.Free(u.FastEntry);
        }
        catch (Exception) { }
    }

    private static byte Toggle(nint vm, byte enable, Func<UbpfVm, bool> get, Action<UbpfVm, bool> set)
    {
        var u = Find(vm);
        if (u == null) return 0;
        bool old = get(u);
        set(u, enable != 0);
        return old ? (byte)1 : (byte)0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_toggle_bounds_check")]
    public static byte ToggleBoundsCheck(nint vm, byte enable) => Toggle(vm, enable, u => u.BoundsCheck, (u, v) =>
    {
        u.BoundsCheck = v;
        ApplyBoundsCheck(u);
    });

    /// <summary>Without bounds checks, as in uBPF, every address is allowed: one region spanning the address space.</summary>
    private static void ApplyBoundsCheck(UbpfVm u)
    {
        var keep = u.Vm.MemoryRegions.Where(r => r.Name != "ubpf:everything").ToList();
        u.Vm.ClearMemoryRegions();
        foreach (var r in keep) u.Vm.AddMemoryRegion(r);
        if (!u.BoundsCheck) u.Vm.AddMemoryRegion(new MemoryRegion(1, nuint.MaxValue - 1, true, "ubpf:everything"));
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_toggle_constant_blinding")]
    public static byte ToggleConstantBlinding(nint vm, byte enable) =>
        Toggle(vm, enable, u => u.ConstantBlinding, (u, v) => u.ConstantBlinding = v);

    [UnmanagedCallersOnly(EntryPoint = "ubpf_toggle_undefined_behavior_check")]
    public static byte ToggleUndefinedBehaviorCheck(nint vm, byte enable) =>
        Toggle(vm, enable, u => u.UndefinedBehaviorCheck, (u, v) => u.UndefinedBehaviorCheck = v);

    [UnmanagedCallersOnly(EntryPoint = "ubpf_toggle_readonly_bytecode")]
    public static byte ToggleReadonlyBytecode(nint vm, byte enable) =>
        Toggle(vm, enable, u => u.ReadonlyBytecode, (u, v) => u.ReadonlyBytecode = v);

    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_error_print")]
    public static void SetErrorPrint(nint vm, nint errorPrintf)
    {
        var u = Find(vm);
        if (u != null) u.ErrorPrint = errorPrintf;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register")]
    public static int Register(nint vm, uint index, byte* name, delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, ulong> fn)
    {
        var u = Find(vm);
        if (u == null || index >= UbpfVm.MaxHelpers || fn == null) return -1;
        try
        {
            u.Registered[index] = ((nint)fn, Utf8.Read(name) ?? $"helper_{index}");
            u.SafeHelperResults.Remove(index); // no longer a safe helper
            Relink(u, new[] { index });
            return 0;
        }
        catch (Exception) { return -1; }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register_external_dispatcher")]
    public static int RegisterExternalDispatcher(nint vm, nint dispatcher, nint validator)
    {
        var u = Find(vm);
        if (u == null) return -1;
        u.Dispatcher = dispatcher;
        u.Validator = validator;
        try
        {
            Relink(u);
            return 0;
        }
        catch (Exception) { return -1; }
    }

    /// <summary>
    /// Gives the engine the helpers uBPF's rules make callable: with a dispatcher, indices 0-63, the
    /// registered ones and those the program calls go to the dispatcher (it takes precedence);
    /// without one, the registered helpers; any other index is unknown. A compiled program is
    /// compiled again.
    /// </summary>
    private static void Relink(UbpfVm u, IEnumerable<uint>? changed = null)
    {
        // The indices whose rule may have changed (one helper, or those a new program calls); by
        // default every index a dispatcher can serve (0-63, so that callx reaches it too), every
        // registered one, and every one the program calls.
        var keys = new HashSet<uint>();
        if (changed != null) keys.UnionWith(changed);
        else
        {
            keys.UnionWith(u.Registered.Keys);
            for (uint k = 0; k < UbpfVm.MaxHelpers; k++) keys.Add(k);
            if (u.Vm.Program is { } prog) keys.UnionWith(CalledHelpers(prog.Span));
        }
        nint d = u.Dispatcher;
        foreach (uint id in keys)
        {
            uint key = id;
            if (d != 0)
                u.Vm.RegisterHelper(id, (a, b, c, e, f) =>
                    ((delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, uint, void*, ulong>)d)(a, b, c, e, f, key, t_cookie),
                    $"dispatch_{id}");
            else if (u.Registered.TryGetValue(id, out var h))
                u.Vm.RegisterHelper(id, (delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, ulong>)h.Fn, h.Name);
            else
                u.Vm.UnregisterHelper(id);
        }
        if (u.Compiled && u.Loaded) CompileAndPublish(u);
    }

    private static IEnumerable<uint> CalledHelpers(ReadOnlySpan<byte> program)
    {
        var ids = new HashSet<uint>();
        var insns = Instruction.ReadAll(program);
        foreach (var i in insns)
            if (i.Opcode == Isa.Call && i.Src == 0) ids.Add((uint)i.Imm);
        return ids;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register_safe_helper")]
    public static int RegisterSafeHelper(nint vm, SafeHelperDescriptor* helper)
    {
        var u = Find(vm);
        if (u == null || helper == null || helper->Fn == 0 || helper->Index >= UbpfVm.MaxHelpers) return -1;
        if (helper->ResultKind > 2 || (helper->ResultKind != 0 && helper->RegionId >= 0xfffffffe)) return -1;
        try
        {
            u.Registered[helper->Index] = (helper->Fn, Utf8.Read(helper->Name) ?? $"helper_{helper->Index}");
            u.SafeHelperResults[helper->Index] = new HelperResult((TagKind)helper->ResultKind, helper->RegionId, helper->RegionSize);
            Relink(u, new[] { helper->Index });
            return 0;
        }
        catch (Exception) { return -1; }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register_safe_region")]
    public static int RegisterSafeRegion(nint vm, SafeRegion* region)
    {
        var u = Find(vm);
        if (u == null || region == null || region->Base == null || region->Size == 0) return -1;
        if (region->Id >= 0xfffffffe || (region->Permissions & ~7u) != 0 || region->Permissions == 0 || region->Kind > 1) return -1;
        if (u.Tracked.ContainsKey(region->Id)) return -1;
        try
        {
            // A handle is opaque to the program: it is never a region it may dereference.
            if (region->Kind != 1)
            {
                if (region->Size > nuint.MaxValue) return -1;
                u.Vm.AddMemoryRegion(new MemoryRegion((nint)region->Base, (nuint)region->Size, (region->Permissions & 2) != 0,
                    $"ubpf:region {region->Id}"));
            }
            u.Tracked[region->Id] = new TrackedRegion(region->Id, (ulong)region->Base, region->Size, region->Permissions, region->Kind == 1);
            return 0;
        }
        catch (Exception) { return -1; }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_execution_profile")]
    public static int SetExecutionProfile(nint vm, int profile)
    {
        var u = Find(vm);
        if (u == null || profile < 0 || profile > 1) return -1;
        // As in uBPF: only before a program is loaded, compiled or run.
        if (u.Loaded || u.ProfileFixed) return -1;
        u.SafeProfile = profile == 1;
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register_data_relocation")]
    public static int RegisterDataRelocation(nint vm, void* context, nint relocation)
    {
        var u = Find(vm);
        if (u == null) return -1;
        u.DataRelocation = relocation;
        u.DataRelocationContext = context;
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register_data_bounds_check")]
    public static int RegisterDataBoundsCheck(nint vm, void* context, delegate* unmanaged<void*, ulong, ulong, byte> check)
    {
        var u = Find(vm);
        if (u == null || u.HasBoundsCallback) return -1;
        u.Vm.SetBoundsCheckCallback(check, context);
        u.HasBoundsCallback = check != null;
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register_stack_usage_calculator")]
    public static int RegisterStackUsageCalculator(nint vm, nint calculator, void* cookie)
    {
        var u = Find(vm);
        if (u == null) return -1;
        u.StackCalculator = calculator;
        u.StackCalculatorCookie = cookie;
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_unwind_function_index")]
    public static int SetUnwindFunctionIndex(nint vm, uint index)
    {
        var u = Find(vm);
        if (u == null) return -1;
        u.Vm.UnwindHelper = index;
        try
        {
            if (u.Compiled && u.Loaded) CompileAndPublish(u);
        }
        catch (Exception) { return -1; }
        return 0;
    }

    /// <summary>The VM a load goes into, or null (with *errmsg set) when there is none or it already has a program.</summary>
    private static UbpfVm? BeginLoad(nint vm, byte** errmsg)
    {
        if (errmsg != null) *errmsg = null;
        var u = Find(vm);
        if (u == null) { SetError(errmsg, "invalid VM"); return null; }
        if (u.Loaded)
        {
            SetError(errmsg, "code has already been loaded into this VM; use ubpf_unload_code() first");
            return null;
        }
        return u;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_load")]
    public static int Load(nint vm, byte* code, uint codeLen, byte** errmsg)
    {
        var u = BeginLoad(vm, errmsg);
        if (u == null) return -1;
        if (code == null && codeLen != 0) { SetError(errmsg, "code is NULL"); return -1; }
        try
        {
            var program = new ReadOnlySpan<byte>(code, (int)codeLen);
            if (program.Length % 8 != 0)
                throw new RbpfException(RbpfErrorCode.InvalidProgram, $"code_len must be a multiple of 8 (got {codeLen})");
            if (program.Length / 8 >= UbpfMaxInstructions)
                throw new RbpfException(RbpfErrorCode.InvalidProgram, $"too many instructions (max {UbpfMaxInstructions})");
            u.FrameSize(0); // uBPF asks about the entry function's stack before anything else
            // uBPF has no maps: an lddw source other than 0 (a map fd, say) is not a program of its.
            for (int pc = 0; pc + 1 < program.Length / 8; pc++)
            {
                var insn = Instruction.Read(program, pc);
                if (insn.Opcode == Isa.Lddw && insn.Src != 0)
                    throw new RbpfException(RbpfErrorCode.InvalidProgram, $"unsupported lddw source {insn.Src}", pc) { Check = VerifierCheck.LddwSource };
                if (insn.Opcode == Isa.Lddw) pc++;
            }
            u.Vm.SetProgram(program);
            try
            {
                ValidateHelpers(u, program);
            }
            catch
            {
                u.Vm.UnloadProgram();
                throw;
            }
            Relink(u, CalledHelpers(program));
            UbpfHandles.SetNumInsts(u.Handle, program.Length / 8);
            return 0;
        }
        catch (RbpfException e) when (e.Check != VerifierCheck.None)
        {
            SetError(errmsg, UbpfLoadMessage(e, new ReadOnlySpan<byte>(code, (int)codeLen)));
            return -1;
        }
        catch (Exception e)
        {
            SetError(errmsg, e.Message);
            return -1;
        }
    }

    /// <summary>
    /// uBPF's words for a program the verifier refused, where uBPF refuses it too (its tests compare
    /// them); the engine's own message otherwise.
    /// </summary>
    private static string UbpfLoadMessage(RbpfException e, ReadOnlySpan<byte> program)
    {
        int pc = e.InstructionIndex;
        var insn = pc >= 0 && (pc + 1) * 8 <= program.Length ? Instruction.Read(program, pc) : default;
        string Hex(byte op) => op.ToString("X").PadLeft(2); // uBPF's "%2X"
        return e.Check switch
        {
            VerifierCheck.TooManyInstructions => $"too many instructions (max {UbpfMaxInstructions})",
            VerifierCheck.UnknownOpcode => $"unknown opcode 0x{insn.Opcode:x2} at PC {pc}",
            VerifierCheck.InvalidSourceRegister => $"invalid source register at PC {pc}",
            VerifierCheck.InvalidDestinationRegister or VerifierCheck.ReadOnlyFramePointer => $"invalid destination register at PC {pc}",
            VerifierCheck.IncompleteLddw => $"incomplete lddw at PC {pc}",
            VerifierCheck.MalformedLddw => $"invalid lddw second half at PC {pc + 1}",
            VerifierCheck.LddwSource => $"invalid source register for LDDW at PC {pc}",
            VerifierCheck.ByteSwapWidth => $"invalid endian immediate at PC {pc}",
            // uBPF's decoder takes the operation from imm's high bits; its table refuses the rest.
            VerifierCheck.AtomicOperation when (insn.Imm & 0xf0) is Isa.AtomicAdd or Isa.AtomicOr or Isa.AtomicAnd or Isa.AtomicXor
                || ((insn.Imm & 0xf0) is 0xe0 or 0xf0 && (insn.Imm & Isa.AtomicFetch) != 0)
                => $"Invalid immediate value {insn.Imm} for opcode {Hex(insn.Opcode)}.",
            VerifierCheck.AtomicOperation => $"invalid atomic operation at PC {pc}",
            VerifierCheck.JumpOutOfBounds or VerifierCheck.JumpBetweenFunctions => $"jump out of bounds at PC {pc}",
            VerifierCheck.JumpIntoLddw => $"jump to middle of lddw at PC {pc}",
            VerifierCheck.LocalCallOutOfBounds => $"call to local function (at PC {pc}) is out of bounds (target: {pc + 1 + insn.Imm})",
            VerifierCheck.InfiniteLoop => $"infinite loop at PC {pc}",
            VerifierCheck.FunctionFallsThrough or VerifierCheck.FallsOffEnd => $"sub-program does not end with EXIT or unconditional jump at PC {pc}",
            VerifierCheck.UnusedOffset => $"Invalid offset value {insn.Offset} for opcode {Hex(insn.Opcode)}.",
            VerifierCheck.UnusedImmediate => $"Invalid immediate value {insn.Imm} for opcode {Hex(insn.Opcode)}.",
            VerifierCheck.UnusedSource => $"Invalid source register {insn.Src} for opcode {Hex(insn.Opcode)}.",
            VerifierCheck.UnusedDestination => $"Invalid destination register {insn.Dst} for opcode {Hex(insn.Opcode)}.",
            _ => e.Message,
        };
    }

    /// <summary>
    /// uBPF's load-time rule for helper calls: with a dispatcher, its validator (when there is one)
    /// decides; without, the index must be below UBPF_MAX_EXT_FUNCS and registered.
    /// </summary>
    private static void ValidateHelpers(UbpfVm u, ReadOnlySpan<byte> program)
    {
        var insns = Instruction.ReadAll(program);
        for (int pc = 0; pc < insns.Length; pc++)
        {
            var i = insns[pc];
            if (i.Opcode != Isa.Call || i.Src != 0) continue;
            if (i.Imm < 0) throw new RbpfException(RbpfErrorCode.InvalidProgram, $"invalid call immediate at PC {pc}", pc);
            uint id = (uint)i.Imm;
            bool known = u.Dispatcher != 0
                ? u.Validator == 0 || ((delegate* unmanaged<uint, nint, byte>)u.Validator)(id, u.Handle) != 0
                : id < UbpfVm.MaxHelpers && u.Registered.ContainsKey(id);
            if (!known)
                throw new RbpfException(RbpfErrorCode.UnknownHelper, $"call to nonexistent function {id} at PC {pc}", pc);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_unload_code")]
    public static void UnloadCode(nint vm)
    {
        var u = Find(vm);
        if (u == null) return;
        u.Vm.UnloadProgram();
        u.Compiled = false;
        u.Published.Clear(); // the function goes with its stub: nothing may call the old code now
        u.JitEntry?.Dispose();
        u.JitEntry = null;
        u.JitEntryEx?.Dispose();
        u.JitEntryEx = null;
        UbpfHandles.SetNumInsts(u.Handle, 0);
        UbpfHandles.SetJitted(u.Handle, 0, 0);
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_load_elf")]
    public static int LoadElf(nint vm, byte* elf, nuint elfLen, byte** errmsg) => LoadElfCore(vm, elf, elfLen, null, errmsg);

    [UnmanagedCallersOnly(EntryPoint = "ubpf_load_elf_ex")]
    public static int LoadElfEx(nint vm, byte* elf, nuint elfLen, byte* mainSection, byte** errmsg) =>
        LoadElfCore(vm, elf, elfLen, mainSection, errmsg);

    private static int LoadElfCore(nint vm, byte* elf, nuint elfLen, byte* mainSection, byte** errmsg)
    {
        var u = BeginLoad(vm, errmsg);
        if (u == null) return -1;
        if (elf == null || elfLen > int.MaxValue) { SetError(errmsg, "elf is NULL or too large"); return -1; }
        try
        {
            DataRelocator? relocate = null;
            if (u.DataRelocation != 0)
            {
                nint fn = u.DataRelocation;
                void* ctx = u.DataRelocationContext;
                relocate = (data, name, offset, size) =>
                {
                    byte* n = Utf8.Alloc(name);
                    try
                    {
                        fixed (byte* d = data)
                            return ((delegate* unmanaged<void*, byte*, ulong, byte*, ulong, ulong, ulong>)fn)(ctx, d, (ulong)data.Length, n, offset, size);
                    }
                    finally { NativeMemory.Free(n); }
                };
            }
            var loaded = u.Vm.LoadElf(new ReadOnlySpan<byte>(elf, (int)elfLen), Utf8.Read(mainSection), relocate);
            try
            {
                ValidateHelpers(u, loaded.Bytecode);
            }
            catch
            {
                u.Vm.UnloadProgram();
                throw;
            }
            Relink(u, CalledHelpers(loaded.Bytecode));
            UbpfHandles.SetNumInsts(u.Handle, loaded.Bytecode.Length / 8);
            return 0;
        }
        catch (Exception e)
        {
            SetError(errmsg, e.Message);
            return -1;
        }
    }

    private sealed class DebugObserver(nint fn, void* context)
    {
        public void Call(int pc, ReadOnlySpan<ulong> registers)
        {
            ulong* regs = stackalloc ulong[16];
            for (int k = 0; k < 16; k++) regs[k] = k < registers.Length ? registers[k] : 0;
            byte* frame = (byte*)(regs[10] - Isa.StackFrameSize);
            ((delegate* unmanaged<void*, int, ulong*, byte*, nuint, ulong, byte*, void>)fn)(
                context, pc, regs, frame, (nuint)Isa.StackFrameSize, 0x7ff, null);
        }
    }

    /// <summary>Runs the interpreter (on the caller's stack when given), reporting errors as uBPF does; -1 on failure.</summary>
    private static int Run(UbpfVm? u, byte* mem, nuint memLen, ulong* result, byte* stack = null, nuint stackLen = 0)
    {
        if (u == null) return -1;
        if (result == null) { Report(u, "bpf_return_value is NULL"); return -1; }
        if (!u.Loaded) { Report(u, "no program is loaded"); return -1; }
        u.ProfileFixed = true;
        if (u.SafeProfile && CalledHelpers(u.Vm.Program!.Value.Span).FirstOrDefault(id => !u.SafeHelperResults.ContainsKey(id), uint.MaxValue) is var bad && bad != uint.MaxValue)
        {
            Report(u, $"the safe profile needs helper {bad} registered with ubpf_register_safe_helper");
            return -1;
        }
        void* previous = t_cookie;
        t_cookie = mem;
        try
        {
            RbpfErrorCode code;
            ulong r0;
            RbpfException? error;
            InstructionObserver? debug = u.DebugFunction != 0 ? new DebugObserver(u.DebugFunction, u.DebugContext).Call : null;
            if (u.SafeProfile)
            {
                // The safe profile: every pointer's provenance is tracked (the interpreter only).
                var regions = u.Tracked.Values.ToList();
                if (mem != null) regions.Add(new TrackedRegion(ProvenanceTracker.InputRegion, (ulong)mem, memLen,
                    ProvenanceTracker.Read | ProvenanceTracker.Write | ProvenanceTracker.Atomic, false));
                var tracker = new ProvenanceTracker(u.Vm.Program!.Value.Span, regions,
                    id => u.SafeHelperResults.TryGetValue(id, out var h) ? h : null);
                var adapter = new ProvenanceObserver(tracker, debug);
                code = u.Vm.Run(mem, memLen, null, 0, ref adapter, out r0, out error, stack, stackLen);
            }
            else if (debug != null)
            {
                var adapter = new DelegateObserver(debug);
                code = u.Vm.Run(mem, memLen, null, 0, ref adapter, out r0, out error, stack, stackLen);
            }
            else
            {
                code = u.Vm.TryExecute(mem, memLen, null, 0, stack, stackLen, out r0, out error);
            }
            if (code != RbpfErrorCode.Ok)
            {
                Report(u, error!.Message);
                return -1;
            }
            *result = r0;
            return 0;
        }
        catch (Exception e)
        {
            Report(u, e.Message);
            return -1;
        }
        finally
        {
            t_cookie = previous;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_exec")]
    public static int Exec(nint vm, byte* mem, nuint memLen, ulong* result) => Run(Find(vm), mem, memLen, result);

    [UnmanagedCallersOnly(EntryPoint = "ubpf_exec_ex")]
    public static int ExecEx(nint vm, byte* mem, nuint memLen, ulong* result, byte* stack, nuint stackLen)
    {
        var u = Find(vm);
        if (u == null) return -1;
        if (stack == null)
        {
            Report(u, "the stack is NULL");
            return -1;
        }
        return Run(u, mem, memLen, result, stack, stackLen);
    }

    /// <summary>The native entry points compiled functions call: a small stub per VM jumps here with the VM's handle.</summary>
    [UnmanagedCallersOnly]
    private static ulong JitEntry(byte* mem, nuint memLen, nint handle) => RunCompiled(handle, mem, memLen, null, 0);

    [UnmanagedCallersOnly]
    private static ulong JitEntryEx(byte* mem, nuint memLen, byte* stack, nuint stackLen, nint handle) =>
        RunCompiled(handle, mem, memLen, stack, stackLen);

    private static ulong RunCompiled(nint handle, byte* mem, nuint memLen, byte* stack, nuint stackLen)
    {
        var u = Find(handle);
        if (u == null) return ulong.MaxValue;
        void* previous = t_cookie;
        t_cookie = mem;
        try
        {
            var code = u.Vm.TryExecuteJit(mem, memLen, null, 0, stack, stackLen, out ulong r0, out var error);
            if (code == RbpfErrorCode.Ok) return r0;
            Report(u, error!.Message);
            return ulong.MaxValue;
        }
        catch (Exception e)
        {
            Report(u, e.Message);
            return ulong.MaxValue;
        }
        finally
        {
            t_cookie = previous;
        }
    }

    /// <summary>A failed run of the bare entry, called from the function ubpf_compile returns: report it as uBPF does.</summary>
    [UnmanagedCallersOnly]
    private static ulong ReportCompiledFailure(nint handle)
    {
        try
        {
            var error = JitRuntime.TakeFailure();
            Report(Find(handle), error?.Message ?? "the compiled program failed");
        }
        catch (Exception) { /* nothing may escape into native code */ }
        return ulong.MaxValue;
    }

    /// <summary>
    /// The function ubpf_compile returns, <c>uint64_t fn(void *mem, size_t mem_len)</c>: when the VM's
    /// <see cref="UbpfVm.FastEntry"/> is set it calls that bare entry directly (a failure is reported
    /// through the runtime and gives UINT64_MAX); otherwise it goes to <see cref="JitEntry"/> with the
    /// handle.
    /// </summary>
    private static byte[] CompiledFunction(UbpfVm u)
    {
        if (ExecutableMemory.IsArm64) return CompiledFunctionArm64(u);
        var a = new X64Assembler();
        var slow = a.CreateLabel();
        var fail = a.CreateLabel();
        a.mov(rax, (ulong)u.FastEntry);
        a.mov(rax, __qword_ptr[rax]);
        a.test(rax, rax);
        a.jz(slow);
        // int entry(mem, mem_len, NULL, 0, &result): rdi and rsi are already mem and mem_len.
        a.push(rbx); // with the slot below, keeps rsp 16-byte aligned at the call
        a.sub(rsp, 16);
        a.xor(edx, edx);
        a.xor(ecx, ecx);
        a.mov(r8, rsp);
        a.call(rax);
        a.test(eax, eax);
        a.jnz(fail);
        a.mov(rax, __qword_ptr[rsp]);
        a.add(rsp, 16);
        a.pop(rbx);
        a.ret();
        a.Label(ref fail);
        a.mov(rdi, (ulong)u.Handle);
        a.mov(rax, (ulong)(nint)(delegate* unmanaged<nint, ulong>)&ReportCompiledFailure);
        a.call(rax);
        a.add(rsp, 16);
        a.pop(rbx);
        a.ret();
        a.Label(ref slow);
        a.mov(rdx, (ulong)u.Handle);
        a.mov(rax, (ulong)(nint)(delegate* unmanaged<byte*, nuint, nint, ulong>)&JitEntry);
        a.jmp(rax);
        return a.Assemble();
    }

    /// <summary>
    /// <see cref="CompiledFunction"/> for AArch64: the published direct entry when there is one
    /// (mem and mem_len are already x0 and x1; the result comes back through a slot of this frame),
    /// else the runtime's entry with the handle as third argument.
    /// </summary>
    private static byte[] CompiledFunctionArm64(UbpfVm u)
    {
        var a = new A64Assembler(listing: false);
        var slow = new A64Label();
        var fail = new A64Label();
        const int sp = A64Assembler.Sp, zr = A64Assembler.Zr;
        a.MovImm(true, 9, (long)u.FastEntry);
        a.Access(A64Assembler.Mem.LdrX, 9, 9, 0);
        a.Cbz(true, 9, slow);
        a.Pair(false, 29, 30, sp, -32, '!');
        a.MovSp(29, sp);
        a.Mov(true, 2, zr);
        a.Mov(true, 3, zr);
        a.AddImm(true, 4, sp, 16);
        a.Blr(9);
        a.Cbnz(false, 0, fail);
        a.Access(A64Assembler.Mem.LdrX, 0, sp, 16);
        a.Pair(true, 29, 30, sp, 32, 'p');
        a.Ret();
        a.Bind(fail);
        a.MovImm(true, 0, u.Handle);
        a.MovImm(true, 9, (long)(nint)(delegate* unmanaged<nint, ulong>)&ReportCompiledFailure);
        a.Blr(9);
        a.Pair(true, 29, 30, sp, 32, 'p');
        a.Ret();
        a.Bind(slow);
        a.MovImm(true, 2, u.Handle);
        a.MovImm(true, 16, (long)(nint)(delegate* unmanaged<byte*, nuint, nint, ulong>)&JitEntry);
        a.Br(16);
        return a.Finish();
    }

    /// <summary>mov rdx|r8, handle; mov rax, entry; jmp rax — the handle goes in the argument after the real ones
    /// (on AArch64: x2 or x4, and br x16).</summary>
    private static byte[] EntryStub(nint handle, bool extended)
    {
        if (ExecutableMemory.IsArm64)
        {
            var a = new A64Assembler(listing: false);
            a.MovImm(true, extended ? 4 : 2, handle);
            a.MovImm(true, 16, extended
                ? (long)(nint)(delegate* unmanaged<byte*, nuint, byte*, nuint, nint, ulong>)&JitEntryEx
                : (long)(nint)(delegate* unmanaged<byte*, nuint, nint, ulong>)&JitEntry);
            a.Br(16);
            return a.Finish();
        }
        var code = new byte[2 + 8 + 2 + 8 + 2];
        code[0] = extended ? (byte)0x49 : (byte)0x48; // REX.W (+B for r8)
        code[1] = extended ? (byte)0xb8 : (byte)0xba; // mov r8 / rdx, imm64
        BitConverter.TryWriteBytes(code.AsSpan(2), (ulong)handle);
        code[10] = 0x48; code[11] = 0xb8; // mov rax, imm64
        nint entry = extended
            ? (nint)(delegate* unmanaged<byte*, nuint, byte*, nuint, nint, ulong>)&JitEntryEx
            : (nint)(delegate* unmanaged<byte*, nuint, nint, ulong>)&JitEntry;
        BitConverter.TryWriteBytes(code.AsSpan(12), (ulong)entry);
        code[20] = 0xff; code[21] = 0xe0; // jmp rax
        return code;
    }

    private static nint Compile(UbpfVm? u, byte** errmsg, bool extended = false)
    {
        if (errmsg != null) *errmsg = null;
        if (u == null) { SetError(errmsg, "invalid VM"); return 0; }
        if (!u.Loaded) { SetError(errmsg, "code has not been loaded into this VM"); return 0; }
        u.ProfileFixed = true;
        if (u.SafeProfile)
        {
            SetError(errmsg, "the safe execution profile is interpreter-only: it cannot be JIT-compiled");
            return 0;
        }
        if (OperatingSystem.IsWindows())
        {
            // The functions handed out below are System V stubs.
            SetError(errmsg, "ubpf_compile's functions are not available on Windows: use rbpf_vm_jit_function");
            return 0;
        }
        try
        {
            CompileAndPublish(u);
            if (extended)
            {
                u.JitEntryEx ??= ExecutableMemory.Create(EntryStub(u.Handle, extended: true));
                UbpfHandles.SetJitted(u.Handle, (nint)u.JitEntryEx.Address, (ulong)u.Vm.JitCodeSize);
                return (nint)u.JitEntryEx.Address;
            }
            u.JitEntry ??= ExecutableMemory.Create(CompiledFunction(u));
            UbpfHandles.SetJitted(u.Handle, (nint)u.JitEntry.Address, (ulong)u.Vm.JitCodeSize);
            return (nint)u.JitEntry.Address;
        }
        catch (Exception e)
        {
            SetError(errmsg, e.Message);
            return 0;
        }
    }

    /// <summary>Compiles the loaded program and points ubpf_compile's function at the new code.</summary>
    private static void CompileAndPublish(UbpfVm u)
    {
        u.Compiled = false;
        u.Vm.JitCompile(new JitOptions { CheckedMemory = u.BoundsCheck, ConstantBlinding = u.ConstantBlinding,
            Interruptible = false }); // uBPF has no way to interrupt a run: its code pays nothing for it
        int size = u.Vm.JitCodeSize;
        if ((nuint)size > u.JitCodeSize)
        {
            u.Vm.DiscardJit();
            throw new RbpfException(RbpfErrorCode.OutOfMemory, "Target buffer too small"); // uBPF's words, which its tests compare
        }
        u.Compiled = true;
        // Compiled code with no dispatcher (whose cookie is per call) is called directly.
        var compiled = u.Vm.JitForDirectCalls;
        if (compiled != null && u.Dispatcher == 0)
        {
            u.Published.Add(compiled);
            *u.FastEntry = (ulong)compiled.DirectEntry;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_compile")]
    public static nint UbpfCompile(nint vm, byte** errmsg) => Compile(Find(vm), errmsg);

    // enum JitMode, as uBPF numbers it.
    private const int ExtendedJitMode = 0;
    private const int BasicJitMode = 1;

    [UnmanagedCallersOnly(EntryPoint = "ubpf_compile_ex")]
    public static nint UbpfCompileEx(nint vm, byte** errmsg, int mode)
    {
        if (mode != ExtendedJitMode && mode != BasicJitMode)
        {
            SetError(errmsg, $"unknown JIT mode {mode}");
            return 0;
        }
        return Compile(Find(vm), errmsg, extended: mode == ExtendedJitMode);
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_copy_jit")]
    public static nint CopyJit(nint vm, byte* buffer, nuint size, byte** errmsg)
    {
        var u = Find(vm);
        nint entry = Compile(u, errmsg);
        if (entry == 0) return 0;
        var stub = EntryStub(u!.Handle, extended: false); // small: the copy always goes through the runtime
        if (buffer == null || size < (nuint)stub.Length)
        {
            SetError(errmsg, $"the buffer must hold at least {stub.Length} bytes");
            return 0;
        }
        stub.CopyTo(new Span<byte>(buffer, stub.Length));
        return (nint)buffer;
    }

    private static int Translate(nint vm, byte* buffer, nuint* size, byte** errmsg)
    {
        var u = Find(vm);
        if (Compile(u, errmsg) == 0) return -1;
        if (size == null || buffer == null) { SetError(errmsg, "buffer or size is NULL"); return -1; }
        var code = u!.Vm.JitMachineCode();
        if ((nuint)code.Length > *size)
        {
            SetError(errmsg, $"the buffer holds {*size} bytes; the code needs {code.Length}");
            return -1;
        }
        code.CopyTo(new Span<byte>(buffer, code.Length));
        *size = (nuint)code.Length;
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_translate")]
    public static int UbpfTranslate(nint vm, byte* buffer, nuint* size, byte** errmsg) => Translate(vm, buffer, size, errmsg);

    [UnmanagedCallersOnly(EntryPoint = "ubpf_translate_ex")]
    public static int UbpfTranslateEx(nint vm, byte* buffer, nuint* size, byte** errmsg, int mode) => Translate(vm, buffer, size, errmsg);

    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_jit_code_size")]
    public static int SetJitCodeSize(nint vm, nuint codeSize)
    {
        var u = Find(vm);
        if (u == null || codeSize == 0) return -1;
        u.JitCodeSize = codeSize;
        UbpfHandles.SetJitterBufferSize(u.Handle, codeSize);
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_instruction_limit")]
    public static int SetInstructionLimit(nint vm, uint limit, uint* previous)
    {
        var u = Find(vm);
        if (u == null) return -1;
        if (previous != null) *previous = (uint)Math.Min(u.Vm.InstructionLimit, uint.MaxValue);
        u.Vm.InstructionLimit = limit;
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_registers")]
    public static void SetRegisters(nint vm, ulong* regs) =>
        Report(Find(vm), "ubpf_set_registers: register access is not available in librbpf (as in a release build of uBPF)");

    [UnmanagedCallersOnly(EntryPoint = "ubpf_get_registers")]
    public static ulong* GetRegisters(nint vm)
    {
        Report(Find(vm), "ubpf_get_registers: register access is not available in librbpf (as in a release build of uBPF)");
        return null;
    }

    /// <summary>uBPF's cast of any function to a helper: the pointer itself.</summary>
    [UnmanagedCallersOnly(EntryPoint = "as_external_function_t")]
    public static nint AsExternalFunction(nint f) => f;

    /// <summary>
    /// uBPF's test hook that rotates or shuffles its x86-64 JIT's register assignment (declared by
    /// uBPF's vm/test.c, not its header). librbpf's JIT assigns registers its own way: accepted, no effect.
    /// </summary>
    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_register_offset")]
    public static void SetRegisterOffset(int offset) { }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_set_pointer_secret")]
    public static int SetPointerSecret(nint vm, ulong secret)
    {
        var u = Find(vm);
        return u == null || u.Loaded ? -1 : 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "ubpf_register_debug_fn")]
    public static int RegisterDebugFn(nint vm, void* context, nint fn)
    {
        var u = Find(vm);
        if (u == null) return -1;
        if ((u.DebugFunction != 0 && fn != 0) || (u.DebugFunction == 0 && fn == 0)) return -1;
        u.DebugFunction = fn;
        u.DebugContext = context;
        return 0;
    }
}

/// <summary>Layout of ubpf_safe_helper_descriptor.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SafeHelperDescriptor
{
    public uint Index;
    public byte* Name;
    public nint Fn;
    public int ResultKind;
    public uint RegionId;
    public ulong RegionSize;
}

/// <summary>Layout of ubpf_safe_region.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SafeRegion
{
    public uint Id;
    public void* Base;
    public ulong Size;
    public int Kind;
    public uint Permissions;
}
