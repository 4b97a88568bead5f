/*
 * bpf_map_lookup_elem for hash maps, called straight from JIT-compiled code (X64Compiler's inline
 * lookup), so that a lookup never leaves native code. It reads the map as Rbpf/Maps/HashMap.cs
 * keeps it (through its MapDescriptor: same layout below) and does what HashMap.FindStable does:
 * hash the key, probe the open-addressing table, and look again if a writer changed the table
 * meanwhile (the sequence number is odd while it does, and moves when it is done).
 */
#include <stdint.h>
#include <string.h>

/* A spinning reader's pause between attempts. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Shared with MapDescriptor in Rbpf/Maps/BpfMap.cs: keep the layouts in step. */
struct map_desc {
    uint32_t type, key_size, value_size, max_entries, stride, mask;
    uint8_t *values;
    uint8_t *keys;
    uint32_t *hashes;
    int32_t *table;
    int32_t *sequence;
    int64_t *clock;
    int64_t *last_use;
};

/* HashMap.Hash: FNV-1a over 8-byte words and the bytes left, then a finaliser. */
static uint32_t hash_key(const uint8_t *key, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < n; i++) h = (h ^ key[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h;
}

static int32_t find(const struct map_desc *d, const uint8_t *key, uint32_t h)
{
    uint32_t i = h & d->mask;
    for (uint32_t probes = 0; probes <= d->mask; probes++) {
        int32_t e = __atomic_load_n(&d->table[i], __ATOMIC_RELAXED);
        if (e == 0) return -1;
        uint32_t slot = (uint32_t)e - 1;
        if (slot < d->max_entries && __atomic_load_n(&d->hashes[slot], __ATOMIC_RELAXED) == h &&
            memcmp(d->keys + (uint64_t)slot * d->key_size, key, d->key_size) == 0)
            return (int32_t)slot;
        i = (i + 1) & d->mask;
    }
    return -1;
}

__attribute__((visibility("hidden"))) void *rbpf_map_hash_lookup(const struct map_desc *d, const uint8_t *key)
{
    uint32_t h = hash_key(key, d->key_size);
    for (;;) {
        int32_t before = __atomic_load_n(d->sequence, __ATOMIC_ACQUIRE);
        if ((before & 1) == 0) {
            int32_t slot = find(d, key, h);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(d->sequence, __ATOMIC_RELAXED) == before) {
                if (slot < 0) return NULL;
                if (d->last_use != NULL) d->last_use[slot] = ++*d->clock; /* racy, as in HashMap: an age */
                return d->values + (uint64_t)slot * d->stride;
            }
        }
        cpu_relax();
    }
}

/* Its address, for the managed side to hand to the JIT (MapHelpers.NativeHashLookup). */
__attribute__((visibility("hidden"))) void *rbpf_map_hash_lookup_address(void)
{
    return (void *)rbpf_map_hash_lookup;
}

/* bpf_map_update_elem of a key that is present (flags BPF_ANY or BPF_EXIST), straight from
 * compiled code: copies the value in place, as HashMap and ArrayMap do. Returns 0, or 1 when the
 * key is not there (or the index is past the end), which the managed helper then handles. */
__attribute__((visibility("hidden"))) int64_t rbpf_map_update_present(const struct map_desc *d, const uint8_t *key,
                                                                      const uint8_t *value)
{
    uint8_t *slot;
    if (d->type == 2 || d->type == 6) { /* array, per-CPU array */
        uint32_t index;
        memcpy(&index, key, 4);
        if (index >= d->max_entries) return 1;
        slot = d->values + (uint64_t)index * d->stride;
    } else {
        slot = rbpf_map_hash_lookup(d, key);
        if (slot == NULL) return 1;
    }
    memcpy(slot, value, d->value_size);
    return 0;
}

__attribute__((visibility("hidden"))) void *rbpf_map_update_present_address(void)
{
    return (void *)rbpf_map_update_present;
}
