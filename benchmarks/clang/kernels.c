/* Benchmark kernels written in plain C, compiled twice from this one file: by clang to eBPF
 * (benchmarks/clang/build.sh writes kernels.o, committed) and by gcc to native code (benchmarks/
 * clang.sh). Each is `uint64_t name(uint8_t *mem, uint64_t len)`: an eBPF program of a raw VM sees
 * the same arguments in r1 and r2. No globals, no calls that are not inlined, at most 512 bytes of
 * stack: what a program for any eBPF runtime looks like. Data is read through typed pointers, as
 * eBPF programs read packet headers through struct fields: clang's eBPF backend turns a load it
 * cannot prove aligned (memcpy, packed structs) into single bytes shifted together, which the
 * JIT does not yet merge back (see docs/performance.md). */
#include <stdint.h>

#ifdef __bpf__
#define KERNEL(name) __attribute__((section("kernel/" #name), used)) uint64_t name
#else
#define KERNEL(name) __attribute__((noinline)) uint64_t name
#endif
#define INLINE static inline __attribute__((always_inline))

INLINE uint16_t load_be16(const uint8_t *p) { return __builtin_bswap16(*(const uint16_t *)p); }
INLINE uint32_t load_be32(const uint8_t *p) { return __builtin_bswap32(*(const uint32_t *)p); }
INLINE uint64_t load_le64(const uint8_t *p) { return *(const uint64_t *)p; }

/* The internet checksum (RFC 1071) of the whole input, 16 bits at a time in network order. */
KERNEL(checksum)(uint8_t *mem, uint64_t len)
{
    uint64_t sum = 0, i = 0;
    for (; i + 1 < len; i += 2) sum += load_be16(mem + i);
    if (i < len) sum += (uint64_t)mem[i] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* A 64-bit hash of the input, eight bytes at a time: multiply, rotate, xor (murmur-like), then
 * FNV-1a over the tail and a final avalanche. */
INLINE uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

KERNEL(hash)(uint8_t *mem, uint64_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len, i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t k = load_le64(mem + i) * 0x87c37b91114253d5ull;
        k = rotl(k, 31) * 0x4cf5ad432745937full;
        h = rotl(h ^ k, 27) * 5 + 0x52dce729;
    }
    for (; i < len; i++) h = (h ^ mem[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* Insertion sort of the input as signed 32-bit integers, in place; returns a digest of the result. */
KERNEL(sort)(uint8_t *mem, uint64_t len)
{
    int32_t *a = (int32_t *)mem;
    uint64_t n = len / 4;
    for (uint64_t i = 1; i < n; i++) {
        int32_t v = a[i];
        uint64_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
    uint64_t d = 0;
    for (uint64_t i = 0; i < n; i++) d = d * 31 + (uint32_t)a[i];
    return d;
}

/* Parses 64-byte frames: Ethernet, up to two VLAN tags, IPv4 with options, TCP or UDP; counts and
 * sums fields read with byte swaps and signed loads (a signed hop-count delta, a signed 16-bit
 * window scaling hint) as a packet classifier would. */
KERNEL(parse)(uint8_t *mem, uint64_t len)
{
    uint64_t tcp = 0, udp = 0, other = 0, ports = 0, bytes = 0;
    int64_t signed_sum = 0;
    for (uint64_t off = 0; off + 64 <= len; off += 64) {
        uint8_t *p = mem + off;
        uint64_t l3 = 14;
        uint16_t type = load_be16(p + 12);
        for (int tags = 0; tags < 2 && (type == 0x8100 || type == 0x88a8); tags++) {
            type = load_be16(p + l3 + 2);
            l3 += 4;
        }
        if (type != 0x0800) {
            other++;
            continue;
        }
        uint8_t *ip = p + l3;
        uint64_t ihl = (uint64_t)(ip[0] & 0xf) * 4;
        if (ihl < 20 || l3 + ihl + 8 > 64) {
            other++;
            continue;
        }
        bytes += load_be16(ip + 2);
        signed_sum += (int8_t)ip[8] - 64;     /* TTL against 64, signed */
        signed_sum += (int16_t)load_be16(ip + 4); /* the IP id as a signed value */
        uint8_t *l4 = ip + ihl;
        uint32_t sport = load_be16(l4), dport = load_be16(l4 + 2);
        if (ip[9] == 6) {
            tcp++;
            ports += sport ^ dport;
            signed_sum += (int32_t)load_be32(l4 + 4) >> 20; /* sequence number, arithmetic shift */
        } else if (ip[9] == 17) {
            udp++;
            ports += sport + dport;
        } else {
            other++;
        }
    }
    return tcp * 1000003 + udp * 10007 + other * 101 + ports + bytes * 7 + (uint64_t)signed_sum;
}

/* A state machine over text: counts words, numbers, quoted strings and comments, with escapes. */
KERNEL(tokens)(uint8_t *mem, uint64_t len)
{
    enum { SPACE, WORD, NUMBER, STRING, ESCAPE, COMMENT } state = SPACE;
    uint64_t words = 0, numbers = 0, strings = 0, comments = 0, escapes = 0;
    for (uint64_t i = 0; i < len; i++) {
        uint8_t c = mem[i];
        int alpha = (uint8_t)((c | 0x20) - 'a') < 26 || c == '_';
        int digit = (uint8_t)(c - '0') < 10;
        switch (state) {
        case SPACE:
            if (alpha) { state = WORD; words++; }
            else if (digit) { state = NUMBER; numbers++; }
            else if (c == '"') { state = STRING; strings++; }
            else if (c == '#') { state = COMMENT; comments++; }
            break;
        case WORD:
            if (!alpha && !digit) state = c == '"' ? STRING : SPACE, strings += c == '"';
            break;
        case NUMBER:
            if (alpha) { state = WORD; words++; }
            else if (!digit) state = SPACE;
            break;
        case STRING:
            if (c == '\\') state = ESCAPE;
            else if (c == '"') state = SPACE;
            break;
        case ESCAPE:
            escapes++;
            state = STRING;
            break;
        case COMMENT:
            if (c == '\n') state = SPACE;
            break;
        }
    }
    return words | numbers << 16 | strings << 32 | comments << 48 | escapes << 56;
}
