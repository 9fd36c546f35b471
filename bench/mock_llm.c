/*
 * mock_llm.c: the bench's OpenAI-compatible mock LLM, one thread, poll(2),
 * HTTP/1.1 keep-alive, on 127.0.0.1 only.
 *
 * Owns answering the planner's two protocols the way tests/mock_llm.py
 * does in mode ok (json: a fenced plan with one create_task step; tools:
 * round 1 one valid call of create_task, else of the first function
 * offered, round 2 and later a stop with a summary), plus what a real
 * provider adds and the Python mock cannot afford:
 *   - latency: fixed (latency_ms) or drawn per request from a seeded
 *     lognormal (median latency_median_ms, 99th percentile latency_p99_ms);
 *   - limits: requests and tokens per minute as token buckets refilled
 *     continuously; a request that would overdraw either gets 429 with
 *     Retry-After and OpenAI's x-ratelimit-limit/remaining/reset-requests
 *     and -tokens headers (sent on every answer, as OpenAI does);
 *   - counts: requests, statuses, tokens received and answered per
 *     conversation (keyed by its user message: mean and p95), tokens received (approximated as request
 *     body bytes / 4, the ratio documented in bench/README.md), bytes that
 *     repeat the previous request's leading bytes, latencies summed.
 * It never parses a request body as a whole: it finds the model, counts
 * assistant messages (the round) and, in round 1 of the tools protocol,
 * parses only the one function entry it calls.  Never prints a request
 * (a bearer key may be in its headers); exits when its parent is gone or
 * after --max-lifetime seconds.
 *
 *   POST /v1/chat/completions, POST /__control (JSON options, below),
 *   GET /__stats, POST /__reset (counters and buckets).
 * /__control options: latency_ms, latency ("fixed" | "lognormal"),
 * latency_median_ms, latency_p99_ms, rpm, tpm (0 = no limit), seed.
 *
 * Build: make -C bench mock_llm (bench/tick does it when stale).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "mock_llm.h"

#define MAX_CONNS 1024
#define MAX_BODY (4 * 1024 * 1024)

typedef enum
{
	C_READ, C_DELAY, C_WRITE
} ConnState;

typedef struct Conn
{
	int			fd;
	ConnState	state;
	char	   *in;
	size_t		in_len, in_cap;
	char	   *out;
	size_t		out_len, out_off;
	double		send_at;
	bool		chat;			/* counts as in flight */
} Conn;

static struct
{
	double		latency_ms;
	int			lognormal;
	double		median_ms, p99_ms;
	double		rpm, tpm;
	uint64_t	rng;
} opt = {0, 0, 2000, 20000, 0, 0, 42};

static struct
{
	long		requests, status200, status429, status_other;
	long		in_flight, max_in_flight;
	double		tokens_in, tokens_in_ok, bytes_in, bytes_prefix, tokens_out;
	double		latency_sum_ms, latency_max_ms;
	long		after_first_minute, after_first_minute_429;
	double		first_at, last_at;
} st;

static double bucket_req, bucket_tok, bucket_at;

static char *prev_body;
static size_t prev_len;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
uniform01(void)
{
	/* xorshift64*, seeded: the same seed gives the same latencies */
	opt.rng ^= opt.rng >> 12;
	opt.rng ^= opt.rng << 25;
	opt.rng ^= opt.rng >> 27;
	return ((opt.rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* One latency in ms: lognormal with the given median and 99th percentile. */
static double
draw_latency(void)
{
	double		u1, u2, z, sigma;

	if (!opt.lognormal)
		return opt.latency_ms;
	u1 = uniform01();
	u2 = uniform01();
	if (u1 < 1e-300)
		u1 = 1e-300;
	z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
	sigma = log(opt.p99_ms / opt.median_ms) / 2.326348;
	return opt.median_ms * exp(sigma * z);
}

static void
reset_buckets(void)
{
	bucket_req = opt.rpm;
	bucket_tok = opt.tpm;
	bucket_at = now_s();
}

static void
refill(double now)
{
	double		dt = now - bucket_at;

	bucket_at = now;
	if (opt.rpm > 0 && (bucket_req += dt * opt.rpm / 60) > opt.rpm)
		bucket_req = opt.rpm;
	if (opt.tpm > 0 && (bucket_tok += dt * opt.tpm / 60) > opt.tpm)
		bucket_tok = opt.tpm;
}

/* OpenAI's duration format: "1s", "6m0s", "20ms". */
static void
fmt_reset(char *buf, size_t len, double s)
{
	if (s < 1)
		snprintf(buf, len, "%dms", (int) ceil(s * 1000));
	else if (s < 60)
		snprintf(buf, len, "%.3gs", s);
	else
		snprintf(buf, len, "%dm%ds", (int) (s / 60), (int) fmod(s, 60));
}

static void
limit_headers(char *buf, size_t len)
{
	char		rr[32], rt[32];
	size_t		n = 0;

	buf[0] = '\0';
	if (opt.rpm > 0)
	{
		fmt_reset(rr, sizeof(rr), (opt.rpm - bucket_req) * 60 / opt.rpm);
		n += snprintf(buf + n, len - n,
					  "x-ratelimit-limit-requests: %.0f\r\nx-ratelimit-remaining-requests: %.0f\r\n"
					  "x-ratelimit-reset-requests: %s\r\n", opt.rpm, floor(bucket_req), rr);
	}
	if (opt.tpm > 0 && n < len)
	{
		fmt_reset(rt, sizeof(rt), (opt.tpm - bucket_tok) * 60 / opt.tpm);
		snprintf(buf + n, len - n,
				 "x-ratelimit-limit-tokens: %.0f\r\nx-ratelimit-remaining-tokens: %.0f\r\n"
				 "x-ratelimit-reset-tokens: %s\r\n", opt.tpm, floor(bucket_tok), rt);
	}
}

static void
respond(Conn *c, int status, const char *extra, const char *body)
{
	size_t		blen = strlen(body);
	size_t		cap = blen + strlen(extra) + 256;

	free(c->out);
	c->out = malloc(cap);
	c->out_len = snprintf(c->out, cap,
						  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n%s",
						  status, status == 200 ? "OK" : status == 429 ? "Too Many Requests" : "Error",
						  blen, extra, body);
	c->out_off = 0;
}

static void
chat(Conn *c, char *body, size_t len)
{
	double		now = now_s();
	double		tokens = len / BYTES_PER_TOKEN;
	char		hdr[512], extra[600], model[128] = "mock";
	size_t		common = 0;

	st.requests++;
	if (st.first_at == 0)
		st.first_at = now;
	st.last_at = now;
	st.tokens_in += tokens;
	st.bytes_in += len;
	while (common < len && common < prev_len && body[common] == prev_body[common])
		common++;
	st.bytes_prefix += common;
	free(prev_body);
	prev_body = malloc(len);
	memcpy(prev_body, body, len);
	prev_len = len;
	if (now - st.first_at >= 60)
		st.after_first_minute++;

	refill(now);
	if ((opt.rpm > 0 && bucket_req < 1) || (opt.tpm > 0 && bucket_tok < tokens))
	{
		double		wait_r = opt.rpm > 0 && bucket_req < 1 ? (1 - bucket_req) * 60 / opt.rpm : 0;
		double		wait_t = opt.tpm > 0 && bucket_tok < tokens ?
			(tokens - bucket_tok) * 60 / opt.tpm : 0;

		limit_headers(hdr, sizeof(hdr));
		snprintf(extra, sizeof(extra), "Retry-After: %d\r\n%s",
				 (int) ceil(wait_r > wait_t ? wait_r : wait_t), hdr);
		st.status429++;
		if (now - st.first_at >= 60)
			st.after_first_minute_429++;
		respond(c, 429, extra, "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}");
		c->state = C_WRITE;
		return;
	}
	if (opt.rpm > 0)
		bucket_req -= 1;
	if (opt.tpm > 0)
		bucket_tok -= tokens;
	st.tokens_in_ok += tokens;
	st.status200++;
	limit_headers(hdr, sizeof(hdr));
	mock_find_string(body, "\"model\":\"", model, sizeof(model));
	{
		char	   *answer = mock_chat_answer(body, model, (int) tokens);
		double		lat = draw_latency();

		st.tokens_out += strlen(answer) / BYTES_PER_TOKEN;
		mock_conv_add(body, tokens, strlen(answer) / BYTES_PER_TOKEN);
		respond(c, 200, hdr, answer);
		free(answer);
		st.latency_sum_ms += lat;
		if (lat > st.latency_max_ms)
			st.latency_max_ms = lat;
		c->send_at = now + lat / 1000.0;
		c->state = lat > 0 ? C_DELAY : C_WRITE;
		c->chat = true;
		if (++st.in_flight > st.max_in_flight)
			st.max_in_flight = st.in_flight;
	}
}

static void
control(Conn *c, const char *body)
{
	json_object *req = json_tokener_parse(body), *v;
	char		out[512];

	if (req == NULL || !json_object_is_type(req, json_type_object))
	{
		json_object_put(req);
		respond(c, 400, "", "{\"error\":\"control body must be an object\"}");
		return;
	}
	if (json_object_object_get_ex(req, "latency_ms", &v))
	{
		opt.latency_ms = json_object_get_double(v);
		opt.lognormal = 0;
	}
	if (json_object_object_get_ex(req, "latency", &v))
		opt.lognormal = !strcmp(json_object_get_string(v), "lognormal");
	if (json_object_object_get_ex(req, "latency_median_ms", &v))
		opt.median_ms = json_object_get_double(v);
	if (json_object_object_get_ex(req, "latency_p99_ms", &v))
		opt.p99_ms = json_object_get_double(v);
	if (json_object_object_get_ex(req, "rpm", &v))
		opt.rpm = json_object_get_double(v);
	if (json_object_object_get_ex(req, "tpm", &v))
		opt.tpm = json_object_get_double(v);
	if (json_object_object_get_ex(req, "seed", &v))
		opt.rng = (uint64_t) json_object_get_int64(v) * 2654435761ULL + 1;
	json_object_put(req);
	reset_buckets();
	snprintf(out, sizeof(out), "{\"latency_ms\":%g,\"latency\":\"%s\",\"latency_median_ms\":%g,"
			 "\"latency_p99_ms\":%g,\"rpm\":%g,\"tpm\":%g}", opt.latency_ms,
			 opt.lognormal ? "lognormal" : "fixed", opt.median_ms, opt.p99_ms, opt.rpm, opt.tpm);
	respond(c, 200, "", out);
}

static void
stats(Conn *c)
{
	char		out[1536];
	double		in_mean, in_p95, out_mean, out_p95;
	long		nconv;
	int			len;

	mock_conv_summary(0, &in_mean, &in_p95, &nconv);
	mock_conv_summary(1, &out_mean, &out_p95, &nconv);
	len = snprintf(out, sizeof(out),
			 "{\"requests\":%ld,\"by_status\":{\"200\":%ld,\"429\":%ld,\"other\":%ld},"
			 "\"in_flight\":%ld,\"max_in_flight\":%ld,\"tokens_in\":%.0f,\"tokens_in_answered\":%.0f,"
			 "\"tokens_out\":%.0f,\"bytes_in\":%.0f,\"bytes_prefix_repeated\":%.0f,"
			 "\"latency_sum_ms\":%.1f,\"latency_max_ms\":%.1f,\"requests_after_first_minute\":%ld,"
			 "\"status429_after_first_minute\":%ld,\"seconds_first_to_last\":%.3f,"
			 "\"bytes_per_token\":%g}",
			 st.requests, st.status200, st.status429, st.status_other, st.in_flight,
			 st.max_in_flight, st.tokens_in, st.tokens_in_ok, st.tokens_out, st.bytes_in,
			 st.bytes_prefix, st.latency_sum_ms, st.latency_max_ms, st.after_first_minute,
			 st.after_first_minute_429, st.last_at - st.first_at, BYTES_PER_TOKEN);
	snprintf(out + len - 1, sizeof(out) - len + 1,
			 ",\"conversations\":%ld,\"tokens_in_per_conversation\":{\"mean\":%.1f,\"p95\":%.0f},"
			 "\"tokens_out_per_conversation\":{\"mean\":%.1f,\"p95\":%.0f}}",
			 nconv, in_mean, in_p95, out_mean, out_p95);
	respond(c, 200, "", out);
}

/* A whole request in c->in: route it.  False: not complete yet. */
static bool
handle(Conn *c)
{
	char	   *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	char	   *cl, *body;
	size_t		blen = 0, hlen;
	char		method[8] = "", path[64] = "";

	if (end == NULL)
		return false;
	hlen = end + 4 - c->in;
	*end = '\0';
	cl = strcasestr(c->in, "\r\ncontent-length:");
	if (cl)
		blen = strtoul(cl + 17, NULL, 10);
	*end = '\r';
	if (blen > MAX_BODY || c->in_len < hlen + blen)
		return false;
	sscanf(c->in, "%7s %63s", method, path);
	body = malloc(blen + 1);
	memcpy(body, c->in + hlen, blen);
	body[blen] = '\0';
	memmove(c->in, c->in + hlen + blen, c->in_len - hlen - blen);
	c->in_len -= hlen + blen;
	c->state = C_WRITE;
	if (!strcmp(path, "/v1/chat/completions") && !strcmp(method, "POST"))
		chat(c, body, blen);
	else if (!strcmp(path, "/__control"))
		control(c, body);
	else if (!strcmp(path, "/__stats"))
		stats(c);
	else if (!strcmp(path, "/__reset"))
	{
		memset(&st, 0, sizeof(st));
		mock_conv_reset();
		reset_buckets();
		respond(c, 200, "", "{\"ok\":true}");
	}
	else
	{
		st.status_other++;
		respond(c, 404, "", "{\"error\":\"not found\"}");
	}
	free(body);
	return true;
}

static void
close_conn(Conn *c)
{
	if (c->chat && c->state != C_READ)
		st.in_flight--;
	close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

int
main(int argc, char **argv)
{
	static Conn conns[MAX_CONNS];
	static struct pollfd pfd[MAX_CONNS + 1];
	const char *port_file = NULL;
	double		max_life = 3600, started = now_s();
	pid_t		parent = getppid();
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t	alen = sizeof(addr);
	int			lfd, one = 1;

	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (!strcmp(argv[i], "--port-file"))
			port_file = argv[i + 1];
		else if (!strcmp(argv[i], "--latency"))
			opt.latency_ms = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--max-lifetime"))
			max_life = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			opt.rng = strtoull(argv[i + 1], NULL, 10) * 2654435761ULL + 1;
		else if (!strcmp(argv[i], "--port"))
			addr.sin_port = htons(atoi(argv[i + 1]));
	}
	signal(SIGPIPE, SIG_IGN);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) != 0 || listen(lfd, 512) != 0)
	{
		perror("mock_llm: bind");
		return 1;
	}
	getsockname(lfd, (struct sockaddr *) &addr, &alen);
	if (port_file)
	{
		char		tmp[4096];
		FILE	   *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		fprintf(f, "%d\n", ntohs(addr.sin_port));
		fclose(f);
		rename(tmp, port_file);
	}
	printf("%d\n", ntohs(addr.sin_port));
	fflush(stdout);
	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;
	reset_buckets();

	for (;;)
	{
		double		now = now_s(), next = now + 0.2;
		int			n = 0, timeout;
		int			idx[MAX_CONNS];

		if (now - started > max_life || getppid() != parent)
			return 0;
		pfd[n++] = (struct pollfd) {.fd = lfd, .events = POLLIN};
		for (int i = 0; i < MAX_CONNS; i++)
		{
			Conn	   *c = &conns[i];

			if (c->fd < 0)
				continue;
			if (c->state == C_DELAY && c->send_at <= now)
				c->state = C_WRITE;
			if (c->state == C_DELAY)
			{
				if (c->send_at < next)
					next = c->send_at;
				continue;
			}
			idx[n] = i;
			pfd[n++] = (struct pollfd) {.fd = c->fd, .events = c->state == C_WRITE ? POLLOUT : POLLIN};
		}
		timeout = (int) ((next - now) * 1000) + 1;
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			return 1;
		if (pfd[0].revents & POLLIN)
		{
			int			fd;

			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			{
				int			k = 0;

				while (k < MAX_CONNS && conns[k].fd >= 0)
					k++;
				if (k == MAX_CONNS)
				{
					close(fd);
					continue;
				}
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				conns[k].fd = fd;
				conns[k].state = C_READ;
			}
		}
		for (int j = 1; j < n; j++)
		{
			Conn	   *c = &conns[idx[j]];

			if (!pfd[j].revents)
				continue;
			if (c->state == C_READ)
			{
				ssize_t		r;

				if (c->in_cap - c->in_len < 65536)
				{
					c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
					c->in = realloc(c->in, c->in_cap);
				}
				r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
				if (r <= 0)
				{
					if (r < 0 && (errno == EAGAIN || errno == EINTR))
						continue;
					close_conn(c);
					continue;
				}
				c->in_len += r;
				if (c->in_len > MAX_BODY + 65536)
				{
					close_conn(c);
					continue;
				}
				handle(c);
			}
			else if (c->state == C_WRITE)
			{
				ssize_t		w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

				if (w < 0)
				{
					if (errno != EAGAIN && errno != EINTR)
						close_conn(c);
					continue;
				}
				c->out_off += w;
				if (c->out_off == c->out_len)
				{
					if (c->chat)
						st.in_flight--;
					c->chat = false;
					c->state = C_READ;
					/* a pipelined request already read */
					if (c->in_len > 0)
						handle(c);
				}
			}
		}
	}
}
