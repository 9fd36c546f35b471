/*
 * test_url_redact.c: what mana_ai.status may show of mana_ai.llm_url
 * (src/core/url_redact.c): never a userinfo or a query string.
 */
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "url_redact.h"

static const char *
redacted(const char *url)
{
	static char out[512];

	return url_redact(url, out, sizeof(out));
}

int
main(void)
{
	char		small[8];

	is_str(redacted("http://localhost:3020"), "http://localhost:3020", "plain URL kept");
	is_str(redacted("https://api.example.com/v1/"), "https://api.example.com/v1/", "path kept");
	is_str(redacted("http://alice:s3cret@llm.local:8080/v1"), "http://***@llm.local:8080/v1",
		   "user:password hidden");
	is_str(redacted("http://alice@llm.local"), "http://***@llm.local", "user alone hidden");
	is_str(redacted("http://a@b:c@d@host/x"), "http://***@host/x", "up to the last @ of the authority");
	is_str(redacted("http://:pw@host"), "http://***@host", "empty user, password hidden");
	is_str(redacted("http://host/p@th"), "http://host/p@th", "an @ in the path is not userinfo");
	is_str(redacted("https://host/v1?key=s3cret&x=1"), "https://host/v1?***", "query hidden");
	is_str(redacted("https://u:p@host?key=k#frag"), "https://***@host?***", "both hidden, fragment too");
	is_str(redacted("https://host/v1#frag"), "https://host/v1#frag", "a fragment alone is kept");
	is_str(redacted("http://u:p@host#x@y"), "http://***@host#x@y", "authority ends at #");
	is_str(redacted("no-scheme:pw@host"), "no-scheme:pw@host", "no scheme: nothing taken for userinfo");
	is_str(redacted("x/y://u:p@h"), "x/y://u:p@h", ":// after a slash is no scheme");
	is_str(redacted(""), "", "empty");
	ok(url_redact("http://u:p@h", small, sizeof(small)) == NULL, "too small a buffer is refused");
	{
		const char *u = "http://a@h?b";
		char		exact[URL_REDACT_SIZE(12)];

		ok(url_redact(u, exact, sizeof(exact)) != NULL && strcmp(exact, "http://***@h?***") == 0,
		   "URL_REDACT_SIZE is room enough: %s", exact);
	}
	return done_testing();
}
