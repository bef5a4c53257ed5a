/*
 * cloudflare.email_security.core: the Lua face of the C core. core.new
 * makes the curl transport: a userdata (a session, not the client that
 * Lua code holds) owning one es_session and the es_transfer of its
 * request; request() performs one call and hands the bytes to the envelope
 * decoder. Misuse raises; failures of the call itself come back as values.
 */
#include <lua.h>
#include <lauxlib.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "casefold.h"
#include "clock.h"
#include "compat.h"
#include "envelope.h"
#include "flight.h"
#include "interrupt.h"
#include "json_scan.h"
#include "session.h"

#define SESSION_MT "cloudflare.email_security.session"
#define DECODE_BUFFERS_MT "cloudflare.email_security.decode_buffers"
#define DECODE_UPVALUE lua_upvalueindex(1)
/* the session's methods also hold its metatable */
#define SESSION_MT_UPVALUE lua_upvalueindex(2)

#if defined(__GNUC__)
#define ES_EXPORT __attribute__((visibility("default")))
#else
#define ES_EXPORT
#endif

/* in_call: a request is under way, from its start until its answer is
 * decoded. Lua code can run meanwhile (a finalizer, during an allocation),
 * and a close it asks for then waits for the call's end (close_pending),
 * so that nothing the call still reads is freed under it. */
typedef struct core_session {
    es_session session;
    es_transfer transfer;       /* the request of session:request */
    es_flight flight;           /* those of session:start, in flight at once */
    int open;
    int in_call;
    int close_pending;
} core_session;

/* A method's self: compared with the metatable the method holds, which
 * spares every call a lookup by name in the registry; anything else gets
 * luaL_checkudata's error. */
static core_session *check_session(lua_State *L)
{
    core_session *c = lua_touserdata(L, 1);
    if (c != NULL && lua_getmetatable(L, 1)) {
        int same = lua_rawequal(L, -1, SESSION_MT_UPVALUE);
        lua_pop(L, 1);
        if (same)
            return c;
    }
    return luaL_checkudata(L, 1, SESSION_MT);
}

/* The words name the client: that is what the caller holds and closed. */
static core_session *check_open_session(lua_State *L)
{
    core_session *c = check_session(L);
    if (!c->open || c->close_pending)
        luaL_error(L, "attempt to use a closed cloudflare.email_security client");
    return c;
}

/* Options are read raw (no __index can run and make, or free, what we
 * read) and each value stays on the stack, which keeps a string alive for
 * as long as libcurl may read it: the caller drops them all at the end. */
static void push_option(lua_State *L, const char *name)
{
    lua_pushstring(L, name);
    lua_rawget(L, 1);
}

/* A whole number from 1 to max, which must be given: the defaults live in
 * config.lua alone. */
static lua_Integer opt_positive(lua_State *L, const char *name, lua_Number max)
{
    lua_Number n;
    push_option(L, name);
    n = lua_tonumber(L, -1);
    /* compared as numbers first, NaN failing every comparison: a cast of
     * an out-of-range float is undefined behaviour */
    if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= max) || n != (lua_Number)(lua_Integer)n) {
        /* lua_pushfstring knows no %.0f */
        char message[128];
        snprintf(message, sizeof message, "option '%s' must be a whole number from 1 to %.0f", name,
                 (double)max);
        luaL_error(L, "%s", message);
    }
    lua_pop(L, 1);
    return (lua_Integer)n;
}

static const char *opt_string(lua_State *L, const char *name, int required)
{
    const char *s = NULL;
    size_t len;
    push_option(L, name);
    if (lua_type(L, -1) == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len)
            luaL_error(L, "option '%s' contains a NUL byte", name);
    } else if (!lua_isnil(L, -1) || required) {
        luaL_error(L, "option '%s' must be a string", name);
    }
    return s;                   /* left on the stack: see push_option */
}

static void add_headers(lua_State *L, core_session *c)
{
    int i, n;
    push_option(L, "headers");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_argcheck(L, lua_istable(L, -1), 1, "option 'headers' must be a list of strings");
    n = (int)es_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
        size_t len;
        const char *line;
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "header %d must be a string", i);
        line = lua_tolstring(L, -1, &len);
        /* Never echo the line: it may hold the credential. */
        if (strlen(line) != len || strpbrk(line, "\r\n") != NULL)
            luaL_error(L, "header %d contains a line break or NUL byte", i);
        if (!es_session_add_header(&c->session, line))
            luaL_error(L, "out of memory");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* core.new{ user_agent=, headers={...}, timeout_ms=, connect_timeout_ms=,
 *           max_response_size=, ca_bundle= } -> the curl transport.
 * Every option but headers and ca_bundle must be given. */
static int session_new(lua_State *L)
{
    core_session *c;
    es_session_options o;
    const char *failure;

    luaL_checktype(L, 1, LUA_TTABLE);
    memset(&o, 0, sizeof o);
    o.user_agent = opt_string(L, "user_agent", 1);
    /* it becomes a header line of its own: nothing may end that line early */
    if (o.user_agent != NULL && strpbrk(o.user_agent, "\r\n") != NULL)
        return luaL_error(L, "user_agent contains a line break");
    o.ca_bundle = opt_string(L, "ca_bundle", 0);
    /* libcurl takes these as long; 2^31 - 1 fits a long everywhere */
    o.timeout_ms = (long)opt_positive(L, "timeout_ms", 2147483647.0);
    o.connect_timeout_ms = (long)opt_positive(L, "connect_timeout_ms", 2147483647.0);
    o.max_body = (size_t)opt_positive(L, "max_response_size",
                                      sizeof(size_t) >= 8 ? 9007199254740992.0 : 2147483647.0);

    /* Userdata first, zeroed and with its metatable, so that __gc frees
     * whatever was acquired if anything below fails. */
    c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    es_setmetatable(L, SESSION_MT);
    c->open = 1;
    failure = es_session_open(&c->session, &o);
    if (failure != NULL)
        return luaL_error(L, "%s", failure);
    add_headers(L, c);
    return 1;
}

static void close_now(core_session *c)
{
    if (c->open) {
        c->open = 0;
        /* the transfers in flight first: they use the session's headers */
        es_flight_close(&c->flight);
        es_session_close(&c->session);
        es_transfer_free(&c->transfer);
    }
    c->close_pending = 0;
}

/* close, __close and __gc. During a call (from a finalizer that runs inside
 * it) the close waits for the call's end. __gc itself can never meet a
 * call in flight: the call holds the session on its stack. */
static int session_close(lua_State *L)
{
    core_session *c = check_session(L);
    if (c->in_call)
        c->close_pending = c->open;
    else
        close_now(c);
    return 0;
}

static int session_is_closed(lua_State *L)
{
    core_session *c = check_session(L);
    lua_pushboolean(L, !c->open || c->close_pending);
    return 1;
}

static int session_tostring(lua_State *L)
{
    core_session *c = check_session(L);
    lua_pushfstring(L, "%s (%s): %p", SESSION_MT, c->open && !c->close_pending ? "open" : "closed",
                    (void *)c);
    return 1;
}

/* The captured response headers, for the retry and rate-limit policy. */
static void push_headers(lua_State *L, const es_transfer *t)
{
    int i;
    lua_newtable(L);
    for (i = 0; i < ES_HDR_COUNT; i++) {
        const char *v = es_transfer_header(t, i);
        if (v[0] != '\0') {
            lua_pushstring(L, v);
            lua_setfield(L, -2, es_http_header_names[i]);
        }
    }
}

static int has_policy_headers(const es_transfer *t)
{
    int i;
    for (i = ES_HDR_RETRY_AFTER; i < ES_HDR_COUNT; i++) {
        if (es_transfer_header(t, i)[0] != '\0')
            return 1;
    }
    return 0;
}

/* An answer in a content coding not decoded here (refused: its name), or
 * whose compressed content would not decode (detail: why), as an http
 * error: the same words from both transports (http.h). */
static void push_coding_error(lua_State *L, long status, const char *refused, const char *detail,
                              const char *ray)
{
    char message[CURL_ERROR_SIZE + ES_HDR_VALUE_MAX + 128];
    if (refused != NULL)
        snprintf(message, sizeof message, "the answer came in content coding %s, which this client"
                 " does not decode (it decodes gzip and deflate)", refused);
    else
        snprintf(message, sizeof message, "the answer's compressed content could not be decoded: %s",
                 detail);
    es_push_error(L, "http", status, message, ray);
}

static void push_too_large(lua_State *L, long status, size_t max, const char *ray)
{
    char message[96];
    snprintf(message, sizeof message, "response body larger than max_response_size (%lu bytes)",
             (unsigned long)max);
    es_push_error(L, "http", status, message, ray);
}

static int push_transport_error(lua_State *L, const core_session *c, const es_transfer *h, CURLcode rc,
                                long status)
{
    const char *ray = es_transfer_header(h, ES_HDR_CF_RAY);
    const char *detail = h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(rc);
    const char *undecoded = es_transfer_decode_failure(h, rc);

    lua_pushnil(L);
    if (h->body_too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        push_too_large(L, status, c->session.max_body, ray);
    } else if (h->out_of_memory) {
        es_push_error(L, "transport", status, "out of memory while reading the response", ray);
    } else if (h->refused_coding[0] != '\0') {
        push_coding_error(L, status, h->refused_coding, NULL, ray);
    } else if (undecoded != NULL) {
        push_coding_error(L, status, NULL, undecoded, ray);
    } else if (rc == CURLE_SEND_FAIL_REWIND) {
        /* only a body sent at most once cannot be rewound: libcurl wanted
         * to send it again after the connection died unanswered */
        es_push_error(L, "transport", status,
                      "the connection closed after the request was sent, before any answer;"
                      " it was not sent again, since it may have acted", ray);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        es_push_error(L, "timeout", status, detail, ray);
    } else if (h->request_sent && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                                   rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SSL_CONNECT_ERROR)) {
        /* the connect that failed was libcurl's second: the request had
         * gone out on a kept-alive connection that died unanswered */
        char message[CURL_ERROR_SIZE + 128];
        snprintf(message, sizeof message, "the request was sent, then its connection closed unanswered,"
                 " and a new one failed: %s", detail);
        es_push_error(L, "transport", status, message, ray);
    } else {
        es_push_error(L, "transport", status, detail, ray);
    }
    lua_pushinteger(L, (lua_Integer)rc);
    lua_setfield(L, -2, "curl_code");
    /* a request went out before the failure (see es_session_perform) */
    if (h->request_sent) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "sent");
    }
    push_headers(L, h);
    lua_setfield(L, -2, "headers");
    lua_pushnil(L);
    return 3;
}

/* What one answer becomes, run protected by session_request and
 * session_wait: the body is first copied into a Lua string, and everything
 * after works from that copy, so that a session closed meanwhile cannot
 * pull memory from under the decoder. Arguments: the session and the
 * transfer (light userdata), libcurl's code, the status, the decode
 * function. */
static int answer(lua_State *L)
{
    core_session *c = lua_touserdata(L, 1);
    const es_transfer *h = lua_touserdata(L, 2);
    CURLcode rc = (CURLcode)lua_tointeger(L, 3);
    long status = (long)lua_tointeger(L, 4);
    es_response r;
    int n;

    if (rc != CURLE_OK)
        return push_transport_error(L, c, h, rc, status);
    lua_pushlstring(L, h->body.data != NULL ? h->body.data : "", h->body.len);
    r.status = status;
    r.body = lua_tolstring(L, 6, &r.body_len);
    r.content_type = es_transfer_header(h, ES_HDR_CONTENT_TYPE);
    r.ray_id = es_transfer_header(h, ES_HDR_CF_RAY);
    n = es_push_decoded(L, 5, 6, &r);
    if (lua_istable(L, -2)) {
        push_headers(L, h);
        lua_setfield(L, -3, "headers");
    }
    /* A success carries its headers only when the policy has a use for
     * them, so that the common answer costs no extra table. */
    if (has_policy_headers(h)) {
        push_headers(L, h);
        return n + 1;
    }
    return n;
}

/* The methods a request may use; core.methods gives the list to Lua, so
 * that the nginx transport takes the same ones. */
static const char *const methods[] = { "GET", "POST", "PATCH", "PUT", "DELETE", NULL };

/* session:request(method, url [, body [, once [, compressed]]]) ->
 * result, err, envelope [, headers] (headers: the retry and rate-limit
 * ones, when the answer had any). once, compressed: see
 * es_session_perform. */
static int session_request(lua_State *L)
{
    core_session *c = check_open_session(L);
    int m = luaL_checkoption(L, 2, NULL, methods);
    size_t url_len, body_len = 0;
    const char *url = luaL_checklstring(L, 3, &url_len);
    const char *body = luaL_optlstring(L, 4, NULL, &body_len);
    int once = lua_toboolean(L, 5), compressed = lua_toboolean(L, 6);
    CURLcode rc;
    long status;
    int top, failed;

    luaL_argcheck(L, strlen(url) == url_len, 3, "URL contains a NUL byte");
    if (c->in_call)
        return luaL_error(L, "this client is already performing a request");
    lua_settop(L, 6);
    top = lua_gettop(L);
    /* pushed before the call is marked in flight: these may allocate, and
     * an error now leaves nothing to undo */
    lua_pushcfunction(L, answer);
    lua_pushlightuserdata(L, c);
    lua_pushlightuserdata(L, &c->transfer);
    /* On 5.1 and LuaJIT that push allocates, and a finalizer run there may
     * have closed the session: the call then ends as closed during it. */
    if (!c->open) {
        lua_settop(L, top);
        lua_pushnil(L);
        es_push_error(L, "transport", 0, "the client was closed during the call; nothing more was sent", NULL);
        lua_pushnil(L);
        return 3;
    }
    c->in_call = 1;
    rc = es_session_perform(&c->session, &c->transfer, methods[m], url, body, body_len, once, compressed,
                            &status);
    lua_pushinteger(L, (lua_Integer)rc);
    lua_pushinteger(L, (lua_Integer)status);
    lua_pushvalue(L, DECODE_UPVALUE);
    failed = lua_pcall(L, 5, LUA_MULTRET, 0);
    c->in_call = 0;
    if (c->close_pending)
        close_now(c);
    if (failed)
        return lua_error(L);
    return lua_gettop(L) - top;
}

/* The error a request gets when it could not start; nothing was sent. */
static int push_not_started(lua_State *L, const char *why)
{
    lua_pushnil(L);
    es_push_error(L, "transport", 0, why, NULL);
    /* nothing went out: a create may be tried again (retry.lua) */
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "not_sent");
    return 2;
}

/* session:start(method, url [, body [, once [, compressed]]]) -> slot, or
 * nil and an error when it could not start (nothing sent): one more
 * request in flight, its answer to come from session:wait. The arguments
 * mean what they mean for session:request. */
static int session_start(lua_State *L)
{
    core_session *c = check_open_session(L);
    int m = luaL_checkoption(L, 2, NULL, methods);
    size_t url_len, body_len = 0;
    const char *url = luaL_checklstring(L, 3, &url_len);
    const char *body = luaL_optlstring(L, 4, NULL, &body_len);
    const char *failure = NULL;
    int slot;

    luaL_argcheck(L, strlen(url) == url_len, 3, "URL contains a NUL byte");
    if (c->in_call)
        return luaL_error(L, "this client is already performing a request");
    /* converting a number argument to a string allocates, and a finalizer
     * run then may have closed the session */
    if (!c->open || c->close_pending)
        return push_not_started(L, "the client was closed during the call; nothing more was sent");
    /* no Lua code runs in here: nothing can close the session under it */
    slot = es_flight_start(&c->flight, &c->session, methods[m], url, body, body_len, lua_toboolean(L, 5),
                           lua_toboolean(L, 6), &failure);
    if (slot < 0)
        return push_not_started(L, failure);
    lua_pushinteger(L, (lua_Integer)slot + 1);
    return 1;
}

/* session:wait([seconds]) -> slot: the next request of session:start to
 * finish (its answer then waits for session:answer, and holds its slot
 * until then); nothing when none finishes within that many seconds (none
 * given: until one does), or none is in flight. No Lua code runs in here. */
static int session_wait(lua_State *L)
{
    core_session *c = check_open_session(L);
    long timeout_ms = -1;       /* none given: until one finishes */
    const char *failure = NULL;
    int slot;

    if (!lua_isnoneornil(L, 2)) {
        lua_Number seconds = luaL_checknumber(L, 2);
        /* compared as numbers first, NaN included (no wait at all): a
         * cast of an out-of-range float is undefined behaviour */
        if (!(seconds > 0))
            timeout_ms = 0;
        else
            timeout_ms = seconds < 86400.0 ? (long)(seconds * 1000.0) : 86400000L;
    }
    if (c->in_call)
        return luaL_error(L, "this client is already performing a request");
    slot = es_flight_wait(&c->flight, timeout_ms, &failure);
    /* the multi handle failed: every transfer ended with that failure, and
     * each is given in turn */
    if (slot == ES_FLIGHT_FAILED)
        slot = es_flight_wait(&c->flight, 0, &failure);
    if (slot < 0)
        return 0;
    lua_pushinteger(L, (lua_Integer)slot + 1);
    return 1;
}

/* session:answer(slot) -> result, err, envelope [, headers]: the answer of
 * a request session:wait gave, as session:request gives it; the slot is
 * free again after it. */
static int session_answer(lua_State *L)
{
    core_session *c = check_open_session(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    es_slot *slot;
    CURLcode rc;
    long status;
    int failed, i;

    luaL_argcheck(L, n >= 1 && n <= ES_FLIGHT_MAX, 2, "no such slot");
    i = (int)n - 1;
    luaL_argcheck(L, es_flight_finished(&c->flight, i), 2, "no answer waits in that slot");
    /* finished: the flight's thread is done with it (seen under its lock) */
    slot = c->flight.slots[i];
    if (c->in_call)
        return luaL_error(L, "this client is already performing a request");
    /* read before anything is pushed: on 5.1 and LuaJIT a push allocates,
     * and a finalizer run then may close the session and free the slot */
    rc = slot->rc;
    status = slot->status;
    lua_settop(L, 2);
    lua_pushcfunction(L, answer);
    lua_pushlightuserdata(L, c);
    lua_pushlightuserdata(L, &slot->transfer);
    lua_pushinteger(L, (lua_Integer)rc);
    lua_pushinteger(L, (lua_Integer)status);
    lua_pushvalue(L, DECODE_UPVALUE);
    /* a finalizer run by the pushes (5.1) may have closed the session,
     * and freed the slot with it */
    if (!c->open) {
        lua_settop(L, 2);
        lua_pushnil(L);
        es_push_error(L, "transport", 0, "the client was closed before this answer was read", NULL);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "sent");
        lua_pushnil(L);
        return 3;
    }
    c->in_call = 1;
    failed = lua_pcall(L, 5, LUA_MULTRET, 0);
    c->in_call = 0;
    if (c->open)
        es_flight_taken(&c->flight, i);
    if (c->close_pending)
        close_now(c);
    if (failed)
        return lua_error(L);
    return lua_gettop(L) - 2;
}

/* session:limit(n): at most n requests of session:start on the wire at
 * once (1 to ES_FLIGHT_MAX); those started past it wait, in the order
 * started, and go out as soon as one on the wire ends, whatever Lua is
 * doing meanwhile. */
static int session_limit(lua_State *L)
{
    core_session *c = check_open_session(L);
    lua_Number n = luaL_checknumber(L, 2);
    /* compared as numbers first (NaN fails): a cast of a float out of
     * range would be undefined behaviour */
    if (!(n >= 1 && n <= ES_FLIGHT_MAX) || n != (lua_Number)(int)n)
        return luaL_error(L, "session:limit: the limit must be a whole number from 1 to %d", ES_FLIGHT_MAX);
    es_flight_limit(&c->flight, (int)n);
    return 0;
}

/* The slot argument at index 2, 0-based; raises for one out of range. */
static int slot_argument(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 1 && n <= ES_FLIGHT_MAX, 2, "no such slot");
    return (int)n - 1;
}

/* session:sent_at(slot) -> when the request of a slot session:wait gave
 * went on the wire (core.monotonic()'s clock), or nil when it never did;
 * and the status of its answer (0: none came), read before the answer. */
static int session_sent_at(lua_State *L)
{
    core_session *c = check_open_session(L);
    int i = slot_argument(L);
    long status;
    double at;
    luaL_argcheck(L, es_flight_finished(&c->flight, i), 2, "no answer waits in that slot");
    at = es_flight_sent_at(&c->flight, i, &status);
    if (at > 0)
        lua_pushnumber(L, (lua_Number)at);
    else
        lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)status);
    return 2;
}

/* session:recall(slot) -> true when the request of session:start in that
 * slot was still held back by session:limit: it then never goes out, and
 * its slot is free (no wait gives it); false when it is on the wire or
 * has finished. */
static int session_recall(lua_State *L)
{
    core_session *c = check_open_session(L);
    lua_pushboolean(L, es_flight_recall(&c->flight, slot_argument(L)));
    return 1;
}

/* session:release(): after an answer with status 429 nothing held back
 * goes out until this. */
static int session_release(lua_State *L)
{
    es_flight_release(&check_open_session(L)->flight);
    return 0;
}

/* session:in_flight() -> how many slots hold a request of session:start:
 * in flight, or finished with its answer not yet taken. */
static int session_in_flight(lua_State *L)
{
    core_session *c = check_session(L);
    lua_pushinteger(L, es_flight_held(&c->flight));
    return 1;
}

/* core.sleep(seconds): the default sleep between retries. */
static int sleep_seconds(lua_State *L)
{
    es_sleep((double)luaL_checknumber(L, 1));
    return 0;
}

/* core.catch_interrupt(): the command-line tool's Ctrl-C (interrupt.h);
 * true when installed. Never for a library inside a host: the host owns
 * its signals. */
static int catch_interrupt(lua_State *L)
{
    lua_pushboolean(L, es_interrupt_catch());
    return 1;
}

/* core.interrupted() -> whether Ctrl-C came since catch_interrupt. */
static int interrupted(lua_State *L)
{
    lua_pushboolean(L, es_interrupt_seen());
    return 1;
}

/* core.monotonic() -> seconds, for pacing. */
static int monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)es_monotonic());
    return 1;
}

/* The two buffers of a content decoding, in Lua's memory so that an error
 * raised while the result is pushed (out of memory) leaks neither. */
typedef struct decode_buffers {
    es_buffer out;
    es_buffer spare;
} decode_buffers;

static int free_decode_buffers(lua_State *L)
{
    decode_buffers *b = luaL_checkudata(L, 1, DECODE_BUFFERS_MT);
    es_buffer_free(&b->out);
    es_buffer_free(&b->spare);
    return 0;
}

/* For decode: the body at index 2, sent with the Content-Encoding at index
 * 4, at most max_response_size (index 5) decoded, as libcurl decodes it
 * for the other transport (es_content_decode). 0: the decoded body is at
 * index 2 now; else nil, err, nil are pushed and it returns 3. */
static int decode_content(lua_State *L, const es_response *r)
{
    size_t coding_len, body_len;
    const char *coding = luaL_checklstring(L, 4, &coding_len);
    const char *body = lua_tolstring(L, 2, &body_len);
    lua_Number max_n = luaL_checknumber(L, 5);
    size_t max;
    const char *detail;
    decode_buffers *b;
    es_decode_status st;

    /* compared as numbers first: a cast of an out-of-range float is
     * undefined behaviour */
    luaL_argcheck(L, max_n >= 0 && max_n <= 9007199254740992.0, 5, "max_response_size out of range");
    max = (double)max_n >= (double)((size_t)-1) ? (size_t)-1 : (size_t)max_n;
    b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    es_setmetatable(L, DECODE_BUFFERS_MT);
    st = es_content_decode(coding, coding_len, body, body_len, max, &b->out, &b->spare, &detail);
    es_buffer_free(&b->spare);
    if (st == ES_DECODED) {
        lua_pushlstring(L, b->out.data != NULL ? b->out.data : "", b->out.len);
        es_buffer_free(&b->out);
        lua_replace(L, 2);
        lua_pop(L, 1);
        return 0;
    }
    es_buffer_free(&b->out);
    lua_pushnil(L);
    if (st == ES_DECODE_REFUSED) {
        char name[ES_HDR_VALUE_MAX];
        es_http_refused_coding(coding, coding_len, name, sizeof name);
        push_coding_error(L, r->status, name, NULL, r->ray_id);
    } else if (st == ES_DECODE_CORRUPT) {
        push_coding_error(L, r->status, NULL, detail, r->ray_id);
    } else if (st == ES_DECODE_TOO_LARGE) {
        push_too_large(L, r->status, max, r->ray_id);
    } else {
        es_push_error(L, "transport", r->status, "out of memory while reading the response", r->ray_id);
    }
    lua_pushnil(L);
    return 3;
}

/* core.decode(status, body [, headers [, content_encoding, max_response_size]])
 * -> result, err, envelope: the same decoder, for transports that fetch the
 * bytes themselves; with a Content-Encoding, the body is decoded first, as
 * libcurl does for the curl transport. */
static int decode(lua_State *L)
{
    es_response r;
    lua_Integer status = luaL_checkinteger(L, 1);
    luaL_checkstring(L, 2);
    lua_settop(L, 5);
    r.status = (long)status;
    r.content_type = "";
    r.ray_id = "";
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "content-type");
        if (lua_type(L, -1) == LUA_TSTRING)
            r.content_type = lua_tostring(L, -1);
        lua_getfield(L, 3, "cf-ray");
        if (lua_type(L, -1) == LUA_TSTRING)
            r.ray_id = lua_tostring(L, -1);
    }
    if (!lua_isnil(L, 4) && decode_content(L, &r) != 0)
        return 3;
    r.body = lua_tolstring(L, 2, &r.body_len);
    return es_push_decoded(L, DECODE_UPVALUE, 2, &r);
}

/* core.is_uuid(s): 8-4-4-4-12 hex digits, either case. The same test as
 * the Lua pattern schema/compile.lua keeps for other formats, in C because
 * every call with an id makes it, and the pattern cost more than the
 * rest of the id's checks together. */
static int is_uuid(lua_State *L)
{
    size_t len, i;
    const char *s = luaL_checklstring(L, 1, &len);
    int ok = len == 36;
    for (i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23)
            ok = c == '-';
        else
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    lua_pushboolean(L, ok);
    return 1;
}

/* core.text_flags(s) -> has_nul, has_high, needs_escape: whether s holds a
 * NUL byte, a byte of 0x80 or more (so UTF-8 to check), and a byte JSON
 * must escape or that the body writer leaves to lua-cjson (control bytes,
 * the quote, the backslash, 0x7F and up). Every string field's check and
 * its writing ask this; in C because the Lua patterns that asked it cost
 * hundreds of times more a byte. */
static int text_flags(lua_State *L)
{
    size_t len, i;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    int nul = 0, high = 0, escape = 0;
    for (i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f) {
            escape = 1;
            if (c == 0)
                nul = 1;
            else if (c >= 0x80)
                high = 1;
        }
    }
    lua_pushboolean(L, nul);
    lua_pushboolean(L, high);
    lua_pushboolean(L, escape);
    return 3;
}

/* core.checksum(s [, crc, adler]) -> crc, adler: zlib's CRC-32 and
 * Adler-32 of s, going on from crc and adler (those of the text before s;
 * none: from the start). A saved plan's fingerprint of the listings it was
 * made against (sync/fingerprint.lua): it tells that something changed, by
 * accident or not; it is no defence against a file made to deceive, which
 * the user would have to make themselves. */
static unsigned long checked_sum(lua_State *L, int arg, unsigned long absent)
{
    lua_Number v;
    if (lua_isnoneornil(L, arg))
        return absent;
    v = luaL_checknumber(L, arg);
    /* a cast out of range would be undefined */
    if (!(v >= 0 && v <= 4294967295.0) || v != (lua_Number)(unsigned long)v)
        luaL_argerror(L, arg, "a checksum from 0 to 2^32 - 1 expected");
    return (unsigned long)v;
}

static int checksum(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    uLong crc = (uLong)checked_sum(L, 2, 0);
    uLong adler = (uLong)checked_sum(L, 3, 1);
    while (len > 0) {
        /* zlib counts in uInt */
        uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;
        crc = crc32(crc, s, n);
        adler = adler32(adler, s, n);
        s += n;
        len -= n;
    }
    lua_pushinteger(L, (lua_Integer)crc);
    lua_pushinteger(L, (lua_Integer)adler);
    return 2;
}

/* core.utf8_length(s) -> the number of characters in s; nil and the
 * 1-based offset of the first byte that is not UTF-8 (no overlong form,
 * no UTF-16 surrogate, nothing past U+10FFFF), when one is not. The same
 * check as the answer's scan (json_scan.c). */
static int utf8_length(lua_State *L)
{
    size_t len, count;
    const char *s = luaL_checklstring(L, 1, &len);
    if (es_utf8_length((const unsigned char *)s, len, &count)) {
        lua_pushinteger(L, (lua_Integer)count);
        return 1;
    }
    lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)count + 1);
    return 2;
}

/* core.lower_text(s) -> s lower-cased beyond ASCII, in normalization form
 * C (src/casefold.c); nil and a message when s is not UTF-8. For keys that
 * compare without regard to case: Lua's string.lower knows ASCII only. */
static int lower_text(lua_State *L)
{
    size_t len, room, out_len = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    char *buf, *lowered;

    if (len == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    room = es_lower_text_room(len);
    if (room == 0)
        return luaL_error(L, "not enough memory");
    /* the result's room is Lua's memory, so that nothing leaks if pushing
     * the result raises (out of memory) */
    buf = lua_newuserdatauv(L, room, 0);
    lowered = es_lower_text(s, len, buf, room, &out_len);
    if (lowered == NULL) {
        if (errno == ENOMEM)
            return luaL_error(L, "not enough memory");
        lua_pushnil(L);
        lua_pushliteral(L, "is not valid UTF-8");
        return 2;
    }
    if (lowered != buf) {
        /* past the bound es_lower_text_room states: never seen */
        free(lowered);
        return luaL_error(L, "lower_text: the lower-case form outgrew its bound");
    }
    lua_pushlstring(L, buf, out_len);
    return 1;
}

/* Percent-encodes one path segment: only RFC 3986's unreserved characters
 * stay as they are, so no value can add a segment or a query. */
static int escape_segment(lua_State *L)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len, i;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            luaL_addchar(&b, (char)ch);
        } else {
            luaL_addchar(&b, '%');
            luaL_addchar(&b, hex[ch >> 4]);
            luaL_addchar(&b, hex[ch & 15]);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

/* A private lua-cjson instance, so that our decoder settings never change
 * those of the host's cjson module. Returns cjson.null, the instance's
 * decode and its encode (schema/body.lua escapes strings with it). */
static int load_json(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "null");
    lua_insert(L, -2);
    lua_getfield(L, -1, "new");
    if (lua_isfunction(L, -1)) {
        lua_call(L, 0, 1);
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
    }
    /* No real answer nests deeper than a few levels; refuse NaN, Infinity
     * and hex, which are not JSON. */
    lua_getfield(L, -1, "decode_max_depth");
    lua_pushinteger(L, 64);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode_invalid_numbers");
    lua_pushboolean(L, 0);
    lua_call(L, 1, 0);
    lua_getfield(L, -1, "decode");
    lua_getfield(L, -2, "encode");
    lua_remove(L, -3);
    return 3;
}

/* Loading lua-cjson (and cjson.new) writes a process-wide static of its own
 * (fpconv_init), so two lua_States loading it on two threads at once would
 * race: that happens under the module's global lock. lua_pcall, so that an
 * error never leaves the lock held. */
static void push_json(lua_State *L)
{
    int rc;
    lua_pushcfunction(L, load_json);
    es_http_global_lock();
    rc = lua_pcall(L, 0, 3, 0);
    es_http_global_unlock();
    if (rc != 0)
        lua_error(L);
}

ES_EXPORT int luaopen_cloudflare_email_security_core(lua_State *L)
{
    static const luaL_Reg session_methods[] = {
        { "request", session_request },
        { "start", session_start },
        { "wait", session_wait },
        { "answer", session_answer },
        { "in_flight", session_in_flight },
        { "limit", session_limit },
        { "sent_at", session_sent_at },
        { "recall", session_recall },
        { "release", session_release },
        { "close", session_close },
        { "is_closed", session_is_closed },
        { NULL, NULL }
    };
    static const luaL_Reg session_meta[] = {
        { "__gc", session_close },
        { "__close", session_close },
        { "__tostring", session_tostring },
        { NULL, NULL }
    };
    static const luaL_Reg module_functions[] = {
        { "new", session_new },
        { "decode", decode },
        { "escape_segment", escape_segment },
        { "is_uuid", is_uuid },
        { "lower_text", lower_text },
        { "text_flags", text_flags },
        { "utf8_length", utf8_length },
        { "checksum", checksum },
        { "sleep", sleep_seconds },
        { "monotonic", monotonic },
        { "catch_interrupt", catch_interrupt },
        { "interrupted", interrupted },
        { NULL, NULL }
    };
    int null_index, decode_index, encode_index, i;

    if (!es_http_global_init())
        return luaL_error(L, "libcurl could not be initialised");
    push_json(L);
    encode_index = lua_gettop(L);
    decode_index = encode_index - 1;
    null_index = encode_index - 2;

    luaL_newmetatable(L, DECODE_BUFFERS_MT);
    lua_pushcfunction(L, free_decode_buffers);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, SESSION_MT);
    lua_pushvalue(L, decode_index);
    lua_pushvalue(L, -2);
    es_setfuncs(L, session_meta, 2);
    lua_newtable(L);
    lua_pushvalue(L, decode_index);
    lua_pushvalue(L, -3);
    es_setfuncs(L, session_methods, 2);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, SESSION_MT);
    lua_setfield(L, -2, "__name");  /* 5.1 does not set it */
    lua_pop(L, 1);

    lua_newtable(L);
    lua_pushvalue(L, decode_index);
    es_setfuncs(L, module_functions, 1);
    /* errors.lua fills it in; every error is born with it */
    luaL_newmetatable(L, ES_ERROR_MT);
    lua_setfield(L, -2, "error_metatable");
    lua_pushvalue(L, null_index);
    lua_setfield(L, -2, "null");
    lua_pushvalue(L, encode_index);
    lua_setfield(L, -2, "json_encode");
    /* for JSON in files and CSV cells: read as answers are, whatever the
     * host did to its own cjson */
    lua_pushvalue(L, decode_index);
    lua_setfield(L, -2, "json_decode");
    lua_pushstring(L, es_http_libcurl_version());
    lua_setfield(L, -2, "libcurl_version");
    /* One list each for both transports: the methods, and the response
     * headers the policy reads (lower case). */
    lua_newtable(L);
    for (i = 0; methods[i] != NULL; i++) {
        lua_pushstring(L, methods[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "methods");
    lua_newtable(L);
    for (i = 0; i < ES_HDR_COUNT; i++) {
        lua_pushstring(L, es_http_header_names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "response_headers");
    return 1;
}
