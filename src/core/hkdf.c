/*
 * hkdf.c: HKDF-SHA-256 derivation of a Mission Data Key (SPEC 5.2).
 *
 * Owns building "mana-ai-mission-grant:v1:tables=..:ids=.." exactly as
 * the web app does and calling OpenSSL's HKDF.  Must never keep key
 * bytes: the output buffer belongs to the caller, who wipes it.
 */
#include "hkdf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "json_strict.h"

#define INFO_PREFIX "mana-ai-mission-grant:v1:"

/*
 * Next UTF-16 code unit of a UTF-8 string.  A supplementary character
 * yields its high surrogate first, then (through *pending) its low one,
 * which is exactly where JavaScript's ordering differs from code points.
 * Invalid bytes are taken as themselves.
 */
static uint32_t
next_unit(const unsigned char **p, uint32_t *pending)
{
	const unsigned char *s = *p;
	uint32_t	cp;
	int			extra;

	if (*pending)
	{
		cp = *pending;
		*pending = 0;
		return cp;
	}
	if (s[0] < 0x80)
		extra = 0, cp = s[0];
	else if ((s[0] & 0xE0) == 0xC0)
		extra = 1, cp = s[0] & 0x1F;
	else if ((s[0] & 0xF0) == 0xE0)
		extra = 2, cp = s[0] & 0x0F;
	else if ((s[0] & 0xF8) == 0xF0)
		extra = 3, cp = s[0] & 0x07;
	else
		extra = 0, cp = s[0];
	s++;
	for (; extra > 0 && (*s & 0xC0) == 0x80; extra--, s++)
		cp = (cp << 6) | (*s & 0x3F);
	*p = s;
	if (cp >= 0x10000 && cp <= 0x10FFFF)
	{
		*pending = 0xDC00 + ((cp - 0x10000) & 0x3FF);
		return 0xD800 + ((cp - 0x10000) >> 10);
	}
	return cp;
}

int
js_string_compare(const char *a, const char *b)
{
	const unsigned char *pa = (const unsigned char *) a;
	const unsigned char *pb = (const unsigned char *) b;
	uint32_t	qa = 0;
	uint32_t	qb = 0;

	for (;;)
	{
		bool		ea = (*pa == '\0' && qa == 0);
		bool		eb = (*pb == '\0' && qb == 0);
		uint32_t	ua;
		uint32_t	ub;

		if (ea || eb)
			return ea && eb ? 0 : (ea ? -1 : 1);
		ua = next_unit(&pa, &qa);
		ub = next_unit(&pb, &qb);
		if (ua != ub)
			return ua < ub ? -1 : 1;
	}
}

static int
cmp_strp(const void *a, const void *b)
{
	return js_string_compare(*(const char *const *) a, *(const char *const *) b);
}

/* Sorted copy joined by ','; malloc'd, NULL on OOM. */
static char *
sorted_join(const char *const *items, size_t n)
{
	const char **copy = malloc((n ? n : 1) * sizeof(char *));
	size_t		total = 1;
	size_t		i;
	char	   *out;
	char	   *w;

	if (copy == NULL)
		return NULL;
	for (i = 0; i < n; i++)
	{
		copy[i] = items[i];
		total += strlen(items[i]) + 1;
	}
	qsort(copy, n, sizeof(char *), cmp_strp);
	out = malloc(total);
	if (out != NULL)
	{
		w = out;
		for (i = 0; i < n; i++)
		{
			size_t		l = strlen(copy[i]);

			if (i > 0)
				*w++ = ',';
			memcpy(w, copy[i], l);
			w += l;
		}
		*w = '\0';
	}
	free(copy);
	return out;
}

static bool
hkdf_sha256(const unsigned char *ikm, size_t ikm_len,
			const unsigned char *salt, size_t salt_len,
			const unsigned char *info, size_t info_len,
			unsigned char *out, size_t out_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t		len = out_len;
	bool		ok;

	/* An empty salt is legal HKDF; OpenSSL wants a non-NULL pointer. */
	static const unsigned char empty = 0;

	ok = ctx != NULL &&
		EVP_PKEY_derive_init(ctx) == 1 &&
		EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1 &&
		EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt_len ? salt : &empty, (int) salt_len) == 1 &&
		EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int) ikm_len) == 1 &&
		EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int) info_len) == 1 &&
		EVP_PKEY_derive(ctx, out, &len) == 1 &&
		len == out_len;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

MdkResult
mdk_derive(const unsigned char *master, size_t master_len,
		   const char *mission_id,
		   const char *const *tables, size_t n_tables,
		   const char *const *record_ids, size_t n_record_ids,
		   unsigned char out[MDK_LEN])
{
	char	   *t = NULL;
	char	   *ids = NULL;
	char	   *info = NULL;
	MdkResult	rc = MDK_INTERNAL;
	size_t		info_len;

	if (master == NULL || master_len != MASTER_KEY_LEN)
		return MDK_BAD_MASTER_KEY;
	if (mission_id == NULL)
		return MDK_BAD_DERIVATION;
	t = sorted_join(tables, n_tables);
	ids = sorted_join(record_ids, n_record_ids);
	if (t == NULL || ids == NULL)
		goto done;
	info_len = strlen(INFO_PREFIX) + strlen("tables=") + strlen(t) +
		strlen(":ids=") + strlen(ids);
	info = malloc(info_len + 1);
	if (info == NULL)
		goto done;
	snprintf(info, info_len + 1, "%stables=%s:ids=%s", INFO_PREFIX, t, ids);
	if (hkdf_sha256(master, master_len,
					(const unsigned char *) mission_id, strlen(mission_id),
					(const unsigned char *) info, info_len, out, MDK_LEN))
		rc = MDK_OK;
done:
	free(t);
	free(ids);
	free(info);
	return rc;
}

/* Collect a JSON array of strings; false when it is not one. */
static bool
string_array(json_object *arr, const char ***items, size_t *n)
{
	size_t		i;

	*items = NULL;
	*n = 0;
	if (arr == NULL || !json_object_is_type(arr, json_type_array))
		return false;
	*n = json_object_array_length(arr);
	*items = malloc((*n ? *n : 1) * sizeof(char *));
	if (*items == NULL)
		return false;
	for (i = 0; i < *n; i++)
	{
		json_object *e = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(e, json_type_string) ||
			strlen(json_object_get_string(e)) != (size_t) json_object_get_string_len(e))
		{
			free(*items);
			*items = NULL;
			return false;
		}
		(*items)[i] = json_object_get_string(e);
	}
	return true;
}

MdkResult
mdk_derive_json(const unsigned char *master, size_t master_len,
				const char *derivation_json, size_t json_len,
				unsigned char out[MDK_LEN])
{
	json_object *root;
	json_object *v;
	const char **tables = NULL;
	const char **ids = NULL;
	size_t		nt;
	size_t		ni;
	MdkResult	rc = MDK_BAD_DERIVATION;

	if (master == NULL || master_len != MASTER_KEY_LEN)
		return MDK_BAD_MASTER_KEY;
	root = mana_json_parse_strict(derivation_json, json_len);
	if (root == NULL || !json_object_is_type(root, json_type_object))
		goto done;
	if (!json_object_object_get_ex(root, "version", &v) ||
		!json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "v1") != 0)
	{
		rc = MDK_BAD_VERSION;
		goto done;
	}
	if (!json_object_object_get_ex(root, "missionId", &v) ||
		!json_object_is_type(v, json_type_string) ||
		strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v) ||
		!string_array(json_object_object_get(root, "tables"), &tables, &nt) ||
		!string_array(json_object_object_get(root, "recordIds"), &ids, &ni))
		goto done;
	rc = mdk_derive(master, master_len, json_object_get_string(v),
					tables, nt, ids, ni, out);
done:
	free(tables);
	free(ids);
	json_object_put(root);
	return rc;
}

const char *
mdk_result_message(MdkResult rc)
{
	switch (rc)
	{
		case MDK_OK:
			return "ok";
		case MDK_BAD_MASTER_KEY:
			return "The master key must be exactly 32 bytes.";
		case MDK_BAD_VERSION:
			return "Only derivation version \"v1\" is supported.";
		case MDK_BAD_DERIVATION:
			return "The derivation must be an object with missionId (string), tables and recordIds (arrays of strings).";
		case MDK_INTERNAL:
			break;
	}
	return "The key derivation failed inside OpenSSL.";
}
