/*
 * The floor: what the same requests cost with nothing but libcurl. One
 * reused easy handle, headers built once, the body only collected; with
 * FLOOR_DECODE=1 each answer is also decoded with lua-cjson into a Lua
 * table, work that no client handing back tables can skip (the floor the
 * module is held to; without it, libcurl's bytes alone).
 *
 *   floor URL METHOD N [BODY]        N sequential requests
 *   floor --list URL PAGES ROUNDS    ROUNDS walks of URL&page=1..PAGES
 *
 * Env BENCH_CA: a PEM file to trust (the bench's self-signed certificate).
 * Prints one line: label, calls, wall seconds, CPU us per call, peak RSS.
 */
#define _POSIX_C_SOURCE 200809L

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct { char *data; size_t len, cap; } bytes;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    bytes *b = ud;
    size_t len = size * n;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + len)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (b->data == NULL)
            return 0;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, len);
    b->len += len;
    return len;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long peak_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

typedef struct upload {
    const char *p;
    size_t left;
} upload;

static size_t read_upload(char *buffer, size_t size, size_t count, void *userdata)
{
    upload *u = userdata;
    size_t n = size * count < u->left ? size * count : u->left;
    memcpy(buffer, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

static int perform(CURL *h, const char *url)
{
    long status = 0;
    CURLcode rc;
    curl_easy_setopt(h, CURLOPT_URL, url);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status < 200 || status > 299) {
        fprintf(stderr, "floor: %s: %s (HTTP %ld)\n", url, curl_easy_strerror(rc), status);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    bytes body = { NULL, 0, 0 };
    struct curl_slist *headers = NULL;
    const char *ca = getenv("BENCH_CA");
    int list = argc == 5 && strcmp(argv[1], "--list") == 0;
    int decode = getenv("FLOOR_DECODE") != NULL;
    long i, n, rounds = 1, calls = 0;
    double wall, cpu;
    lua_State *L = NULL;
    CURL *h;

    if (!list && argc < 4) {
        fprintf(stderr, "usage: floor URL METHOD N [BODY] | floor --list URL PAGES ROUNDS\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    h = curl_easy_init();
    headers = curl_slist_append(headers, "Authorization: Bearer bench-token");
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (ca != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    /* FLOOR_FRESH: a new connection for every request (TLS sessions are
     * still reused), the other way to keep libcurl from sending a POST twice */
    if (getenv("FLOOR_FRESH") != NULL)
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);

    if (decode) {
        L = luaL_newstate();
        luaL_openlibs(L);
        if (luaL_dostring(L, "return require('cjson').decode") != 0) {
            fprintf(stderr, "floor: %s\n", lua_tostring(L, -1));
            return 1;
        }
    }
    if (list) {
        char url[2048];
        n = atol(argv[3]);
        rounds = atol(argv[4]);
        wall = now();
        cpu = cpu_seconds();
        for (i = 0; i < rounds * n; i++) {
            snprintf(url, sizeof url, "%s&page=%ld", argv[2], i % n + 1);
            body.len = 0;
            if (!perform(h, url))
                return 1;
            if (decode) {
                lua_pushvalue(L, 1);
                lua_pushlstring(L, body.data, body.len);
                lua_call(L, 1, 1);
                lua_pop(L, 1);
            }
            calls++;
        }
    } else {
        const char *method = argv[2];
        n = atol(argv[3]);
        /* FLOOR_ONCE: the body through a read callback that cannot rewind,
         * as the module sends a create (libcurl cannot send it twice) */
        int once = getenv("FLOOR_ONCE") != NULL;
        upload up;
        if (argc > 4 && once) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(argv[4]));
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_upload);
            curl_easy_setopt(h, CURLOPT_READDATA, &up);
        } else if (argc > 4) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, argv[4]);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(argv[4]));
        }
        if (strcmp(method, "GET") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        wall = now();
        cpu = cpu_seconds();
        for (i = 0; i < n; i++) {
            body.len = 0;
            if (once && argc > 4) {
                up.p = argv[4];
                up.left = strlen(argv[4]);
            }
            if (!perform(h, argv[1]))
                return 1;
            if (decode) {
                lua_pushvalue(L, 1);
                lua_pushlstring(L, body.data, body.len);
                lua_call(L, 1, 1);
                lua_pop(L, 1);
            }
            calls++;
        }
    }
    wall = now() - wall;
    cpu = cpu_seconds() - cpu;
    printf("calls=%ld wall=%.6f cpu_us=%.3f peak_kib=%ld\n", calls, wall, cpu / (double)calls * 1e6,
           peak_kib());
    if (L != NULL)
        lua_close(L);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    free(body.data);
    curl_global_cleanup();
    return 0;
}
