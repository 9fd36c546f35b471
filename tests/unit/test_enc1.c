/* test_enc1.c: strict base64 and enc:1: against WebCrypto-made vectors. */
#include <stdlib.h>
#include <string.h>

#include "crypto_vectors.h"
#include "enc1.h"
#include "tap.h"

static unsigned char mdk[32];

static Enc1Result
dec(const char *name, char **plain)
{
	char	   *blob = vector(name);
	unsigned char *p = NULL;
	size_t		n = 0;
	Enc1Result	rc = enc1_decrypt(blob, strlen(blob), mdk, &p, &n);

	free(blob);
	if (plain)
		*plain = (char *) p;
	else
		free(p);
	return rc;
}

int
main(void)
{
	char	   *mdk_hex = vector("mdk_hex");
	char	   *plain = NULL;
	char	   *expect;
	unsigned char *b;
	size_t		n;
	char	   *again;
	unsigned char zero_iv[12] = {0};

	hex_to_bytes(mdk_hex, mdk, 32);

	/* base64 strictness */
	ok(mana_b64_decode("TWFu", 4, &b, &n) && n == 3 && memcmp(b, "Man", 3) == 0, "b64 plain");
	free(b);
	ok(mana_b64_decode("TWE=", 4, &b, &n) && n == 2, "b64 one pad");
	free(b);
	ok(mana_b64_decode("TQ==", 4, &b, &n) && n == 1, "b64 two pads");
	free(b);
	ok(mana_b64_decode("", 0, &b, &n) && n == 0, "b64 empty");
	free(b);
	ok(!mana_b64_decode("TQ", 2, &b, &n), "b64 missing padding rejected");
	ok(!mana_b64_decode("TR==", 4, &b, &n), "b64 non-zero unused bits rejected");
	ok(!mana_b64_decode("T===", 4, &b, &n), "b64 three pads rejected");
	ok(!mana_b64_decode("TQ==TWFu", 8, &b, &n), "b64 padding in the middle rejected");
	ok(!mana_b64_decode("TW u", 4, &b, &n), "b64 space rejected");
	ok(!mana_b64_decode("TW-_", 4, &b, &n), "b64url alphabet rejected");

	/* WebCrypto interop */
	ok(dec("enc_note_title", &plain) == ENC1_OK, "WebCrypto value decrypts");
	str_is(plain, "\"Einkauf\"", "plaintext is the JSON text");
	free(plain);
	expect = vector("plain_note_content");
	ok(dec("enc_note_content", &plain) == ENC1_OK && plain[0] == '"' &&
	   strncmp(plain + 1, expect, strlen(expect)) == 0, "long UTF-8 value decrypts");
	free(plain);
	free(expect);
	ok(dec("enc_object", &plain) == ENC1_OK, "object value decrypts");
	str_is(plain, "{\"a\":1,\"b\":[true,null,\"x\"]}", "object plaintext");
	free(plain);
	ok(dec("enc_empty_string", &plain) == ENC1_OK, "empty string value");
	str_is(plain, "\"\"", "empty string plaintext");
	free(plain);
	ok(dec("enc_not_json", &plain) == ENC1_OK, "non-JSON plaintext still authenticates (caller rejects it)");
	free(plain);

	/* failures */
	ok(dec("enc_wrong_key", NULL) == ENC1_TAMPERED, "wrong key: tampered-or-wrong-key");
	ok(dec("enc_tampered_iv", NULL) == ENC1_TAMPERED, "one bit in the IV");
	ok(dec("enc_tampered_ct", NULL) == ENC1_TAMPERED, "one bit in the ciphertext");
	ok(dec("enc_tampered_tag", NULL) == ENC1_TAMPERED, "one bit in the tag");
	ok(dec("enc_truncated", NULL) == ENC1_MALFORMED, "truncated blob: malformed");
	ok(dec("enc_truncated_block", NULL) == ENC1_MALFORMED, "ciphertext shorter than the tag: malformed");
	ok(dec("enc_bad_b64", NULL) == ENC1_MALFORMED, "bad base64: malformed");
	ok(dec("enc_short_iv", NULL) == ENC1_MALFORMED, "8-byte IV: malformed");
	ok(enc1_decrypt("enc:1:", 6, mdk, &b, &n) == ENC1_MALFORMED, "empty body");
	ok(enc1_decrypt("enc:1:a.b.c", 11, mdk, &b, &n) == ENC1_MALFORMED, "two dots");
	ok(enc1_decrypt("enc:2:AAAA.AAAA", 15, mdk, &b, &n) == ENC1_MALFORMED, "other version");
	ok(!enc1_is_ciphertext("hello", 5) && enc1_is_ciphertext("enc:1:x", 7), "prefix detection");
	str_is(enc1_reason(ENC1_MALFORMED), "ciphertext-malformed", "reason malformed");
	str_is(enc1_reason(ENC1_TAMPERED), "ciphertext-tampered-or-wrong-key", "reason tampered");

	/* our encrypt round-trips and matches the format */
	again = enc1_encrypt((const unsigned char *) "\"x\"", 3, mdk, zero_iv);
	ok(again != NULL && strncmp(again, "enc:1:AAAAAAAAAAAAAAAA.", 23) == 0, "encrypt format");
	ok(enc1_decrypt(again, strlen(again), mdk, &b, &n) == ENC1_OK && n == 3 &&
	   memcmp(b, "\"x\"", 3) == 0, "encrypt round trip");
	free(b);
	free(again);
	free(mdk_hex);
	return done_testing();
}
