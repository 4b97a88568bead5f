/* A tc classifier and a socket filter written as for the kernel: r1 is a struct __sk_buff. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Marks IPv4 packets with their TOS, sets a class and drops ICMP. */
SEC("tc")
int classify(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *data_end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || skb->protocol != bpf_htons(ETH_P_IP))
        return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return TC_ACT_OK;
    skb->mark = ip->tos;
    skb->priority = skb->len;
    skb->tc_classid = 0x10001;
    skb->cb[2] = skb->ifindex;
    return ip->protocol == IPPROTO_ICMP ? TC_ACT_SHOT : TC_ACT_OK;
}

/* Keeps TCP over IPv4 whole and drops the rest, reading the packet with bpf_skb_load_bytes. */
SEC("socket")
int tcp_only(struct __sk_buff *skb)
{
    __u8 proto;
    __u16 type;
    if (bpf_skb_load_bytes(skb, 12, &type, 2) < 0 || type != bpf_htons(ETH_P_IP))
        return 0;
    if (bpf_skb_load_bytes(skb, 23, &proto, 1) < 0)
        return 0;
    return proto == IPPROTO_TCP ? skb->len : 0;
}

/* The same with the legacy packet loads, as the kernel's own samples write them: LD_ABS in network
 * byte order, a load outside the packet ending the program with 0. */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

SEC("socket")
int tcp_only_ld_abs(struct __sk_buff *skb)
{
    if (load_half(skb, 12) != ETH_P_IP)
        return 0;
    return load_byte(skb, 23) == IPPROTO_TCP ? skb->len : 0;
}

/* A socket filter may not touch the packet directly: refused at load. */
SEC("socket")
int reads_data(struct __sk_buff *skb)
{
    return skb->data != 0;
}

char LICENSE[] SEC("license") = "GPL";
