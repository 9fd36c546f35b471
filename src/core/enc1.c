/*
 * enc1.c: strict base64 and the "enc:1:" AES-256-GCM wire format.
 *
 * Owns decoding untrusted ciphertext strings.  Must never return bytes
 * that failed authentication, never read past the given length, and
 * never keep key or plaintext bytes after returning (wiped on failure).
 */
#include "enc1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Generous cap: far beyond any record field, far below int overflow. */
#define ENC1_MAX_INPUT	(64u * 1024u * 1024u)

static bool
is_b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '+' || c == '/';
}

bool
enc1_is_ciphertext(const char *s, size_t len)
{
	size_t		plen = sizeof(ENC1_PREFIX) - 1;

	return s != NULL && len >= plen && memcmp(s, ENC1_PREFIX, plen) == 0;
}

char *
mana_b64_encode(const unsigned char *in, size_t len)
{
	char	   *out;

	if (len > ENC1_MAX_INPUT)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *) out, in, (int) len);
	return out;
}

bool
mana_b64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
	size_t		pad = 0;
	size_t		i;
	unsigned char *buf;
	int			n;
	char	   *again;
	bool		canonical;

	*out = NULL;
	*out_len = 0;
	if (s == NULL || len % 4 != 0 || len > ENC1_MAX_INPUT)
		return false;
	if (len > 0 && s[len - 1] == '=')
		pad++;
	if (len > 1 && s[len - 2] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (!is_b64_char((unsigned char) s[i]))
			return false;

	buf = malloc(len / 4 * 3 + 1);
	if (buf == NULL)
		return false;
	n = len == 0 ? 0 : EVP_DecodeBlock(buf, (const unsigned char *) s, (int) len);
	if (n < 0 || (size_t) n < pad)
	{
		free(buf);
		return false;
	}
	n -= (int) pad;

	/* Reject non-zero unused bits: only one spelling per byte string. */
	again = mana_b64_encode(buf, (size_t) n);
	canonical = again != NULL && strlen(again) == len && memcmp(again, s, len) == 0;
	free(again);
	if (!canonical)
	{
		OPENSSL_cleanse(buf, len / 4 * 3 + 1);
		free(buf);
		return false;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = (size_t) n;
	return true;
}

/* Split "enc:1:<iv>.<ct>" and decode both halves; lengths checked. */
static bool
enc1_split(const char *s, size_t len,
		   unsigned char **iv, size_t *iv_len,
		   unsigned char **ct, size_t *ct_len)
{
	size_t		plen = sizeof(ENC1_PREFIX) - 1;
	const char *body;
	size_t		body_len;
	const char *dot;

	*iv = *ct = NULL;
	if (!enc1_is_ciphertext(s, len) || len > ENC1_MAX_INPUT)
		return false;
	body = s + plen;
	body_len = len - plen;
	dot = memchr(body, '.', body_len);
	if (dot == NULL || memchr(dot + 1, '.', body_len - (size_t) (dot - body) - 1) != NULL)
		return false;
	if (!mana_b64_decode(body, (size_t) (dot - body), iv, iv_len) ||
		*iv_len != ENC1_IV_LEN ||
		!mana_b64_decode(dot + 1, body_len - (size_t) (dot - body) - 1, ct, ct_len) ||
		*ct_len < ENC1_TAG_LEN)
	{
		free(*iv);
		free(*ct);
		*iv = *ct = NULL;
		return false;
	}
	return true;
}

/* AES-256-GCM open; ct carries the tag at its end. */
static Enc1Result
gcm_open(const unsigned char *key, const unsigned char *iv,
		 const unsigned char *ct, size_t ct_len, unsigned char *plain)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	size_t		body_len = ct_len - ENC1_TAG_LEN;
	int			n = 0;
	int			fin = 0;
	Enc1Result	rc = ENC1_INTERNAL;

	if (ctx == NULL)
		return ENC1_INTERNAL;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ENC1_IV_LEN, NULL) != 1 ||
		EVP_DecryptInit_ex(ctx, NULL, NULL, key, iv) != 1 ||
		(body_len > 0 && EVP_DecryptUpdate(ctx, plain, &n, ct, (int) body_len) != 1) ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ENC1_TAG_LEN,
							(void *) (ct + body_len)) != 1)
		goto done;
	rc = EVP_DecryptFinal_ex(ctx, plain + n, &fin) == 1 ? ENC1_OK : ENC1_TAMPERED;
done:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

Enc1Result
enc1_decrypt(const char *s, size_t len, const unsigned char key[ENC1_KEY_LEN],
			 unsigned char **plain, size_t *plain_len)
{
	unsigned char *iv;
	unsigned char *ct;
	size_t		iv_len;
	size_t		ct_len;
	unsigned char *buf;
	Enc1Result	rc;

	*plain = NULL;
	*plain_len = 0;
	if (!enc1_split(s, len, &iv, &iv_len, &ct, &ct_len))
		return ENC1_MALFORMED;

	buf = malloc(ct_len - ENC1_TAG_LEN + 1);
	if (buf == NULL)
		rc = ENC1_INTERNAL;
	else
		rc = gcm_open(key, iv, ct, ct_len, buf);

	if (rc == ENC1_OK)
	{
		buf[ct_len - ENC1_TAG_LEN] = '\0';
		*plain = buf;
		*plain_len = ct_len - ENC1_TAG_LEN;
	}
	else if (buf != NULL)
	{
		OPENSSL_cleanse(buf, ct_len - ENC1_TAG_LEN + 1);
		free(buf);
	}
	free(iv);
	free(ct);
	return rc;
}

char *
enc1_encrypt(const unsigned char *plain, size_t plain_len,
			 const unsigned char key[ENC1_KEY_LEN], const unsigned char *iv)
{
	unsigned char iv_buf[ENC1_IV_LEN];
	unsigned char *ct = NULL;
	char	   *iv64 = NULL;
	char	   *ct64 = NULL;
	char	   *out = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int			n = 0;
	int			fin = 0;

	if (plain_len > ENC1_MAX_INPUT / 2)
		return NULL;
	if (iv != NULL)
		memcpy(iv_buf, iv, ENC1_IV_LEN);
	else if (RAND_bytes(iv_buf, ENC1_IV_LEN) != 1)
		return NULL;
	ct = malloc(plain_len + ENC1_TAG_LEN);
	ctx = EVP_CIPHER_CTX_new();
	if (ct == NULL || ctx == NULL ||
		EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, ENC1_IV_LEN, NULL) != 1 ||
		EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv_buf) != 1 ||
		(plain_len > 0 && EVP_EncryptUpdate(ctx, ct, &n, plain, (int) plain_len) != 1) ||
		EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ENC1_TAG_LEN, ct + plain_len) != 1)
		goto done;
	iv64 = mana_b64_encode(iv_buf, ENC1_IV_LEN);
	ct64 = mana_b64_encode(ct, plain_len + ENC1_TAG_LEN);
	if (iv64 == NULL || ct64 == NULL)
		goto done;
	out = malloc(strlen(ENC1_PREFIX) + strlen(iv64) + 1 + strlen(ct64) + 1);
	if (out != NULL)
		sprintf(out, "%s%s.%s", ENC1_PREFIX, iv64, ct64);
done:
	EVP_CIPHER_CTX_free(ctx);
	free(ct);
	free(iv64);
	free(ct64);
	return out;
}

const char *
enc1_reason(Enc1Result rc)
{
	switch (rc)
	{
		case ENC1_OK:
			return "ok";
		case ENC1_MALFORMED:
			return "ciphertext-malformed";
		case ENC1_TAMPERED:
			return "ciphertext-tampered-or-wrong-key";
		case ENC1_INTERNAL:
			break;
	}
	return "decrypt-internal-error";
}
