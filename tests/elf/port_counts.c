/* Counts packets per destination port in a hash map and totals their bytes in an array map, as a
 * kernel program would, with libbpf's map declarations (read from BTF: compile with -g). Runs on a
 * raw VM: r1 is an Ethernet frame, r2 its length. Returns 1 for TCP or UDP over IPv4, else 0. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u16);
    __type(value, __u64);
    __uint(max_entries, 256);
} port_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 1);
} total_bytes SEC(".maps");

SEC("socket")
int count(unsigned char *pkt, unsigned long len)
{
    if (len < 14 + 20 + 4 || pkt[12] != 0x08 || pkt[13] != 0x00)
        return 0;
    unsigned ihl = (pkt[14] & 0xf) * 4;
    if (ihl < 20 || len < 14 + ihl + 4)
        return 0;
    __u8 proto = pkt[14 + 9];
    if (proto != 6 && proto != 17)
        return 0;
    __u16 port = (__u16)(pkt[14 + ihl + 2] << 8 | pkt[14 + ihl + 3]);
    __u64 *count = bpf_map_lookup_elem(&port_counts, &port);
    if (count) {
        __sync_fetch_and_add(count, 1);
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&port_counts, &port, &one, BPF_NOEXIST);
    }
    __u32 zero = 0;
    __u64 *total = bpf_map_lookup_elem(&total_bytes, &zero);
    if (total)
        __sync_fetch_and_add(total, len);
    return 1;
}

char LICENSE[] SEC("license") = "GPL";
