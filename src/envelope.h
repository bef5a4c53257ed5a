/*
 * Turns an HTTP response into what a method returns: the envelope's result,
 * or an error table. No I/O here, so any transport (libcurl, OpenResty's
 * cosockets) can hand its bytes to the same decoder.
 */
#ifndef ES_ENVELOPE_H
#define ES_ENVELOPE_H

#include <stddef.h>
#include <lua.h>

typedef struct es_response {
    long status;
    const char *body;
    size_t body_len;
    const char *content_type;   /* "" when absent */
    const char *ray_id;         /* "" when absent */
} es_response;

/* Pushes result, err, envelope (nil where absent) and returns 3.
 * decode_index: the absolute stack index of a cjson decode function;
 * body_index: that of the body as a Lua string, whose bytes r->body are
 * (the decoder reads nothing the caller could free meanwhile). */
int es_push_decoded(lua_State *L, int decode_index, int body_index, const es_response *r);

/* The registry name of the metatable every error value has from birth
 * (errors.lua gives it __tostring). */
#define ES_ERROR_MT "cloudflare.email_security.error"

/* The registry names of the metatables an envelope gets when its result is
 * an empty table, {} or [] in the answer (field empty_result: "object" or
 * "array"), which lua-cjson decodes alike. */
#define ES_EMPTY_OBJECT_MT "cloudflare.email_security.envelope: result {}"
#define ES_EMPTY_ARRAY_MT "cloudflare.email_security.envelope: result []"

/* Pushes a new error table: kind, message, and status and ray_id when
 * known, with empty errors and messages lists, and the error metatable
 * when the module has made it. */
void es_push_error(lua_State *L, const char *kind, long status,
                   const char *message, const char *ray_id);

#endif
