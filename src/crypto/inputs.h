/*
 * inputs.h: a resolved mission input, as the resolvers (SPEC 6) hand it
 * to the prompt builder (SPEC 7.3).  Plain C strings, palloc'd in the
 * caller's memory context; content is already truncated and plaintext.
 */
#ifndef MANA_AI_INPUTS_H
#define MANA_AI_INPUTS_H

typedef struct ResolvedInput
{
	char	   *module;			/* e.g. "goals", "notes" */
	char	   *table;			/* e.g. "companionGoals", "notes" */
	char	   *title;			/* the "### <module>/<table>: <title>" part */
	char	   *content;		/* the content line of SPEC 6 */
} ResolvedInput;

#endif
