/* worker: the accept loop. SIGTERM closes this process's copy of the listening
 * socket: an idle worker leaves accept() at once, a busy one finishes its
 * request and then finds nothing to accept from. */
#include "server/worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <fcgiapp.h>
#include <openssl/crypto.h>
#include "auth/authn.h"
#include "auth/authz.h"
#include "auth/token.h"
#include "cache/stats.h"
#include "cache/upstream.h"
#include "db/db.h"
#include "console/console.h"
#include "ecrapi/api.h"
#include "lib/secretbox.h"
#include "http/request.h"
#include "lib/arena.h"
#include "lib/log.h"
#include "registry/dispatch.h"
#include "registry/errors.h"
#include "lib/ctx.h"
#include "server/observe.h"
#include "server/pool.h"
#include "store/audit.h"
#include "store/blobstore.h"
#include <stdio.h>

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t listen_copy = -1;

static void on_term(int sig)
{
    (void)sig;
    int saved = errno;
    stopping = 1;
    int fd = listen_copy;
    if (fd >= 0) {
        listen_copy = -1;
        close(fd);
    }
    errno = saved;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    /* SA_RESTART: libfcgi treats an interrupted read as a broken request. */
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

/* An error before any handler ran, in the format of the endpoint: OCI for
 * /v2 and /token, AWS JSON for the control plane, the console's own. */
static void endpoint_error(struct req *r, const struct perr *e)
{
    if (strncmp(r->path, "/console/", 9) == 0) {
        int status = oci_status(e->code);
        const char *type = ecr_exc_type(e->code == PIER_E_TOOMANYREQUESTS ? ECR_EXC_THROTTLING
                                                                          : ECR_EXC_SERVER);
        if (status == 503)
            resp_header(r, "Retry-After", "5");
        json_t *body = json_pack("{s:{s:s, s:s}}", "error", "type", type, "message", e->msg);
        resp_json(r, status, "application/json", body);
        json_decref(body);
    } else if (strcmp(r->path, "/") == 0 && e->code != PIER_E_TOOMANYREQUESTS) {
        ecrapi_error(r, e);
    } else if (strcmp(r->path, "/") == 0) {
        json_t *body = json_pack("{s:s, s:s}", "__type", ecr_exc_type(ECR_EXC_THROTTLING),
                                 "message", e->msg);
        resp_json(r, 400, "application/x-amz-json-1.1", body);
        json_decref(body);
    } else {
        oci_error(r, e);
    }
}

/* All body slots are taken: answer at once, without reading the body, in
 * the format of the endpoint. Clients retry (Retry-After). */
static void too_busy(const struct config *cfg, struct req *r)
{
    req_refuse_body(r);
    resp_header(r, "Retry-After", "1");
    struct perr e;
    perr_set(&e, PIER_E_TOOMANYREQUESTS, "all %d workers that receive request bodies on this "
             "node are busy; retry in a moment", pool_body_limit(cfg));
    log_warn("refused a request body from %s: %s", r->remote_addr, e.msg);
    endpoint_error(r, &e);
}

static void not_found(struct req *r)
{
    struct perr e;
    perr_set(&e, PIER_E_NOT_FOUND, "no such endpoint: %s", r->path);
    req_refuse_body(r);
    oci_error(r, &e);
}

/* The token service and the control plane need the database first. */
static void control(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    struct perr e;
    if (db_ensure(c->db, &e) != PIER_OK) {
        req_refuse_body(r);
        endpoint_error(r, &e);
    } else if (strcmp(r->path, "/token") == 0) {
        registry_token(c, ac, r);
    } else if (strncmp(r->path, "/console/api/", 13) == 0) {
        console_handle(c, ac, r);
    } else {
        ecrapi_handle(c, r);
    }
}

int worker_run(const struct config *cfg, int listen_fd)
{
    pid_t master = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    listen_copy = listen_fd;
    install_signals();
    if (getppid() != master)
        return 0; /* the master died before we were ready */

    struct perr e;
    struct blobstore bs;
    if (blobstore_init(&bs, cfg->blob_root, &e) != PIER_OK) {
        log_error("%s", e.msg);
        return 1;
    }
    struct db *db = db_new(cfg->database);
    db_set_timeout(db, cfg->db_timeout_ms);
    if (db_ensure(db, &e) != PIER_OK)
        log_warn("starting without a database connection; will retry per request");
    struct secretbox sb;
    memset(&sb, 0, sizeof sb);
    if (cfg->server_key_file[0] && secretbox_load(&sb, cfg->server_key_file, &e) != PIER_OK)
        log_error("%s; stored credentials and tokens cannot be used", e.msg);
    struct token_keys tk;
    memset(&tk, 0, sizeof tk);
    if (sb.loaded && token_keys_init(&tk, &sb, &e) != PIER_OK)
        log_error("%s", e.msg);
    struct upstream *up = upstream_new(cfg);
    struct cache_stats *stats = stats_new();
    struct authz_cache *acache = authz_cache_new();
    struct authn_cache *ncache = authn_cache_new();
    struct arena *a = arena_new();
    if (FCGX_Init() != 0) {
        log_error("FCGX_Init failed");
        return 1;
    }
    FCGX_Request fx;
    if (FCGX_InitRequest(&fx, listen_fd, 0) != 0) {
        log_error("FCGX_InitRequest failed");
        return 1;
    }
    long served = 0;
    /* EPOLLEXCLUSIVE: a connection wakes one idle worker, not all of them
     * (plain poll() on the shared socket woke every worker for every
     * connection: measured 6-19 % fewer tag GETs per second on 2 cores). */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event want = {.events = EPOLLIN | EPOLLEXCLUSIVE};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &want) < 0) {
        log_error("cannot wait for connections: %s", strerror(errno));
        return 1;
    }
    sigset_t term, none;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &term, NULL);
    while (!stopping) {
        /* SIGTERM is held except while this worker waits for a connection
         * (epoll_pwait opens the mask atomically, so a SIGTERM that came
         * during a request is taken at the next wait and none is lost), and
         * in particular never while it accepts: libfcgi polls an accepted
         * Unix-socket connection for its first bytes and drops the
         * connection (Apache answers 503) when a signal interrupts that poll,
         * as SIGTERM did on every reload. The listening socket is
         * non-blocking, so a connection another worker took first costs one
         * EAGAIN, never a wait with SIGTERM held. */
        struct epoll_event ev;
        int ready = epoll_pwait(ep, &ev, 1, stats_pending(stats) ? 2000 : -1, &none);
        if (stopping)
            break;
        if (ready == 0) {
            /* Idle with unflushed counters: flush them after 2 s without a
             * request rather than when the next request comes. */
            struct ctx idle = {.cfg = cfg, .db = db, .bs = &bs, .a = a, .sb = &sb, .up = up,
                               .stats = stats};
            if (db_ensure(db, &e) == PIER_OK)
                stats_flush(&idle, 0);
            arena_reset(a);
            continue;
        }
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            log_error("waiting for connections failed: %s", strerror(errno));
            break;
        }
        int rc = FCGX_Accept_r(&fx);
        if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -ECONNABORTED)
            continue; /* another worker was faster */
        if (rc < 0) {
            if (stopping)
                break;
            log_error("accept failed: %s", strerror(-rc));
            break;
        }
        int64_t started = observe_begin();
        struct req r;
        req_init(&r, &fx, a);
        struct identity anonymous;
        memset(&anonymous, 0, sizeof anonymous);
        struct ctx c = {.cfg = cfg, .db = db, .bs = &bs, .a = a, .sb = &sb, .up = up,
                        .stats = stats, .who = &anonymous, .acache = acache, .tk = &tk,
                        .remote_addr = r.remote_addr};
        c.request_id = audit_begin(&r);
        if (req_has_body(&r) && !pool_body_begin(cfg))
            too_busy(cfg, &r);
        else if (strncmp(r.path, "/v2", 3) == 0 && (r.path[3] == '\0' || r.path[3] == '/'))
            registry_handle(&c, ncache, &r);
        else if (observe_path(r.path))
            observe_handle(&c, ncache, &r);
        else if (strcmp(r.path, "/token") == 0 || strcmp(r.path, "/") == 0 ||
                 strncmp(r.path, "/console/api/", 13) == 0)
            control(&c, ncache, &r);
        else
            not_found(&r);
        db_rollback(db); /* a handler that failed half-way must not leak a transaction */
        audit_end(&c);   /* the request's audit rows, outside any transaction */
        if (resp_failed(&r, &e) != PIER_OK)
            log_error("%s %s -> 500: %s", r.method, r.path, e.msg);
        observe_end(&r, started); /* before req_finish: r's strings live in libfcgi's request */
        req_finish(&r);
        pool_body_end();
        stats_flush(&c, 2000);
        arena_reset(a);
        if (cfg->max_requests && ++served >= cfg->max_requests) {
            log_info("served %ld requests; exiting to be replaced", served);
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
    close(ep);
    FCGX_Free(&fx, 1);
    struct ctx fin = {.cfg = cfg, .db = db, .bs = &bs, .a = a, .sb = &sb, .up = up, .stats = stats};
    stats_flush(&fin, 0);
    arena_free(a);
    stats_free(stats);
    authz_cache_free(acache);
    authn_cache_free(ncache);
    OPENSSL_cleanse(&tk, sizeof tk);
    upstream_free(up);
    secretbox_wipe(&sb);
    db_close(db);
    return 0;
}
