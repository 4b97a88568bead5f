/* Loads mutated programs with ubpf_load and prints 1 (accepted) or 0, with the error, per program.
 * Built twice by verifier-diff.sh: against real uBPF and against librbpf; the same seed gives both
 * the same programs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include "ubpf.h"
static uint64_t h(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) { return a + b + c + d + e; }
static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
int main(int argc, char **argv)
{
    const char *dir = argv[1]; int per = atoi(argv[2]);
    DIR *d = opendir(dir); struct dirent *e; char path[4096]; static uint8_t prog[65536]; int count = 0;
    char *names[1000]; int n = 0;
    while ((e = readdir(d))) if (strstr(e->d_name, ".hex")) names[n++] = strdup(e->d_name);
    closedir(d);
    for (int a = 0; a < n; a++) for (int b = a + 1; b < n; b++) if (strcmp(names[a], names[b]) > 0) { char *t = names[a]; names[a] = names[b]; names[b] = t; }
    for (int f = 0; f < n; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        FILE *fp = fopen(path, "r"); size_t len = 0; unsigned v;
        while (fscanf(fp, "%2x", &v) == 1 && len < sizeof prog) prog[len++] = (uint8_t)v;
        fclose(fp);
        if (len == 0 || len % 8) continue;
        for (int k = 0; k < per; k++) {
            static uint8_t m[65536]; memcpy(m, prog, len);
            int flips = 1 + (int)(next() % 3);
            for (int j = 0; j < flips; j++) {
                size_t at = next() % len; int what = (int)(next() % 4);
                if (what == 0) m[at] = (uint8_t)next();
                else if (what == 1) m[at] ^= (uint8_t)(1u << (next() % 8));
                else if (what == 2) m[(at & ~7u) + 1] = (uint8_t)next(); /* registers */
                else m[(at & ~7u) + 2 + next() % 6] = (uint8_t)next();   /* offset or imm */
            }
            struct ubpf_vm *vm = ubpf_create(); char *err = NULL;
            for (unsigned i = 0; i < 64; i++) ubpf_register(vm, i, "h", h);
            int ok = ubpf_load(vm, m, (uint32_t)len, &err) == 0;
            printf("%d %s/%d %s\n", ok, names[f], k, ok ? "" : (err ? err : "?"));
            free(err); ubpf_destroy(vm); count++;
        }
    }
    fprintf(stderr, "%d programs\n", count);
    return 0;
}
