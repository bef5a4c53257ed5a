/*
 * libFuzzer target: arbitrary status, headers and body into the envelope
 * decoder, through a real lua-cjson, in a real Lua state. An input is
 *   2 bytes status (big endian) | 1 byte n | n bytes content-type |
 *   1 byte m | m bytes cf-ray | the body
 * (short inputs stop where they end). Built and run by `make fuzz`.
 */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/envelope.h"

static lua_State *L;
static int decode_ref;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Is any string in the table (or below it) one of the decoder's MARK
 * stand-ins, which must all have become integers? */
static int holds_mark(lua_State *L, int t, int depth)
{
    int found = 0;
    if (depth > 70 || !lua_checkstack(L, 4))
        return 0;
    lua_pushnil(L);
    while (!found && lua_next(L, t) != 0) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            found = len > 0 && (unsigned char)s[0] == 0xFF;
        } else if (lua_istable(L, -1)) {
            found = holds_mark(L, lua_gettop(L), depth + 1);
        }
        lua_pop(L, 1);
    }
    if (found)
        lua_pop(L, 1);          /* the key lua_next left */
    return found;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, "local c = require('cjson').new(); c.decode_max_depth(64);"
                         " c.decode_invalid_numbers(false); return c.decode") != 0) {
        fprintf(stderr, "cannot load lua-cjson: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Takes up to n bytes of a length-prefixed field into a NUL-ended copy. */
static const uint8_t *take_field(const uint8_t *p, const uint8_t *end, char *out, size_t cap)
{
    size_t n = 0;
    if (p < end) {
        n = *p++;
        if (n > (size_t)(end - p))
            n = (size_t)(end - p);
        if (n >= cap)
            n = cap - 1;
        memcpy(out, p, n);
        p += n;
    }
    out[n] = '\0';
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char content_type[256], ray[256];
    es_response r;

    r.status = size >= 2 ? (long)((data[0] << 8) | data[1]) : 200;
    p += size >= 2 ? 2 : size;
    p = take_field(p, end, content_type, sizeof content_type);
    p = take_field(p, end, ray, sizeof ray);
    r.content_type = content_type;
    r.ray_id = ray;
    r.body = (const char *)p;
    r.body_len = (size_t)(end - p);

    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, decode_ref);
    lua_pushlstring(L, r.body, r.body_len);
    /* r.body stays the fuzzer's own buffer, which ends exactly where the
     * input does: a read past it (the scan, the excerpt) is one ASan
     * sees, where a Lua string's hidden NUL would hide it. lua-cjson gets
     * the same bytes as the Lua string. */
    if (es_push_decoded(L, 1, 2, &r) != 3)
        abort();
    /* exactly one of result and err */
    if (lua_isnil(L, -3) == lua_isnil(L, -2))
        abort();
    /* the decoder's stand-ins for integers never reach a caller */
    if (lua_istable(L, -1) && holds_mark(L, lua_gettop(L), 0))
        abort();
    lua_settop(L, 0);
    lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}
