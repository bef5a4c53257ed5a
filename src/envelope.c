#include "envelope.h"

#include <lauxlib.h>
#include <stdint.h>
/* ES_PORTABLE_SCAN: build the scan without SSE2 and without the
 * little-endian shortcut, as on other machines (the specs run it so too) */
#if defined(__SSE2__) && defined(__GNUC__) && !defined(ES_PORTABLE_SCAN)
#define ES_SSE2_RUNS 1
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <string.h>

#include "compat.h"

#define EXCERPT_MAX 160
#define EXCERPT_SCAN 8192

void es_push_error(lua_State *L, const char *kind, long status,
                   const char *message, const char *ray_id)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    if (status > 0) {
        lua_pushinteger(L, (lua_Integer)status);
        lua_setfield(L, -2, "status");
    }
    if (ray_id != NULL && ray_id[0] != '\0') {
        lua_pushstring(L, ray_id);
        lua_setfield(L, -2, "ray_id");
    }
    lua_newtable(L);
    lua_setfield(L, -2, "errors");
    lua_newtable(L);
    lua_setfield(L, -2, "messages");
    luaL_getmetatable(L, ES_ERROR_MT);      /* nil where none was made */
    lua_setmetatable(L, -2);
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive search for an ASCII needle in the first n bytes. */
static const char *find_nocase(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle), i, j;
    for (i = 0; i + k <= n; i++) {
        for (j = 0; j < k && ascii_lower((unsigned char)p[i + j]) == needle[j]; j++)
            ;
        if (j == k)
            return p + i;
    }
    return NULL;
}

/*
 * The text of a body outside its markup, as one safe line: control bytes
 * and runs of white space become one space, bytes outside ASCII become '?'.
 */
static void squeeze_text(const char *p, size_t n, char *out)
{
    size_t len = 0;
    int in_tag = 0, space = 1;

    for (; n > 0 && len < EXCERPT_MAX; p++, n--) {
        unsigned char c = (unsigned char)*p;
        if (c == '<') {
            in_tag = 1;
            continue;
        }
        if (in_tag) {
            in_tag = c != '>';
            if (!in_tag && !space) {
                out[len++] = ' ';
                space = 1;
            }
            continue;
        }
        if (c <= ' ' || c == 0x7f) {
            if (!space)
                out[len++] = ' ';
            space = 1;
            continue;
        }
        out[len++] = c < 0x80 ? (char)c : '?';
        space = 0;
    }
    while (len > 0 && out[len - 1] == ' ')
        len--;
    out[len] = '\0';
}

/*
 * A short summary of a body that is no envelope (an edge's HTML error page,
 * say): its title when it has one, else its text.
 */
static void make_excerpt(const char *p, size_t n, char *out)
{
    const char *title, *open_end, *title_end;

    if (n > EXCERPT_SCAN)
        n = EXCERPT_SCAN;
    title = find_nocase(p, n, "<title");
    if (title != NULL) {
        open_end = memchr(title, '>', n - (size_t)(title - p));
        if (open_end != NULL) {
            open_end++;
            title_end = memchr(open_end, '<', n - (size_t)(open_end - p));
            squeeze_text(open_end, title_end != NULL
                         ? (size_t)(title_end - open_end)
                         : n - (size_t)(open_end - p), out);
            if (out[0] != '\0')
                return;
        }
    }
    squeeze_text(p, n, out);
}

static int push_http_error(lua_State *L, const es_response *r, const char *what,
                           int with_excerpt)
{
    char excerpt[EXCERPT_MAX + 1];
    const char *ctype = r->content_type[0] != '\0' ? r->content_type : "no content type";

    excerpt[0] = '\0';
    if (with_excerpt)
        make_excerpt(r->body, r->body_len, excerpt);
    lua_pushnil(L);
    if (excerpt[0] != '\0')
        lua_pushfstring(L, "%s (%s): %s", what, ctype, excerpt);
    else
        lua_pushfstring(L, "%s (%s)", what, ctype);
    es_push_error(L, "http", r->status, lua_tostring(L, -1), r->ray_id);
    if (excerpt[0] != '\0') {
        lua_pushstring(L, excerpt);
        lua_setfield(L, -2, "excerpt");
    }
    lua_remove(L, -2);          /* the message string */
    lua_pushnil(L);
    return 3;
}

/* Copies envelope.errors or .messages into err, or an empty list. */
static void copy_list(lua_State *L, int env, int err, const char *name)
{
    lua_getfield(L, env, name);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    lua_setfield(L, err, name);
}

static int push_api_error(lua_State *L, const es_response *r, int env)
{
    int err;
    char fallback[64];

    snprintf(fallback, sizeof fallback, "request failed with HTTP %ld", r->status);
    lua_pushnil(L);
    es_push_error(L, "api", r->status, fallback, r->ray_id);
    err = lua_gettop(L);
    copy_list(L, env, err, "errors");
    copy_list(L, env, err, "messages");

    /* code and message of the first error, as the official SDKs show them */
    lua_getfield(L, err, "errors");
    lua_rawgeti(L, -1, 1);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "code");
        if (lua_type(L, -1) == LUA_TNUMBER)
            lua_setfield(L, err, "code");
        else
            lua_pop(L, 1);
        lua_getfield(L, -1, "message");
        if (lua_type(L, -1) == LUA_TSTRING)
            lua_setfield(L, err, "message");
        else
            lua_pop(L, 1);
    }
    lua_pop(L, 2);
    lua_pushvalue(L, env);
    return 3;
}

/*
 * Where an answer's integer tokens are, so that the walk that makes them
 * Lua integers again (restore) visits only those parts: on a list page the
 * only integers are often result_info's four, and walking the 1000 entries
 * for them cost as much as the scan itself. A place is a key of the
 * envelope, and when that key's value is an array, the span of its elements
 * that hold integer tokens. Anything the places cannot say (more keys than
 * there is room for, a key written with an escape) makes the walk visit the
 * whole answer, as it did before.
 */
#define PLACES_MAX 8

typedef struct es_place {
    const unsigned char *key;   /* the key's bytes in the answer (no escape) */
    size_t key_len;
    int in_array;               /* the value is an array: only first..last */
    size_t first, last;         /* 0-based elements of that array */
} es_place;

/* What the scan of an answer saw of its numbers, and of its result. */
typedef struct es_numbers {
    size_t integers;            /* tokens with no fraction and no exponent */
    size_t floats;              /* every other number token */
    int everywhere;             /* the places below do not say it all */
    int places;
    es_place place[PLACES_MAX];
    /* '{' or '[' when the envelope's last "result" is an object or an
     * array, else 0: lua-cjson decodes {} and [] to one empty table */
    unsigned char result_open;
} es_numbers;

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
    if (seen->places == PLACES_MAX) {
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

/* A string value that stands for an integer token, in the copy made for
 * lua-cjson when an answer mixes integers and floats: the byte 0xFF, then
 * the token's text. 0xFF never occurs in UTF-8, and the scan has refused
 * every answer that is not UTF-8, so no real string can look like one. */
#define MARK '\xff'

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
 * byte found from the mask (callgrind, the scan of a 1000-entry page:
 * 5.7M instructions with a pass of its loop a byte, 2.4M 8 bytes at a
 * time, 1.75M 16 at a time). */
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
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (len > n - i || p[i + 1] < lo || p[i + 1] > hi)
        return 0;
    for (k = 2; k < len; k++) {
        if (p[i + k] < 0x80 || p[i + k] > 0xBF)
            return 0;
    }
    return len;
}

/*
 * One pass over the answer, checking what lua-cjson lets through: a body
 * must be UTF-8 (cjson copies string bytes as they come), every number must
 * follow JSON's grammar (cjson takes "1." and "-.5"), and no integer token
 * may be past 2^53, where a double (all cjson has) stops being exact: an id
 * would silently change. Counts the integer and float tokens into *seen,
 * and notes where the integers are. With marked != NULL, also writes the
 * answer there with every integer token as a MARK string (see restore).
 * Returns NULL, or what is wrong. A string is taken whole where its quote
 * opens it; what is left unfinished at the end is lua-cjson's to refuse.
 */
static const char *scan(const unsigned char *p, size_t n, es_numbers *seen, luaL_Buffer *marked)
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
                    luaL_addchar(marked, MARK);
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

#if LUA_VERSION_NUM >= 503
/* The integer a MARK string stands for: digits the scan has checked. */
static lua_Integer marked_integer(const char *s, size_t len)
{
    lua_Integer v = 0;
    size_t i = 1;
    int negative = len > 1 && s[1] == '-';
    for (i += (size_t)negative; i < len; i++)
        v = v * 10 + (s[i] - '0');
    return negative ? -v : v;
}

static int restore(lua_State *L, int t, int depth, int all_integers);

/*
 * The value at the top of the stack, under the key just below it in table
 * t: an integer token's value becomes a Lua integer (in t), a table is
 * walked. Leaves the stack as it was; 0 when a walk could not finish.
 */
static int restore_value(lua_State *L, int t, int depth, int all_integers)
{
    int type = lua_type(L, -1);
    if (all_integers && type == LUA_TNUMBER && !lua_isinteger(L, -1)) {
        /* integral and within 2^53 by the scan; checked anyway, since
         * casting any other float would be undefined behaviour */
        lua_Number v = lua_tonumber(L, -1);
        if (v >= -9007199254740992.0 && v <= 9007199254740992.0) {
            lua_pushvalue(L, -2);
            lua_pushinteger(L, (lua_Integer)v);
            lua_rawset(L, t);
        }
    } else if (!all_integers && type == LUA_TSTRING) {
        size_t len;
        const char *v = lua_tolstring(L, -1, &len);
        if (len > 1 && v[0] == MARK) {
            lua_pushvalue(L, -2);
            lua_pushinteger(L, marked_integer(v, len));
            lua_rawset(L, t);
        }
    } else if (type == LUA_TTABLE) {
        return restore(L, lua_gettop(L), depth + 1, all_integers);
    }
    return 1;
}

/*
 * lua-cjson gives every JSON number as a float, so an id of 42 would read
 * as 42.0: make the values of integer tokens Lua integers again, and leave
 * every float token as cjson gave it. When the answer had no float token
 * (all_integers), every number is an integer token, exact since the scan
 * refused any beyond 2^53. Otherwise lua-cjson was given the MARK copy,
 * and only the MARK strings become integers. Returns 0 when the walk could
 * not finish (no stack left), so that no MARK string is left behind.
 */
static int restore(lua_State *L, int t, int depth, int all_integers)
{
    /* Each level holds a key and a value on the stack; a C function is only
     * promised LUA_MINSTACK slots, and writing past them corrupts the heap
     * (the fuzzer found this with nesting near cjson's depth limit). */
    if (depth > 64 || !lua_checkstack(L, 4))
        return 0;
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        if (!restore_value(L, t, depth, all_integers)) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* restore, only in the places where the scan saw integer tokens. */
static int restore_places(lua_State *L, int env, const es_numbers *seen, int all_integers)
{
    int k, ok = 1;

    if (seen->everywhere)
        return restore(L, env, 0, all_integers);
    if (!lua_checkstack(L, 6))
        return 0;
    for (k = 0; k < seen->places && ok; k++) {
        const es_place *pl = &seen->place[k];
        lua_pushlstring(L, (const char *)pl->key, pl->key_len);
        lua_pushvalue(L, -1);
        lua_rawget(L, env);
        if (pl->in_array && lua_istable(L, -1)) {
            int list = lua_gettop(L);
            size_t e;
            for (e = pl->first; e <= pl->last && ok; e++) {
                lua_pushinteger(L, (lua_Integer)e + 1);
                lua_pushvalue(L, -1);
                lua_rawget(L, list);
                ok = restore_value(L, list, 1, all_integers);
                lua_pop(L, 2);
            }
        } else {
            ok = restore_value(L, env, 0, all_integers);
        }
        lua_pop(L, 2);
    }
    return ok;
}
#endif

/*
 * An empty result was {} or [] in the answer, which lua-cjson decodes
 * alike: the envelope gets a metatable whose field empty_result says
 * which ("object" or "array"), so that a call can refuse the one it does
 * not return. The envelope, not the result: a metatable on a result would
 * show in every caller's entries. Two shared metatables, made once.
 */
static void mark_empty_result(lua_State *L, int env, unsigned char open)
{
    const char *kind = open == '[' ? "array" : "object";
    if (!lua_checkstack(L, 3))
        return;                 /* unmarked: taken for either, as before */
    if (luaL_newmetatable(L, open == '[' ? ES_EMPTY_ARRAY_MT : ES_EMPTY_OBJECT_MT)) {
        lua_pushstring(L, kind);
        lua_setfield(L, -2, "empty_result");
    }
    lua_setmetatable(L, env);
}

int es_push_decoded(lua_State *L, int decode_index, int body_index, const es_response *r)
{
    const char *p = r->body, *end = r->body + r->body_len;
    int env, ok, mixed = 0;
    es_numbers seen;

    memset(&seen, 0, sizeof seen);

    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    if (p == end)
        return push_http_error(L, r, "empty response body", 0);
    if (*p != '{')
        return push_http_error(L, r, "response is not a JSON object", 1);

    {
        const char *problem = scan((const unsigned char *)r->body, r->body_len, &seen, NULL);
        if (problem != NULL)
            return push_http_error(L, r, problem, 0);
    }
    lua_pushvalue(L, decode_index);
#if LUA_VERSION_NUM >= 503
    mixed = seen.integers > 0 && seen.floats > 0;
#endif
    if (mixed) {
        luaL_Buffer b;
        es_numbers again;
        memset(&again, 0, sizeof again);
        luaL_buffinit(L, &b);
        scan((const unsigned char *)r->body, r->body_len, &again, &b);
        luaL_pushresult(&b);
    } else {
        lua_pushvalue(L, body_index);
    }
    if (lua_pcall(L, 1, 1, 0) != 0) {
        const char *why = lua_tostring(L, -1);
        lua_pushfstring(L, "response is not valid JSON: %s",
                        why != NULL ? why : "decoder failed");
        lua_remove(L, -2);
        lua_pushnil(L);
        es_push_error(L, "http", r->status, lua_tostring(L, -2), r->ray_id);
        lua_remove(L, -3);
        lua_pushnil(L);
        return 3;
    }
    env = lua_gettop(L);
    if (!lua_istable(L, env))
        return push_http_error(L, r, "response is not a Cloudflare envelope", 1);
#if LUA_VERSION_NUM >= 503
    if (seen.integers > 0 && !restore_places(L, env, &seen, !mixed)) {
        lua_pop(L, 1);
        return push_http_error(L, r, "response is nested too deeply to read", 0);
    }
#endif
    lua_getfield(L, env, "success");    if (lua_type(L, -1) != LUA_TBOOLEAN) {
        lua_pop(L, 1);
        return push_http_error(L, r, "response is not a Cloudflare envelope", 1);
    }
    ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!ok || r->status < 200 || r->status > 299)
        return push_api_error(L, r, env);

    lua_getfield(L, env, "result");
    /* A success without a result (absent, or JSON null: lua-cjson's null is
     * a light userdata holding NULL) still has to look like one. */
    if (lua_isnil(L, -1) || (lua_islightuserdata(L, -1) && lua_touserdata(L, -1) == NULL)) {
        lua_pop(L, 1);
        lua_newtable(L);
    } else if (lua_istable(L, -1)) {
        lua_pushnil(L);
        if (lua_next(L, -2) != 0)
            lua_pop(L, 2);
        else if (seen.result_open != 0)
            mark_empty_result(L, env, seen.result_open);
    }
    lua_pushnil(L);
    lua_pushvalue(L, env);
    return 3;
}
