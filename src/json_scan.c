#include "json_scan.h"

#include <stdint.h>
/* ES_PORTABLE_SCAN: build the scan without SSE2 and without the
 * little-endian shortcut, as on other machines (the specs run it so too) */
#if defined(__SSE2__) && defined(__GNUC__) && !defined(ES_PORTABLE_SCAN)
#define ES_SSE2_RUNS 1
#include <emmintrin.h>
#endif
#include <string.h>

/* Where the scan is in the envelope's structure. */
typedef struct es_position {
    size_t depth;               /* open objects and arrays */
    const unsigned char *key;   /* the envelope's key being read, or last read */
    size_t key_len;
    int expect_key;             /* at depth 1, the next string is a key */
    int value_is_array;         /* the value at depth 1 is an array */
    size_t element;             /* its element now being read */
    int key_is_result;          /* the envelope's key last read is "result" */
} es_position;

/* An integer token at the position: note its place. */
static void note_integer(es_numbers *seen, const es_position *at)
{
    int k, in_array = at->depth >= 2 && at->value_is_array;
    es_place *pl;

    if (seen->everywhere)
        return;
    if (at->key == NULL) {
        seen->everywhere = 1;
        return;
    }
    /* the same occurrence of a key: the same bytes of the answer */
    for (k = seen->places - 1; k >= 0; k--) {
        pl = &seen->place[k];
        if (pl->key == at->key) {
            if (in_array && pl->in_array)
                pl->last = at->element;
            else
                pl->in_array = 0;
            return;
        }
    }
    if (seen->places == ES_PLACES_MAX) {
        seen->everywhere = 1;
        return;
    }
    pl = &seen->place[seen->places++];
    pl->key = at->key;
    pl->key_len = at->key_len;
    pl->in_array = in_array;
    pl->first = pl->last = at->element;
}

#define NOT_UTF8 "response is not valid UTF-8"
#define BEYOND_2_53 "response holds an integer beyond 2^53, which cannot be kept exact"
#define BAD_NUMBER "response holds a number outside JSON's grammar"

/* The bytes that end a run of plain text inside a string: the quote, the
 * backslash, and every byte of a UTF-8 sequence (0x80 and up). */
static const unsigned char ends_run[256] = {
    ['"'] = 1, ['\\'] = 1,
    [0x80] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0xA0] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0xC0] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0xE0] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The bytes outside strings that the scan has something to do with: the
 * rest (white space, ':', the letters of true, false and null) it steps
 * over in one tight loop. */
static const unsigned char marks_structure[256] = {
    ['"'] = 1, ['{'] = 1, ['['] = 1, ['}'] = 1, [']'] = 1, [','] = 1, ['-'] = 1,
    ['0'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x80] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0xA0] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0xC0] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0xE0] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Whether a key's bytes as written (between its quotes) spell "result".
 * lua-cjson keeps the last of the keys that decode alike, escapes and
 * all, so "res\u0075lt" counts too; no other escape stands for a letter. */
static int spells_result(const unsigned char *k, size_t n)
{
    static const char want[] = "result";
    size_t i = 0, w;

    for (w = 0; want[w] != '\0'; w++) {
        if (i < n && k[i] != '\\') {
            if (k[i] != (unsigned char)want[w])
                return 0;
            i++;
        } else if (i + 6 <= n && k[i + 1] == 'u') {
            int a = hex_value(k[i + 2]), b = hex_value(k[i + 3]),
                c = hex_value(k[i + 4]), d = hex_value(k[i + 5]);
            if (a < 0 || b < 0 || c < 0 || d < 0 ||
                ((a << 12) | (b << 8) | (c << 4) | d) != want[w])
                return 0;
            i += 6;
        } else {
            return 0;
        }
    }
    return i == n;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Which of the 8 bytes in w end a run (see ends_run): the top bit of each
 * such byte, and no other below the first. A byte is the quote or the
 * backslash when w XOR that byte repeated has a zero byte, which
 * (v - ONES) & ~v & HIGHS marks exactly up to its first zero byte; a byte
 * of 0x80 and up has its top bit set. */
static uint64_t run_ends(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    return (((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash) | w) & HIGHS;
}

/* Where the run of plain text inside a string that starts at i ends: the
 * first quote, backslash or byte of 0x80 and up, or n. Most of an answer
 * is such text: 16 bytes at a time with SSE2, else 8, the first marked
 * byte found from the mask; a pass of the loop a byte cost the scan of a
 * list page several times over (bench/decode_page.lua measures it). */
static size_t skip_run(const unsigned char *p, size_t i, size_t n)
{
#ifdef ES_SSE2_RUNS
    /* 16 bytes at a time where the machine has SSE2 (every x86-64) */
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        int ends = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                               _mm_cmpeq_epi8(v, backslash)), v));
        if (ends != 0)
            return i + (size_t)__builtin_ctz((unsigned)ends);
        i += 16;
    }
#endif
    while (i + 8 <= n) {
        uint64_t w, ends;
        memcpy(&w, p + i, 8);
        ends = run_ends(w);
        if (ends != 0) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    !defined(ES_PORTABLE_SCAN)
            return i + (size_t)(__builtin_ctzll(ends) >> 3);
#else
            break;
#endif
        }
        i += 8;
    }
    while (i < n && !ends_run[p[i]])
        i++;
    return i;
}

/* The length of the UTF-8 sequence at p[i] (a byte of 0x80 and up), or 0
 * when it is not one: no overlong form, no UTF-16 surrogate, nothing past
 * U+10FFFF. */
static size_t utf8_length_at(const unsigned char *p, size_t i, size_t n)
{
    unsigned char c = p[i], lo = 0x80, hi = 0xBF;
    size_t len, k;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (len > n - i || p[i + 1] < lo || p[i + 1] > hi)
        return 0;
    for (k = 2; k < len; k++) {
        if (p[i + k] < 0x80 || p[i + k] > 0xBF)
            return 0;
    }
    return len;
}

const char *es_json_scan(const unsigned char *p, size_t n, es_numbers *seen, luaL_Buffer *marked)
{
    static const char limit[] = "9007199254740992";    /* 2^53 */
    size_t i = 0, copied = 0;
    es_position at = { 0, NULL, 0, 0, 0, 0, 0 };

    while (i < n) {
        unsigned char c = p[i];
        switch (c) {
        case '"': {
            int key = at.expect_key && at.depth == 1;
            const unsigned char *start = p + i + 1;
            if (key) {
                at.expect_key = 0;
                at.key = start;
                at.key_is_result = 0;
            }
            i++;
            for (;;) {
                i = skip_run(p, i, n);
                if (i >= n)
                    break;
                c = p[i];
                if (c == '"') {
                    if (key && at.key != NULL)
                        at.key_len = (size_t)(p + i - at.key);
                    if (key)
                        at.key_is_result = spells_result(start, (size_t)(p + i - start));
                    i++;
                    break;
                }
                if (c == '\\') {
                    if (key)
                        at.key = NULL;          /* its bytes are not the key */
                    i += 2;                     /* the backslash and the escaped byte */
                } else {
                    size_t len = utf8_length_at(p, i, n);
                    if (len == 0)
                        return NOT_UTF8;
                    i += len;
                }
            }
            break;
        }
        case '{':
        case '[':
            at.depth++;
            if (at.depth == 1) {
                at.expect_key = c == '{';
            } else if (at.depth == 2) {
                at.value_is_array = c == '[';
                at.element = 0;
                /* a later "result" replaces an earlier one, as in cjson */
                if (at.key_is_result)
                    seen->result_open = c;
            }
            i++;
            break;
        case '}':
        case ']':
            if (at.depth > 0)
                at.depth--;
            i++;
            break;
        case ',':
            if (at.depth == 1)
                at.expect_key = 1;
            else if (at.depth == 2)
                at.element++;
            i++;
            break;
        case '-': case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9': {
            /* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
            size_t start = i + (c == '-'), j = start, digits;
            int is_float = 0;
            if (j >= n || !is_digit(p[j]))
                return BAD_NUMBER;
            if (p[j] == '0') {
                j++;
            } else {
                while (j < n && is_digit(p[j]))
                    j++;
            }
            digits = j - start;
            if (j < n && p[j] == '.') {
                if (++j >= n || !is_digit(p[j]))
                    return BAD_NUMBER;
                while (j < n && is_digit(p[j]))
                    j++;
                is_float = 1;
            }
            if (j < n && (p[j] == 'e' || p[j] == 'E')) {
                j++;
                if (j < n && (p[j] == '+' || p[j] == '-'))
                    j++;
                if (j >= n || !is_digit(p[j]))
                    return BAD_NUMBER;
                while (j < n && is_digit(p[j]))
                    j++;
                is_float = 1;
            }
            /* what follows a number is white space or punctuation */
            if (j < n && (is_digit(p[j]) || p[j] == '.' || p[j] == 'e' || p[j] == 'E' ||
                          p[j] == '+' || p[j] == '-'))
                return BAD_NUMBER;
            if (is_float) {
                seen->floats++;
            } else {
                if (digits > 16 || (digits == 16 && memcmp(p + start, limit, 16) > 0))
                    return BEYOND_2_53;
                seen->integers++;
                note_integer(seen, &at);
                if (marked != NULL) {
                    luaL_addlstring(marked, (const char *)p + copied, i - copied);
                    luaL_addchar(marked, '"');
                    luaL_addchar(marked, ES_SCAN_MARK);
                    luaL_addlstring(marked, (const char *)p + i, j - i);
                    luaL_addchar(marked, '"');
                    copied = j;
                }
            }
            i = j;
            break;
        }
        default:
            if (c >= 0x80) {
                /* outside a string: not JSON, but UTF-8 is checked first,
                 * as everywhere */
                size_t len = utf8_length_at(p, i, n);
                if (len == 0)
                    return NOT_UTF8;
                i += len;
                break;
            }
            do
                i++;
            while (i < n && !marks_structure[p[i]]);
        }
    }
    if (marked != NULL)
        luaL_addlstring(marked, (const char *)p + copied, n - copied);
    return NULL;
}

int es_utf8_length(const unsigned char *s, size_t n, size_t *count)
{
    size_t i = 0, chars = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
        } else {
            size_t len = utf8_length_at(s, i, n);
            if (len == 0) {
                *count = i;
                return 0;
            }
            i += len;
        }
        chars++;
    }
    *count = chars;
    return 1;
}
