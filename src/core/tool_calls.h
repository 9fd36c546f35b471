/*
 * tool_calls.h: one round's answer in the tools protocol, validated,
 * Postgres-free.
 *
 * Owns reading a chat-completions answer (choices[0].message.content and
 * .tool_calls, choices[0].finish_reason, usage) and checking every
 * tool_calls entry against the functions that were offered (the "tools"
 * array of the request, as tool_schema.h builds it): known tool, arguments
 * a JSON object, required arguments present, types, enums, no unexpected
 * argument, a non-empty rationale, and last the web app executor's rules
 * (exec_rules.h).  A valid call becomes a step (tool
 * name, params without rationale, the rationale); an invalid one keeps an
 * error text the model reads in the next round.  The answer is hostile:
 * its size, the number of calls, each argument string and each id are
 * capped, nesting is bounded by json-c's tokener, and everything kept can
 * be stored as jsonb.  Never includes a PostgreSQL header, never parses
 * JSON by hand.
 */
#ifndef MANA_AI_TOOL_CALLS_H
#define MANA_AI_TOOL_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* A whole answer longer than this is refused before parsing. */
#define TOOL_CALLS_MAX_ANSWER	(1024 * 1024)
/* More calls than this in one message: the message is refused whole. */
#define TOOL_CALLS_MAX_PER_MESSAGE 20
/* One call's arguments string. */
#define TOOL_CALLS_MAX_ARGS		(64 * 1024)
/* A tool_call id (OpenAI's are ~30 characters). */
#define TOOL_CALLS_MAX_ID		128
#define TOOL_CALLS_ERROR_LEN	512

/* The text of the tool message answering a valid call. */
#define TOOL_CALLS_RECORDED "recorded for the user's review"

typedef struct ToolCall
{
	char	   *id;				/* malloc'd, non-empty, unique in the message */
	char	   *name;			/* malloc'd, as sent ("" when absent) */
	char	   *arguments;		/* malloc'd compact JSON text as sent, for the echo */
	bool		ok;
	/* ok: */
	json_object *params;		/* owned; the arguments without rationale */
	char	   *rationale;		/* malloc'd, not blank */
	/* !ok: the first problem's code, and every problem found, for the model */
	char		code[48];
	char		error[TOOL_CALLS_ERROR_LEN];
} ToolCall;

typedef enum ToolFinish
{
	TOOL_FINISH_CALLS,			/* the message has tool_calls: go on */
	TOOL_FINISH_STOP,			/* no calls, finish_reason "stop" or absent */
	TOOL_FINISH_LENGTH,			/* no calls, cut off ("length") */
	TOOL_FINISH_OTHER			/* no calls, any other finish_reason */
} ToolFinish;

typedef struct ToolResponse
{
	bool		ok;				/* false: the answer as a whole is unusable;
								 * then use nothing but reason and detail */
	char		reason[48];		/* !ok: a stable code such as "no-choices" */
	char		detail[160];	/* !ok: for humans */
	char	   *content;		/* malloc'd; NULL when null or absent */
	char		finish_reason[32];	/* as sent, "" when absent */
	ToolFinish	finish;
	int64_t		prompt_tokens;	/* -1 when absent */
	int64_t		completion_tokens;
	int64_t		total_tokens;	/* -1 when absent (then not summed) */
	int			n_calls;
	int			n_valid;
	ToolCall   *calls;			/* malloc'd, n_calls entries, in the order sent */
} ToolResponse;

/*
 * Check one message's tool_calls array (NULL: none) against offered (the
 * request's tools array).  Initialises *out, fills calls, n_calls,
 * n_valid and finish (CALLS or STOP); returns false (with
 * out->reason) when the array itself is unusable: not an array, more than
 * TOOL_CALLS_MAX_PER_MESSAGE entries, an entry that is not an object or
 * whose id is missing, too long or repeated (it could not be answered).
 */
extern bool tool_calls_check(json_object *tool_calls, json_object *offered,
							 ToolResponse *out);

/*
 * Parse a whole answer body of len bytes (need not be NUL-terminated) and
 * check its calls.  Returns out->ok; always free with tool_response_free.
 */
extern bool tool_response_parse(const char *body, size_t len,
								json_object *offered, ToolResponse *out);

/*
 * Mark call i invalid after the fact (e.g. the loop already has its 5
 * steps): its params and rationale are dropped, code and error set and
 * n_valid adjusted.  Nothing happens when i is out of range.
 */
extern void tool_response_reject(ToolResponse *res, int i, const char *code,
								 const char *error);

extern void tool_response_free(ToolResponse *res);

/*
 * Judge one call given as a parsed arguments object (the json protocol's
 * step: its params plus its rationale) by the very rules of a tool call:
 * the schema's, then the web app executor's (exec_rules.h).  Fills *call
 * (id stays NULL; free it with tool_call_clear); returns call->ok.
 */
extern bool tool_call_judge(json_object *offered, const char *name,
							json_object *args, ToolCall *call);

/* Free what tool_call_judge put into call. */
extern void tool_call_clear(ToolCall *call);

#endif
