/*
 * libcurl alone with N requests in flight: the least any client of a slow
 * API pays for a long listing or for many changes made one request each
 * (bench/in_flight_bench.lua runs it beside the module). One multi handle,
 * N easy handles, each given the next request as soon as its last one
 * ended; headers built once; the answers' bytes only counted (no decode).
 * Over HTTP/1.1 that is N connections (a connection carries one request at
 * a time); with BENCH_HTTP2=1 (HTTPS) the requests share one HTTP/2
 * connection (CURLOPT_PIPEWAIT: a transfer waits for the first connection
 * rather than open its own).
 *
 *   libcurl_in_flight list URL PAGES N      GET URL&page=1..PAGES (URL holds ?per_page=...)
 *   libcurl_in_flight POST URL COUNT N      COUNT creates to the collection URL
 *   libcurl_in_flight PATCH URL COUNT N     COUNT updates, to URL/<id of entry i>
 *
 * A create's body names a new entry i, an update's renames entry i, as the
 * module's plan would send them. Env BENCH_CA: a PEM file to trust (the
 * bench's certificate); BENCH_HTTP2=1: HTTP/2 over TLS.
 *
 * Prints one line in the format of bench/floor.c, and the connections
 * libcurl opened:
 *
 *   calls=%ld wall=%.6f cpu_us=%.3f peak_kib=%ld connections=%ld
 */
#define _POSIX_C_SOURCE 200809L

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_IN_FLIGHT 256

typedef struct slot {
    CURL *h;
    long index;          /* the request it carries, 0-based */
    char url[2048];
    char body[256];
} slot;

static size_t count_bytes(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    *(curl_off_t *)ud += (curl_off_t)(size * n);
    return size * n;
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

enum mode { LIST, CREATE, UPDATE };

/* Gives slot s request i: its URL and, for a write, its body. */
static void prepare(slot *s, enum mode mode, const char *url, long i)
{
    s->index = i;
    switch (mode) {
    case LIST:
        snprintf(s->url, sizeof s->url, "%s&page=%ld", url, i + 1);
        break;
    case CREATE:
        snprintf(s->url, sizeof s->url, "%s", url);
        snprintf(s->body, sizeof s->body,
                 "{\"name\":\"New %ld\",\"email\":\"new%ld@example.com\",\"is_email_regex\":false}", i + 1,
                 i + 1);
        break;
    case UPDATE:
        /* the ids of bench/loopback_server.lua's entries */
        snprintf(s->url, sizeof s->url, "%s/%08lx-fafe-4643-bbbc-4a0ed4fc8415", url, (unsigned long)(i + 1));
        snprintf(s->body, sizeof s->body, "{\"name\":\"Person %ld renamed\"}", i + 1);
        break;
    }
    curl_easy_setopt(s->h, CURLOPT_URL, s->url);
    if (mode != LIST) {
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
    }
}

int main(int argc, char **argv)
{
    static slot slots[MAX_IN_FLIGHT];
    struct curl_slist *headers = NULL;
    const char *ca = getenv("BENCH_CA");
    const char *h2 = getenv("BENCH_HTTP2");
    int http2 = h2 != NULL && strcmp(h2, "") != 0 && strcmp(h2, "0") != 0;
    curl_off_t received = 0;
    enum mode mode;
    long total, in_flight, next = 0, done = 0, connections = 0, i;
    int running = 0, failed = 0;
    double wall, cpu;
    CURLM *m;

    if (argc != 5) {
        fprintf(stderr, "usage: libcurl_in_flight list URL PAGES N | POST URL COUNT N | PATCH URL COUNT N\n");
        return 2;
    }
    if (strcmp(argv[1], "list") == 0)
        mode = LIST;
    else if (strcmp(argv[1], "POST") == 0)
        mode = CREATE;
    else if (strcmp(argv[1], "PATCH") == 0)
        mode = UPDATE;
    else {
        fprintf(stderr, "libcurl_in_flight: unknown mode %s\n", argv[1]);
        return 2;
    }
    total = atol(argv[3]);
    in_flight = atol(argv[4]);
    if (total < 1 || in_flight < 1 || in_flight > MAX_IN_FLIGHT) {
        fprintf(stderr, "libcurl_in_flight: need a count of 1 or more and 1 to %d in flight\n", MAX_IN_FLIGHT);
        return 2;
    }
    if (in_flight > total)
        in_flight = total;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    /* HTTP/2: many streams on one connection (libcurl's default since 7.62,
     * said here for older ones); HTTP/1.1 is never pipelined */
    curl_multi_setopt(m, CURLMOPT_PIPELINING, http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    headers = curl_slist_append(headers, "Authorization: Bearer bench-token");
    headers = curl_slist_append(headers, "Accept: application/json");
    if (mode != LIST)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    for (i = 0; i < in_flight; i++) {
        CURL *h = curl_easy_init();
        slots[i].h = h;
        curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)&slots[i]);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, count_bytes);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &received);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, http2 ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
        if (http2)
            curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
        if (mode == UPDATE)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
        if (ca != NULL)
            curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    }

    wall = now();
    cpu = cpu_seconds();
    for (i = 0; i < in_flight; i++) {
        prepare(&slots[i], mode, argv[2], next++);
        curl_multi_add_handle(m, slots[i].h);
    }
    do {
        CURLMsg *msg;
        int left;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "libcurl_in_flight: %s\n", curl_multi_strerror(mc));
            return 1;
        }
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            slot *s;
            char *private = NULL;
            long status = 0, opened = 0;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private);
            s = (slot *)(void *)private;
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
            curl_easy_getinfo(s->h, CURLINFO_NUM_CONNECTS, &opened);
            connections += opened;
            if (msg->data.result != CURLE_OK || status < 200 || status > 299) {
                fprintf(stderr, "libcurl_in_flight: %s: %s (HTTP %ld)\n", s->url,
                        curl_easy_strerror(msg->data.result), status);
                failed = 1;
            }
            curl_multi_remove_handle(m, s->h);
            done++;
            if (!failed && next < total) {
                prepare(s, mode, argv[2], next++);
                curl_multi_add_handle(m, s->h);
                running = 1;
            }
        }
        if (failed)
            break;
        if (running) {
            mc = curl_multi_poll(m, NULL, 0, 1000, NULL);
            if (mc != CURLM_OK) {
                fprintf(stderr, "libcurl_in_flight: %s\n", curl_multi_strerror(mc));
                return 1;
            }
        }
    } while (running || done < total);
    wall = now() - wall;
    cpu = cpu_seconds() - cpu;
    if (failed)
        return 1;

    printf("calls=%ld wall=%.6f cpu_us=%.3f peak_kib=%ld connections=%ld bytes=%ld\n", done, wall,
           cpu / (double)done * 1e6, peak_kib(), connections, (long)received);
    for (i = 0; i < in_flight; i++)
        curl_easy_cleanup(slots[i].h);
    curl_multi_cleanup(m);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return 0;
}
