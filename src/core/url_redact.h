/*
 * url_redact.h: a URL fit to show an operator, Postgres-free.
 *
 * Owns hiding the parts of a URL that may carry a credential: the
 * userinfo ("user:password@") and the query string ("?api_key=...").
 */
#ifndef MANA_AI_URL_REDACT_H
#define MANA_AI_URL_REDACT_H

#include <stddef.h>

/* Room url_redact needs for a URL of len bytes, NUL included. */
#define URL_REDACT_SIZE(len) ((len) + 8)

/*
 * Write url into out (outlen >= URL_REDACT_SIZE(strlen(url))) with any
 * userinfo replaced by "***" and any query string (with what follows)
 * by "***": "u:p@host/v1?key=k#f" after the scheme shows as
 * "***@host/v1?***".  Everything else is kept as it is.  Returns out, or
 * NULL when outlen is too small.
 */
extern char *url_redact(const char *url, char *out, size_t outlen);

#endif
