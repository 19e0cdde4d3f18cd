/* bootstrap: first administrator under an advisory lock. */
#include "auth/bootstrap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "auth/principals.h"
#include "db/db.h"
#include "lib/log.h"

#define BOOT_LOCK "1885955442003"

static const struct db_stmt st_lock = {"boot_lock", "SELECT pg_advisory_lock(" BOOT_LOCK ")", 0};
static const struct db_stmt st_unlock = {"boot_unlock", "SELECT pg_advisory_unlock(" BOOT_LOCK ")", 0};

pier_err bootstrap_write_env(const struct config *cfg, const char *id, const char *secret,
                             struct perr *e)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", cfg->bootstrap_file);
    /* Only a file this call creates receives the secret: never one that is
     * already there, and never through a symlink someone planted. A leftover
     * (an earlier start that died, or a planted link) is removed once; unlink
     * removes a symlink itself, never its target. */
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(tmp, flags, 0600);
    if (fd < 0 && errno == EEXIST) {
        log_warn("removing the stale temporary file %s", tmp);
        if (unlink(tmp) < 0 && errno != ENOENT)
            return perr_set(e, PIER_E_INTERNAL, "cannot remove the stale %s: %s", tmp,
                            strerror(errno));
        fd = open(tmp, flags, 0600);
    }
    if (fd < 0)
        return perr_set(e, PIER_E_INTERNAL, "cannot write %s: %s", tmp, strerror(errno));
    char endpoint[300];
    if (cfg->public_url[0])
        snprintf(endpoint, sizeof endpoint, "%s", cfg->public_url);
    else
        snprintf(endpoint, sizeof endpoint, "http://%s",
                 cfg->registry_host[0] ? cfg->registry_host : "127.0.0.1:5000");
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nAWS_DEFAULT_REGION=%s\n"
                     "PIER_ENDPOINT=%s\n"
                     "export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION PIER_ENDPOINT\n",
                     id, secret, cfg->region, endpoint);
    bool ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    if (!ok || rename(tmp, cfg->bootstrap_file) != 0) {
        unlink(tmp);
        return perr_set(e, PIER_E_INTERNAL, "cannot write %s", cfg->bootstrap_file);
    }
    return PIER_OK;
}

pier_err bootstrap_admin(struct ctx *c, bool *created, struct perr *e)
{
    *created = false;
    if (!db_exec(c->db, c->a, &st_lock, e))
        return e->code;
    long long n = 0;
    pier_err rc = principal_count(c, &n, e);
    if (rc || n > 0)
        goto out;
    struct principal p;
    char id[KEY_ID_LEN + 1], secret[KEY_SECRET_LEN + 1];
    if ((rc = db_tx_begin(c->db, e)))
        goto out;
    if (!(rc = principal_create(c, "admin", PRINCIPAL_USER, &p, e)) &&
        !(rc = identity_policy_put(c, p.id, "AdministratorAccess", ADMIN_POLICY, e)) &&
        !(rc = key_create(c, p.id, id, secret, e)) && c->cfg->bootstrap_file[0])
        rc = bootstrap_write_env(c->cfg, id, secret, e);
    if ((rc = db_tx_end(c->db, rc, e)))
        goto out;
    *created = true;
    if (c->cfg->bootstrap_file[0])
        log_info("created the administrator %s; its access key is in %s", p.arn,
                 c->cfg->bootstrap_file);
    else
        log_warn("created the administrator %s with access key %s; no bootstrap_file is set, "
                 "so create another key with pierctl key create admin", p.arn, id);
out:
    OPENSSL_cleanse(secret, sizeof secret);
    {
        struct perr ignore;
        db_exec(c->db, c->a, &st_unlock, &ignore);
    }
    return rc;
}
