/* fuzz_grant.c: libFuzzer target for the grant parser, allowlist and unwrap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rsa.h>

#include "grant.h"
#include "hkdf.h"

/* One throwaway RSA key per process: unwrap paths run with a real key. */
static EVP_PKEY *
fuzz_key(void)
{
	static EVP_PKEY *key;

	if (key == NULL)
		key = EVP_RSA_gen(2048);
	return key;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char master[MASTER_KEY_LEN] = {1};
	unsigned char mdk[GRANT_MDK_LEN];
	MissionGrant *g = grant_parse((const char *) data, size);

	if (g != NULL)
	{
		(void) grant_allows(g, "notes", "n1");
		(void) grant_unwrap(g, fuzz_key(), 0, mdk);
		grant_free(g);
	}
	(void) mdk_derive_json(master, sizeof(master), (const char *) data, size, mdk);
	return 0;
}
