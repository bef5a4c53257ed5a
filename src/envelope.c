#include "envelope.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "json_scan.h"

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

#if LUA_VERSION_NUM >= 503
/* The integer a mark string (ES_SCAN_MARK) stands for: digits the scan
 * has checked. */
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
        if (len > 1 && v[0] == ES_SCAN_MARK) {
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
 * refused any beyond 2^53. Otherwise lua-cjson was given the marked copy,
 * and only the mark strings become integers. Returns 0 when the walk could
 * not finish (no stack left), so that no mark string is left behind.
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
        const char *problem = es_json_scan((const unsigned char *)r->body, r->body_len, &seen, NULL);
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
        es_json_scan((const unsigned char *)r->body, r->body_len, &again, &b);
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
    lua_getfield(L, env, "success");
    if (lua_type(L, -1) != LUA_TBOOLEAN) {
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
