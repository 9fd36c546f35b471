/*
 * mock_llm.h: start tests/mock_llm.py on a kernel-chosen loopback port
 * (killed at exit) and talk to its control API, for the unit tests of
 * the LLM client and the planner loop.  Static functions: each test
 * binary includes it once.
 */
#ifndef MANA_AI_TEST_MOCK_LLM_H
#define MANA_AI_TEST_MOCK_LLM_H

#include <curl/curl.h>
#include <json-c/json.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t mock_pid = 0;
static char mock_url[64];

static __attribute__((unused)) double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static __attribute__((unused)) void
stop_mock(void)
{
	if (mock_pid > 0)
	{
		kill(mock_pid, SIGTERM);
		waitpid(mock_pid, NULL, 0);
		mock_pid = 0;
	}
}

static __attribute__((unused)) void
start_mock(void)
{
	char		port_file[] = "/tmp/mock_llm_port_XXXXXX";
	const char *script = getenv("MOCK_LLM") ? getenv("MOCK_LLM") : "../mock_llm.py";
	int			fd = mkstemp(port_file);
	double		deadline = now_s() + 10;
	int			port = 0;

	close(fd);
	unlink(port_file);
	mock_pid = fork();
	if (mock_pid == 0)
	{
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execlp("python3", "python3", script, "--port-file", port_file,
			   "--max-lifetime", "300", (char *) NULL);
		_exit(127);
	}
	atexit(stop_mock);
	while (now_s() < deadline && port == 0)
	{
		FILE	   *f = fopen(port_file, "r");

		if (f)
		{
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (port == 0)
			usleep(20000);
	}
	unlink(port_file);
	if (port == 0)
	{
		printf("Bail out! mock_llm.py did not start\n");
		exit(1);
	}
	snprintf(mock_url, sizeof(mock_url), "http://127.0.0.1:%d", port);
}

/* --- talking to the mock's control API with plain libcurl easy --- */

static __attribute__((unused)) size_t
append_body(char *data, size_t size, size_t nmemb, void *arg)
{
	char	  **buf = arg;
	size_t		old = *buf ? strlen(*buf) : 0;

	*buf = realloc(*buf, old + size * nmemb + 1);
	memcpy(*buf + old, data, size * nmemb);
	(*buf)[old + size * nmemb] = '\0';
	return size * nmemb;
}

static __attribute__((unused)) json_object *
mock_call(const char *path, const char *post_body)
{
	CURL	   *h = curl_easy_init();
	char		url[128];
	char	   *body = NULL;
	json_object *result;

	snprintf(url, sizeof(url), "%s%s", mock_url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (post_body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post_body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_perform(h);
	curl_easy_cleanup(h);
	result = body ? json_tokener_parse(body) : NULL;
	free(body);
	return result;
}

static __attribute__((unused)) void
mock_control(const char *json)
{
	json_object *r = mock_call("/__control", json);

	json_object_put(r);
}

static __attribute__((unused)) void
mock_reset(void)
{
	json_object_put(mock_call("/__reset", "{}"));
	mock_control("{\"mode\":\"ok\",\"latency_ms\":0,\"retry_after\":1,"
				 "\"fail_status\":500,\"fail_n\":1,\"redirect_to\":\"ftp://127.0.0.1/plan\"}");
}

static __attribute__((unused)) int
mock_stat(const char *key)
{
	json_object *s = mock_call("/__stats", NULL);
	json_object *v;
	int			n = -1;

	if (s && json_object_object_get_ex(s, key, &v))
		n = json_object_get_int(v);
	json_object_put(s);
	return n;
}

#endif
