/* A state machine over text, as clang compiles `switch (state)` in a loop: a tree of compares of
 * the state register every round, which the JIT threads (src/Rbpf/Jit/JumpThreading.cs). It lexes
 * INI-style text ("[section]", "key = value", "; comment", quoted values with backslash escapes)
 * and returns what it counted, one field per 8 bits, the final state in the top bits. */
#include <stdint.h>

enum { LINE, SECTION, KEY, AFTER_KEY, VALUE, QUOTED, ESCAPED, COMMENT, BAD };

__attribute__((section("socket"), used))
uint64_t ini_lexer(uint8_t *mem, uint64_t len)
{
    uint64_t sections = 0, keys = 0, values = 0, quoted = 0, escapes = 0, comments = 0, bad = 0;
    int state = LINE;
    for (uint64_t i = 0; i < len; i++) {
        uint8_t c = mem[i];
        int name = (uint8_t)((c | 0x20) - 'a') < 26 || (uint8_t)(c - '0') < 10 || c == '_' || c == '.';
        int space = c == ' ' || c == '\t';
        switch (state) {
        case LINE:
            if (c == '[') { state = SECTION; sections++; }
            else if (c == ';' || c == '#') { state = COMMENT; comments++; }
            else if (name) { state = KEY; keys++; }
            else if (!space && c != '\n') { state = BAD; bad++; }
            break;
        case SECTION:
            if (c == ']') state = COMMENT; /* the rest of the line is ignored */
            else if (c == '\n') { state = LINE; bad++; }
            break;
        case KEY:
            if (c == '=') state = VALUE;
            else if (space) state = AFTER_KEY;
            else if (!name) { state = c == '\n' ? LINE : BAD; bad++; }
            break;
        case AFTER_KEY:
            if (c == '=') state = VALUE;
            else if (!space) { state = c == '\n' ? LINE : BAD; bad++; }
            break;
        case VALUE:
            if (c == '"') { state = QUOTED; quoted++; }
            else if (c == '\n') state = LINE;
            else if (!space) values++, state = COMMENT;
            break;
        case QUOTED:
            if (c == '\\') state = ESCAPED;
            else if (c == '"') { state = COMMENT; values++; }
            else if (c == '\n') { state = LINE; bad++; }
            break;
        case ESCAPED:
            escapes++;
            state = QUOTED;
            break;
        case COMMENT:
        case BAD:
            if (c == '\n') state = LINE;
            break;
        }
    }
    return sections | keys << 8 | values << 16 | quoted << 24 | escapes << 32 | comments << 40 | bad << 48
        | (uint64_t)state << 56;
}
