/*
 * grant.c: parse a mission grant and unwrap its Mission Data Key.
 *
 * Owns the grant JSON (untrusted: it travels through the sync log) and
 * the RSA-OAEP-SHA-256 decrypt.  Must never return or keep the MDK
 * beyond the caller's buffer, and never log anything.
 */
#include "grant.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "enc1.h"
#include "json_strict.h"
#include "iso8601.h"

/* A grant names a handful of records; cap what we are willing to copy. */
#define GRANT_MAX_LIST	100000

static char *
dup_string(json_object *o)
{
	const char *s = json_object_get_string(o);
	int			len = json_object_get_string_len(o);

	if (s == NULL || (size_t) len != strlen(s))
		return NULL;			/* embedded NUL: refuse */
	return strdup(s);
}

static char *
get_string_field(json_object *obj, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) ||
		!json_object_is_type(v, json_type_string))
		return NULL;
	return dup_string(v);
}

static bool
get_string_array(json_object *obj, const char *key, char ***items, size_t *n)
{
	json_object *arr;
	size_t		i;

	*items = NULL;
	*n = 0;
	if (!json_object_object_get_ex(obj, key, &arr) ||
		!json_object_is_type(arr, json_type_array) ||
		json_object_array_length(arr) > GRANT_MAX_LIST)
		return false;
	*n = json_object_array_length(arr);
	*items = calloc(*n ? *n : 1, sizeof(char *));
	if (*items == NULL)
		return false;
	for (i = 0; i < *n; i++)
	{
		json_object *e = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(e, json_type_string) ||
			((*items)[i] = dup_string(e)) == NULL)
			return false;		/* grant_free releases the partial list */
	}
	return true;
}

static void
free_list(char **items, size_t n)
{
	size_t		i;

	if (items == NULL)
		return;
	for (i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

void
grant_free(MissionGrant *g)
{
	if (g == NULL)
		return;
	free(g->wrapped_key);
	free(g->version);
	free(g->mission_id);
	free_list(g->tables, g->n_tables);
	free_list(g->record_ids, g->n_record_ids);
	free(g->issued_at);
	free(g->expires_at);
	free(g);
}

MissionGrant *
grant_parse(const char *json, size_t len)
{
	json_object *root = mana_json_parse_strict(json, len);
	json_object *deriv;
	json_object *exp;
	MissionGrant *g;
	bool		ok;

	if (root == NULL || !json_object_is_type(root, json_type_object))
	{
		json_object_put(root);
		return NULL;
	}
	g = calloc(1, sizeof(MissionGrant));
	ok = g != NULL &&
		(g->wrapped_key = get_string_field(root, "wrappedKey")) != NULL &&
		json_object_object_get_ex(root, "derivation", &deriv) &&
		json_object_is_type(deriv, json_type_object) &&
		(g->version = get_string_field(deriv, "version")) != NULL &&
		(g->mission_id = get_string_field(deriv, "missionId")) != NULL &&
		get_string_array(deriv, "tables", &g->tables, &g->n_tables) &&
		get_string_array(deriv, "recordIds", &g->record_ids, &g->n_record_ids) &&
		json_object_object_get_ex(root, "expiresAt", &exp) &&
		!json_object_is_type(exp, json_type_null);
	if (ok)
	{
		/* A non-string expiry is kept as NULL: unparseable, hence expired. */
		g->expires_at = get_string_field(root, "expiresAt");
		g->issued_at = get_string_field(root, "issuedAt");
	}
	json_object_put(root);
	if (!ok)
	{
		grant_free(g);
		return NULL;
	}
	return g;
}

bool
grant_allows(const MissionGrant *g, const char *table, const char *record_id)
{
	size_t		tl;
	size_t		i;

	if (g == NULL || table == NULL || record_id == NULL)
		return false;
	tl = strlen(table);
	for (i = 0; i < g->n_record_ids; i++)
	{
		const char *r = g->record_ids[i];

		if (strncmp(r, table, tl) == 0 && r[tl] == ':' &&
			strcmp(r + tl + 1, record_id) == 0)
			return true;
	}
	return false;
}

/* RSA-OAEP with SHA-256 for both the OAEP digest and MGF1. */
static GrantOutcome
rsa_oaep_unwrap(EVP_PKEY *pkey, const unsigned char *wrapped, size_t wrapped_len,
				unsigned char mdk[GRANT_MDK_LEN])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
	unsigned char *buf = NULL;
	size_t		out_len = 0;
	size_t		cap;
	GrantOutcome rc = GRANT_WRAP_REJECTED;

	if (ctx == NULL ||
		EVP_PKEY_decrypt_init(ctx) != 1 ||
		EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
		EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
		EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1 ||
		EVP_PKEY_decrypt(ctx, NULL, &cap, wrapped, wrapped_len) != 1)
		goto done;
	buf = malloc(cap);
	if (buf == NULL)
		goto done;
	out_len = cap;
	if (EVP_PKEY_decrypt(ctx, buf, &out_len, wrapped, wrapped_len) != 1)
		goto done;
	if (out_len != GRANT_MDK_LEN)
		rc = GRANT_MALFORMED;
	else
	{
		memcpy(mdk, buf, GRANT_MDK_LEN);
		rc = GRANT_OK;
	}
done:
	if (buf != NULL)
	{
		OPENSSL_cleanse(buf, cap);
		free(buf);
	}
	EVP_PKEY_CTX_free(ctx);
	/* A rejected wrap must not leave errors for the next OpenSSL user. */
	ERR_clear_error();
	return rc;
}

GrantOutcome
grant_unwrap(const MissionGrant *g, EVP_PKEY *pkey, int64_t now_usec,
			 unsigned char mdk[GRANT_MDK_LEN])
{
	int64_t		expires;
	unsigned char *wrapped;
	size_t		wrapped_len;
	GrantOutcome rc;

	if (pkey == NULL)
		return GRANT_NOT_CONFIGURED;
	if (g == NULL)
		return GRANT_MALFORMED;
	if (g->expires_at == NULL ||
		!iso8601_parse(g->expires_at, strlen(g->expires_at), &expires) ||
		expires <= now_usec)
		return GRANT_EXPIRED;
	if (!mana_b64_decode(g->wrapped_key, strlen(g->wrapped_key), &wrapped, &wrapped_len) ||
		wrapped_len == 0)
	{
		free(wrapped);
		return GRANT_MALFORMED;
	}
	rc = rsa_oaep_unwrap(pkey, wrapped, wrapped_len, mdk);
	free(wrapped);
	return rc;
}

const char *
grant_outcome_name(GrantOutcome outcome)
{
	switch (outcome)
	{
		case GRANT_OK:
			return "ok";
		case GRANT_NOT_CONFIGURED:
			return "not-configured";
		case GRANT_EXPIRED:
			return "expired";
		case GRANT_MALFORMED:
			return "malformed";
		case GRANT_WRAP_REJECTED:
			return "wrap-rejected";
	}
	return "malformed";
}
