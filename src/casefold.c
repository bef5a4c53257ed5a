/*
 * Case-insensitive keys through GNU libunistring (Debian's libunistring),
 * not tables of our own: Unicode's case mappings change with its versions,
 * and the library follows them. Simple lower-casing, not full case folding:
 * full folding turns the German sharp s into "ss", which IDNA2008 keeps
 * apart in domain names. Normalization form C makes a precomposed letter
 * and its decomposed spelling one key (U+00FC and u + U+0308).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <unicase.h>
#include <uninorm.h>
#include <unistr.h>

#include "casefold.h"

size_t es_lower_text_room(size_t n)
{
    if (n > ((size_t)-1 - 16) / 6)
        return 0;
    return n * 6 + 16;
}

char *es_lower_text(const char *s, size_t n, char *buf, size_t size, size_t *out_len)
{
    const uint8_t *text = (const uint8_t *)s;

    if (u8_check(text, n) != NULL) {
        errno = EILSEQ;
        return NULL;
    }
    /* the library writes into buf when the result fits (the length given
     * in *out_len on the way in), else allocates; NULL with errno set on
     * failure */
    *out_len = size;
    return (char *)u8_tolower(text, n, NULL, UNINORM_NFC, (uint8_t *)buf, out_len);
}
