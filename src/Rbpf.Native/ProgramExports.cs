using System.Runtime.InteropServices;
using Rbpf.Programs;

namespace Rbpf.Native;

/// <summary>Kernel program types in the C ABI (include/rbpf.h): creating VMs for them, and XDP runs.</summary>
internal static unsafe class ProgramExports
{
    private static RbpfException Bad(string message) => new(RbpfErrorCode.InvalidArgument, message);

    private static int Fail(Exception e) => LastError.From(e);

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_create_for_type")]
    public static int CreateForType(uint type, nint* outVm)
    {
        try
        {
            if (outVm == null) throw Bad("out (the rbpf_vm ** for the new VM) is NULL");
            *outVm = 0;
            if (type == 0) throw Bad("program type 0 is none: use rbpf_vm_create with a VM kind");
            var vm = EbpfVm.ForProgramType((ProgramType)type);
            *outVm = Exports.RegisterVm(vm);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_create_kernel_from_elf")]
    public static int CreateKernelFromElf(byte* elf, nuint elfLen, byte* sectionOrFunction, uint type, nint* outVm)
    {
        try
        {
            if (outVm == null) throw Bad("out (the rbpf_vm ** for the new VM) is NULL");
            *outVm = 0;
            if (elf == null) throw Bad("elf is NULL");
            if (elfLen > int.MaxValue) throw Bad("elf_len is too large");
            var vm = EbpfVm.FromKernelObject(new ReadOnlySpan<byte>(elf, (int)elfLen), Utf8.Read(sectionOrFunction), (ProgramType)type);
            *outVm = Exports.RegisterVm(vm);
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_get_program_type")]
    public static int GetProgramType(nint vm, uint* type)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (type == null) throw Bad("type is NULL");
            *type = (uint)v.ProgramType;
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    /// <summary>Layout of rbpf_xdp_options.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Options
    {
        public uint Headroom, Length, IngressIfindex, RxQueueIndex, EgressIfindex;
    }

    /// <summary>Layout of rbpf_xdp_result.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Result
    {
        public uint Action, Offset, Length, Reserved;
        public ulong Value;
    }

    /// <summary>Layout of rbpf_skb.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Skb
    {
        public uint Protocol, PacketType, Mark, Priority, QueueMapping, Ifindex, IngressIfindex, TcIndex, TcClassid, Hash,
            VlanPresent, VlanTci;
        public fixed uint Cb[5];
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_execute_skb")]
    public static int ExecuteSkb(nint vm, byte* frame, nuint frameLen, Skb* skb, uint flags, ulong* result)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (result == null) throw Bad("result is NULL");
            if (frame == null && frameLen != 0) throw Bad($"frame is NULL but frame_len is {frameLen}");
            if (frameLen > int.MaxValue) throw Bad("frame_len is too large");
            if ((flags & ~1u) != 0) throw Bad($"unknown flags 0x{flags:x} (RBPF_SKB_JIT 1)");
            var o = new SkbOptions();
            if (skb != null)
                o = new SkbOptions
                {
                    Protocol = skb->Protocol == 0 ? null : skb->Protocol, PacketType = skb->PacketType, Mark = skb->Mark,
                    Priority = skb->Priority, QueueMapping = skb->QueueMapping, Ifindex = skb->Ifindex,
                    IngressIfindex = skb->IngressIfindex, TcIndex = skb->TcIndex, TcClassid = skb->TcClassid, Hash = skb->Hash,
                    VlanTci = skb->VlanPresent != 0 ? skb->VlanTci : null,
                    Cb = new[] { skb->Cb[0], skb->Cb[1], skb->Cb[2], skb->Cb[3], skb->Cb[4] },
                };
            var r = v.ExecuteSkb(new Span<byte>(frame, (int)frameLen), o, jit: (flags & 1) != 0);
            *result = r.Result;
            if (skb != null)
            {
                // What the program may set comes back.
                skb->Mark = r.Mark;
                skb->Priority = r.Priority;
                skb->TcClassid = r.TcClassid;
                skb->TcIndex = r.TcIndex;
                skb->QueueMapping = r.QueueMapping;
                for (int k = 0; k < 5; k++) skb->Cb[k] = r.Cb[k];
            }
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_run_capture")]
    public static int RunCapture(nint vm, byte* capture, nuint captureLen, uint flags, ulong* counts, nuint ncounts, nuint* packets)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (packets != null) *packets = 0;
            if (capture == null) throw Bad("capture is NULL");
            if (captureLen > int.MaxValue) throw Bad("capture_len is too large");
            if (counts == null || ncounts == 0) throw Bad("counts needs at least one slot");
            if ((flags & ~1u) != 0) throw Bad($"unknown flags 0x{flags:x} (RBPF_CAPTURE_JIT 1)");
            bool jit = (flags & 1) != 0;
            var (_, list) = Capture.Read(new ReadOnlySpan<byte>(capture, (int)captureLen));
            for (int n = 0; n < list.Count; n++)
            {
                var data = list[n].Data;
                ulong verdict;
                try
                {
                    if (v.ProgramType == ProgramType.Xdp)
                    {
                        var buffer = new byte[256 + data.Length];
                        data.CopyTo(buffer, 256);
                        var o = new XdpOptions { Headroom = 256 };
                        verdict = (jit ? v.ExecuteXdpJit(buffer, o) : v.ExecuteXdp(buffer, o)).Result;
                    }
                    else if (v.ProgramType != ProgramType.None) verdict = v.ExecuteSkb(data, jit: jit).Result;
                    else verdict = jit ? v.ExecuteJit(data) : v.Execute(data);
                }
                catch (RbpfException e)
                {
                    return LastError.Set(e.Code, $"packet {n}: {e.Message}");
                }
                counts[verdict < ncounts ? verdict : ncounts - 1]++;
                if (packets != null) *packets = (nuint)(n + 1);
            }
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "rbpf_vm_execute_xdp")]
    public static int ExecuteXdp(nint vm, byte* buffer, nuint bufferLen, Options* options, uint flags, Result* result)
    {
        try
        {
            var v = VmHandles.Get(vm);
            if (result == null) throw Bad("result is NULL");
            if (buffer == null && bufferLen != 0) throw Bad($"buffer is NULL but buffer_len is {bufferLen}");
            if (bufferLen > int.MaxValue) throw Bad("buffer_len is too large");
            if ((flags & ~1u) != 0) throw Bad($"unknown flags 0x{flags:x} (RBPF_XDP_JIT 1)");
            var o = new XdpOptions();
            if (options != null)
            {
                if (options->Headroom > int.MaxValue || (options->Length > int.MaxValue && options->Length != uint.MaxValue))
                    throw Bad("headroom or length is too large");
                o = new XdpOptions
                {
                    Headroom = (int)options->Headroom,
                    Length = options->Length == uint.MaxValue ? null : (int)options->Length,
                    IngressIfindex = options->IngressIfindex,
                    RxQueueIndex = options->RxQueueIndex,
                    EgressIfindex = options->EgressIfindex,
                };
            }
            var span = new Span<byte>(buffer, (int)bufferLen);
            var r = (flags & 1) != 0 ? v.ExecuteXdpJit(span, o) : v.ExecuteXdp(span, o);
            *result = new Result { Action = (uint)r.Action, Offset = (uint)r.Offset, Length = (uint)r.Length, Value = r.Result };
            return 0;
        }
        catch (Exception e) { return Fail(e); }
    }
}
