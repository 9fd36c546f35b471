/* test_grant.c: grant parsing and every unwrap outcome of SPEC 5.1. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto_vectors.h"
#include "grant.h"
#include "tap.h"

static EVP_PKEY *key;
static int64_t now_usec;

static const char *
outcome(const char *name, unsigned char *mdk)
{
	char	   *json = vector(name);
	MissionGrant *g = grant_parse(json, strlen(json));
	GrantOutcome rc = grant_unwrap(g, key, now_usec, mdk);

	grant_free(g);
	free(json);
	return grant_outcome_name(rc);
}

int
main(void)
{
	unsigned char mdk[32];
	unsigned char want[32];
	char	   *mdk_hex = vector("mdk_hex");
	char	   *json;
	MissionGrant *g;

	now_usec = (int64_t) time(NULL) * 1000000;
	key = test_private_key();
	ok(key != NULL, "TEST-ONLY key loads");
	hex_to_bytes(mdk_hex, want, 32);

	memset(mdk, 0, 32);
	str_is(outcome("grant_ok", mdk), "ok", "WebCrypto-wrapped grant unwraps");
	ok(memcmp(mdk, want, 32) == 0, "unwrapped MDK equals the HKDF-derived key");
	str_is(outcome("grant_expired", mdk), "expired", "expired");
	str_is(outcome("grant_bad_expiry", mdk), "expired", "unparseable expiry is expired");
	str_is(outcome("grant_bad_b64", mdk), "malformed", "bad base64 is malformed");
	str_is(outcome("grant_wrong_length", mdk), "malformed", "16-byte key is malformed");
	str_is(outcome("grant_wrong_key", mdk), "wrap-rejected", "other key pair: wrap-rejected");
	str_is(outcome("grant_missing_field", mdk), "malformed", "missing derivation is malformed");

	json = vector("grant_ok");
	g = grant_parse(json, strlen(json));
	str_is(grant_outcome_name(grant_unwrap(g, NULL, now_usec, mdk)), "not-configured",
		   "no key: not-configured");
	ok(g && g->n_record_ids == 2 && grant_allows(g, "notes", "n1") && grant_allows(g, "tasks", "t1"),
	   "allowlist admits notes:n1 and tasks:t1");
	ok(!grant_allows(g, "notes", "t1") && !grant_allows(g, "note", "s:n1") &&
	   !grant_allows(g, "notes", "n") && !grant_allows(g, "journal", "j1"),
	   "allowlist refuses everything else");
	str_is(g ? g->mission_id : NULL, "mission-abc", "missionId parsed");
	grant_free(g);
	free(json);

	ok(grant_parse("[]", 2) == NULL, "array is not a grant");
	ok(grant_parse("{", 1) == NULL, "broken JSON is not a grant");
	ok(grant_parse("", 0) == NULL, "empty text is not a grant");
	json = "{\"wrappedKey\":\"AA==\",\"derivation\":{\"version\":\"v1\",\"missionId\":\"m\","
		"\"tables\":[],\"recordIds\":[7]},\"expiresAt\":\"2099-01-01T00:00:00Z\"}";
	ok(grant_parse(json, strlen(json)) == NULL, "non-string recordId is malformed");
	json = "{\"wrappedKey\":\"AA==\",\"derivation\":{\"version\":\"v1\",\"missionId\":\"m\","
		"\"tables\":[],\"recordIds\":[]},\"expiresAt\":12}";
	g = grant_parse(json, strlen(json));
	ok(g != NULL && g->expires_at == NULL, "numeric expiresAt parses as unparseable");
	str_is(grant_outcome_name(grant_unwrap(g, key, now_usec, mdk)), "expired", "numeric expiry is expired");
	grant_free(g);
	json = "{\"wrappedKey\":\"AA==\",\"derivation\":{\"version\":\"v1\",\"missionId\":\"m\","
		"\"tables\":[],\"recordIds\":[]},\"expiresAt\":\"2099-01-01T00:00:00Z\"}";
	g = grant_parse(json, strlen(json));
	str_is(grant_outcome_name(grant_unwrap(g, key, now_usec, mdk)), "wrap-rejected", "1-byte wrap rejected");
	grant_free(g);

	EVP_PKEY_free(key);
	free(mdk_hex);
	return done_testing();
}
