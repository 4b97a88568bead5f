/* Classic BPF: tcpdump filters compiled by libpcap, run over the same packets by libpcap's
 * bpf_filter (its interpreter) and by librbpf's translation, JIT-compiled (called as a plain C
 * function from rbpf_vm_jit_function, and through rbpf_vm_execute_jit). Prints Markdown. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pcap/pcap.h>
#include <rbpf.h>

#define PACKETS 1024

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint8_t packets[PACKETS][128];
static size_t lengths[PACKETS];

/* Ethernet + IPv4 + TCP or UDP, ports and addresses from small sets, so filters match some. */
static void make_packets(void)
{
    uint32_t x = 7;
    for (int i = 0; i < PACKETS; i++) {
        uint8_t *f = packets[i];
        memset(f, 0, 128);
        x = x * 1103515245u + 12345u;
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
}

int main(void)
{
    const char *filters[] = {"ip", "tcp", "tcp port 80", "udp port 53 or tcp port 443", "host 10.0.0.1",
                             "net 192.168.1.0/24 and tcp", "tcp[tcpflags] & tcp-syn != 0", "portrange 1000-4000",
                             "ip[2:2] > 80 and not udp"};
    int nf = sizeof filters / sizeof filters[0];
    make_packets();
    pcap_t *pcap = pcap_open_dead(DLT_EN10MB, 65535);
    printf("| filter (ns per packet) | bpf_filter | rbpf_jit_fn | rbpf_vm_execute_jit | speed-up (fn) |\n|---|---|---|---|---|\n");
    double log_sum = 0;
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
        double best[3] = {1e30, 1e30, 1e30};
        unsigned long matches[3] = {0};
        for (int round = 0; round < 15; round++) {
            for (int e = 0; e < 3; e++) {
                unsigned long m = 0;
                double t0 = now();
                for (int rep = 0; rep < 20; rep++)
                    for (int i = 0; i < PACKETS; i++) {
                        uint64_t r = 0;
                        if (e == 0) r = bpf_filter(fp.bf_insns, packets[i], (u_int)lengths[i], (u_int)lengths[i]);
                        else if (e == 1) fn(packets[i], lengths[i], NULL, 0, &r);
                        else rbpf_vm_execute_jit(vm, packets[i], lengths[i], NULL, 0, &r);
                        m += r != 0;
                    }
                double ns = (now() - t0) * 1e9 / (20.0 * PACKETS);
                if (ns < best[e]) best[e] = ns;
                matches[e] = m;
            }
        }
        if (matches[0] != matches[1] || matches[0] != matches[2]) {
            fprintf(stderr, "%s: verdicts differ (%lu, %lu, %lu)\n", filters[k], matches[0], matches[1], matches[2]);
            return 1;
        }
        printf("| `%s` | %.1f | %.1f | %.1f | %.1fx |\n", filters[k], best[0], best[1], best[2], best[0] / best[1]);
        log_sum += log(best[0] / best[1]);
        rbpf_vm_destroy(vm);
        pcap_freecode(&fp);
    }
    printf("| **geometric mean** | | | | **%.1fx** |\n", exp(log_sum / nf));
    pcap_close(pcap);
    return 0;
}
