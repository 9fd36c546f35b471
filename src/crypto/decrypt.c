/*
 * decrypt.c: one encrypted input, decrypted under a mission grant.
 *
 * Owns mana_ai.decrypt_input() and mana_ai_decrypt_record(): allowlist
 * check, LWW replay, AES-GCM decrypt of every "enc:1:" field, JSON back
 * to jsonb, and exactly one decrypt_audit row per attempt.  Must never
 * return partially decrypted records or half-authenticated bytes, and
 * never let the MDK outlive the call (wiped in PG_FINALLY).
 */
#include "postgres.h"

#include <openssl/crypto.h>

#include "common/jsonapi.h"
#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"

#include "core/enc1.h"
#include "crypto/audit.h"
#include "crypto/decrypt.h"
#include "crypto/mission_grant.h"
#include "ops/metrics.h"
#include "projection/replay.h"
#include "projection/snapshot_load.h"
#include "shared/jsonb_members.h"
#include "shared/pg_compat.h"

#define REASON_SCOPE		"record-not-in-grant-allowlist"
#define REASON_NOT_FOUND	"record-not-found"
#define REASON_DELETED		"record-deleted"
#define REASON_NOT_JSON		"plaintext-not-json"
#define REASON_NOT_JSONB	"plaintext-not-storable-as-jsonb"

static const struct
{
	const char *module;
	const char *app_id;
}			encrypted_modules[] =
{
	{"notes", "notes"},
	{"tasks", "todo"},
	{"todo", "todo"},
	{"calendar", "calendar"},
	{"journal", "journal"},
	{"kontext", "kontext"},
	{"profile", "profile"},
};

const char *
mana_ai_encrypted_module_app(const char *module)
{
	int			i;

	for (i = 0; i < lengthof(encrypted_modules); i++)
		if (strcmp(module, encrypted_modules[i].module) == 0)
			return encrypted_modules[i].app_id;
	return NULL;
}

/*
 * Valid JSON text -> jsonb, or NULL when jsonb cannot store it (a number
 * past numeric's range such as 1e999999, a \u0000 escape, nesting past
 * the stack limit).  jsonb_in runs in an internal subtransaction, which
 * writes nothing and so takes no subtransaction id; its error message may
 * quote the plaintext, so it is dropped unread.  A cancel is re-thrown.
 */
static Jsonb *
jsonb_or_null(char *plain)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Jsonb	   *volatile result = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(plain)));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		if (QueryCancelPending || ProcDiePending || geterrcode() == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		result = NULL;
	}
	PG_END_TRY();
	return result;
}

/* JSON text -> jsonb, or NULL with *reason when it is not valid or not storable. */
static Jsonb *
plaintext_to_jsonb(char *plain, size_t len, const char **reason)
{
	JsonLexContext *lex;
	Jsonb	   *result;

	*reason = REASON_NOT_JSON;
	if (strlen(plain) != len || !pg_verifymbstr(plain, (int) len, true))
		return NULL;
	lex = mana_make_json_lex(plain, (int) len, GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &nullSemAction) != JSON_SUCCESS)
		return NULL;
	result = jsonb_or_null(plain);
	if (result == NULL)
		*reason = REASON_NOT_JSONB;
	return result;
}

/* Decrypt one value; NULL with *reason set on any failure. */
static Jsonb *
decrypt_value(const JsonbValue *v, const unsigned char *mdk, const char **reason)
{
	unsigned char *plain = NULL;
	size_t		plain_len = 0;
	Enc1Result	rc;
	Jsonb	   *volatile result = NULL;
	const char *volatile why = REASON_NOT_JSON;

	rc = enc1_decrypt(v->val.string.val, v->val.string.len, mdk, &plain, &plain_len);
	if (rc != ENC1_OK)
	{
		*reason = enc1_reason(rc);
		return NULL;
	}
	PG_TRY();
	{
		const char *r;

		result = plaintext_to_jsonb((char *) plain, plain_len, &r);
		why = r;
	}
	PG_FINALLY();
	{
		OPENSSL_cleanse(plain, plain_len);
		free(plain);
	}
	PG_END_TRY();
	if (result == NULL)
		*reason = why;
	return result;
}

/* Copy the record, replacing each top-level "enc:1:" string by its plaintext. */
static Jsonb *
decrypt_fields(Jsonb *record, const unsigned char *mdk, const char **reason)
{
	JsonbIterator *it = JsonbIteratorInit(&record->root);
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res = NULL;
	JsonbIteratorToken tok;
	int			depth = 0;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
			depth++;
		else if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
			depth--;
		if (tok == WJB_VALUE && depth == 1 && v.type == jbvString &&
			enc1_is_ciphertext(v.val.string.val, v.val.string.len))
		{
			Jsonb	   *plain = decrypt_value(&v, mdk, reason);
			JsonbValue	pv;

			if (plain == NULL)
				return NULL;
			pv.type = jbvBinary;
			pv.val.binary.data = &plain->root;
			pv.val.binary.len = VARSIZE(plain) - VARHDRSZ;
			res = pushJsonbValue(&state, tok, &pv);
		}
		else
			res = pushJsonbValue(&state, tok, tok < WJB_BEGIN_ARRAY ? &v : NULL);
	}
	return JsonbValueToJsonb(res);
}

Jsonb *
mana_ai_decrypt_record(const DecryptScope *scope, const char *app_id,
					   const char *table_name, const char *record_id)
{
	Jsonb	   *record;
	Jsonb	   *plain;
	const char *reason = NULL;

	if (!grant_allows(scope->grant, table_name, record_id))
	{
		mana_ai_metric_inc_labeled(ML_GRANT_SCOPE_VIOLATIONS, table_name, 1);
		mana_ai_audit_write(scope->user_id, scope->mission_id, scope->iteration_id,
							table_name, record_id, "scope-violation", REASON_SCOPE);
		return NULL;
	}
	record = mana_ai_replay_record(scope->user_id, app_id, table_name, record_id);
	if (record == NULL || !JB_ROOT_IS_OBJECT(record))
		reason = REASON_NOT_FOUND;
	else if (jb_has_member(record, "deletedAt"))
		reason = REASON_DELETED;
	plain = reason ? NULL : decrypt_fields(record, scope->mdk, &reason);
	if (plain == NULL)
	{
		mana_ai_audit_write(scope->user_id, scope->mission_id, scope->iteration_id,
							table_name, record_id, "failed", reason);
		return NULL;
	}
	mana_ai_metric_inc_labeled(ML_DECRYPTS, table_name, 1);
	mana_ai_audit_write(scope->user_id, scope->mission_id, scope->iteration_id,
						table_name, record_id, "ok", NULL);
	return plain;
}

/* Grant problems of decrypt_input, audited as failed with this reason. */
static const char *
grant_reason(const char *outcome)
{
	if (strcmp(outcome, "not-configured") == 0)
		return "grant-not-configured";
	if (strcmp(outcome, "expired") == 0)
		return "grant-expired";
	if (strcmp(outcome, "wrap-rejected") == 0)
		return "grant-wrap-rejected";
	return "grant-malformed";
}

/* Everything after the mission is known; mdk and grant freed by the caller. */
static Jsonb *
decrypt_input_with_grant(DecryptScope *scope, MissionGrant *grant, Jsonb *mission,
						 unsigned char *mdk, const char *app_id,
						 const char *table_name, const char *record_id)
{
	const char *outcome;

	/* The allowlist comes first: an out-of-scope record never sees the key. */
	if (!grant_allows(grant, table_name, record_id))
		return mana_ai_decrypt_record(scope, app_id, table_name, record_id);

	/* mana_ai_mission_grant parsed it, so the member is an object */
	outcome = mana_ai_unwrap_grant(jb_member_object(mission, "grant"), scope->mission_id, mdk);
	if (strcmp(outcome, "ok") != 0)
	{
		mana_ai_audit_write(scope->user_id, scope->mission_id, NULL, table_name,
							record_id, "failed", grant_reason(outcome));
		return NULL;
	}
	scope->mdk = mdk;
	return mana_ai_decrypt_record(scope, app_id, table_name, record_id);
}

PG_FUNCTION_INFO_V1(mana_ai_decrypt_input);
Datum
mana_ai_decrypt_input(PG_FUNCTION_ARGS)
{
	char	   *user_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *mission_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *module = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *table_name = text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *record_id = text_to_cstring(PG_GETARG_TEXT_PP(4));
	const char *app_id = mana_ai_encrypted_module_app(module);
	unsigned char mdk[32];
	Jsonb	   *mission;
	MissionGrant *volatile grant = NULL;
	bool		present;
	Jsonb	   *volatile result = NULL;
	DecryptScope scope = {user_id, mission_id, NULL, NULL, NULL};

	if (user_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user_id must not be empty")));
	if (app_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("module \"%s\" has no encrypted inputs", module),
				 errhint("Use one of notes, tasks, todo, calendar, journal, kontext, profile.")));

	mission = mana_ai_load_mission(user_id, mission_id);
	grant = mana_ai_mission_grant(mission, &present);
	if (grant == NULL)
	{
		mana_ai_audit_write(user_id, mission_id, NULL, table_name, record_id, "failed",
							mission == NULL ? "mission-not-found" :
							present ? "grant-malformed" : "no-grant");
		PG_RETURN_NULL();
	}
	scope.grant = grant;
	PG_TRY();
	{
		result = decrypt_input_with_grant(&scope, grant, mission, mdk, app_id,
										  table_name, record_id);
	}
	PG_FINALLY();
	{
		OPENSSL_cleanse(mdk, sizeof(mdk));
		grant_free(grant);
	}
	PG_END_TRY();
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(result);
}
