namespace Rbpf.Programs;

/// <summary>Kernel program types, with the kernel's numbers (<c>enum bpf_prog_type</c>).</summary>
public enum ProgramType
{
    /// <summary>None: one of rbpf's four VM kinds decides what r1 and r2 are.</summary>
    None = 0,
    /// <summary>BPF_PROG_TYPE_SOCKET_FILTER.</summary>
    SocketFilter = 1,
    /// <summary>BPF_PROG_TYPE_SCHED_CLS (tc classifier).</summary>
    SchedCls = 3,
    /// <summary>BPF_PROG_TYPE_SCHED_ACT (tc action).</summary>
    SchedAct = 4,
    /// <summary>BPF_PROG_TYPE_XDP: r1 is a <c>struct xdp_md</c>.</summary>
    Xdp = 6,
}

/// <summary>XDP verdicts (<c>enum xdp_action</c>).</summary>
public enum XdpAction : uint
{
    /// <summary>An error: the packet is dropped.</summary>
    Aborted = 0,
    /// <summary>Dropped.</summary>
    Drop = 1,
    /// <summary>Passed on to the network stack.</summary>
    Pass = 2,
    /// <summary>Sent back out of the interface it came in on.</summary>
    Tx = 3,
    /// <summary>Redirected.</summary>
    Redirect = 4,
}

/// <summary>The program types libbpf infers from a section name (<c>SEC("xdp")</c> and the like).</summary>
public static class ProgramTypes
{
    /// <summary>The type libbpf gives a program in section <paramref name="section"/>, or <see cref="ProgramType.None"/>.</summary>
    public static ProgramType FromSection(string section)
    {
        ArgumentNullException.ThrowIfNull(section);
        static bool Is(string s, string prefix) => s == prefix || s.StartsWith(prefix + "/", StringComparison.Ordinal)
            || s.StartsWith(prefix + ".", StringComparison.Ordinal);
        if (Is(section, "xdp")) return ProgramType.Xdp;
        if (Is(section, "socket")) return ProgramType.SocketFilter;
        if (Is(section, "tc") || Is(section, "classifier") || Is(section, "tcx")) return ProgramType.SchedCls;
        if (Is(section, "action")) return ProgramType.SchedAct;
        return ProgramType.None;
    }
}
