/*
 * The scan of an answer's bytes before lua-cjson decodes them: what cjson
 * lets through and a client must not (bytes that are not UTF-8, numbers
 * outside JSON's grammar, integers past 2^53), where the integer tokens
 * are, and whether the result is {} or [] (cjson decodes both to one empty
 * table). Also the UTF-8 check itself, for the Lua side (core.utf8_length).
 */
#ifndef ES_JSON_SCAN_H
#define ES_JSON_SCAN_H

#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>

/*
 * Where an answer's integer tokens are, so that the walk that makes them
 * Lua integers again (envelope.c, restore) visits only those parts: on a
 * list page the only integers are often result_info's four, and walking
 * the 1000 entries for them cost as much as the scan itself. A place is a
 * key of the envelope, and when that key's value is an array, the span of
 * its elements that hold integer tokens. Anything the places cannot say
 * (more keys than there is room for, a key written with an escape) makes
 * the walk visit the whole answer.
 */
#define ES_PLACES_MAX 8

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
    es_place place[ES_PLACES_MAX];
    /* '{' or '[' when the envelope's last "result" is an object or an
     * array, else 0: lua-cjson decodes {} and [] to one empty table */
    unsigned char result_open;
} es_numbers;

/* A string value that stands for an integer token, in the copy made for
 * lua-cjson when an answer mixes integers and floats: the byte 0xFF, then
 * the token's text. 0xFF never occurs in UTF-8, and the scan has refused
 * every answer that is not UTF-8, so no real string can look like one. */
#define ES_SCAN_MARK '\xff'

/*
 * One pass over the answer, checking what lua-cjson lets through: a body
 * must be UTF-8 (cjson copies string bytes as they come), every number must
 * follow JSON's grammar (cjson takes "1." and "-.5"), and no integer token
 * may be past 2^53, where a double (all cjson has) stops being exact: an id
 * would silently change. Counts the integer and float tokens into *seen
 * (zeroed by the caller), and notes where the integers are. With marked !=
 * NULL, also writes the answer there with every integer token as an
 * ES_SCAN_MARK string. Returns NULL, or what is wrong, in words. A string
 * is taken whole where its quote opens it; what is left unfinished at the
 * end is lua-cjson's to refuse.
 */
const char *es_json_scan(const unsigned char *p, size_t n, es_numbers *seen, luaL_Buffer *marked);

/* The number of characters of s (n bytes) into *count and 1 when it is
 * UTF-8 (no overlong form, no UTF-16 surrogate, nothing past U+10FFFF);
 * else 0, and *count is the 0-based offset of the first byte that is not. */
int es_utf8_length(const unsigned char *s, size_t n, size_t *count);

#endif
