/*
 * hkdf.h: Mission Data Key derivation of SPEC 5.2, Postgres-free.
 *
 * Owns the canonical info string (sorted tables and record ids) and the
 * HKDF-SHA-256 call.  Never keeps the master key or the derived key.
 */
#ifndef MANA_AI_HKDF_H
#define MANA_AI_HKDF_H

#include <stddef.h>

#define MDK_LEN			32
#define MASTER_KEY_LEN	32

typedef enum MdkResult
{
	MDK_OK = 0,
	MDK_BAD_MASTER_KEY,			/* not exactly 32 bytes */
	MDK_BAD_VERSION,			/* derivation.version is not "v1" */
	MDK_BAD_DERIVATION,			/* not an object, missing or mistyped fields */
	MDK_INTERNAL				/* out of memory or an OpenSSL failure */
} MdkResult;

/*
 * Derive the MDK from explicit parts.  tables and record_ids are sorted
 * (in a copy) the way JavaScript's Array.prototype.sort orders strings.
 */
extern MdkResult mdk_derive(const unsigned char *master, size_t master_len,
							const char *mission_id,
							const char *const *tables, size_t n_tables,
							const char *const *record_ids, size_t n_record_ids,
							unsigned char out[MDK_LEN]);

/* Same from a derivation JSON object {version, missionId, tables, recordIds}. */
extern MdkResult mdk_derive_json(const unsigned char *master, size_t master_len,
								 const char *derivation_json, size_t json_len,
								 unsigned char out[MDK_LEN]);

/* A sentence for error messages (never contains key bytes). */
extern const char *mdk_result_message(MdkResult rc);

/*
 * strcmp in UTF-16 code unit order, as JavaScript sorts strings; inputs
 * are UTF-8.  Exposed for the grant parser and the unit tests.
 */
extern int	js_string_compare(const char *a, const char *b);

#endif
