/*
 * crypto.h: internal API shared by the grant, decrypt, audit and
 * resolver modules (keyfile.c, audit.c, decrypt.c).  Other modules use
 * resolvers.h instead.
 */
#ifndef MANA_AI_CRYPTO_H
#define MANA_AI_CRYPTO_H

#include "postgres.h"

#include <openssl/evp.h>

#include "core/grant.h"
#include "utils/jsonb.h"

/* keyfile.c: the runner's RSA key, or NULL when not configured/refused. */
extern EVP_PKEY *mana_ai_private_key(void);

/*
 * audit.c: append one decrypt_audit row under user_id's RLS scope.
 * Never throws: a failed write is a WARNING (the row is lost) and -1.
 */
extern int64 mana_ai_audit_write(const char *user_id, const char *mission_id,
								 const char *iteration_id, const char *table_name,
								 const char *record_id, const char *status,
								 const char *reason);

/* decrypt.c: what one decrypt attempt needs to know about its mission. */
typedef struct DecryptScope
{
	const char *user_id;
	const char *mission_id;
	const char *iteration_id;	/* may be NULL */
	const MissionGrant *grant;	/* parsed grant: the allowlist */
	const unsigned char *mdk;	/* 32 bytes, unwrapped */
} DecryptScope;

/*
 * Allowlist check, replay, decrypt every top-level "enc:1:" field, one
 * audit row.  Returns the record (caller's context) or NULL when refused.
 */
extern Jsonb *mana_ai_decrypt_record(const DecryptScope *scope, const char *app_id,
									 const char *table_name, const char *record_id);

/* The app_id of an encrypted module (SPEC 6), NULL for any other module. */
extern const char *mana_ai_encrypted_module_app(const char *module);

/* decrypt.c: the mission snapshot's record, or NULL (caller's context). */
extern Jsonb *mana_ai_load_mission(const char *user_id, const char *mission_id);

/* grant.c: parse the "grant" member of a mission record; NULL if absent/bad. */
extern MissionGrant *mana_ai_mission_grant(Jsonb *mission, bool *present);

#endif
