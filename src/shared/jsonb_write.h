/*
 * jsonb_write.h: a jsonb object written straight into jsonb's binary
 * format from pairs that are already unique and in jsonb key order.
 */
#ifndef MANA_AI_JSONB_WRITE_H
#define MANA_AI_JSONB_WRITE_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* One key and its value (a scalar, or a jbvBinary container copied as it is). */
typedef struct JsonbPairRef
{
	const char *key;
	int			keylen;
	const JsonbValue *value;
} JsonbPairRef;

/*
 * Append the object of pairs[0..n) to buf, whose length must be a
 * multiple of 4 (the object's start is int-aligned, as jsonb requires).
 * The pairs must be sorted in jsonb key order (shorter keys first, then
 * bytewise) without duplicates: nothing here sorts or checks them.
 */
extern void jsonb_write_object(StringInfo buf, const JsonbPairRef *pairs, int n);

/* A jsonb datum holding the object of pairs[0..n), in the current memory context. */
extern Jsonb *jsonb_from_pairs(const JsonbPairRef *pairs, int n);

#endif
