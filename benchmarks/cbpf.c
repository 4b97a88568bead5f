/* Classic BPF: tcpdump filters compiled by libpcap, run over the same packets by libpcap's
 * bpf_filter (its interpreter) and by librbpf's translation, JIT-compiled (called as a plain C
 * function from rbpf_vm_jit_function, through rbpf_vm_execute_jit, and a whole batch of packets
 * per rbpf_vm_execute_batch call). Prints Markdown. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pcap/pcap.h>
#include <rbpf.h>

#define PACKETS 1024
/* Every pass takes the packets in another of ORDERS shuffled orders: a sequence of 1,024 verdicts
 * repeated pass after pass is one branch predictors learn by heart (and better for one engine's
 * code layout than another's), which real traffic never allows. */
#define ORDERS 32

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint8_t packets[PACKETS][128];
static size_t lengths[PACKETS];
static rbpf_buffer order[ORDERS][PACKETS];
static uint64_t verdicts[PACKETS];

/* Ethernet + IPv4 + TCP or UDP, ports and addresses from small sets, so filters match some.
 * Mixed traffic: every packet drawn afresh, taken in shuffled orders. Flows (--flows): runs of 64
 * packets of one flow (same addresses, protocol, ports, flags, length), in order, so a filter's
 * branches go the same way for most packets. */
static void make_packets(int flows)
{
    uint64_t state = 7;
    uint32_t x = 0;
    for (int i = 0; i < PACKETS; i++) {
        uint8_t *f = packets[i];
        memset(f, 0, 128);
        /* xorshift64*, high half: a 32-bit LCG's low bits repeat every 2^(bit+1) packets, and branch
         * predictors learned such short cycles (the protocol bit had a period of 512). */
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
        if (!flows || i % 64 == 0) x = (uint32_t)((state * 0x2545F4914F6CDD1Dull) >> 32);
        f[12] = 0x08;
        f[14] = 0x45;
        f[23] = (x >> 8) % 2 ? 6 : 17;
        f[26] = 10; f[29] = (uint8_t)(1 + (x >> 12) % 4);
        f[30] = 192; f[31] = 168; f[32] = 1; f[33] = (uint8_t)((x >> 16) % 3);
        uint16_t ports[] = {22, 53, 80, 443, 8080, 3000};
        uint16_t d = ports[(x >> 20) % 6];
        f[34] = 0x04; f[35] = 0x00; f[36] = (uint8_t)(d >> 8); f[37] = (uint8_t)d;
        f[46] = 0x50; f[47] = (uint8_t)((x >> 24) & 0x3f);
        lengths[i] = 60 + (x >> 4) % 60;
    }
    for (int o = 0; o < ORDERS; o++) {
        for (int i = 0; i < PACKETS; i++) order[o][i] = (rbpf_buffer){packets[i], lengths[i]};
        for (int i = PACKETS - 1; i > 0 && !flows; i--) {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
            int j = (int)(((state * 0x2545F4914F6CDD1Dull) >> 32) % (uint64_t)(i + 1));
            rbpf_buffer t = order[o][i]; order[o][i] = order[o][j]; order[o][j] = t;
        }
    }
}

int main(int argc, char **argv)
{
    int flows = argc > 1 && strcmp(argv[1], "--flows") == 0;
    const char *filters[] = {"ip", "tcp", "tcp port 80", "udp port 53 or tcp port 443", "host 10.0.0.1",
                             "net 192.168.1.0/24 and tcp", "tcp[tcpflags] & tcp-syn != 0", "portrange 1000-4000",
                             "ip[2:2] > 80 and not udp"};
    int nf = sizeof filters / sizeof filters[0];
    make_packets(flows);
    printf("%s\n\n", flows ? "flows: runs of 64 packets of one flow, in order" : "mixed traffic: every packet drawn afresh, shuffled orders");
    pcap_t *pcap = pcap_open_dead(DLT_EN10MB, 65535);
    printf("| filter (ns per packet) | bpf_filter | rbpf_jit_fn | rbpf_vm_execute_jit | rbpf_vm_execute_batch | speed-up (fn) | speed-up (batch) |\n"
           "|---|---|---|---|---|---|---|\n");
    double log_sum = 0, log_batch = 0;
    for (int k = 0; k < nf; k++) {
        struct bpf_program fp;
        if (pcap_compile(pcap, &fp, filters[k], 1, PCAP_NETMASK_UNKNOWN) != 0) {
            fprintf(stderr, "%s: %s\n", filters[k], pcap_geterr(pcap));
            return 1;
        }
        uint8_t *prog;
        size_t len;
        rbpf_vm *vm;
        rbpf_jit_fn fn;
        if (rbpf_cbpf_translate((const uint8_t *)fp.bf_insns, fp.bf_len * 8, &prog, &len) != RBPF_OK ||
            rbpf_vm_create(RBPF_VM_RAW, prog, len, &vm) != RBPF_OK || rbpf_vm_jit_compile(vm) != RBPF_OK ||
            rbpf_vm_jit_function(vm, &fn) != RBPF_OK) {
            fprintf(stderr, "%s: %s\n", filters[k], rbpf_last_error());
            return 1;
        }
        rbpf_free(prog);
        double best[4] = {1e30, 1e30, 1e30, 1e30};
        unsigned long matches[4] = {0};
        for (int round = 0; round < 15; round++) {
            for (int e = 0; e < 4; e++) {
                unsigned long m = 0;
                double t0 = now();
                for (int rep = 0; rep < 20; rep++) {
                    const rbpf_buffer *in = order[(round * 20 + rep) % ORDERS];
                    if (e == 3) {
                        /* One call for all the packets; each verdict checked against bpf_filter's below. */
                        size_t done = 0;
                        if (rbpf_vm_execute_batch(vm, in, PACKETS, RBPF_BATCH_JIT, verdicts, &done) != RBPF_OK) {
                            fprintf(stderr, "%s: %s\n", filters[k], rbpf_last_error());
                            return 1;
                        }
                        for (int i = 0; i < PACKETS; i++) m += verdicts[i] != 0;
                        continue;
                    }
                    for (int i = 0; i < PACKETS; i++) {
                        uint64_t r = 0;
                        if (e == 0) r = bpf_filter(fp.bf_insns, in[i].data, (u_int)in[i].len, (u_int)in[i].len);
                        else if (e == 1) fn(in[i].data, in[i].len, NULL, 0, &r);
                        else rbpf_vm_execute_jit(vm, in[i].data, in[i].len, NULL, 0, &r);
                        m += r != 0;
                    }
                }
                double ns = (now() - t0) * 1e9 / (20.0 * PACKETS);
                if (ns < best[e]) best[e] = ns;
                matches[e] = m;
            }
        }
        if (matches[0] != matches[1] || matches[0] != matches[2] || matches[0] != matches[3]) {
            fprintf(stderr, "%s: verdicts differ (%lu, %lu, %lu, %lu)\n", filters[k], matches[0], matches[1], matches[2], matches[3]);
            return 1;
        }
        for (int i = 0; i < PACKETS; i++)
            if (verdicts[i] != bpf_filter(fp.bf_insns, order[(14 * 20 + 19) % ORDERS][i].data, (u_int)order[(14 * 20 + 19) % ORDERS][i].len,
                                          (u_int)order[(14 * 20 + 19) % ORDERS][i].len)) {
                fprintf(stderr, "%s: packet %d: batch verdict %llu differs from bpf_filter's\n", filters[k], i, (unsigned long long)verdicts[i]);
                return 1;
            }
        printf("| `%s` | %.1f | %.1f | %.1f | %.1f | %.1fx | %.1fx |\n", filters[k], best[0], best[1], best[2], best[3],
               best[0] / best[1], best[0] / best[3]);
        log_sum += log(best[0] / best[1]);
        log_batch += log(best[0] / best[3]);
        rbpf_vm_destroy(vm);
        pcap_freecode(&fp);
    }
    printf("| **geometric mean** | | | | | **%.1fx** | **%.1fx** |\n", exp(log_sum / nf), exp(log_batch / nf));
    pcap_close(pcap);
    return 0;
}
