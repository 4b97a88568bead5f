namespace Rbpf.Jit;

/// <summary>
/// The slots a forward dataflow analysis still has to visit, taken lowest first (a binary heap; a
/// slot is pending at most once). The input analysis pushes each slot's rank in its visiting order
/// (reverse postorder) rather than its number, so a loop is iterated until it settles before its
/// exit state goes on to the code after it, and a join waits for every path that comes to it. A
/// last-in-first-out stack instead followed the fallthrough of a loop's first rounds on through the
/// rest of the program and came back for the later ones: on four-slot loops in a row
/// (<c>LargeProgramTests</c>) the input analysis took 116 steps per slot that way, 33 lowest first
/// (8 once bounds that kept moving were dropped sooner). By slot number rather than rank, the shared
/// tail of a switch's cases that clang puts before them was visited again after each case: the
/// token state machine of <c>benchmarks/clang</c> took 608 steps, 346 by rank.
/// </summary>
internal sealed class SlotWorklist
{
    private readonly bool[] _pending;
    private int[] _heap = new int[16];
    private int _count;

    public SlotWorklist(int slots) => _pending = new bool[slots];

    public int Count => _count;

    /// <summary>Marks <paramref name="pc"/> to be visited (again); nothing when it is pending already.</summary>
    public void Push(int pc)
    {
        if (_pending[pc]) return;
        _pending[pc] = true;
        if (_count == _heap.Length) Array.Resize(ref _heap, _count * 2);
        int k = _count++;
        while (k > 0)
        {
            int parent = (k - 1) >> 1;
            if (_heap[parent] <= pc) break;
            _heap[k] = _heap[parent];
            k = parent;
        }
        _heap[k] = pc;
    }

    /// <summary>The lowest pending slot, no longer pending. Only while <see cref="Count"/> is not 0.</summary>
    public int Pop()
    {
        int top = _heap[0];
        _pending[top] = false;
        int last = _heap[--_count];
        int k = 0;
        while (true)
        {
            int child = 2 * k + 1;
            if (child >= _count) break;
            if (child + 1 < _count && _heap[child + 1] < _heap[child]) child++;
            if (_heap[child] >= last) break;
            _heap[k] = _heap[child];
            k = child;
        }
        _heap[k] = last;
        return top;
    }
}
