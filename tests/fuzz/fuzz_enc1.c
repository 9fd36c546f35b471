/* fuzz_enc1.c: libFuzzer target for strict base64 and the enc:1: decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enc1.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[ENC1_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	char	   *s = malloc(size + 7);
	unsigned char *out;
	size_t		n;

	if (s == NULL)
		return 0;
	/* Raw input, then the same bytes behind the prefix to reach deeper. */
	memcpy(s, data, size);
	if (enc1_decrypt(s, size, key, &out, &n) == ENC1_OK)
		free(out);
	if (mana_b64_decode(s, size, &out, &n))
		free(out);
	memcpy(s, ENC1_PREFIX, 6);
	memcpy(s + 6, data, size);
	if (enc1_decrypt(s, size + 6, key, &out, &n) == ENC1_OK)
		free(out);
	free(s);
	return 0;
}
