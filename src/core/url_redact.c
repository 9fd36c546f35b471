/*
 * url_redact.c: hide credentials in a URL shown to operators.
 *
 * Owns the one rule: after "scheme://", everything up to the last '@'
 * of the authority is userinfo and becomes "***"; everything after the
 * first '?' is a query (and fragment) and becomes "***".  Must never copy
 * a byte of either, and never write past outlen.
 */
#include <string.h>

#include "url_redact.h"

char *
url_redact(const char *url, char *out, size_t outlen)
{
	const char *p = url;
	const char *sep = strstr(url, "://");
	const char *auth_end;
	const char *at = NULL;
	const char *q;
	size_t		n = 0;

	if (outlen < URL_REDACT_SIZE(strlen(url)))
		return NULL;
	/* A scheme: no '/', '?' or '#' before its "://". */
	if (sep != NULL && strcspn(url, "/?#") == (size_t) (sep - url) + 1)
	{
		p = sep + 3;
		auth_end = p + strcspn(p, "/?#");
		for (const char *c = p; c < auth_end; c++)
			if (*c == '@')
				at = c;
		memcpy(out, url, p - url);
		n = p - url;
		if (at != NULL)
		{
			memcpy(out + n, "***", 3);
			n += 3;
			p = at;
		}
	}
	q = strchr(p, '?');
	if (q == NULL)
		q = p + strlen(p);
	memcpy(out + n, p, q - p);
	n += q - p;
	if (*q == '?')
	{
		memcpy(out + n, "?***", 4);
		n += 4;
	}
	out[n] = '\0';
	return out;
}
