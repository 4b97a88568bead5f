/* Packets per second through an XDP filter compiled by clang (tests/elf/xdp_progs.o, drop_port),
 * interpreted and JIT-compiled, through rbpf_vm_execute_xdp. Prints Markdown. */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <rbpf.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "tests/elf/xdp_progs.o";
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 1; }
    static uint8_t elf[1 << 20];
    size_t len = fread(elf, 1, sizeof elf, f);
    fclose(f);
    rbpf_vm *vm;
    if (rbpf_vm_create_kernel_from_elf(elf, len, "drop_port", 0, &vm) != RBPF_OK || rbpf_vm_jit_compile(vm) != RBPF_OK) {
        fprintf(stderr, "%s\n", rbpf_last_error());
        return 1;
    }
    enum { N = 1024 };
    static uint8_t frames[N][128];
    uint32_t x = 1;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        frames[i][12] = 0x08; frames[i][14] = 0x45; frames[i][23] = (x >> 8) % 3 ? 17 : 6;
        uint16_t port = (x >> 16) % 4 == 0 ? 9999 : (uint16_t)(x >> 12);
        frames[i][36] = (uint8_t)(port >> 8); frames[i][37] = (uint8_t)port;
    }
    printf("| engine | ns per packet | packets per second |\n|---|---|---|\n");
    for (uint32_t flags = 0; flags <= RBPF_XDP_JIT; flags++) {
        double best = 1e30;
        for (int round = 0; round < 15; round++) {
            double t0 = now();
            for (int rep = 0; rep < 50; rep++)
                for (int i = 0; i < N; i++) {
                    rbpf_xdp_result r;
                    rbpf_vm_execute_xdp(vm, frames[i], 64 + (i % 64), NULL, flags, &r);
                }
            double ns = (now() - t0) * 1e9 / (50.0 * N);
            if (ns < best) best = ns;
        }
        printf("| %s | %.1f | %.1f million |\n", flags ? "JIT" : "interpreter", best, 1e3 / best);
    }
    rbpf_vm_destroy(vm);
    return 0;
}
