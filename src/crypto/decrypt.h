/*
 * decrypt.h: one encrypted input decrypted under a mission grant
 * (SPEC 5.3, 5.4).
 */
#ifndef MANA_AI_DECRYPT_H
#define MANA_AI_DECRYPT_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "core/grant.h"

/* What one decrypt attempt needs to know about its mission. */
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

#endif
