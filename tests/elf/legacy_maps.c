/* A map declared the old way, in a "maps" section of struct bpf_map_def (libbpf before 1.0), and a
 * ring buffer the program writes events to. Raw VM: stores the input's first byte under key 1 and
 * outputs the first 8 bytes as a record; returns the record count it saw so far. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
    unsigned int type, key_size, value_size, max_entries, map_flags;
};

struct bpf_map_def SEC("maps") last_byte = {
    .type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 8, .max_entries = 4,
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

SEC("socket")
int record(unsigned char *pkt, unsigned long len)
{
    if (len < 8)
        return -1;
    __u32 key = 1;
    __u64 value = pkt[0];
    bpf_map_update_elem(&last_byte, &key, &value, BPF_ANY);
    __u64 *slot = bpf_ringbuf_reserve(&events, 8, 0);
    if (!slot)
        return -2;
    __builtin_memcpy(slot, pkt, 8);
    bpf_ringbuf_submit(slot, 0);
    return (int)bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
}
