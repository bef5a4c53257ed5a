/*
 * What both transports share of HTTP, and the process-wide side of libcurl:
 * the response headers kept, their names, content codings, and libcurl's
 * one-time initialisation. A session (session.c) sends requests; a
 * transfer (transfer.c) holds one request's answer. Knows nothing of Lua.
 */
#ifndef ES_HTTP_H
#define ES_HTTP_H

#include <stddef.h>
#include "buffer.h"

/* Response headers worth keeping: the ray id for errors, the rest for the
 * retry and rate-limit policy. */
enum {
    ES_HDR_CF_RAY,
    ES_HDR_CONTENT_TYPE,
    ES_HDR_RETRY_AFTER,
    ES_HDR_RETRY_AFTER_MS,
    ES_HDR_SHOULD_RETRY,
    ES_HDR_RATELIMIT,
    ES_HDR_RATELIMIT_POLICY,
    ES_HDR_COUNT
};

#define ES_HDR_VALUE_MAX 128

/* Once per process, whatever the number of Lua states: 0 on failure. */
int es_http_global_init(void);
/* libcurl's version, once es_http_global_init() has succeeded. */
const char *es_http_libcurl_version(void);
/* Held while a first use might touch a library's lazily filled statics
 * (the first `require "cjson"` of a lua_State). */
void es_http_global_lock(void);
void es_http_global_unlock(void);

/* Content codings. libcurl decodes an answer's Content-Encoding for the
 * curl transport; es_content_decode does the same for the nginx transport,
 * which gets the bytes as they were sent, so that the two make the same of
 * every answer. Both take exactly gzip (and its alias x-gzip), deflate and
 * identity, and refuse any other coding: this libcurl would also decode br
 * and zstd, which the nginx transport could not, and an unknown one it
 * would fail on only once the body came. */

/* Copies len bytes of a header's text into out (which holds len + 1) as
 * printable ASCII, each other byte as '?', and ends it with NUL: what a
 * server sent reaches logs and error lines, and nothing a terminal obeys
 * may. */
void es_http_copy_printable(char *out, const char *in, size_t len);

/* Copies the first coding of a Content-Encoding value (a comma-separated
 * list) that is not one of those into out (size bytes, printable ASCII,
 * cut to fit) and returns 1; 0 when all are. */
int es_http_refused_coding(const char *value, size_t len, char *out, size_t size);

typedef enum es_decode_status {
    ES_DECODED,
    ES_DECODE_REFUSED,          /* a coding not decoded here: see es_http_refused_coding */
    ES_DECODE_CORRUPT,          /* *detail says what, in zlib's (or libcurl's) words */
    ES_DECODE_TOO_LARGE,        /* more than max bytes */
    ES_DECODE_NO_MEMORY
} es_decode_status;

/* Decodes body, sent with that Content-Encoding value, as libcurl 7.88
 * does: the codings undone last to first; gzip takes zlib's format too;
 * deflate without its zlib header is taken as raw deflate, with up to 4
 * stray bytes after it; any other byte after the end of a stream is an
 * error; a stream that stops before its end gives what it held (the
 * envelope decoder then says what is missing); an empty body is empty;
 * more than 5 codings are refused. At most max bytes come out of each
 * step. The result is in *out (cleared first); *spare is scratch space;
 * the caller frees both. */
es_decode_status es_content_decode(const char *value, size_t value_len,
                                   const char *body, size_t body_len, size_t max,
                                   es_buffer *out, es_buffer *spare, const char **detail);

/* Names of the headers above, lower case, in enum order. */
extern const char *const es_http_header_names[ES_HDR_COUNT];

/* Whether name (len bytes, any case) is lower: ASCII only, whatever C
 * locale the host process has set (in a Turkish one, tolower('I') is not
 * 'i'). Inline: the header callback asks it of every line. */
static inline int es_http_name_is(const char *name, size_t len, const char *lower)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (lower[i] == '\0' || (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != lower[i])
            return 0;
    }
    return lower[len] == '\0';
}

/* libcurl's words for bytes after the end of a compressed stream. */
extern const char es_http_bytes_after_end[];

#endif
