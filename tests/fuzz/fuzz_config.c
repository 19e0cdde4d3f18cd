/* Fuzz target: the configuration file (config_read and config_validate in
 * lib/config.c; config_load adds only fopen and PIER_* environment
 * overrides). Input: the file. Checks that every string field stays
 * terminated and every number within its documented range. */
#include <string.h>
#include "fuzz.h"
#include "lib/config.h"

#define TERMINATED(f) (memchr((f), '\0', sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *copy = xmalloc(size);
    memcpy(copy, data, size);
    FILE *f = fmemopen(copy, size, "r");
    if (!f) {
        free(copy);
        return 0;
    }
    struct config c;
    struct perr e;
    config_defaults(&c);
    pier_err rc = config_read(&c, f, "fuzz.conf", &e);
    fclose(f);
    free(copy);
    if (rc == PIER_OK)
        rc = config_validate(&c, &e);
    if (rc != PIER_OK)
        FUZZ_ASSERT(TERMINATED(e.msg));

    FUZZ_ASSERT(TERMINATED(c.database) && TERMINATED(c.blob_root) && TERMINATED(c.socket) &&
                TERMINATED(c.registry_host) && TERMINATED(c.log_file) &&
                TERMINATED(c.log_level) && TERMINATED(c.pid_file) &&
                TERMINATED(c.server_key_file) && TERMINATED(c.account_id) &&
                TERMINATED(c.region) && TERMINATED(c.auth_scheme) &&
                TERMINATED(c.public_url) && TERMINATED(c.bootstrap_file));
    FUZZ_ASSERT(c.socket_mode >= 0 && c.socket_mode <= 0777);
    FUZZ_ASSERT(c.workers >= 1 && c.workers <= 1024);
    FUZZ_ASSERT(c.max_requests >= 0 && c.max_requests <= 100000000);
    FUZZ_ASSERT(c.shutdown_timeout >= 1 && c.shutdown_timeout <= 3600);
    FUZZ_ASSERT(c.max_manifest_size >= 1024 && c.max_manifest_size <= 64LL << 20);
    FUZZ_ASSERT(c.max_blob_size >= 1024 && c.max_blob_size <= 1LL << 50);
    FUZZ_ASSERT(c.max_chunk_size >= 1024 && c.max_chunk_size <= 1LL << 50);
    FUZZ_ASSERT(c.max_page >= 1 && c.max_page <= 100000);
    FUZZ_ASSERT(c.upload_ttl >= 60 && c.upload_ttl <= 30 * 86400);
    FUZZ_ASSERT(c.upstream_connect_timeout >= 1 && c.upstream_connect_timeout <= 300);
    FUZZ_ASSERT(c.lease_ttl >= 2 && c.lease_ttl <= 3600);
    FUZZ_ASSERT(c.maintenance_interval >= 0 && c.maintenance_interval <= 86400);
    FUZZ_ASSERT(c.policy_cache_ms >= 0 && c.policy_cache_ms <= 600000);
    if (rc == PIER_OK) {
        FUZZ_ASSERT(c.blob_root[0] == '/' && c.socket[0] == '/');
        FUZZ_ASSERT(strlen(c.account_id) == 12);
    }
    return 0;
}
