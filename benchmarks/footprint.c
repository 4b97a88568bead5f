/* What the library costs a host: resident memory (RSS, from /proc/self/statm) and threads (from
 * /proc/self/task) after loading, with one compiled VM, with 1,000, and while a loop creates,
 * compiles, runs and destroys VMs. Build and run: benchmarks/footprint.sh (after ./build.sh). */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <rbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double rss_mib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2) return -1;
    fclose(f);
    return resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

static int threads(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

/* MiB of the JIT's code arena (x86-64 Linux: memfd chunks, each mapped twice). */
static double arena_mib(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    unsigned long lo, hi;
    double total = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "rbpf-jit") && sscanf(line, "%lx-%lx", &lo, &hi) == 2) total += (double)(hi - lo) / 2;
    if (f) fclose(f);
    return total / (1 << 20);
}

static const char program[] = "ldxb r0, [r1]\nadd r0, 1\nmov r2, 0\nloop:\nadd r2, 1\njlt r2, 100, loop\nexit";

static rbpf_vm *make(uint8_t *prog, size_t len)
{
    rbpf_vm *vm;
    if (rbpf_vm_create(RBPF_VM_RAW, prog, len, &vm) != RBPF_OK || rbpf_vm_jit_compile(vm) != RBPF_OK) {
        fprintf(stderr, "%s\n", rbpf_last_error());
        exit(1);
    }
    uint8_t packet[1] = {41};
    uint64_t r = 0;
    if (rbpf_vm_execute_jit(vm, packet, 1, NULL, 0, &r) != RBPF_OK || r != 42) {
        fprintf(stderr, "wrong result %llu: %s\n", (unsigned long long)r, rbpf_last_error());
        exit(1);
    }
    return vm;
}

int main(void)
{
    printf("| state | RSS MiB | threads | code arena MiB |\n|---|---|---|---|\n");
    printf("| before the first call into the library | %.1f | %d | %.0f |\n", rss_mib(), threads(), arena_mib());
    uint8_t *prog;
    size_t len;
    if (rbpf_assemble(program, &prog, &len) != RBPF_OK) return 1;
    printf("| after the first call (rbpf_assemble) | %.1f | %d | %.0f |\n", rss_mib(), threads(), arena_mib());
    rbpf_vm *one = make(prog, len);
    double warm = rss_mib();
    printf("| one compiled VM | %.1f | %d | %.0f |\n", warm, threads(), arena_mib());
    static rbpf_vm *many[1000];
    for (int i = 0; i < 1000; i++) many[i] = make(prog, len);
    printf("| 1,000 compiled VMs | %.1f | %d | %.0f |\n", rss_mib(), threads(), arena_mib());
    for (int i = 0; i < 1000; i++) rbpf_vm_destroy(many[i]);
    printf("| the 1,000 destroyed | %.1f | %d | %.0f |\n", rss_mib(), threads(), arena_mib());
    double peak = 0;
    for (int round = 1; round <= 5; round++) {
        for (int i = 0; i < 20000; i++) rbpf_vm_destroy(make(prog, len));
        double now = rss_mib();
        if (now > peak) peak = now;
        printf("| create, compile, run, destroy: %d,000 VMs | %.1f | %d | %.0f |\n", round * 20, now, threads(), arena_mib());
    }
    printf("\nhighest during the loop: %.1f MiB, %.1f MiB above one compiled VM\n", peak, peak - warm);
    rbpf_vm_destroy(one);
    rbpf_free(prog);
    return 0;
}
