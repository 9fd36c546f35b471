/*
 * fuzz_iso8601.c: libFuzzer target for the stamp parser.
 * Build: clang -fsanitize=fuzzer,address -Isrc/core with every src/core C file.
 * Checks: never reads past size (ASan on an exact-size copy), and an
 * accepted stamp lies within years 0000..9999 (after any offset).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iso8601.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size ? size : 1);
	int64_t		usec;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	if (iso8601_parse(copy, size, &usec))
	{
		/* -62167219200 s = 0000-01-01; 253402300800 s = 10000-01-01; +-1 day for offsets */
		if (usec < (INT64_C(-62167219200) - 86400) * 1000000 ||
			usec > (INT64_C(253402300800) + 86400) * 1000000)
			abort();
	}
	free(copy);
	return 0;
}
