/*
 * enc1.h: the web app's field ciphertext format (SPEC 5.3), Postgres-free.
 *
 * Owns strict base64 and "enc:1:<b64 iv>.<b64 ct>" with AES-256-GCM.
 * Never returns unauthenticated plaintext, never logs, never keeps a key.
 */
#ifndef MANA_AI_ENC1_H
#define MANA_AI_ENC1_H

#include <stdbool.h>
#include <stddef.h>

#define ENC1_PREFIX		"enc:1:"
#define ENC1_KEY_LEN	32
#define ENC1_IV_LEN		12
#define ENC1_TAG_LEN	16

typedef enum Enc1Result
{
	ENC1_OK = 0,
	ENC1_MALFORMED,				/* not the wire format: prefix, base64, lengths */
	ENC1_TAMPERED,				/* GCM tag mismatch: a changed bit or a wrong key */
	ENC1_INTERNAL				/* out of memory or an OpenSSL failure */
} Enc1Result;

/* True when the string starts with "enc:1:" (the value is ciphertext). */
extern bool enc1_is_ciphertext(const char *s, size_t len);

/*
 * Strict standard base64 (RFC 4648 alphabet, '=' padding required, length
 * a multiple of 4, zero unused bits).  On success *out is malloc'd (NUL
 * terminated for convenience) and the caller frees it.
 */
extern bool mana_b64_decode(const char *s, size_t len,
							unsigned char **out, size_t *out_len);

/* Standard base64 with padding; malloc'd, NUL-terminated; NULL on OOM. */
extern char *mana_b64_encode(const unsigned char *in, size_t len);

/*
 * Decrypt one "enc:1:" value with a 32-byte key.  On ENC1_OK *plain is a
 * malloc'd, NUL-terminated buffer of *plain_len bytes (the caller wipes
 * and frees it); on any other result *plain is NULL.
 */
extern Enc1Result enc1_decrypt(const char *s, size_t len,
							   const unsigned char key[ENC1_KEY_LEN],
							   unsigned char **plain, size_t *plain_len);

/*
 * Encrypt plaintext into a malloc'd "enc:1:" string (tests and tooling).
 * iv NULL draws a fresh random IV.  NULL on failure.
 */
extern char *enc1_encrypt(const unsigned char *plain, size_t plain_len,
						  const unsigned char key[ENC1_KEY_LEN],
						  const unsigned char *iv);

/* The audit reason of a failed decrypt ("ciphertext-malformed", ...). */
extern const char *enc1_reason(Enc1Result rc);

#endif
