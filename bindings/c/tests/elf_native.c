/* The ELF test programs compiled natively, so the C tests can compare the VM with real C. */
#include "../../../tests/elf/block_port.c"
#include "../../../tests/elf/calls.c"
#include "../../../tests/elf/rodata.c"
#include "../../../tests/elf/counters.c"
#include "../../../tests/elf/ini_lexer.c"
