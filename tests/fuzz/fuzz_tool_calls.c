/*
 * fuzz_tool_calls.c: libFuzzer target for the tools-protocol answer
 * parser and call validator (tool_calls.h) and the round messages built
 * from its result (tool_messages.h).  Any byte string is a possible LLM
 * answer; nothing may crash, read out of bounds or leak, and the result
 * must hold what the planner loop relies on: a valid call has a known
 * name, object params without "rationale" and a non-blank rationale; an
 * invalid one has a code and an error text; ids are non-empty and
 * unique; n_valid counts the valid calls; the next round's messages
 * answer every call exactly once.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tool_calls.h"
#include "tool_messages.h"
#include "tool_schema.h"

static json_object *offered;

static void
offer(const char *name, const char *params)
{
	char		err[TOOL_SCHEMA_ERROR_LEN];
	json_object *p = json_tokener_parse(params);

	json_object_array_add(offered, tool_schema_function(name, "d", p, err, sizeof(err)));
	json_object_put(p);
}

static void
setup(void)
{
	if (offered)
		return;
	offered = json_object_new_array();
	offer("create_task", "[{\"name\":\"title\",\"type\":\"string\",\"required\":true},"
		  "{\"name\":\"priority\",\"type\":\"string\",\"enum\":[\"low\",\"high\"]}]");
	offer("log_mood", "[{\"name\":\"level\",\"type\":\"number\",\"required\":true},"
		  "{\"name\":\"n\",\"type\":\"integer\",\"enum\":[1,2]},"
		  "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"a\",\"type\":\"array\"},"
		  "{\"name\":\"o\",\"type\":\"object\"}]");
	offer("undo_drink", "[]");
}

static bool
blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char) *s))
			return false;
	return true;
}

static void
check_call(const ToolCall *c, const ToolResponse *r, int i)
{
	if (c->id == NULL || c->id[0] == '\0' || c->name == NULL || c->arguments == NULL)
		abort();
	for (int j = 0; j < i; j++)
		if (strcmp(r->calls[j].id, c->id) == 0)
			abort();
	if (c->ok)
	{
		if (strcmp(c->name, "create_task") && strcmp(c->name, "log_mood") &&
			strcmp(c->name, "undo_drink"))
			abort();
		if (!json_object_is_type(c->params, json_type_object) ||
			json_object_object_get_ex(c->params, "rationale", NULL) ||
			c->rationale == NULL || blank(c->rationale))
			abort();
	}
	else if (c->code[0] == '\0' || c->error[0] == '\0' || c->params || c->rationale)
		abort();
}

static void
check_messages(const ToolResponse *r)
{
	json_object *msgs = tool_messages_initial("s", "u");
	char	   *body;

	if (!tool_messages_append_round(msgs, r) ||
		json_object_array_length(msgs) != (size_t) (3 + r->n_calls))
		abort();
	body = tool_request_body("m", 0.3, msgs, offered);
	if (body == NULL)
		abort();
	free(body);
	json_object_put(msgs);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ToolResponse r;
	int			valid = 0;

	setup();
	/* Not NUL-terminated on purpose: the parser must respect size. */
	if (tool_response_parse((const char *) data, size, offered, &r))
	{
		if (r.n_calls < 0 || r.n_calls > TOOL_CALLS_MAX_PER_MESSAGE)
			abort();
		for (int i = 0; i < r.n_calls; i++)
		{
			check_call(&r.calls[i], &r, i);
			valid += r.calls[i].ok;
		}
		if (valid != r.n_valid || (r.n_calls > 0) != (r.finish == TOOL_FINISH_CALLS))
			abort();
		check_messages(&r);
	}
	else if (r.reason[0] == '\0')
		abort();
	tool_response_free(&r);
	return 0;
}
