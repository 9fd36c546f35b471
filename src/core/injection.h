/*
 * injection.h: prompt-injection markers in a planned step's parameters,
 * Postgres-free.
 *
 * A step's parameters end up in the user's data, which the planner reads
 * again as input next time (notes, tasks, the profile): text in them that
 * tries to steer the model ("ignore previous instructions", a "<system>"
 * tag, a "{{...}}" template) is flagged.  Owns the fixed list of markers
 * and the scan over every string (and key) of a JSON value, case-
 * insensitive, with runs of white space read as one space.  The result is
 * a marker label from a closed set, safe to log and to show the model; it
 * never quotes the text it found the marker in.  Never includes a
 * PostgreSQL header.
 */
#ifndef MANA_AI_INJECTION_H
#define MANA_AI_INJECTION_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/* mana_ai.injection_policy: what a flagged step becomes. */
typedef enum InjectionPolicy
{
	INJECTION_OFF,				/* not scanned */
	INJECTION_LOG,				/* planned; logged and counted */
	INJECTION_REFUSE			/* not planned; the model is told why */
} InjectionPolicy;

/*
 * The label of the first marker in text[0..len), or NULL: one of
 * "ignore-instructions", "forget-instructions", "new-instructions",
 * "role-override", "system-tag", "chat-template", "template-braces".
 */
extern const char *injection_marker_text(const char *text, size_t len);

/* The same over every string value and key of v (nesting bounded by json-c). */
extern const char *injection_marker(json_object *v);

#endif
