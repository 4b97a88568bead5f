/* Classic BPF on librbpf against libpcap itself: tcpdump expressions compiled by pcap_compile
 * (optimised and not) and random programs that bpf_validate accepts, run on generated packets by
 * libpcap's bpf_filter (the reference) and by rbpf_cbpf_translate's program in the interpreter and
 * the JIT. Every verdict must agree. Prints one line per disagreement and ends with
 * "cbpf: N passed, N failed" (a check per expression or program, all of its packets). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>
#include <rbpf.h>

static int passed, failed;
static uint64_t packets_run;
static uint32_t rng_state = 12345;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static const uint8_t hosts4[][4] = {{10, 0, 0, 1}, {192, 168, 1, 1}, {8, 8, 8, 8}, {10, 1, 2, 3}, {172, 16, 5, 4}};
static const uint16_t ports[] = {22, 53, 80, 443, 8080, 1500, 1999, 2000, 2001, 65535};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* A frame of every common kind, with random fields from small sets the expressions name, and
 * sometimes cut short (a truncated capture). Returns its captured length. */
static size_t make_packet(uint8_t *f, size_t cap)
{
    memset(f, 0, cap);
    for (int i = 0; i < 12; i++) f[i] = (rnd() % 4 == 0) ? 0xff : (uint8_t)rnd();
    if (rnd() % 5 == 0) memcpy(f, "\x00\x11\x22\x33\x44\x55", 6);
    size_t at = 12;
    if (rnd() % 6 == 0) { /* 802.1Q */
        put16(f + at, 0x8100);
        put16(f + at + 2, (uint16_t)(rnd() % 4096));
        at += 4;
    }
    uint32_t kind = rnd() % 10;
    uint8_t proto = 0;
    size_t l4 = 0, len = 0;
    if (kind < 6) { /* IPv4 */
        put16(f + at, 0x0800);
        uint8_t *ip = f + at + 2;
        int ihl = 5 + (rnd() % 4 == 0 ? (int)(rnd() % 4) : 0);
        ip[0] = (uint8_t)(0x40 | ihl);
        ip[1] = (uint8_t)rnd();
        uint32_t r = rnd() % 8;
        proto = r < 3 ? 6 : r < 5 ? 17 : r < 6 ? 1 : r < 7 ? 47 : (uint8_t)rnd();
        ip[9] = proto;
        if (rnd() % 5 == 0) put16(ip + 6, (uint16_t)(rnd() & 0x3fff)); /* fragments */
        memcpy(ip + 12, hosts4[rnd() % 5], 4);
        memcpy(ip + 16, hosts4[rnd() % 5], 4);
        l4 = at + 2 + 4 * (size_t)ihl;
    } else if (kind < 8) { /* IPv6 */
        put16(f + at, 0x86dd);
        uint8_t *ip = f + at + 2;
        ip[0] = 0x60;
        uint32_t r = rnd() % 4;
        proto = r == 0 ? 6 : r == 1 ? 17 : r == 2 ? 58 : 0;
        ip[6] = proto;
        ip[8] = 0xfe; ip[9] = 0x80; ip[23] = (uint8_t)(rnd() % 3);
        ip[24] = 0x20; ip[25] = 0x01; ip[39] = (uint8_t)(rnd() % 3);
        l4 = at + 2 + 40;
    } else if (kind < 9) { /* ARP */
        put16(f + at, 0x0806);
        l4 = at + 2 + 28;
    } else {
        put16(f + at, (uint16_t)rnd());
        l4 = at + 2 + 20;
    }
    if (proto == 6 || proto == 17) {
        put16(f + l4, ports[rnd() % 10]);
        put16(f + l4 + 2, rnd() % 3 == 0 ? (uint16_t)rnd() : ports[rnd() % 10]);
        if (proto == 6) {
            f[l4 + 12] = (uint8_t)((5 + rnd() % 3) << 4);
            f[l4 + 13] = (uint8_t)rnd();
            if (rnd() % 3 == 0) memcpy(f + l4 + 4 * (f[l4 + 12] >> 4), "GET / HTTP/1.1", 14);
        }
    } else if (proto == 1 || proto == 58) {
        f[l4] = (uint8_t)(rnd() % 3 == 0 ? 8 : rnd() % 20);
    }
    len = l4 + 40 + rnd() % 80;
    if (len > cap) len = cap;
    if (rnd() % 6 == 0) len = rnd() % len; /* truncated */
    return len;
}

/* Runs `fp` on `count` packets in libpcap and in both engines; returns 0 when all agree. */
static int compare(const char *what, struct bpf_insn *insns, unsigned n, int count)
{
    uint8_t *prog = NULL;
    size_t prog_len = 0;
    if (rbpf_cbpf_translate((const uint8_t *)insns, (size_t)n * 8, &prog, &prog_len) != RBPF_OK) {
        printf("FAIL %s: translation refused: %s\n", what, rbpf_last_error());
        return 1;
    }
    rbpf_vm *vm = NULL;
    int bad = 0;
    if (rbpf_vm_create(RBPF_VM_RAW, prog, prog_len, &vm) != RBPF_OK || rbpf_vm_jit_compile(vm) != RBPF_OK) {
        printf("FAIL %s: %s\n", what, rbpf_last_error());
        rbpf_free(prog);
        return 1;
    }
    rbpf_free(prog);
    uint8_t pkt[256];
    for (int k = 0; k < count && !bad; k++) {
        size_t len = make_packet(pkt, sizeof pkt);
        u_int expected = bpf_filter(insns, pkt, (u_int)len, (u_int)len);
        uint64_t interp = 0, jit = 0;
        int rc1 = rbpf_vm_execute(vm, pkt, len, NULL, 0, &interp);
        int rc2 = rbpf_vm_execute_jit(vm, pkt, len, NULL, 0, &jit);
        packets_run++;
        if (rc1 != RBPF_OK || rc2 != RBPF_OK || interp != expected || jit != expected) {
            printf("FAIL %s: packet of %zu bytes: bpf_filter %u, interpreter %" PRIu64 " (rc %d), JIT %" PRIu64 " (rc %d) %s\n",
                   what, len, expected, interp, rc1, jit, rc2, rc1 || rc2 ? rbpf_last_error() : "");
            for (unsigned pc = 0; pc < n && getenv("CBPF_SHOW"); pc++)
                printf("  { 0x%02x, %u, %u, 0x%08x },\n", insns[pc].code, insns[pc].jt, insns[pc].jf, insns[pc].k);
            bad = 1;
        }
    }
    rbpf_vm_destroy(vm);
    return bad;
}

static const char *expressions[] = {
    "ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6", "tcp port 80", "udp port 53", "port 443",
    "tcp dst port 8080", "src port 22", "portrange 1500-2000", "tcp portrange 1-1024", "host 10.0.0.1",
    "src host 192.168.1.1", "dst host 8.8.8.8", "net 10.0.0.0/8", "dst net 192.168.0.0/16",
    "not net 172.16.0.0/12", "ether broadcast", "ether host 00:11:22:33:44:55", "ether proto 0x0806",
    "vlan", "vlan and tcp", "vlan 100 or ip", "ip6 and tcp port 80", "ip6 and udp", "ip proto 47",
    "ip6 proto 17", "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "tcp[13] = 18", "ip[6:2] & 0x1fff = 0", "ip[6:2] & 0x1fff != 0", "ip[0] & 0xf > 5",
    "len > 100", "greater 64", "less 60", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    "icmp[icmptype] = icmp-echo", "ip and (tcp or udp) and not port 22", "ip[2:2] * 2 > 100",
    "ip[8] / 2 > 30", "udp[4:2] - 8 < 20", "ip[1] & 3 = 2", "ip[1] | 1 = 3", "ip[1] ^ 255 > 128",
    "ip[1] << 2 > 200", "ip[1] >> 3 = 2", "ip[2:2] % 7 = 3", "tcp and (tcp[2:2] > 1024 and tcp[2:2] < 5000)",
    "ip multicast or ip6 multicast", "ip host 10.0.0.1 and not ip host 8.8.8.8", "udp and ip[6] & 0x20 != 0",
};

/* Whether the program may read a scratch word before writing it: bpf_filter's scratch memory is
 * then whatever was on its stack, which no other implementation can match (Linux refuses such
 * programs; ours reads 0). Jumps only go forward, so one pass finds the words written on every path. */
static int reads_unwritten_scratch(const struct bpf_insn *p, unsigned n)
{
    uint32_t written[32];
    int reached[32] = {0};
    reached[0] = 1;
    written[0] = 0;
    for (unsigned pc = 0; pc < n; pc++) {
        if (!reached[pc]) continue;
        uint16_t c = p[pc].code;
        uint32_t w = written[pc];
        if (((c & 7) == 0 || (c & 7) == 1) && (c & 0xe0) == 0x60 && !(w & (1u << p[pc].k))) return 1;
        if ((c & 7) == 2 || (c & 7) == 3) w |= 1u << p[pc].k;
        unsigned next[2];
        int count = 0;
        if ((c & 7) == 6) continue;
        if ((c & 7) == 5) {
            if ((c & 0xf0) == 0) next[count++] = pc + 1 + p[pc].k;
            else { next[count++] = pc + 1 + p[pc].jt; next[count++] = pc + 1 + p[pc].jf; }
        } else next[count++] = pc + 1;
        for (int i = 0; i < count; i++) {
            unsigned t = next[i];
            if (t >= n) continue;
            written[t] = reached[t] ? (written[t] & w) : w;
            reached[t] = 1;
        }
    }
    return 0;
}

static void random_programs(int count)
{
    uint16_t codes[] = {0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x00, 0x80, 0x60, 0x01, 0x81, 0x61, 0xb1, 0x02, 0x03,
                        0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74,
                        0x7c, 0x84, 0x94, 0x9c, 0xa4, 0xac, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x05,
                        0x06, 0x16, 0x07, 0x87};
    int compared = 0, mismatches = 0, refused = 0;
    for (int n = 0; n < count; n++) {
        struct bpf_insn p[24];
        unsigned len = 2 + rnd() % 22;
        for (unsigned pc = 0; pc < len; pc++) {
            uint16_t code = codes[rnd() % (sizeof codes / sizeof codes[0])];
            uint32_t k = rnd() % 4 == 0 ? rnd() : rnd() % 80;
            if (rnd() % 200 == 0) k = 0xfffff000u + rnd() % 64; /* SKF_AD_OFF + n */
            if ((code & 7) == 2 || (code & 7) == 3 || (code & 0xe0) == 0x60) k = rnd() % 16;
            if ((code & 7) == 4 && ((code & 0xf0) == 0x60 || (code & 0xf0) == 0x70) && !(code & 8)) k = rnd() % 32;
            unsigned left = len - pc - 1;
            uint8_t jt = 0, jf = 0;
            if ((code & 7) == 5) {
                if (code == 0x05) k = left ? rnd() % left : 0;
                jt = (uint8_t)(left ? rnd() % left : 0);
                jf = (uint8_t)(left ? rnd() % left : 0);
            }
            p[pc] = (struct bpf_insn){code, jt, jf, k};
        }
        p[len - 1] = (struct bpf_insn){(uint16_t)(rnd() % 2 ? 0x06 : 0x16), 0, 0, rnd()};
        if (!bpf_validate(p, (int)len) || reads_unwritten_scratch(p, len)) continue;
        /* What libpcap accepts and we refuse on purpose (Linux refuses it): Linux's ancillary load
         * offsets, and shifts by a constant of 32 or more. Refused, with a message, is checked too. */
        int linux_refuses = 0;
        for (unsigned pc = 0; pc < len; pc++) {
            uint16_t c = p[pc].code;
            if (((c & 7) == 0 || (c & 7) == 1) && ((c & 0xe0) == 0x20 || (c & 0xe0) == 0x40 || (c & 0xe0) == 0xa0) && p[pc].k >= 0xffe00000u)
                linux_refuses = 1;
        }
        if (linux_refuses) {
            uint8_t *prog = NULL;
            size_t prog_len = 0;
            if (rbpf_cbpf_translate((const uint8_t *)p, (size_t)len * 8, &prog, &prog_len) != RBPF_E_INVALID_PROGRAM ||
                strstr(rbpf_last_error(), "ancillary") == NULL) {
                printf("FAIL random program %d: an ancillary load was not refused as one: %s\n", n, rbpf_last_error());
                mismatches++;
            }
            rbpf_free(prog);
            refused++;
            continue;
        }
        char what[64];
        snprintf(what, sizeof what, "random program %d", n);
        compared++;
        if (compare(what, p, len, 40)) mismatches++;
    }
    fprintf(stderr, "(classic BPF: %d random programs compared, %d refused as Linux refuses them)\n", compared, refused);
    if (compared >= count / 4 && mismatches == 0) passed++;
    else {
        printf("FAIL random programs: %d compared, %d disagreed\n", compared, mismatches);
        failed++;
    }
}

int main(void)
{
    pcap_t *pcap = pcap_open_dead(DLT_EN10MB, 65535);
    int compiled = 0;
    for (size_t e = 0; e < sizeof expressions / sizeof expressions[0]; e++) {
        for (int optimize = 0; optimize <= 1; optimize++) {
            struct bpf_program fp;
            if (pcap_compile(pcap, &fp, expressions[e], optimize, PCAP_NETMASK_UNKNOWN) != 0) {
                printf("FAIL '%s': libpcap could not compile it: %s\n", expressions[e], pcap_geterr(pcap));
                failed++;
                continue;
            }
            compiled++;
            char what[160];
            snprintf(what, sizeof what, "'%s'%s", expressions[e], optimize ? " (optimised)" : "");
            if (compare(what, fp.bf_insns, fp.bf_len, 300)) failed++;
            else passed++;
            pcap_freecode(&fp);
        }
    }
    random_programs(3000);
    pcap_close(pcap);
    fprintf(stderr, "(classic BPF: %d filters compiled by libpcap, %" PRIu64 " packets compared)\n", compiled, packets_run);
    printf("cbpf: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
