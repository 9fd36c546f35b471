/*
 * bench_llm.c: requests per second through src/core/llm_client.c, and the
 * client's own CPU time per request (user + system of this process, so
 * the mock server's cost is not counted).
 *
 *   bench_llm URL TOTAL IN_FLIGHT
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "llm_client.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int
main(int argc, char **argv)
{
	LlmClientConfig cfg = {0};
	LlmRequest *reqs;
	int			total,
				good = 0,
				i;
	double		t0,
				c0,
				wall,
				cpu;

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s URL TOTAL IN_FLIGHT\n", argv[0]);
		return 2;
	}
	total = atoi(argv[2]);
	cfg.url = argv[1];
	cfg.model = "gpt-4o-mini";
	cfg.temperature = 0.3;
	cfg.connect_timeout_ms = 5000;
	cfg.timeout_ms = 60000;
	cfg.max_response_bytes = 1024 * 1024;
	cfg.max_parallel = atoi(argv[3]);
	reqs = calloc(total, sizeof(LlmRequest));
	for (i = 0; i < total; i++)
	{
		reqs[i].system = "Du bist ein Planer. Antworte mit einem ```json Block.";
		reqs[i].user = "Mission: Wohnung aufräumen. Ziel: jede Woche ein Zimmer.";
	}
	llm_client_global_init();
	t0 = now_s();
	c0 = cpu_s();
	llm_client_run(&cfg, reqs, total, NULL, NULL);
	wall = now_s() - t0;
	cpu = cpu_s() - c0;
	for (i = 0; i < total; i++)
	{
		good += reqs[i].ok;
		llm_request_clear(&reqs[i]);
	}
	printf("in_flight=%-3d requests=%d ok=%d wall=%.3fs rps=%.0f client_cpu_per_request=%.1fus\n",
		   cfg.max_parallel, total, good, wall, total / wall, cpu / total * 1e6);
	free(reqs);
	return good == total ? 0 : 1;
}
