/* XDP programs written as for the kernel, with libbpf's headers: r1 is a struct xdp_md whose
 * 32-bit data and data_end fields the loader rewrites into loads of real pointers. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Drops UDP over IPv4 to port 9999; passes everything else. */
SEC("xdp")
int drop_port(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    struct udphdr *udp = (void *)ip + ip->ihl * 4;
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    return udp->dest == bpf_htons(9999) ? XDP_DROP : XDP_PASS;
}

/* Sends IPv4 frames back where they came from: swaps the MAC and IP addresses, returns XDP_TX. */
SEC("xdp")
int bounce(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    unsigned char mac[ETH_ALEN];
    __builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, mac, ETH_ALEN);
    __u32 addr = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = addr;
    return XDP_TX;
}

/* Strips an 802.1Q tag: moves the MAC addresses 4 bytes on and the frame's start with them. */
SEC("xdp")
int strip_vlan(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if (data + ETH_HLEN + 4 > data_end || eth->h_proto != bpf_htons(ETH_P_8021Q))
        return XDP_PASS;
    unsigned char macs[2 * ETH_ALEN];
    __builtin_memcpy(macs, data, sizeof macs);
    if (bpf_xdp_adjust_head(ctx, 4))
        return XDP_ABORTED;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    if (data + ETH_HLEN > data_end)
        return XDP_ABORTED;
    __builtin_memcpy(data, macs, sizeof macs);
    return XDP_PASS;
}

/* Reads a field the type does not have (xdp_md has none at offset 24): refused at load. */
SEC("xdp")
int bad_field(struct xdp_md *ctx)
{
    return *(__u32 *)((char *)ctx + 24);
}

char LICENSE[] SEC("license") = "GPL";
