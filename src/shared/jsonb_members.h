/*
 * jsonb_members.h: reading members of jsonb objects and building jsonb
 * objects member by member, the way every module of mana_ai does it.
 */
#ifndef MANA_AI_JSONB_MEMBERS_H
#define MANA_AI_JSONB_MEMBERS_H

#include "postgres.h"

#include "utils/jsonb.h"

/*
 * container ->> key, as SQL's operator: strings unquoted, numbers and
 * booleans as text, arrays and objects as JSON text.  NULL when c is NULL
 * or not an object, or the member is absent or JSON null.  palloc'd.
 */
extern char *jb_field_text(JsonbContainer *c, const char *key);

/* The same for a top-level member of jb (jb may be NULL). */
extern char *jb_member_text(Jsonb *jb, const char *key);

/* A top-level member that is an object, as its own Jsonb, or NULL. */
extern Jsonb *jb_member_object(Jsonb *jb, const char *key);

/* Whether jb is an object with key present and not JSON null. */
extern bool jb_has_member(Jsonb *jb, const char *key);

/* jsonb_in of a C string (ERROR when it is not JSON). */
extern Jsonb *jb_from_cstring(const char *s);

/* pushJsonbValue of a C string as seq (WJB_KEY, WJB_VALUE, WJB_ELEM); NULL: JSON null. */
extern void jb_push_text(JsonbParseState **state, JsonbIteratorToken seq, const char *s);

/*
 * One member of the object being built: key and a string (NULL: null), a
 * number (a float that is NaN or infinite: null) or a value.
 */
extern void jb_push_text_member(JsonbParseState **state, const char *key, const char *s);
extern void jb_push_int_member(JsonbParseState **state, const char *key, int64 n);
extern void jb_push_float_member(JsonbParseState **state, const char *key, double x);
extern void jb_push_value_member(JsonbParseState **state, const char *key, JsonbValue *v);

#endif
