namespace Rbpf;

/// <summary>The helpers of one VM, by id, and dense slots that call instructions are linked to.</summary>
internal sealed class HelperTable
{
    private readonly Dictionary<uint, int> _slotByKey = new();
    private readonly List<HelperEntry> _slots = new();
    private HelperEntry[] _snapshot = Array.Empty<HelperEntry>();
    private readonly Dictionary<string, uint> _keyByName = new(StringComparer.Ordinal);

    public HelperEntry BySlot(int slot) => _snapshot[slot];

    public HelperEntry? Find(uint key) =>
        _slotByKey.TryGetValue(key, out int slot) ? _snapshot[slot] : null;

    public int SlotOf(uint key) => _slotByKey.TryGetValue(key, out int slot) ? slot : -1;

    public uint? KeyOf(string name) => _keyByName.TryGetValue(name, out uint key) ? key : null;

    public IEnumerable<uint> Keys => _slotByKey.Keys;

    /// <summary>Adds or replaces the helper of <paramref name="entry"/>'s id.</summary>
    public void Set(HelperEntry entry)
    {
        if (_slotByKey.TryGetValue(entry.Key, out int slot))
            _slots[slot] = entry;
        else
        {
            _slotByKey[entry.Key] = _slots.Count;
            _slots.Add(entry);
        }
        _keyByName[entry.Name] = entry.Key;
        // Publish a fresh array so a running program never sees a half-updated table.
        _snapshot = _slots.ToArray();
    }

    /// <summary>Removes the helper of <paramref name="key"/>; the slots after it move down (relink programs).</summary>
    public bool Remove(uint key)
    {
        if (!_slotByKey.TryGetValue(key, out int slot)) return false;
        var removed = _slots[slot];
        _slots.RemoveAt(slot);
        _slotByKey.Clear();
        for (int k = 0; k < _slots.Count; k++) _slotByKey[_slots[k].Key] = k;
        if (_keyByName.TryGetValue(removed.Name, out uint named) && named == key) _keyByName.Remove(removed.Name);
        _snapshot = _slots.ToArray();
        return true;
    }

    /// <summary>Points every helper call of <paramref name="program"/> at its slot (-1: unregistered).</summary>
    public void Link(DecodedProgram program)
    {
        var code = program.Code;
        for (int pc = 0; pc < code.Length; pc++)
        {
            if (code[pc].Op == Op.Call)
                program.SetCallOperands(pc, SlotOf((uint)code[pc].Imm), code[pc].Imm);
        }
    }
}
