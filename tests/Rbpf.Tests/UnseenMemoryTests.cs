using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Rbpf.Jit;

namespace Rbpf.Tests;

/// <summary>
/// Memory a program must never see stays unseen: the host's stack and heap are filled with a
/// marker, then programs read stack they never wrote (through r10, through a copy of it, in a
/// called function's frame, into helper arguments and map entries). Every such read must give
/// zero, in the interpreter and in each JIT mode; a marker byte anywhere is a leak of the host's
/// memory.
/// </summary>
public class UnseenMemoryTests
{
    private const byte Marker = 0xA5;

    /// <summary>Leaves the marker in 64 KiB of this thread's stack below the caller, where the engine's frames will be.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void DirtyTheStack()
    {
        byte* p = stackalloc byte[65536];
        new Span<byte>(p, 65536).Fill(Marker);
        Sink(p);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static unsafe void Sink(byte* p) => GC.KeepAlive((nint)p);

    /// <summary>Garbage with the marker on the managed and native heaps, for whatever the engines allocate next.</summary>
    private static unsafe void DirtyTheHeaps()
    {
        for (int k = 0; k < 64; k++)
        {
            var a = new byte[4096 + k * 64];
            a.AsSpan().Fill(Marker);
            GC.KeepAlive(a);
            void* n = NativeMemory.Alloc((nuint)(256 + k * 32));
            new Span<byte>(n, 256 + k * 32).Fill(Marker);
            NativeMemory.Free(n);
        }
    }

    private static readonly string[] Sizes = { "b", "h", "w", "dw" };

    /// <summary>
    /// A program that stores <paramref name="reads"/> values loaded from unwritten stack into the
    /// input (8 bytes each), then helper 1's arguments loaded from unwritten stack, then what a
    /// called function reads from its own unwritten frame; returns the last value read.
    /// </summary>
    private static string Program(Random rng, int reads)
    {
        var sb = new StringBuilder("mov r6, r1\nmov r7, r10\n");
        for (int i = 0; i < reads; i++)
        {
            int sizeIndex = rng.Next(4), size = 1 << sizeIndex;
            int off = -rng.Next(size, 513); // inside the 512-byte frame
            string baseReg = rng.Next(3) == 0 ? "r7" : "r10"; // a copy of r10 reaches the same frame
            sb.Append($"ldx{Sizes[sizeIndex]} r3, [{baseReg}{off}]\nstxdw [r6+{8 * i}], r3\n");
        }
        for (int a = 1; a <= 5; a++) sb.Append($"ldxdw r{a}, [r10-{8 * rng.Next(1, 65)}]\n");
        sb.Append($"call 1\nstxdw [r6+{8 * reads}], r0\n");
        sb.Append($"mov r1, r6\ncall local callee\nstxdw [r6+{8 * reads + 8}], r0\nmov r0, r3\nexit\n");
        // The callee's frame: below the caller's, never written either.
        sb.Append($"callee:\nldxdw r0, [r10-{8 * rng.Next(1, 65)}]\nldxw r2, [r10-{rng.Next(4, 513)}]\nor r0, r2\nexit\n");
        return sb.ToString();
    }

    private static void CheckZero(ReadOnlySpan<byte> bytes, string what, string program)
    {
        int at = bytes.IndexOfAnyExcept((byte)0);
        if (at >= 0)
            Assert.Fail($"{what}: byte {at} is 0x{bytes[at]:x2}{(bytes[at] == Marker ? " (the host's marker)" : "")}\n{program}");
    }

    [Fact]
    public void UnwrittenStackReadsZeroInEveryEngine()
    {
        var rng = new Random(2026);
        var modes = new List<JitOptions?> { null };
        if (EbpfVm.IsJitSupported) modes.AddRange(JitTests.AllOptions.Concat(new[] { new JitOptions { Interruptible = false } }));
        for (int n = 0; n < 150; n++)
        {
            int reads = rng.Next(1, 24);
            string text = Program(rng, reads);
            var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
            ulong[]? seen = null;
            vm.RegisterHelper(1, (a, b, c, d, e) =>
            {
                seen = new[] { a, b, c, d, e };
                return a | b | c | d | e;
            });
            if (n % 5 == 0) vm.InstructionLimit = 100000;
            foreach (var mode in modes)
            {
                var mem = new byte[8 * reads + 16];
                mem.AsSpan().Fill(0x11); // every stored read overwrites its 8 bytes
                seen = null;
                DirtyTheHeaps();
                ulong r0;
                if (mode == null)
                {
                    DirtyTheStack();
                    r0 = vm.Execute(mem);
                }
                else
                {
                    vm.JitCompile(mode);
                    DirtyTheStack();
                    r0 = vm.ExecuteJit(mem);
                }
                string engine = mode == null ? "interpreter" : $"JIT {mode}";
                Assert.Equal(0UL, r0);
                CheckZero(mem, $"{engine}: values read from the stack", text);
                Assert.NotNull(seen);
                CheckZero(MemoryMarshal.AsBytes(seen.AsSpan()), $"{engine}: helper arguments", text);
            }
        }
    }

    [Fact]
    public void MapEntriesMadeFromUnwrittenStackAreZero()
    {
        // Key and value straight from stack the program never wrote: the map gets zeros.
        const string text = "lddw r1, map 0\nmov r2, r10\nadd r2, -8\nmov r3, r10\nadd r3, -64\nmov r4, 0\ncall 2\n" +
                            "lddw r1, map 0\nmov r2, r10\nadd r2, -8\ncall 1\nmov r0, 0\nexit";
        var modes = new List<JitOptions?> { null };
        if (EbpfVm.IsJitSupported) modes.AddRange(JitTests.AllOptions);
        foreach (var mode in modes)
        {
            var map = Maps.BpfMap.Create(Maps.MapType.Hash, 8, 32, 16);
            var vm = EbpfVm.CreateRaw(Assembler.Assemble(text));
            vm.BindMap(0, map);
            DirtyTheHeaps();
            if (mode == null)
            {
                DirtyTheStack();
                vm.Execute(new byte[8]);
            }
            else
            {
                vm.JitCompile(mode);
                DirtyTheStack();
                vm.ExecuteJit(new byte[8]);
            }
            var key = new byte[8];
            var value = new byte[32];
            Assert.True(map.TryLookup(key, value), $"no entry under the all-zero key ({mode?.ToString() ?? "interpreter"})");
            CheckZero(value, $"{mode?.ToString() ?? "interpreter"}: the map value", text);
            Assert.Equal(1, map.Count);
        }
    }
}
