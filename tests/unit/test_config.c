/* Unit tests for configuration parsing and environment overrides. */
#include <stdlib.h>
#include <unistd.h>
#include "lib/config.h"
#include "tap.h"

static const char *write_tmp(const char *text)
{
    static char path[] = "/tmp/pier-test-config-XXXXXX";
    strcpy(path, "/tmp/pier-test-config-XXXXXX");
    int fd = mkstemp(path);
    ssize_t w = write(fd, text, strlen(text));
    (void)w;
    close(fd);
    return path;
}

int main(void)
{
    struct config c;
    struct perr e;
    config_defaults(&c);
    CHECK("default manifest limit 4 MiB", c.max_manifest_size == 4 << 20);
    const char *p = write_tmp("# comment\n"
                              "database = host=/tmp dbname=pier\n"
                              "blob_root = /srv/blobs\n"
                              "workers=3\n"
                              "max_blob_size = 2GiB\n"
                              "socket_mode = 0666\n"
                              "allow_delete = no\n"
                              "log_file = \"/tmp/x.log\"\n");
    pier_err rc = config_load(&c, p, &e);
    if (rc)
        printf("# %s\n", e.msg);
    CHECK("file loads", rc == PIER_OK);
    CHECK("string with spaces", strcmp(c.database, "host=/tmp dbname=pier") == 0);
    CHECK("int", c.workers == 3);
    CHECK("size with unit", c.max_blob_size == 2LL << 30);
    CHECK("octal", c.socket_mode == 0666);
    CHECK("bool", !c.allow_delete);
    CHECK("quoted string", strcmp(c.log_file, "/tmp/x.log") == 0);
    unlink(p);

    /* Development nodes and the test suite migrate at start; the packaged
     * configuration turns it off and upgrades with pierctl migrate. */
    config_defaults(&c);
    CHECK("auto_migrate defaults to on", c.auto_migrate);
    p = write_tmp("auto_migrate = false\n");
    rc = config_load(&c, p, &e);
    CHECK("auto_migrate = false turns it off", rc == PIER_OK && !c.auto_migrate);
    unlink(p);

    config_defaults(&c);
    p = write_tmp("workerz = 3\n");
    CHECK("unknown key refused", config_load(&c, p, &e) != PIER_OK && strstr(e.msg, "workerz") &&
                                     strstr(e.msg, ":1:"));
    unlink(p);
    config_defaults(&c);
    p = write_tmp("\n\nworkers = lots\n");
    CHECK("bad int names line", config_load(&c, p, &e) != PIER_OK && strstr(e.msg, ":3:"));
    unlink(p);
    config_defaults(&c);
    p = write_tmp("workers = 0\n");
    CHECK("out of range refused", config_load(&c, p, &e) != PIER_OK);
    unlink(p);
    config_defaults(&c);
    CHECK("download URLs live an hour by default", c.download_url_ttl == 3600);
    p = write_tmp("download_url_ttl = 0\n");
    CHECK("download URLs live at least a second", config_load(&c, p, &e) != PIER_OK);
    unlink(p);
    config_defaults(&c);
    p = write_tmp("download_url_ttl = 604801\n");
    CHECK("download URLs live at most 7 days", config_load(&c, p, &e) != PIER_OK);
    unlink(p);
    config_defaults(&c);
    p = write_tmp("max_blob_size = 12XB\n");
    CHECK("bad size refused", config_load(&c, p, &e) != PIER_OK);
    unlink(p);

    config_defaults(&c);
    setenv("PIER_WORKERS", "5", 1);
    setenv("PIER_BLOB_ROOT", "/env/root", 1);
    CHECK("env overrides", config_load(&c, NULL, &e) == PIER_OK && c.workers == 5 &&
                               strcmp(c.blob_root, "/env/root") == 0);
    setenv("PIER_WORKERS", "x", 1);
    config_defaults(&c);
    CHECK("bad env refused with its name", config_load(&c, NULL, &e) != PIER_OK &&
                                               strstr(e.msg, "PIER_WORKERS"));
    unsetenv("PIER_WORKERS");
    setenv("PIER_BLOB_ROOT", "relative", 1);
    config_defaults(&c);
    CHECK("relative blob root refused", config_load(&c, NULL, &e) != PIER_OK);
    unsetenv("PIER_BLOB_ROOT");

    /* The registry-wide cache budget: none by default, sizes with units. */
    config_defaults(&c);
    CHECK("no cache budget by default", c.cache_max_bytes == 0);
    CHECK("cache budget with a unit", config_set(&c, "cache_max_bytes", "50G", &e) == PIER_OK &&
                                          c.cache_max_bytes == 50LL << 30);
    CHECK("cache budget 0 is none",
          config_set(&c, "cache_max_bytes", "0", &e) == PIER_OK && c.cache_max_bytes == 0);
    CHECK("negative cache budget refused", config_set(&c, "cache_max_bytes", "-1", &e) != PIER_OK);
    /* The audit trail: no file by default, 90 days in the database. */
    config_defaults(&c);
    CHECK("no audit file by default", c.audit_log[0] == '\0');
    CHECK("audit retention 90 days by default", c.audit_retention_days == 90);
    CHECK("audit retention 0 keeps all",
          config_set(&c, "audit_retention_days", "0", &e) == PIER_OK &&
              c.audit_retention_days == 0);
    CHECK("negative audit retention refused",
          config_set(&c, "audit_retention_days", "-1", &e) != PIER_OK);
    long long v = 0;
    CHECK("size 512MiB", config_parse_size("512MiB", &v) && v == 512LL << 20);
    CHECK("size 10 g", config_parse_size("10 g", &v) && v == 10LL << 30);
    CHECK("size 1T", config_parse_size("1T", &v) && v == 1LL << 40);
    CHECK("size plain bytes", config_parse_size("1073741824", &v) && v == 1LL << 30);
    CHECK("size with a bad unit refused", !config_parse_size("5X", &v));
    CHECK("size that overflows refused", !config_parse_size("9999999999T", &v));
    CHECK("size that is no number refused", !config_parse_size("G", &v));

    /* metrics_allow: a CIDR list of clients that may read /metrics. */
    config_defaults(&c);
    struct netpolicy np;
    CHECK("metrics_allow empty by default", c.metrics_allow[0] == '\0' &&
                                                config_metrics_allow(&c, &np, &e) == PIER_OK &&
                                                np.n == 0 && !netpolicy_contains(&np, "127.0.0.1"));
    rc = config_set(&c, "metrics_allow", "127.0.0.1/32, 10.0.0.0/8 fd00::/8,2001:db8::7", &e);
    CHECK("metrics_allow set", rc == PIER_OK);
    rc = config_metrics_allow(&c, &np, &e);
    CHECK("metrics_allow parses IPv4 and IPv6 CIDRs and single addresses",
          rc == PIER_OK && np.n == 4);
    CHECK("metrics_allow: address in a /32", netpolicy_contains(&np, "127.0.0.1"));
    CHECK("metrics_allow: neighbour of a /32 is outside", !netpolicy_contains(&np, "127.0.0.2"));
    CHECK("metrics_allow: inside a /8", netpolicy_contains(&np, "10.200.3.4"));
    CHECK("metrics_allow: outside every network", !netpolicy_contains(&np, "11.0.0.1"));
    CHECK("metrics_allow: IPv6 inside fd00::/8", netpolicy_contains(&np, "fd12:3456::1"));
    CHECK("metrics_allow: IPv6 outside", !netpolicy_contains(&np, "fe80::1"));
    CHECK("metrics_allow: a single IPv6 address is a /128",
          netpolicy_contains(&np, "2001:db8::7") && !netpolicy_contains(&np, "2001:db8::8"));
    CHECK("metrics_allow: IPv4-mapped IPv6 counts as IPv4",
          netpolicy_contains(&np, "::ffff:10.1.2.3") &&
              !netpolicy_contains(&np, "::ffff:11.1.2.3"));
    CHECK("metrics_allow: not an address is outside", !netpolicy_contains(&np, "localhost") &&
                                                          !netpolicy_contains(&np, "") &&
                                                          !netpolicy_contains(&np, NULL));
    CHECK("metrics_allow: private addresses are not special (only the list counts)",
          !netpolicy_contains(&np, "192.168.1.1"));
    snprintf(c.blob_root, sizeof c.blob_root, "/srv/blobs");
    snprintf(c.socket, sizeof c.socket, "/run/pier.sock");
    rc = config_validate(&c, &e);
    if (rc)
        printf("# %s\n", e.msg);
    CHECK("a configuration with a valid metrics_allow validates", rc == PIER_OK);
    CHECK("metrics_allow 10.0.0.0/33 set",
          config_set(&c, "metrics_allow", "10.0.0.0/33", &e) == PIER_OK);
    rc = config_metrics_allow(&c, &np, &e);
    CHECK("metrics_allow prefix too long refused, naming the key and entry",
          rc == PIER_E_BAD_REQUEST && strstr(e.msg, "metrics_allow") &&
              strstr(e.msg, "10.0.0.0/33") && np.n == 0);
    rc = config_validate(&c, &e);
    CHECK("config_validate refuses a bad metrics_allow",
          rc != PIER_OK && strstr(e.msg, "metrics_allow") != NULL);
    config_defaults(&c);
    CHECK("metrics_allow garbage set",
          config_set(&c, "metrics_allow", "127.0.0.1/8x", &e) == PIER_OK);
    CHECK("metrics_allow garbage refused", config_metrics_allow(&c, &np, &e) != PIER_OK);
    CHECK("metrics_allow host name refused",
          config_set(&c, "metrics_allow", "prometheus.example.com", &e) == PIER_OK &&
              config_metrics_allow(&c, &np, &e) != PIER_OK);
    CHECK("metrics_allow IPv6 /129 refused",
          config_set(&c, "metrics_allow", "::1/129", &e) == PIER_OK &&
              config_metrics_allow(&c, &np, &e) != PIER_OK);
    CHECK("upstream_allow_networks errors still name their own key",
          config_set(&c, "upstream_allow_networks", "bad", &e) == PIER_OK &&
              netpolicy_parse(c.upstream_allow_networks, &np, &e) != PIER_OK &&
              strstr(e.msg, "upstream_allow_networks") != NULL);
    return TAP_DONE();
}
