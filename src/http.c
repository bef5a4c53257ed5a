#define _POSIX_C_SOURCE 200809L

#include "http.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* next_in as a pointer to const: zlib reads the body, never writes it */
#define ZLIB_CONST
#include <zlib.h>
#include <curl/curl.h>

const char *const es_http_header_names[ES_HDR_COUNT] = {
    "cf-ray", "content-type", "retry-after", "retry-after-ms",
    "x-should-retry", "ratelimit", "ratelimit-policy"
};

/* The module's only global state: libcurl's one-time initialisation and
 * its version string, filled once under a mutex. A mutex rather than
 * pthread_once, so that race detectors (helgrind, TSan) see the order; the
 * same lock serialises what libcurl and lua-cjson do lazily on first use
 * (see es_http_global_lock). */
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static int global_done;
static CURLcode global_status = CURLE_FAILED_INIT;
static char global_version[64];

void es_http_global_lock(void)
{
    pthread_mutex_lock(&global_lock);
}

void es_http_global_unlock(void)
{
    pthread_mutex_unlock(&global_lock);
}

int es_http_global_init(void)
{
    int ok;
    pthread_mutex_lock(&global_lock);
    if (!global_done) {
        global_status = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (global_status == CURLE_OK) {
            const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
            snprintf(global_version, sizeof global_version, "%s", v->version);
        }
        global_done = 1;
    }
    ok = global_status == CURLE_OK;
    pthread_mutex_unlock(&global_lock);
    return ok;
}

const char *es_http_libcurl_version(void)
{
    /* written once before any es_http_global_init() returns true */
    return global_version;
}

/* The codings decoded here, as libcurl names them. */
enum { CODING_IDENTITY, CODING_GZIP, CODING_DEFLATE, CODING_OTHER };

static int coding_of(const char *name, size_t len)
{
    if (es_http_name_is(name, len, "gzip") || es_http_name_is(name, len, "x-gzip"))
        return CODING_GZIP;
    if (es_http_name_is(name, len, "deflate"))
        return CODING_DEFLATE;
    if (es_http_name_is(name, len, "identity"))
        return CODING_IDENTITY;
    return CODING_OTHER;
}

/* The next coding of a comma-separated list from *p (before end), blanks
 * around it taken off: 0 when the list is done. */
static int next_coding(const char **p, const char *end, const char **name, size_t *len)
{
    const char *s = *p, *e;
    while (s < end && (*s == ',' || *s == ' ' || *s == '\t'))
        s++;
    if (s == end)
        return 0;
    e = s;
    while (e < end && *e != ',')
        e++;
    *p = e;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *name = s;
    *len = (size_t)(e - s);
    return 1;
}

void es_http_copy_printable(char *out, const char *in, size_t len)
{
    size_t k;
    for (k = 0; k < len; k++) {
        unsigned char c = (unsigned char)in[k];
        out[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[len] = '\0';
}

int es_http_refused_coding(const char *value, size_t len, char *out, size_t size)
{
    const char *p = value, *end = value + len, *name;
    size_t name_len;
    while (next_coding(&p, end, &name, &name_len)) {
        if (coding_of(name, name_len) != CODING_OTHER)
            continue;
        if (size == 0)
            return 1;
        if (name_len >= size)
            name_len = size - 1;
        es_http_copy_printable(out, name, name_len);
        return 1;
    }
    return 0;
}

/* libcurl's limit on codings stacked on one answer (CVE-2023-23916), and
 * its words when it refuses more. */
#define MAX_CODINGS 5
static const char too_many_codings[] = "Reject response due to more than 5 content encodings";
/* libcurl's words for a zlib failure that zlib does not explain */
static const char zlib_unexplained[] = "Unknown failure within decompression software.";
const char es_http_bytes_after_end[] = "bytes after the end of the compressed data";

/* One coding undone: in -> out (appended), as libcurl's zlib writer does
 * it (lib/content_encoding.c). */
static es_decode_status inflate_one(int coding, const unsigned char *in, size_t in_len, size_t max,
                                    es_buffer *out, const char **detail)
{
    unsigned char chunk[16384];
    z_stream z;
    const unsigned char *next = in;
    size_t left = in_len, stray_allowed = 0;
    int raw = 0, produced = 0, rc;
    es_decode_status result = ES_DECODED;

    memset(&z, 0, sizeof z);
    /* gzip: windowBits + 32 takes a gzip or a zlib header, as libcurl's */
    rc = coding == CODING_GZIP ? inflateInit2(&z, MAX_WBITS + 32) : inflateInit(&z);
    if (rc != Z_OK)
        return rc == Z_MEM_ERROR ? ES_DECODE_NO_MEMORY : ES_DECODE_CORRUPT;
    for (;;) {
        size_t got;
        if (z.avail_in == 0 && left > 0) {
            /* zlib counts in unsigned int */
            uInt n = left > UINT_MAX ? UINT_MAX : (uInt)left;
            z.next_in = next;
            z.avail_in = n;
            next += n;
            left -= n;
        }
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        rc = inflate(&z, Z_NO_FLUSH);
        got = sizeof chunk - z.avail_out;
        if (got > 0 && (rc == Z_OK || rc == Z_STREAM_END)) {
            if (got > max - out->len) {
                result = ES_DECODE_TOO_LARGE;
                break;
            }
            if (!es_buffer_append(out, (const char *)chunk, got)) {
                result = ES_DECODE_NO_MEMORY;
                break;
            }
            produced = 1;
        }
        if (rc == Z_OK)
            continue;
        if (rc == Z_STREAM_END) {
            if ((size_t)z.avail_in + left > stray_allowed) {
                *detail = es_http_bytes_after_end;
                result = ES_DECODE_CORRUPT;
            }
            break;
        }
        /* no progress without more input, and there is none: the stream
         * stops early, and what it held is the answer (libcurl's way) */
        if (rc == Z_BUF_ERROR && z.avail_in == 0 && left == 0)
            break;
        /* deflate sent without its zlib header, before anything came out:
         * read again as raw deflate, which may end with 4 stray bytes */
        if (rc == Z_DATA_ERROR && coding == CODING_DEFLATE && !raw && !produced &&
            inflateReset2(&z, -MAX_WBITS) == Z_OK) {
            raw = 1;
            stray_allowed = 4;
            next = in;
            left = in_len;
            z.avail_in = 0;
            continue;
        }
        *detail = z.msg != NULL ? z.msg : zlib_unexplained;
        result = rc == Z_MEM_ERROR ? ES_DECODE_NO_MEMORY : ES_DECODE_CORRUPT;
        break;
    }
    inflateEnd(&z);
    return result;
}

es_decode_status es_content_decode(const char *value, size_t value_len,
                                   const char *body, size_t body_len, size_t max,
                                   es_buffer *out, es_buffer *spare, const char **detail)
{
    int codings[MAX_CODINGS];
    int count = 0, i;
    const char *p = value, *end = value + value_len, *name;
    size_t name_len;
    const char *in = body;
    size_t in_len = body_len;
    es_buffer *target = out, *other = spare;

    *detail = NULL;
    out->len = 0;
    spare->len = 0;
    while (next_coding(&p, end, &name, &name_len)) {
        int c = coding_of(name, name_len);
        if (c == CODING_OTHER)
            return ES_DECODE_REFUSED;
        if (count == MAX_CODINGS) {
            *detail = too_many_codings;
            return ES_DECODE_CORRUPT;
        }
        codings[count++] = c;
    }
    /* libcurl never hands an empty body to a decoder */
    if (body_len > 0) {
        for (i = count - 1; i >= 0; i--) {
            es_buffer *swap;
            es_decode_status st;
            if (codings[i] == CODING_IDENTITY)
                continue;
            target->len = 0;
            st = inflate_one(codings[i], (const unsigned char *)in, in_len, max, target, detail);
            if (st != ES_DECODED)
                return st;
            in = target->data != NULL ? target->data : "";
            in_len = target->len;
            swap = target;
            target = other;
            other = swap;
        }
    }
    /* the last step's output is in `other` (or, with none, the body) */
    if (in == body) {
        out->len = 0;
        if (!es_buffer_append(out, body, body_len))
            return ES_DECODE_NO_MEMORY;
    } else if (other != out) {
        es_buffer tmp = *out;
        *out = *spare;
        *spare = tmp;
    }
    return ES_DECODED;
}
