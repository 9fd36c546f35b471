/*
 * jsonb_write.c: a jsonb object written straight into jsonb's binary
 * format (the layout of convertJsonbObject in PostgreSQL's jsonb_util.c).
 *
 * Owns the encoding only: a header, one JEntry per key and per value
 * (every JB_OFFSET_STRIDE'th carrying an end offset instead of a length),
 * the keys' bytes, then the values' (numerics and containers int-aligned).
 * A nested container value is copied byte for byte, never taken apart and
 * rebuilt, which is what makes this cheaper than pushJsonbValue and
 * JsonbValueToJsonb (the LWW fold's result, lww.c).  The output is
 * byte-identical to theirs for the same pairs.  Must never be given pairs
 * out of jsonb key order or with duplicate keys: it neither sorts nor
 * checks them (pushJsonbValue would).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "shared/jsonb_write.h"

static void
pad_to_int(StringInfo buf)
{
	while (buf->len != INTALIGN(buf->len))
		appendStringInfoCharMacro(buf, '\0');
}

/* Append one value; return its JEntry (type and length, padding included). */
static JEntry
write_value(StringInfo buf, const JsonbValue *v)
{
	int			start = buf->len;

	switch (v->type)
	{
		case jbvNull:
			return JENTRY_ISNULL;
		case jbvBool:
			return v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
		case jbvString:
			appendBinaryStringInfo(buf, v->val.string.val, v->val.string.len);
			return (JEntry) v->val.string.len;
		case jbvNumeric:
			pad_to_int(buf);
			appendBinaryStringInfo(buf, (const char *) v->val.numeric,
								   VARSIZE_ANY(v->val.numeric));
			return JENTRY_ISNUMERIC | (JEntry) (buf->len - start);
		case jbvBinary:
			/* a container keeps its own layout; its alignment is relative to its start */
			pad_to_int(buf);
			appendBinaryStringInfo(buf, (const char *) v->val.binary.data, v->val.binary.len);
			return JENTRY_ISCONTAINER | (JEntry) (buf->len - start);
		default:
			elog(ERROR, "jsonb_write: unexpected value type %d", (int) v->type);
	}
	return 0;					/* not reached */
}

static void
check_length(int64 len)
{
	if (len > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total size of jsonb object elements exceeds the maximum of %d bytes",
						JENTRY_OFFLENMASK)));
}

void
jsonb_write_object(StringInfo buf, const JsonbPairRef *pairs, int n)
{
	int			start = buf->len;
	uint32		header = (uint32) n | JB_FOBJECT;
	int			jentries;
	int64		total = 0;

	Assert(buf->len == INTALIGN(buf->len));
	appendBinaryStringInfo(buf, (const char *) &header, sizeof(header));
	jentries = buf->len;
	enlargeStringInfo(buf, (int) sizeof(JEntry) * 2 * n);
	buf->len += (int) sizeof(JEntry) * 2 * n;

	/* the keys, then the values: jsonb's order on disk */
	for (int i = 0; i < 2 * n; i++)
	{
		JEntry		meta;

		if (i < n)
		{
			appendBinaryStringInfo(buf, pairs[i].key, pairs[i].keylen);
			meta = (JEntry) pairs[i].keylen;
		}
		else
			meta = write_value(buf, pairs[i - n].value);
		total += JBE_OFFLENFLD(meta);
		check_length(total);
		if (i % JB_OFFSET_STRIDE == 0)
			meta = (meta & JENTRY_TYPEMASK) | (JEntry) total | JENTRY_HAS_OFF;
		memcpy(buf->data + jentries + i * sizeof(JEntry), &meta, sizeof(JEntry));
	}
	check_length(buf->len - start);
}

Jsonb *
jsonb_from_pairs(const JsonbPairRef *pairs, int n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	/* the varlena header; the object then starts int-aligned */
	appendStringInfoSpaces(&buf, VARHDRSZ);
	jsonb_write_object(&buf, pairs, n);
	SET_VARSIZE(buf.data, buf.len);
	return (Jsonb *) buf.data;
}
