/*
 * Text compared without regard to case, beyond ASCII: the natural keys
 * that plan and apply match entries by (an email address, a domain name).
 */
#ifndef ES_CASEFOLD_H
#define ES_CASEFOLD_H

#include <stddef.h>

/* The lower-case form of the UTF-8 text s (n bytes), in Unicode's
 * normalization form C. It is written into buf (size bytes) when it fits,
 * else into a buffer the library allocates and the caller frees; *out_len
 * gets its length. NULL when s is not valid UTF-8 or memory ran out (errno
 * says which: EILSEQ or ENOMEM). */
char *es_lower_text(const char *s, size_t n, char *buf, size_t size, size_t *out_len);

/* A buffer size that holds the lower-case form of n bytes: lower-casing
 * grows a letter by half at most (U+0130 -> i and U+0307) and form C a
 * character three times at most (Unicode's stated bound). 0 when that
 * size would overflow. */
size_t es_lower_text_room(size_t n);

#endif
