/* test_hkdf.c: SPEC 5.2 golden vector, order independence, rejections. */
#include <string.h>

#include "crypto_vectors.h"
#include "hkdf.h"
#include "tap.h"

static const char *GOLDEN =
"7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628";

static void
to_hex(const unsigned char *b, size_t n, char *out)
{
	size_t		i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static MdkResult
derive_json(const unsigned char *master, size_t mlen, const char *json, char *hex)
{
	unsigned char out[MDK_LEN];
	MdkResult	rc;

	memset(out, 0, sizeof(out));
	rc = mdk_derive_json(master, mlen, json, strlen(json), out);
	to_hex(out, MDK_LEN, hex);
	return rc;
}

int
main(void)
{
	unsigned char master[32];
	char		hex[2 * MDK_LEN + 1];
	unsigned char out[MDK_LEN];
	const char *tables[] = {"tasks", "notes"};
	const char *ids[] = {"tasks:t1", "notes:n1"};
	int			i;

	for (i = 0; i < 32; i++)
		master[i] = (unsigned char) (i + 1);

	ok(mdk_derive(master, 32, "mission-abc", tables, 2, ids, 2, out) == MDK_OK, "derive ok");
	to_hex(out, MDK_LEN, hex);
	str_is(hex, GOLDEN, "golden vector of SPEC 5.2 (unsorted input)");

	ok(derive_json(master, 32, "{\"version\":\"v1\",\"missionId\":\"mission-abc\","
				   "\"tables\":[\"notes\",\"tasks\"],\"recordIds\":[\"notes:n1\",\"tasks:t1\"]}",
				   hex) == MDK_OK, "json derive ok");
	str_is(hex, GOLDEN, "golden vector from sorted JSON");
	derive_json(master, 32, "{\"recordIds\":[\"tasks:t1\",\"notes:n1\"],\"tables\":[\"tasks\",\"notes\"],"
				"\"missionId\":\"mission-abc\",\"version\":\"v1\"}", hex);
	str_is(hex, GOLDEN, "order of tables, recordIds and keys does not matter");

	derive_json(master, 32, "{\"version\":\"v1\",\"missionId\":\"mission-abd\","
				"\"tables\":[\"notes\",\"tasks\"],\"recordIds\":[\"notes:n1\",\"tasks:t1\"]}", hex);
	ok(strcmp(hex, GOLDEN) != 0, "another missionId gives another key");
	derive_json(master, 32, "{\"version\":\"v1\",\"missionId\":\"mission-abc\","
				"\"tables\":[\"notes\",\"tasks\"],\"recordIds\":[\"notes:n1\"]}", hex);
	ok(strcmp(hex, GOLDEN) != 0, "another scope gives another key");

	ok(derive_json(master, 31, "{\"version\":\"v1\",\"missionId\":\"m\",\"tables\":[],\"recordIds\":[]}", hex)
	   == MDK_BAD_MASTER_KEY, "31-byte master key rejected");
	ok(derive_json(master, 33 > 32 ? 0 : 0, "{}", hex) == MDK_BAD_MASTER_KEY, "empty master key rejected");
	ok(derive_json(master, 32, "{\"version\":\"v2\",\"missionId\":\"m\",\"tables\":[],\"recordIds\":[]}", hex)
	   == MDK_BAD_VERSION, "version v2 rejected");
	ok(derive_json(master, 32, "{\"missionId\":\"m\",\"tables\":[],\"recordIds\":[]}", hex)
	   == MDK_BAD_VERSION, "missing version rejected");
	ok(derive_json(master, 32, "{\"version\":\"v1\",\"tables\":[],\"recordIds\":[]}", hex)
	   == MDK_BAD_DERIVATION, "missing missionId rejected");
	ok(derive_json(master, 32, "{\"version\":\"v1\",\"missionId\":\"m\",\"tables\":[1],\"recordIds\":[]}", hex)
	   == MDK_BAD_DERIVATION, "non-string table rejected");
	ok(derive_json(master, 32, "{\"version\":\"v1\",\"missionId\":\"m\",\"tables\":[]}", hex)
	   == MDK_BAD_DERIVATION, "missing recordIds rejected");
	ok(derive_json(master, 32, "[1,2]", hex) == MDK_BAD_DERIVATION, "array rejected");
	ok(derive_json(master, 32, "{\"version\":\"v1\",\"missionId\":\"m\",\"tables\":[],\"recordIds\":[]} x", hex)
	   == MDK_BAD_DERIVATION, "trailing garbage rejected");

	/* JavaScript sorts by UTF-16 code units: U+1F600 (surrogates) < U+FF21. */
	ok(js_string_compare("\xF0\x9F\x98\x80", "\xEF\xBC\xA1") < 0, "JS order: astral before U+FF21");
	ok(js_string_compare("a", "ab") < 0 && js_string_compare("b", "ab") > 0 &&
	   js_string_compare("x", "x") == 0, "JS order: prefixes and equality");
	ok(js_string_compare("B", "a") < 0, "JS order: case-sensitive code units");
	return done_testing();
}
