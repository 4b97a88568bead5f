using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Rbpf.Jit;

namespace Rbpf.Native;

/// <summary>
/// The C ABI (include/rbpf.h). Each export converts pointers and lengths, calls the engine and turns
/// every exception into a negative RBPF_E_* code with rbpf_last_error() set; nothing escapes into C.
/// </summary>
internal static unsafe class Exports
{
    private const int MaxKind = (int)VmKind.NoData;

    private static RbpfException Bad(string message) => new(RbpfErrorCode.InvalidArgument, message);

    private static ReadOnlySpan<byte> Bytes(byte* p, nuint length, string what)
    {
        if (p == null && length != 0) throw Bad($"{what} is NULL but its length is {length}");
        if (length > int.MaxValue) throw Bad($"{what} length {length} is too large");
        return new ReadOnlySpan<byte>(p, (int)length);
    }

    private static int Fail(Exception e) => LastError.From(e);

    /// <summary>Runs when the library loads: failed JIT runs become the thread's last error even when C
    /// calls the compiled code directly (rbpf_vm_jit_function, and rbpf_vm_execute_jit on Linux), with
    /// no export in between; the native rbpf_vm_execute_jit gets its table.</summary>
#pragma warning disable CA2255 // librbpf is the application here: NativeAOT runs this when the library loads
    [ModuleInitializer]
    internal static void Initialize()
    {
        JitRuntime.FailureSink = e => LastError.Set(e.Code, e.Message);
        FastCalls.Initialize();
        Interrupts.Initialize();
    }
#pragma warning restore CA2255

    /// <summary>A new VM's handle (for the other export classes).</summary>
    internal static nint RegisterVm(EbpfVm vm) => Register(vm);

    /// <summary>A new VM's handle, its slot kept current for the native rbpf_vm_execute_jit.</summary>
    private static nint Register(EbpfVm vm)
    {
        nint handle = VmHandles.Add(vm);
        Interrupts.Attach(vm, handle);
        FastCalls.Track(vm, handle);
        return handle;
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_create")]
    public static int VmCreate(int kind, byte* prog, nuint progLen, nint* outVm)
    {
        try
        {
            if (outVm == null) throw Bad("out (the rbpf_vm ** for the new VM) is NULL");
            *outVm = 0;
            if (kind < 0 || kind > MaxKind) throw Bad($"unknown VM kind {kind}");
            if ((VmKind)kind == VmKind.FixedMbuff)
                throw Bad("a fixed-mbuff VM needs its data offsets: use rbpf_vm_create_fixed_mbuff");
            var code = Bytes(prog, progLen, "prog");
            var vm = new EbpfVm((VmKind)kind);
            if (prog != null) vm.SetProgram(code);
            *outVm = Register(vm);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_create_fixed_mbuff")]
    public static int VmCreateFixedMbuff(byte* prog, nuint progLen, nuint dataOffset, nuint dataEndOffset, nint* outVm)
    {
        try
        {
            if (outVm == null) throw Bad("out (the rbpf_vm ** for the new VM) is NULL");
            *outVm = 0;
            if (dataOffset > int.MaxValue || dataEndOffset > int.MaxValue) throw Bad("data offsets are too large");
            var code = Bytes(prog, progLen, "prog");
            var vm = new EbpfVm(VmKind.FixedMbuff);
            if (prog == null) throw Bad("prog is NULL: a fixed-mbuff VM is created with its program");
            vm.SetProgram(code, (int)dataOffset, (int)dataEndOffset);
            *outVm = Register(vm);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_create_from_elf")]
    public static int VmCreateFromElf(int kind, byte* elf, nuint elfLen, byte* sectionOrFunction, nint* outVm)
    {
        try
        {
            if (outVm == null) throw Bad("out (the rbpf_vm ** for the new VM) is NULL");
            *outVm = 0;
            if (kind < 0 || kind > MaxKind) throw Bad($"unknown VM kind {kind}");
            if (elf == null) throw Bad("elf is NULL");
            var vm = EbpfVm.CreateFromElf((VmKind)kind, Bytes(elf, elfLen, "elf"), Utf8.Read(sectionOrFunction));
            *outVm = Register(vm);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_load_elf")]
    public static int VmLoadElf(nint vm, byte* elf, nuint elfLen, byte* sectionOrFunction)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (elf == null) throw Bad("elf is NULL");
            v.LoadElf(Bytes(elf, elfLen, "elf"), Utf8.Read(sectionOrFunction));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_get_data_region")]
    public static int VmGetDataRegion(nint vm, nuint index, byte** outName, void** outAddress, nuint* outLen, int* outWritable)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (outAddress == null || outLen == null) throw Bad("out_addr or out_len is NULL");
            var regions = v.Elf?.DataRegions ?? throw new RbpfException(RbpfErrorCode.NoProgram, "no ELF object is loaded");
            if (index >= (nuint)regions.Count)
                throw Bad($"data region {index} does not exist (the object has {regions.Count})");
            var d = regions[(int)index];
            *outAddress = (void*)d.Address;
            *outLen = d.Length;
            if (outWritable != null) *outWritable = d.Writable ? 1 : 0;
            if (outName != null) *outName = DataRegionNames.Get(d.Name);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_register_helper_name")]
    public static int VmRegisterHelperName(nint vm, uint key, byte* name, delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, ulong> fn)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (fn == null) throw Bad("helper function pointer is NULL");
            string n = Utf8.Read(name) ?? throw Bad("name is NULL");
            v.RegisterHelper(key, fn, n);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_set_program")]
    public static int VmSetProgram(nint vm, byte* prog, nuint progLen)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (prog == null) throw Bad("prog is NULL");
            v.SetProgram(Bytes(prog, progLen, "prog"));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_set_program_fixed_mbuff")]
    public static int VmSetProgramFixedMbuff(nint vm, byte* prog, nuint progLen, nuint dataOffset, nuint dataEndOffset)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (prog == null) throw Bad("prog is NULL");
            if (dataOffset > int.MaxValue || dataEndOffset > int.MaxValue) throw Bad("data offsets are too large");
            v.SetProgram(Bytes(prog, progLen, "prog"), (int)dataOffset, (int)dataEndOffset);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_get_program")]
    public static int VmGetProgram(nint vm, byte** outProg, nuint* outLen)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (outProg == null || outLen == null) throw Bad("out_prog or out_len is NULL");
            *outProg = null;
            *outLen = 0;
            var prog = v.Program ?? throw new RbpfException(RbpfErrorCode.NoProgram, "no program is loaded");
            byte* p = (byte*)NativeMemory.Alloc((nuint)Math.Max(prog.Length, 1));
            prog.Span.CopyTo(new Span<byte>(p, prog.Length));
            *outProg = p;
            *outLen = (nuint)prog.Length;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_register_helper")]
    public static int VmRegisterHelper(nint vm, uint key, delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, ulong> fn)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (fn == null) throw Bad("helper function pointer is NULL");
            v.RegisterHelper(key, fn);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_register_standard_helpers")]
    public static int VmRegisterStandardHelpers(nint vm)
    {
        try
        {
            VmHandles.Get(vm).RegisterStandardHelpers();
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_set_unwind_helper")]
    public static int VmSetUnwindHelper(nint vm, uint key, int enabled)
    {
        try
        {
            VmHandles.Get(vm).UnwindHelper = enabled != 0 ? key : null;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_set_verifier")]
    public static int VmSetVerifier(nint vm, delegate* unmanaged<byte*, nuint, void*, int> fn, void* userData)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (fn == null)
            {
                v.SetVerifier(Verifier.Default);
                return 0;
            }
            nint user = (nint)userData;
            nint callback = (nint)fn;
            v.SetVerifier(program => CallVerifier(callback, program, user));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>The reason a custom verifier gave (rbpf_verifier_reject) while it runs on this thread.</summary>
    [ThreadStatic] private static string? t_verifierReason;

    private static void CallVerifier(nint callback, ReadOnlySpan<byte> program, nint user)
    {
        int rc;
        t_verifierReason = null;
        fixed (byte* p = program)
            rc = ((delegate* unmanaged<byte*, nuint, void*, int>)callback)(p, (nuint)program.Length, (void*)user);
        string? reason = t_verifierReason;
        t_verifierReason = null;
        if (rc != 0)
            throw new RbpfException(RbpfErrorCode.InvalidProgram, reason != null
                ? $"the custom verifier rejected the program: {reason}"
                : $"the custom verifier rejected the program (it returned {rc})");
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_verifier_reject")]
    public static void VerifierReject(byte* reason)
    {
        try { t_verifierReason = Utf8.Read(reason); }
        catch (Exception) { /* nothing may escape into native code */ }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_disable_verifier")]
    public static int VmDisableVerifier(nint vm)
    {
        try
        {
            VmHandles.Get(vm).SetVerifier(null);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_set_instruction_limit")]
    public static int VmSetInstructionLimit(nint vm, ulong limit)
    {
        try
        {
            VmHandles.Get(vm).InstructionLimit = limit;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_add_memory_region")]
    public static int VmAddMemoryRegion(nint vm, void* address, nuint length, int writable)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (address == null) throw Bad("region address is NULL");
            if (length == 0) throw Bad("region length is 0");
            return v.AddMemoryRegion(new MemoryRegion((nint)address, length, writable != 0, "region"));
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_clear_memory_regions")]
    public static int VmClearMemoryRegions(nint vm)
    {
        try
        {
            VmHandles.Get(vm).ClearMemoryRegions();
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_execute")]
    [SkipLocalsInit] // every local is assigned before it is read; zeroing them cost six stores a call
    public static int VmExecute(nint vm, byte* mem, nuint memLen, byte* mbuff, nuint mbuffLen, ulong* result)
    {
        try
        {
            // The common case first, without layers: a live handle and a result pointer. The engine
            // checks the memory arguments itself and reports every failure as an error.
            var live = VmHandles.TryGet(vm);
            if (live == null || result == null) return ExecuteChecked(vm, mem, memLen, mbuff, mbuffLen, result, jit: false);
            var observer = default(NoObserver);
            int armed = Interrupts.ArmRun(live);
            RbpfException? error;
            // The run writes *result itself, and only when the program ends: one copy fewer on the
            // way from r0 to the caller, and nothing written on a failure.
            try { error = live.RunInterpreter(mem, memLen, mbuff, mbuffLen, null, 0, ref observer, ref *result); }
            finally { Interrupts.Disarm(armed); }
            if (error != null) return LastError.Set(error.Code, Interrupts.Describe(live, error));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>Layout of rbpf_buffer.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Buffer
    {
        public byte* Data;
        public nuint Length;
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_execute_batch")]
    public static int VmExecuteBatch(nint vm, Buffer* buffers, nuint count, uint flags, ulong* results, nuint* done) =>
        RunBatch(vm, buffers, count, flags, results, null, 0, done);

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_count_verdicts")]
    public static int VmCountVerdicts(nint vm, Buffer* buffers, nuint count, uint flags, ulong* counts, nuint ncounts, nuint* done) =>
        RunBatch(vm, buffers, count, flags, null, counts, ncounts, done);

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_execute_packed")]
    public static int VmExecutePacked(nint vm, byte* data, nuint* lengths, nuint count, uint flags, ulong* results, ulong* counts,
        nuint ncounts, nuint* done) =>
        RunBatch(vm, null, count, flags, counts == null ? results : null, counts, ncounts, done, data, lengths);

    /// <summary>
    /// One run per input (the buffers, or consecutive stretches of <paramref name="packed"/> of
    /// <paramref name="lengths"/> bytes); each r0 goes to <paramref name="results"/>, or is counted in <paramref name="counts"/>.
    /// </summary>
    private static int RunBatch(nint vm, Buffer* buffers, nuint count, uint flags, ulong* results, ulong* counts, nuint ncounts, nuint* done,
        byte* packed = null, nuint* lengths = null)
    {
        try
        {
            if (done != null) *done = 0;
            var v = VmHandles.Get(vm);
            if ((flags & ~1u) != 0) return LastError.Set(RbpfErrorCode.InvalidArgument, $"unknown batch flags 0x{flags:x}");
            if (count != 0 && buffers == null && lengths == null) return LastError.Set(RbpfErrorCode.InvalidArgument, "buffers is NULL");
            if (counts == null && results == null && count != 0) return LastError.Set(RbpfErrorCode.InvalidArgument, "results (or counts) is NULL");
            if (counts != null && ncounts == 0) return LastError.Set(RbpfErrorCode.InvalidArgument, "counts needs at least one slot");
            bool jit = (flags & 1) != 0;
            int armed = Interrupts.ArmRun(v);
            try { return RunEach(v, buffers, count, jit, results, counts, ncounts, done, packed, lengths); }
            finally { Interrupts.Disarm(armed); }
        }
        catch (Exception e) { return Fail(e); }
    }

    private static int RunEach(EbpfVm v, Buffer* buffers, nuint count, bool jit, ulong* results, ulong* counts, nuint ncounts, nuint* done,
        byte* packed, nuint* lengths)
    {
        if (jit)
        {
            // The compiled code runs the whole batch in one call (see EbpfVm.RunJitBatch).
            var batch = new Rbpf.Jit.JitBatch
            {
                Buffers = (ulong*)buffers, Packed = packed, Lengths = lengths, Count = count,
                Results = counts == null ? results : null, Counts = counts, NCounts = ncounts,
            };
            var failure = v.RunJitBatch(&batch);
            if (done != null) *done = batch.Done;
            return failure == null ? 0 : LastError.Set(failure.Code, $"buffer {batch.Done}: {Interrupts.Describe(v, failure)}");
        }
        var observer = default(NoObserver);
        byte* next = packed;
        for (nuint k = 0; k < count; k++)
        {
            byte* mem;
            nuint length;
            if (buffers != null)
            {
                mem = buffers[k].Data;
                length = buffers[k].Length;
            }
            else
            {
                mem = next;
                length = lengths[k];
                if (mem == null && length != 0) return LastError.Set(RbpfErrorCode.InvalidArgument, "data is NULL");
                next += length;
            }
            ulong r0 = 0;
            var error = v.RunInterpreter(mem, length, null, 0, null, 0, ref observer, ref r0);
            if (error != null)
                return LastError.Set(error.Code, $"buffer {k}: {Interrupts.Describe(v, error)}");
            if (results != null) results[k] = r0;
            else counts[r0 < ncounts ? r0 : ncounts - 1]++;
            if (done != null) *done = k + 1;
        }
        return 0;
    }

    /// <summary>Everything else, with a message for each bad argument.</summary>
    private static int ExecuteChecked(nint vm, byte* mem, nuint memLen, byte* mbuff, nuint mbuffLen, ulong* result, bool jit)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (result == null) throw Bad("result is NULL");
            if (mem == null && memLen != 0) throw Bad($"mem is NULL but mem_len is {memLen}");
            if (mbuff == null && mbuffLen != 0) throw Bad($"mbuff is NULL but mbuff_len is {mbuffLen}");
            int armed = Interrupts.ArmRun(v);
            RbpfErrorCode code;
            ulong r0;
            RbpfException? error;
            try
            {
                code = jit
                    ? v.TryExecuteJit(mem, memLen, mbuff, mbuffLen, out r0, out error)
                    : v.TryExecute(mem, memLen, mbuff, mbuffLen, out r0, out error);
            }
            finally { Interrupts.Disarm(armed); }
            if (code != RbpfErrorCode.Ok) return LastError.Set(code, Interrupts.Describe(v, error!));
            *result = r0;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_jit_compile")]
    public static int VmJitCompile(nint vm)
    {
        try
        {
            VmHandles.Get(vm).JitCompile();
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>Flags of rbpf_vm_jit_compile_ex (RBPF_JIT_*).</summary>
    private const uint JitUnchecked = 1, JitBlindConstants = 2, JitNoInterrupt = 4;

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_jit_compile_ex")]
    public static int VmJitCompileEx(nint vm, uint flags)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if ((flags & ~(JitUnchecked | JitBlindConstants | JitNoInterrupt)) != 0) throw Bad($"unknown JIT flags 0x{flags:x}");
            v.JitCompile(new Rbpf.Jit.JitOptions
            {
                CheckedMemory = (flags & JitUnchecked) == 0,
                ConstantBlinding = (flags & JitBlindConstants) != 0,
                Interruptible = (flags & JitNoInterrupt) == 0,
            });
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

#if RBPF_FAST_SHIM
    [UnmanagedCallersOnly] // rbpf_vm_execute_jit is native/fastcall.c, which calls this for what it cannot do itself
#else
    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_execute_jit")]
#endif
    public static int VmExecuteJit(nint vm, byte* mem, nuint memLen, byte* mbuff, nuint mbuffLen, ulong* result)
    {
        try
        {
            // As rbpf_vm_execute; the compiled code checks the memory arguments and records a
            // failure as this thread's last error itself (see Initialize).
            var live = VmHandles.TryGet(vm);
            var compiled = live?.JitForDirectCalls;
            if (compiled == null || result == null || Interrupts.HasSignal(live!) || live!.HasProgramArray) return ExecuteChecked(vm, mem, memLen, mbuff, mbuffLen, result, jit: true);
            int status = compiled.Run(mem, memLen, mbuff, mbuffLen, result, null);
            if (status != 0) JitRuntime.TakeFailure();
            return status;
        }
        catch (Exception e) { return Fail(e); }
    }

#if !RBPF_FAST_SHIM
    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_interrupt")] // Linux: native/interrupt.c, safe in a signal handler
    public static int VmInterrupt(nint vm)
    {
        var live = VmHandles.TryGet(vm);
        if (live == null) return (int)RbpfErrorCode.InvalidHandle;
        live.Interrupt();
        return 0;
    }
#endif

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_set_interrupt_signal")]
    public static int VmSetInterruptSignal(nint vm, int signal)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (signal < 0) throw Bad($"{signal} is not a signal number");
            Interrupts.SetSignal(v, vm, signal);
            FastCalls.Publish(vm); // runs that a signal interrupts go through the managed path, which arms them
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_jit_function")]
    public static int VmJitFunction(nint vm, nint* outFn)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (outFn == null) throw Bad("out_fn is NULL");
            *outFn = 0;
            *outFn = v.JitFunction;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_jit_disassemble")]
    public static int VmJitDisassemble(nint vm, byte** outText)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (outText == null) throw Bad("out_text is NULL");
            *outText = null;
            *outText = Utf8.Alloc(v.JitDisassembly());
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_destroy")]
    public static void VmDestroy(nint vm)
    {
        try
        {
            var v = VmHandles.Get(vm);
            VmHandles.Remove(vm);
            Interrupts.Detach(vm);
            FastCalls.Publish(vm); // empties its slot
            v.Dispose(); // frees the JIT code once no thread runs it
        }
        catch (Exception e) { Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_is_valid")]
    public static int VmIsValid(nint vm)
    {
        try
        {
            VmHandles.Get(vm);
            return 1;
        }
        catch (Exception) { return 0; }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_verify")]
    public static int Verify(byte* prog, nuint progLen)
    {
        try
        {
            if (prog == null) throw Bad("prog is NULL");
            Verifier.Verify(Bytes(prog, progLen, "prog"));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_assemble")]
    public static int Assemble(byte* source, byte** outProg, nuint* outLen)
    {
        try
        {
            if (outProg == null || outLen == null) throw Bad("out_prog or out_len is NULL");
            *outProg = null;
            *outLen = 0;
            string text = Utf8.Read(source) ?? throw Bad("source is NULL");
            byte[] prog = Assembler.Assemble(text);
            byte* p = (byte*)NativeMemory.Alloc((nuint)Math.Max(prog.Length, 1));
            prog.CopyTo(new Span<byte>(p, prog.Length));
            *outProg = p;
            *outLen = (nuint)prog.Length;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_cbpf_translate")]
    public static int CbpfTranslate(byte* cbpf, nuint cbpfLen, byte** outProg, nuint* outLen)
    {
        try
        {
            if (outProg == null || outLen == null) throw Bad("out or out_len is NULL");
            *outProg = null;
            *outLen = 0;
            if (cbpf == null) throw Bad("cbpf is NULL");
            var prog = Rbpf.Cbpf.ClassicBpf.Translate(Bytes(cbpf, cbpfLen, "cbpf"));
            byte* p = (byte*)NativeMemory.Alloc((nuint)prog.Length);
            prog.CopyTo(new Span<byte>(p, prog.Length));
            *outProg = p;
            *outLen = (nuint)prog.Length;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_disassemble")]
    public static int Disassemble(byte* prog, nuint progLen, byte** outText) => DisassembleWith(prog, progLen, 0, outText);

    [UnmanagedCallersOnly(EntryPoint = "rbpf_disassemble_ex")]
    public static int DisassembleEx(byte* prog, nuint progLen, uint flags, byte** outText) => DisassembleWith(prog, progLen, flags, outText);

    private static int DisassembleWith(byte* prog, nuint progLen, uint flags, byte** outText)
    {
        try
        {
            if ((flags & ~3u) != 0) throw Bad($"unknown disassembly flags 0x{flags:x}");
            if (outText == null) throw Bad("out_text is NULL");
            *outText = null;
            if (prog == null) throw Bad("prog is NULL");
            var span = Bytes(prog, progLen, "prog");
            if (span.Length % Isa.InstructionSize != 0)
                throw new RbpfException(RbpfErrorCode.InvalidProgram, $"program length {span.Length} is not a multiple of 8 bytes");
            *outText = Utf8.Alloc(flags == 0 ? Disassembler.Disassemble(span)
                : Disassembler.Disassemble(span, (flags & 1) != 0 ? AsmSyntax.Llvm : AsmSyntax.Rbpf, labels: (flags & 2) != 0));
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_helper_fail")]
    public static void HelperFail(byte* message)
    {
        try { HelperFailure.Report(Utf8.Read(message) ?? ""); }
        catch (Exception) { /* nothing may escape into native code */ }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_free")]
    public static void Free(void* p) => NativeMemory.Free(p);

    [UnmanagedCallersOnly(EntryPoint = "rbpf_last_error")]
    public static byte* LastErrorMessage() => LastError.Message != null ? LastError.Message : NoError;

    [UnmanagedCallersOnly(EntryPoint = "rbpf_last_error_code")]
    public static int LastErrorCode() => LastError.Code;

    [UnmanagedCallersOnly(EntryPoint = "rbpf_error_name")]
    public static byte* ErrorName(int code) => ErrorNames.Get(code);

    [UnmanagedCallersOnly(EntryPoint = "rbpf_version")]
    public static byte* Version() => VersionString;

    private static readonly byte* NoError = Utf8.Alloc("no error");
    private static readonly byte* VersionString = Utf8.Alloc(typeof(EbpfVm).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.0.0");
}

/// <summary>Interned C strings for data region names (a handful per process: .data, .rodata, ...).</summary>
internal static unsafe class DataRegionNames
{
    private static readonly Dictionary<string, nint> Names = new();

    public static byte* Get(string name)
    {
        lock (Names)
        {
            if (!Names.TryGetValue(name, out var p)) Names[name] = p = (nint)Utf8.Alloc(name);
            return (byte*)p;
        }
    }
}

/// <summary>Static C strings naming each error code.</summary>
internal static unsafe class ErrorNames
{
    private static readonly Dictionary<int, nint> Names = Build();

    private static Dictionary<int, nint> Build()
    {
        var d = new Dictionary<int, nint>();
        foreach (var code in Enum.GetValues<RbpfErrorCode>())
            d[(int)code] = (nint)Utf8.Alloc(ToCName(code));
        d[int.MinValue] = (nint)Utf8.Alloc("RBPF_E_UNKNOWN");
        return d;
    }

    private static string ToCName(RbpfErrorCode code)
    {
        if (code == RbpfErrorCode.Ok) return "RBPF_OK";
        var sb = new System.Text.StringBuilder("RBPF_E_");
        string name = code.ToString();
        for (int i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i])) sb.Append('_');
            sb.Append(char.ToUpperInvariant(name[i]));
        }
        return sb.ToString();
    }

    public static byte* Get(int code) => (byte*)(Names.TryGetValue(code, out var p) ? p : Names[int.MinValue]);
}
