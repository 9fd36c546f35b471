/*
 * test_llm_client.c: the libcurl multi client against tests/mock_llm.py on
 * loopback (started here on a kernel-chosen port, killed on exit).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <json-c/json.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "llm_client.h"
#include "mock_llm.h"
#include "tap.h"

/* The Authorization header of the last recorded request, or NULL. */
static char *
last_authorization(void)
{
	json_object *reqs = mock_call("/__requests", NULL);
	json_object *last,
			   *headers,
			   *auth;
	char	   *result = NULL;
	size_t		n;

	if (reqs && (n = json_object_array_length(reqs)) > 0)
	{
		last = json_object_array_get_idx(reqs, n - 1);
		if (json_object_object_get_ex(last, "headers", &headers) &&
			json_object_object_get_ex(headers, "Authorization", &auth))
			result = strdup(json_object_get_string(auth));
	}
	json_object_put(reqs);
	return result;
}

static LlmClientConfig
base_config(void)
{
	LlmClientConfig c = {0};

	c.url = mock_url;
	c.model = "gpt-4o-mini";
	c.temperature = 0.3;
	c.connect_timeout_ms = 2000;
	c.timeout_ms = 10000;
	c.max_response_bytes = 1024 * 1024;
	c.max_parallel = 8;
	return c;
}

static LlmRequest *
make_requests(int n, const char *user)
{
	LlmRequest *r = calloc(n, sizeof(LlmRequest));
	int			i;

	for (i = 0; i < n; i++)
	{
		r[i].system = "Du bist ein Planer.";
		r[i].user = user;
	}
	return r;
}

static void
free_requests(LlmRequest *r, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		llm_request_clear(&r[i]);
	free(r);
}

/* Run one request with user message `user`; returns elapsed seconds. */
static double
run_one(LlmClientConfig *cfg, LlmRequest *r)
{
	double		t0 = now_s();

	llm_client_run(cfg, r, 1, NULL, NULL);
	return now_s() - t0;
}

static void
test_build_and_parse(void)
{
	char	   *body = llm_build_chat_request("m1", 0.3, "sys \"q\"", "usr ü");
	json_object *o = json_tokener_parse(body);
	json_object *v,
			   *msgs;
	char	   *content;
	int64_t		tokens;
	char		err[LLM_ERROR_LEN];
	static const char good[] = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}],\"usage\":{\"total_tokens\":7}}";
	static const char nousage[] = "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}";
	char	   *deep;
	int			i;

	ok(o && json_object_object_get_ex(o, "model", &v) &&
	   strcmp(json_object_get_string(v), "m1") == 0, "request body carries the model");
	ok(strstr(body, "\"temperature\":0.3") != NULL, "temperature serialized as 0.3: %s", body);
	ok(json_object_object_get_ex(o, "messages", &msgs) &&
	   json_object_array_length(msgs) == 2 &&
	   strcmp(json_object_get_string(json_object_object_get(json_object_array_get_idx(msgs, 0), "role")), "system") == 0 &&
	   strcmp(json_object_get_string(json_object_object_get(json_object_array_get_idx(msgs, 1), "content")), "usr ü") == 0,
	   "messages: system then user, content intact");
	json_object_put(o);
	free(body);

	ok(llm_parse_chat_response(good, strlen(good), &content, &tokens, err, sizeof(err)) &&
	   strcmp(content, "hi") == 0 && tokens == 7, "answer parsed: content and total_tokens");
	free(content);
	ok(llm_parse_chat_response(nousage, strlen(nousage), &content, &tokens, err, sizeof(err)) &&
	   tokens == -1, "no usage: total_tokens -1");
	free(content);
	ok(!llm_parse_chat_response("{\"a\":1} x", 9, &content, &tokens, err, sizeof(err)) &&
	   strstr(err, "not JSON"), "trailing garbage refused");
	ok(!llm_parse_chat_response("{\"choices\":[]}", 14, &content, &tokens, err, sizeof(err)) &&
	   strstr(err, "no choices"), "empty choices refused");
	ok(!llm_parse_chat_response("{\"choices\":[{\"message\":{\"content\":null}}]}", 42, &content, &tokens, err, sizeof(err)) &&
	   strstr(err, "message.content"), "null content refused: %s", err);
	deep = malloc(20001);
	for (i = 0; i < 10000; i++)
		deep[i] = '[';
	for (; i < 20000; i++)
		deep[i] = ']';
	deep[20000] = '\0';
	ok(!llm_parse_chat_response(deep, 20000, &content, &tokens, err, sizeof(err)),
	   "nesting 10000 deep refused without crashing");
	free(deep);
}

static void
test_concurrency(void)
{
	LlmClientConfig cfg = base_config();
	LlmRequest *r = make_requests(50, "Plane etwas.");
	double		t0,
				elapsed;
	int			i,
				good = 0,
				tokens_ok = 0;

	mock_reset();
	mock_control("{\"latency_ms\":200}");
	cfg.max_parallel = 64;
	t0 = now_s();
	ok(llm_client_run(&cfg, r, 50, NULL, NULL) == 0, "50 calls: batch finished");
	elapsed = now_s() - t0;
	for (i = 0; i < 50; i++)
	{
		good += r[i].ok && r[i].http_status == 200 && r[i].attempts == 1 &&
			strstr(r[i].content, "```json") != NULL;
		tokens_ok += r[i].total_tokens == 42;
	}
	ok(good == 50, "50 calls: all ok (%d)", good);
	ok(tokens_ok == 50, "50 calls: total_tokens read");
	ok(elapsed < 1.0, "50 calls with 200 ms latency took %.3f s (< 1 s, not 10 s)", elapsed);
	ok(mock_stat("max_in_flight") >= 25, "mock saw %d in flight at once", mock_stat("max_in_flight"));
	free_requests(r, 50);

	/* The bound holds: 8 calls, 4 at a time, take two latency periods. */
	mock_reset();
	mock_control("{\"latency_ms\":200}");
	cfg.max_parallel = 4;
	r = make_requests(8, "Plane etwas.");
	t0 = now_s();
	llm_client_run(&cfg, r, 8, NULL, NULL);
	elapsed = now_s() - t0;
	ok(mock_stat("max_in_flight") <= 4, "max_parallel 4: mock saw at most %d in flight",
	   mock_stat("max_in_flight"));
	ok(elapsed >= 0.39 && elapsed < 1.5, "max_parallel 4: 8 calls took %.3f s (two rounds)", elapsed);
	free_requests(r, 8);
}

static void
test_retries(void)
{
	LlmClientConfig cfg = base_config();
	LlmRequest *r = make_requests(3, NULL);
	double		elapsed;

	mock_reset();
	r[0].user = "erst Fehler [mock:fail-n-then-ok:2]";
	r[1].user = "normal";
	r[2].user = "immer kaputt [mock:garbage]";
	llm_client_run(&cfg, r, 3, NULL, NULL);
	ok(r[0].ok && r[0].attempts == 3 && r[0].http_status == 200,
	   "500, 500, then 200: retried, ok after %d attempts", r[0].attempts);
	ok(r[1].ok && r[1].attempts == 1, "a healthy call in the same batch is unaffected");
	ok(!r[2].ok && strstr(r[2].error, "not JSON") && r[2].attempts == 1,
	   "non-JSON body: refused, not retried (%s)", r[2].error);
	free_requests(r, 3);

	r = make_requests(1, "[mock:429-n-then-ok:1]");
	elapsed = run_one(&cfg, r);
	ok(r[0].ok && r[0].attempts == 2, "429 then 200: ok after %d attempts", r[0].attempts);
	ok(elapsed >= 0.95 && elapsed < 2.5, "Retry-After: 1 honoured (%.3f s)", elapsed);
	free_requests(r, 1);

	cfg.timeout_ms = 1500;
	mock_control("{\"retry_after\":5}");
	r = make_requests(1, "[mock:429]");
	elapsed = run_one(&cfg, r);
	ok(!r[0].ok && r[0].http_status == 429 && strstr(r[0].error, "Retry-After beyond"),
	   "429 with Retry-After past the deadline fails at once: %s", r[0].error);
	ok(elapsed < 0.5, "... without waiting (%.3f s)", elapsed);
	free_requests(r, 1);

	cfg.timeout_ms = 20000;
	cfg.max_attempts = 3;
	r = make_requests(1, "[mock:error500]");
	elapsed = run_one(&cfg, r);
	ok(!r[0].ok && r[0].attempts == 3 && strstr(r[0].error, "HTTP 500 after 3 attempts"),
	   "persistent 500: gives up after max_attempts: %s", r[0].error);
	ok(elapsed > 0.3 && elapsed < 2.0, "... with backoff between attempts (%.3f s)", elapsed);
	free_requests(r, 1);

	cfg.timeout_ms = 1000;
	cfg.max_attempts = 0;
	r = make_requests(1, "[mock:error500]");
	elapsed = run_one(&cfg, r);
	ok(!r[0].ok && elapsed < 1.3, "persistent 500: retries stop at the deadline (%.3f s, %d attempts)",
	   elapsed, r[0].attempts);
	free_requests(r, 1);

	cfg = base_config();
	cfg.max_attempts = 2;
	r = make_requests(1, "[mock:down]");
	run_one(&cfg, r);
	ok(!r[0].ok && r[0].attempts == 2 && strstr(r[0].error, "connection dropped"),
	   "connection closed without answer: retried, then: %s", r[0].error);
	free_requests(r, 1);
}

static void
test_failures(void)
{
	LlmClientConfig cfg = base_config();
	LlmRequest *r;
	double		elapsed;
	int			s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	socklen_t	alen = sizeof(a);
	char		closed_url[64];

	/* A port nobody listens on: bind, read the number, close. */
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *) &a, sizeof(a));
	getsockname(s, (struct sockaddr *) &a, &alen);
	snprintf(closed_url, sizeof(closed_url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	close(s);
	cfg.url = closed_url;
	r = make_requests(1, "x");
	elapsed = run_one(&cfg, r);
	ok(!r[0].ok && r[0].http_status == 0 && strstr(r[0].error, "connect"),
	   "connection refused: %s", r[0].error);
	ok(elapsed < 1.0, "connection refused fails fast (%.3f s)", elapsed);
	free_requests(r, 1);

	cfg = base_config();
	cfg.timeout_ms = 800;
	r = make_requests(1, "[mock:hang]");
	elapsed = run_one(&cfg, r);
	ok(!r[0].ok && strstr(r[0].error, "timed out"), "server that never answers: %s", r[0].error);
	ok(elapsed >= 0.75 && elapsed < 1.5, "... within the deadline (%.3f s)", elapsed);
	free_requests(r, 1);

	cfg = base_config();
	r = make_requests(1, "[mock:huge]");
	elapsed = run_one(&cfg, r);
	ok(!r[0].ok && strstr(r[0].error, "larger than 1048576 bytes"), "20 MB answer: %s", r[0].error);
	ok(elapsed < 2.0, "... refused without reading it all (%.3f s)", elapsed);
	free_requests(r, 1);

	/* No Content-Length: only the write callback can stop it. */
	mock_control("{\"huge_no_length\":true}");
	r = make_requests(1, "[mock:huge]");
	elapsed = run_one(&cfg, r);
	ok(!r[0].ok && strstr(r[0].error, "larger than 1048576 bytes"),
	   "20 MB answer without Content-Length: %s", r[0].error);
	ok(elapsed < 2.0, "... cut off by the write callback (%.3f s)", elapsed);
	mock_control("{\"huge_no_length\":false}");
	free_requests(r, 1);

	r = make_requests(1, "[mock:malformed]");
	run_one(&cfg, r);
	ok(!r[0].ok && strstr(r[0].error, "no choices"), "JSON without choices: %s", r[0].error);
	free_requests(r, 1);

	r = make_requests(1, "[mock:no-plan]");
	run_one(&cfg, r);
	ok(r[0].ok && strstr(r[0].content, "keinen Plan"),
	   "an answer that is no plan is still an answer (the parser judges it)");
	free_requests(r, 1);

	r = make_requests(1, "[mock:redirect]");
	run_one(&cfg, r);
	ok(!r[0].ok && r[0].http_status == 302 && strstr(r[0].error, "redirect refused") &&
	   strstr(r[0].error, "ftp://"), "redirect to ftp:// refused: %s", r[0].error);
	free_requests(r, 1);

	mock_control("{\"redirect_to\":\"file:///etc/passwd\"}");
	r = make_requests(1, "[mock:redirect]");
	run_one(&cfg, r);
	ok(!r[0].ok && strstr(r[0].error, "file://") && !strstr(r[0].error, "passwd"),
	   "redirect to file:// refused, path not echoed: %s", r[0].error);
	ok(mock_stat("requests") >= 1, "the mock is still serving");
	free_requests(r, 1);
	mock_reset();

	cfg.url = "ftp://127.0.0.1/";
	r = make_requests(1, "x");
	ok(llm_client_run(&cfg, r, 1, NULL, NULL) == -1 && strstr(r[0].error, "http://"),
	   "ftp base URL refused: %s", r[0].error);
	free_requests(r, 1);
}

/*
 * A refused curl_easy_setopt fails that call with the option's name, and
 * nothing is sent: an over-long URL (libcurl refuses strings over 8 MB)
 * and a size cap libcurl cannot take (a transfer without its cap must
 * not run).
 */
static void
test_setopt_refused(void)
{
	LlmClientConfig cfg = base_config();
	LlmRequest *r;
	size_t		n = 9 * 1000 * 1000;
	char	   *long_url = malloc(n + 1);
	int			before;

	memcpy(long_url, mock_url, strlen(mock_url));
	memset(long_url + strlen(mock_url), 'a', n - strlen(mock_url));
	long_url[n] = '\0';
	before = mock_stat("requests");
	cfg.url = long_url;
	r = make_requests(1, "x");
	run_one(&cfg, r);
	ok(!r[0].ok && strstr(r[0].error, "CURLOPT_URL") && r[0].attempts == 0,
	   "URL libcurl refuses: the call fails naming the option: %.80s", r[0].error);
	free_requests(r, 1);
	free(long_url);

	cfg = base_config();
	cfg.max_response_bytes = SIZE_MAX;
	r = make_requests(2, "x");
	llm_client_run(&cfg, r, 2, NULL, NULL);
	ok(!r[0].ok && !r[1].ok && strstr(r[0].error, "CURLOPT_MAXFILESIZE_LARGE") &&
	   r[0].attempts == 0, "size cap libcurl refuses: every call fails: %s", r[0].error);
	ok(mock_stat("requests") == before, "nothing reached the endpoint (%d requests before, %d after)",
	   before, mock_stat("requests"));
	free_requests(r, 2);

	cfg = base_config();
	r = make_requests(1, "x");
	run_one(&cfg, r);
	ok(r[0].ok, "the next batch with a sane configuration succeeds");
	free_requests(r, 1);
}

static void
test_bearer(void)
{
	LlmClientConfig cfg = base_config();
	LlmRequest *r;
	char	   *auth;
	char		key[] = "sk-test-SECRET-0123456789";

	mock_reset();
	cfg.api_key = key;
	r = make_requests(1, "x");
	run_one(&cfg, r);
	auth = last_authorization();
	ok(auth && strcmp(auth, "Bearer sk-test-SECRET-0123456789") == 0,
	   "bearer header sent when a key is set");
	free(auth);
	free_requests(r, 1);

	r = make_requests(1, "[mock:error500]");
	cfg.max_attempts = 1;
	run_one(&cfg, r);
	ok(!r[0].ok && strstr(r[0].error, "SECRET") == NULL, "error text holds no key: %s", r[0].error);
	free_requests(r, 1);

	cfg.api_key = "";
	r = make_requests(1, "x");
	run_one(&cfg, r);
	auth = last_authorization();
	ok(auth == NULL, "no Authorization header without a key");
	free(auth);
	free_requests(r, 1);
}

static double abort_at;
static int	in_flight_at_abort = -1;

static bool
abort_after_deadline(void *arg)
{
	int		   *polls = arg;

	(*polls)++;
	if (now_s() < abort_at)
		return false;
	in_flight_at_abort = mock_stat("in_flight");
	return true;
}

static void
test_abort(void)
{
	LlmClientConfig cfg = base_config();
	LlmRequest *r = make_requests(12, "[mock:hang]");
	int			polls = 0,
				aborted = 0,
				i,
				rc;
	double		t0 = now_s(),
				elapsed;

	mock_reset();
	cfg.timeout_ms = 60000;
	cfg.max_parallel = 8;
	abort_at = t0 + 0.5;
	rc = llm_client_run(&cfg, r, 12, abort_after_deadline, &polls);
	elapsed = now_s() - t0;
	for (i = 0; i < 12; i++)
		aborted += !r[i].ok && strcmp(r[i].error, "aborted") == 0;
	ok(rc == 1, "abort callback: run reports aborted");
	ok(aborted == 12, "all 12 calls (8 in flight, 4 queued) aborted (%d)", aborted);
	ok(elapsed < 1.5, "abort honoured within a second (%.3f s after start, abort at 0.5)", elapsed);
	ok(polls >= 4, "abort callback polled often (%d times in %.2f s)", polls, elapsed);
	free_requests(r, 12);
	t0 = now_s();
	while (mock_stat("in_flight") != 0 && now_s() - t0 < 2)
		usleep(20000);
	ok(in_flight_at_abort == 8, "8 calls were hanging in the mock at abort time (%d)",
	   in_flight_at_abort);
	ok(mock_stat("in_flight") == 0, "the aborted connections are closed (mock in_flight 0 after %.2f s)",
	   now_s() - t0);

	/* The mock still answers: aborted connections did not wedge it. */
	r = make_requests(1, "x");
	run_one(&cfg, r);
	ok(r[0].ok, "a call after the abort succeeds");
	free_requests(r, 1);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IONBF, 0);
	start_mock();
	llm_client_global_init();
	test_build_and_parse();
	test_concurrency();
	test_retries();
	test_failures();
	test_setopt_refused();
	test_bearer();
	test_abort();
	stop_mock();
	return done_testing();
}
