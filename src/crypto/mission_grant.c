/*
 * mission_grant.c: a mission's key grant inside the server (SPEC 5.1,
 * 5.2); src/core/grant.c parses and unwraps the bytes.
 *
 * Owns mana_ai.grant_status(), mana_ai.derive_mission_key(),
 * mana_ai_mission_grant() and mana_ai_unwrap_grant().  The MDK only ever
 * lands in a caller's buffer (the resolvers', or a local one wiped before
 * returning); no function here returns or logs it.  derive_mission_key returns a derived key by
 * contract: it is a parity tool for key material its caller already has.
 */
#include "postgres.h"

#include <openssl/crypto.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "core/hkdf.h"
#include "crypto/keyfile.h"
#include "crypto/mission_grant.h"
#include "shared/instants.h"

/* Parse a jsonb value as a grant (malloc'd, caller grant_free's). */
static MissionGrant *
grant_from_jsonb(JsonbContainer *container, int len)
{
	char	   *text = JsonbToCString(NULL, container, len);
	MissionGrant *g = grant_parse(text, strlen(text));

	pfree(text);
	return g;
}

MissionGrant *
mana_ai_mission_grant(Jsonb *mission, bool *present)
{
	JsonbValue	v;

	*present = false;
	if (mission == NULL || !JB_ROOT_IS_OBJECT(mission) ||
		getKeyJsonValueFromContainer(&mission->root, "grant", 5, &v) == NULL ||
		v.type == jbvNull)
		return NULL;
	*present = true;
	if (v.type != jbvBinary)
		return NULL;			/* a scalar is no grant: malformed */
	return grant_from_jsonb(v.val.binary.data, v.val.binary.len);
}

/*
 * Unwrap a grant into mdk.  With mission_id set, a grant whose
 * derivation.missionId names another mission is refused as malformed
 * (and mdk wiped): its key was derived for that mission, and copying a
 * grant onto another mission must not widen what the runner reads.  The
 * check comes after the unwrap so the other outcomes keep their order.
 */
const char *
mana_ai_unwrap_grant(Jsonb *grant, const char *mission_id, unsigned char mdk[32])
{
	EVP_PKEY   *key = mana_ai_private_key();
	MissionGrant *g;
	GrantOutcome rc;

	if (key == NULL)
		return grant_outcome_name(GRANT_NOT_CONFIGURED);
	g = grant == NULL ? NULL : grant_from_jsonb(&grant->root, VARSIZE(grant));
	rc = grant_unwrap(g, key, mana_ai_unix_usec(GetCurrentTimestamp()), mdk);
	if (rc == GRANT_OK && mission_id != NULL && strcmp(g->mission_id, mission_id) != 0)
	{
		OPENSSL_cleanse(mdk, 32);
		rc = GRANT_MALFORMED;
	}
	grant_free(g);
	return grant_outcome_name(rc);
}

PG_FUNCTION_INFO_V1(mana_ai_grant_status);
Datum
mana_ai_grant_status(PG_FUNCTION_ARGS)
{
	Jsonb	   *grant = PG_GETARG_JSONB_P(0);
	unsigned char mdk[32];
	const char *outcome = mana_ai_unwrap_grant(grant, NULL, mdk);

	OPENSSL_cleanse(mdk, sizeof(mdk));
	PG_RETURN_TEXT_P(cstring_to_text(outcome));
}

PG_FUNCTION_INFO_V1(mana_ai_derive_mission_key);
Datum
mana_ai_derive_mission_key(PG_FUNCTION_ARGS)
{
	bytea	   *master = PG_GETARG_BYTEA_PP(0);
	Jsonb	   *derivation = PG_GETARG_JSONB_P(1);
	char	   *text = JsonbToCString(NULL, &derivation->root, VARSIZE(derivation));
	unsigned char out[MDK_LEN];
	MdkResult	rc;
	bytea	   *result;

	rc = mdk_derive_json((const unsigned char *) VARDATA_ANY(master),
						 VARSIZE_ANY_EXHDR(master), text, strlen(text), out);
	if (rc != MDK_OK)
	{
		OPENSSL_cleanse(out, sizeof(out));
		ereport(ERROR,
				(errcode(rc == MDK_INTERNAL ? ERRCODE_INTERNAL_ERROR : ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot derive a mission key"),
				 errdetail("%s", mdk_result_message(rc))));
	}
	result = (bytea *) palloc(VARHDRSZ + MDK_LEN);
	SET_VARSIZE(result, VARHDRSZ + MDK_LEN);
	memcpy(VARDATA(result), out, MDK_LEN);
	OPENSSL_cleanse(out, sizeof(out));
	PG_RETURN_BYTEA_P(result);
}
