/*
 * grant.h: mission grants of SPEC 5.1, Postgres-free.
 *
 * Owns parsing the grant JSON, the allowlist check and the RSA-OAEP
 * (SHA-256 / MGF1-SHA-256) unwrap of the Mission Data Key.  The key pair
 * is loaded elsewhere (src/keyfile.c); the MDK goes to a caller buffer.
 */
#ifndef MANA_AI_GRANT_H
#define MANA_AI_GRANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define GRANT_MDK_LEN 32

typedef enum GrantOutcome
{
	GRANT_OK = 0,
	GRANT_NOT_CONFIGURED,		/* no usable private key */
	GRANT_EXPIRED,				/* expiresAt in the past or unparseable */
	GRANT_MALFORMED,			/* bad JSON/fields/base64, MDK length != 32 */
	GRANT_WRAP_REJECTED			/* RSA-OAEP decryption failed */
} GrantOutcome;

typedef struct MissionGrant
{
	char	   *wrapped_key;	/* base64 text, decoded only by grant_unwrap */
	char	   *version;
	char	   *mission_id;
	char	  **tables;
	size_t		n_tables;
	char	  **record_ids;		/* "<table>:<id>" allowlist */
	size_t		n_record_ids;
	char	   *issued_at;		/* may be NULL */
	char	   *expires_at;		/* NULL when present but not a string */
} MissionGrant;

/*
 * Parse a JSON text (strict: one value, nothing after it).  NULL when it
 * is not an object, or on a missing or mistyped field (outcome malformed).
 * Required: wrappedKey, derivation {version, missionId, tables[],
 * recordIds[]}, expiresAt.
 */
extern MissionGrant *grant_parse(const char *json, size_t len);
extern void grant_free(MissionGrant *grant);

/*
 * Check expiry against now_usec (microseconds since the Unix epoch) and
 * unwrap.  pkey NULL gives GRANT_NOT_CONFIGURED (checked first), grant
 * NULL gives GRANT_MALFORMED.  mdk is written only on GRANT_OK; every
 * temporary copy is wiped.
 */
extern GrantOutcome grant_unwrap(const MissionGrant *grant, EVP_PKEY *pkey,
								 int64_t now_usec, unsigned char mdk[GRANT_MDK_LEN]);

/* True when "<table>:<record_id>" is in the grant's recordIds. */
extern bool grant_allows(const MissionGrant *grant, const char *table,
						 const char *record_id);

/* The contract string of SPEC 5.1: "ok", "not-configured", ... */
extern const char *grant_outcome_name(GrantOutcome outcome);

#endif
