/*
 * ubpf_config.h - uBPF's build configuration, as librbpf provides it. uBPF installs this file next
 * to ubpf.h, which includes it, and code written for uBPF may include it too.
 */
#ifndef UBPF_CONFIG_H
#define UBPF_CONFIG_H

/* librbpf loads ELF objects on every platform (its own loader: no <elf.h> needed). */
#define UBPF_HAS_ELF_H

#endif /* UBPF_CONFIG_H */
