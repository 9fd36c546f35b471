/*
 * crypto_vectors.h: read tests/fixtures/crypto/vectors.txt (written by
 * tests/crypto/gen-vectors.mjs with Node's WebCrypto) for the unit tests.
 * Tests run with cwd tests/unit (make -C tests/unit check).
 */
#ifndef MANA_AI_CRYPTO_VECTORS_H
#define MANA_AI_CRYPTO_VECTORS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#define VECTOR_DIR "../fixtures/crypto/"

/* The value of one named vector, malloc'd; exits when missing. */
static inline char *
vector(const char *name)
{
	FILE	   *f = fopen(VECTOR_DIR "vectors.txt", "r");
	static char line[65536];
	size_t		nl = strlen(name);

	if (f == NULL)
	{
		printf("Bail out! cannot open " VECTOR_DIR "vectors.txt\n");
		exit(1);
	}
	while (fgets(line, sizeof(line), f))
	{
		if (strncmp(line, name, nl) == 0 && line[nl] == ' ')
		{
			char	   *v = strdup(line + nl + 1);

			v[strcspn(v, "\n")] = '\0';
			fclose(f);
			return v;
		}
	}
	fclose(f);
	printf("Bail out! vector %s missing\n", name);
	exit(1);
}

static inline EVP_PKEY *
test_private_key(void)
{
	FILE	   *f = fopen(VECTOR_DIR "TEST-ONLY-private-key.pem", "r");
	EVP_PKEY   *k;

	if (f == NULL)
	{
		printf("Bail out! cannot open the TEST-ONLY key\n");
		exit(1);
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static inline void
hex_to_bytes(const char *hex, unsigned char *out, size_t n)
{
	size_t		i;

	for (i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}



/* tap.h's is_str shadows ok()'s local; this one does not. */
#define str_is(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int same_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
	ok(same_, __VA_ARGS__); \
	if (!same_) printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)
#endif
