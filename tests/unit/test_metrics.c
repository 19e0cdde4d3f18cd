/* Unit tests for the node's shared metrics and their exposition format. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "lib/metrics.h"
#include "tap.h"

static const char *names(void *arg, long long rule_id)
{
    (void)arg;
    return rule_id == 7 ? "docker-hub" : rule_id == 8 ? "we\"ird\\name\n" : NULL;
}

static const char *classes(int i)
{
    return i == 2 ? "timeout" : i == 3 ? "server error" : NULL;
}

/* The exposition of everything, as a heap string the caller frees. */
static char *expose(void)
{
    struct buf b;
    buf_init(&b, 4u << 20);
    struct metrics_out o = {.b = &b, .rc = PIER_OK};
    metrics_write(&o, names, NULL, classes);
    char *s = strdup(o.rc ? "ERROR" : buf_str(&b));
    buf_free(&b);
    return s;
}

static bool has(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

int main(void)
{
    /* Sample lines: labels escaped as the text format wants. */
    struct buf b;
    buf_init(&b, 4096);
    struct metrics_out o = {.b = &b, .rc = PIER_OK};
    metrics_family(&o, "pier_x_total", "counter", "An example.");
    const char *labels[] = {"a", "plain", "b", "q\"uote\\back\nline", NULL};
    metrics_sample(&o, "pier_x_total", labels, 42);
    metrics_sample(&o, "pier_y_seconds", NULL, 0.25);
    metrics_sample(&o, "pier_z", NULL, 1e20);
    CHECK("family: HELP then TYPE",
          strncmp(buf_str(&b), "# HELP pier_x_total An example.\n# TYPE pier_x_total counter\n",
                  60) == 0);
    CHECK("sample: labels escaped (quote, backslash, newline)",
          has(buf_str(&b), "pier_x_total{a=\"plain\",b=\"q\\\"uote\\\\back\\nline\"} 42"));
    CHECK("sample: no labels, fraction", has(buf_str(&b), "pier_y_seconds 0.25"));
    CHECK("sample: large values keep their magnitude", has(buf_str(&b), "pier_z 1e+20"));
    CHECK("no error", o.rc == PIER_OK);
    buf_free(&b);

    /* A cap that is too small: the error sticks, later calls are no-ops. */
    buf_init(&b, 16);
    o = (struct metrics_out){.b = &b, .rc = PIER_OK};
    metrics_family(&o, "pier_long_family_name_total", "counter", "too long for the cap");
    metrics_sample(&o, "pier_a", NULL, 1);
    CHECK("cap: the error is kept", o.rc == PIER_E_TOO_LARGE && buf_len(&b) == 0);
    buf_free(&b);

    /* Before metrics_init counting is a no-op and nothing is written. */
    metrics_request(MR_MANIFEST, 200, 1000);
    char *s = expose();
    CHECK("not mapped: nothing written", s[0] == '\0');
    free(s);

    CHECK("init maps the region", metrics_init() && metrics_enabled());

    /* Requests: by route and code; latency histogram cumulative. */
    metrics_request(MR_MANIFEST, 200, 3000);     /* 0.003 s: first bucket */
    metrics_request(MR_MANIFEST, 200, 200000);   /* 0.2 s: le 0.25 */
    metrics_request(MR_MANIFEST, 404, 70000000); /* 70 s: +Inf only */
    metrics_request(MR_BLOB, 0, 10);             /* nothing sent: counted as 500 */
    metrics_request((enum metrics_route)99, 204, 10);
    /* Cache rows keyed by rule id, with an unknown prefix and an odd one. */
    metrics_cache_add(7, MC_HIT, 3);
    metrics_cache_add(7, MC_FETCHED_BYTES, 1000);
    metrics_cache_add(7, MC_FETCHED_BYTES, 24);
    metrics_cache_add(8, MC_MISS, 1);
    metrics_cache_add(9, MC_STALE, 2);
    metrics_upstream(7, 0, 40000);
    metrics_upstream(7, 2, 5000000);
    metrics_db(MDB_RECONNECT);
    metrics_db(MDB_RECONNECT);

    /* A child process (as a worker is) adds to the same counters. */
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 1000; i++)
            metrics_request(MR_TAGS, 200, 1);
        metrics_cache_add(7, MC_HIT, 1);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK("child exited", WIFEXITED(st) && WEXITSTATUS(st) == 0);

    s = expose();
    CHECK("requests by route and code",
          has(s, "pier_http_requests_total{route=\"manifest\",code=\"200\"} 2") &&
              has(s, "pier_http_requests_total{route=\"manifest\",code=\"404\"} 1"));
    CHECK("a request without a status counts as 500",
          has(s, "pier_http_requests_total{route=\"blob\",code=\"500\"} 1"));
    CHECK("an unknown route counts as other",
          has(s, "pier_http_requests_total{route=\"other\",code=\"204\"} 1"));
    CHECK("counts of a child process are shared",
          has(s, "pier_http_requests_total{route=\"tags\",code=\"200\"} 1000") &&
              has(s, "pier_cache_hits_total{rule_id=\"7\",rule=\"docker-hub\"} 4"));
    CHECK("histogram HELP and TYPE", has(s, "# TYPE pier_http_request_duration_seconds histogram"));
    CHECK(
        "histogram buckets are cumulative",
        has(s, "pier_http_request_duration_seconds_bucket{route=\"manifest\",le=\"0.005\"} 1") &&
            has(s, "pier_http_request_duration_seconds_bucket{route=\"manifest\",le=\"0.1\"} 1") &&
            has(s, "pier_http_request_duration_seconds_bucket{route=\"manifest\",le=\"0.25\"} 2") &&
            has(s, "pier_http_request_duration_seconds_bucket{route=\"manifest\",le=\"60\"} 2") &&
            has(s, "pier_http_request_duration_seconds_bucket{route=\"manifest\",le=\"+Inf\"} 3"));
    CHECK("histogram sum in seconds and count",
          has(s, "pier_http_request_duration_seconds_sum{route=\"manifest\"} 70.203") &&
              has(s, "pier_http_request_duration_seconds_count{route=\"manifest\"} 3"));
    CHECK("routes without requests still have a histogram",
          has(s, "pier_http_request_duration_seconds_count{route=\"catalog\"} 0"));
    CHECK("bytes fetched add up",
          has(s, "pier_cache_fetched_bytes_total{rule_id=\"7\",rule=\"docker-hub\"} 1024"));
    CHECK("a rule label is escaped",
          has(s, "pier_cache_misses_total{rule_id=\"8\",rule=\"we\\\"ird\\\\name\\n\"} 1"));
    CHECK("an unknown rule keeps its id with an empty prefix",
          has(s, "pier_cache_stale_serves_total{rule_id=\"9\",rule=\"\"} 2"));
    CHECK("every counter of a used rule is written (zeros too)",
          has(s, "pier_cache_storage_errors_total{rule_id=\"7\",rule=\"docker-hub\"} 0"));
    CHECK(
        "upstream errors by class",
        has(s,
            "pier_cache_upstream_errors_total{rule_id=\"7\",rule=\"docker-hub\",class=\"timeout\"} 1") &&
            has(s,
                "pier_cache_upstream_errors_total{rule_id=\"7\",rule=\"docker-hub\",class=\"server error\"} 0"));
    CHECK(
        "upstream latency histogram",
        has(s,
            "pier_cache_upstream_request_duration_seconds_bucket{rule_id=\"7\",rule=\"docker-hub\",le=\"0.05\"} 1") &&
            has(s,
                "pier_cache_upstream_request_duration_seconds_bucket{rule_id=\"7\",rule=\"docker-hub\",le=\"5\"} 2") &&
            has(s,
                "pier_cache_upstream_request_duration_seconds_sum{rule_id=\"7\",rule=\"docker-hub\"} 5.04"));
    CHECK("database events by kind", has(s, "pier_db_events_total{kind=\"reconnect\"} 2") &&
                                         has(s, "pier_db_events_total{kind=\"timeout\"} 0"));
    CHECK("no series for the overflow row while it is unused", !strstr(s, "rule_id=\"-1\""));
    free(s);

    /* More rules than the table holds: the rest share one row, nothing is lost. */
    for (long long id = 1000; id < 1000 + METRICS_RULES; id++)
        metrics_cache_add(id, MC_HIT, 1);
    s = expose();
    CHECK("rules beyond the table are counted in the overflow row",
          strstr(s, "pier_cache_hits_total{rule_id=\"-1\",rule=\"\"}") != NULL);
    long long total = 0;
    for (const char *p = strstr(s, "pier_cache_hits_total{"); p;
         p = strstr(p + 1, "pier_cache_hits_total{")) {
        const char *sp = strchr(p, ' ');
        total += atoll(sp + 1);
    }
    CHECK("hits over all rows add up", total == 4 + METRICS_RULES);
    free(s);
    return TAP_DONE();
}
