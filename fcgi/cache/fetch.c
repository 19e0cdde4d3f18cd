/* fetch: blob misses in cache repositories. One request per digest, cluster-
 * wide, holds the fetch lease and downloads: the bytes go to a temporary file
 * on the shared blob root (hashed on the way) and to its client at once.
 * Every other request for the digest follows the lease: it streams the
 * temporary file up to the byte count the holder declared durable, and the
 * rest from the published blob. Nobody ever gets the final byte of a blob
 * before its digest was verified, so a bad download always fails visibly. */
#include "cache/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "auth/authz.h"
#include "cache/lease.h"
#include "cache/stats.h"
#include "cache/upstream.h"
#include "db/db.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/audit.h"
#include "store/blobstore.h"

#define SYNC_BYTES (8LL << 20)  /* publish durable progress at least every 8 MiB */
#define SYNC_MS 250             /* ... or every 250 ms */
#define POLL_MS 40              /* followers look at the lease this often */
#define COPY_BUF (256 * 1024)
/* libcurl hands over 16 KiB at a time; bytes are gathered into 256 KiB pieces
 * before they are written, hashed and sent, which halves the CPU per byte. */
#define STAGE (256 * 1024)

struct fetch {
    struct ctx *c;
    struct req *r;
    const char *name;
    const char *digest;
    const struct cache_rule *rule;
    char key[DIGEST_MAX_LEN + 32];
    long long declared;        /* size the repository's manifests declare, -1: unknown */
    long long limit;           /* bytes the download may have: declared, else max_blob_size */
    char why[PERR_MSG_MAX];    /* why this worker stopped the transfer, if it did */
    pier_err local;            /* set when the failure is ours (blob root full, unwritable) */
    char holder[UUID_STR_LEN];
    struct cache_answer *out;  /* what the serving module sends, when not streamed here */
    struct perr *e;            /* why this request failed ... */
    pier_err rc;               /* ... and its code (PIER_OK: it did not) */
    /* client side */
    bool headers_sent;
    long long sent;
    bool client_gone;
    /* holder side */
    int fd;
    char tmp[PATH_MAX];
    EVP_MD_CTX *md;
    long long written, durable, total;
    long long synced;          /* written at the last progress point */
    int64_t last_sync;
    int64_t last_renew;        /* the lease was last extended */
    bool lost_lease;
    int followers;            /* requests following this download */
    bool following;           /* this request announced itself as a follower */
    char *stage;              /* being filled */
    size_t stage_len;
    char *pending;            /* written and hashed, not yet sent: held back */
    size_t pending_len;
    long long pending_off;
};

static char stage_bufs[2][STAGE];

static void send_headers(struct fetch *f, long long total)
{
    if (f->headers_sent)
        return;
    f->headers_sent = true;
    struct req *r = f->r;
    resp_status(r, 200);
    resp_header(r, "Content-Type", "application/octet-stream");
    resp_header(r, "Docker-Content-Digest", "%s", f->digest);
    resp_header(r, "X-Pier-Cache", "miss");
    if (total >= 0)
        resp_header(r, "Content-Length", "%lld", total);
    /* If these bytes turn out wrong the response is broken off; Apache then
     * only closes the client connection if it was not going to keep it. */
    resp_header(r, "Connection", "close");
    resp_begin(r);
}

/* Send the part of [off, off+n) the client does not have yet. */
static void to_client(struct fetch *f, const char *data, size_t n, long long off)
{
    if (f->client_gone || f->r->head)
        return;
    /* Headers go out with the first bytes: a download that fails before
     * any byte is due still gets a proper error response. */
    send_headers(f, f->total);
    if (off + (long long)n <= f->sent)
        return;
    if (off > f->sent)
        return; /* a gap: cannot happen, bytes arrive in order */
    long long skip = f->sent - off;
    size_t len = n - (size_t)skip;
    if (resp_write(f->r, data + skip, len) < 0) {
        f->client_gone = true;
        return;
    }
    f->sent += (long long)len;
}

/* Copy [f->sent, upto) of an open file to the client. False on a short read. */
static bool file_to_client(struct fetch *f, int fd, long long upto)
{
    static char buf[COPY_BUF];
    while (f->sent < upto && !f->client_gone) {
        size_t want = (size_t)(upto - f->sent < COPY_BUF ? upto - f->sent : COPY_BUF);
        ssize_t n = pread(fd, buf, want, (off_t)f->sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        to_client(f, buf, (size_t)n, f->sent);
    }
    return true;
}

/* The request fails with code: if bytes were sent already, the dispatcher
 * breaks the response off, else it answers with the error. */
static void fail_client(struct fetch *f, pier_err code, const char *msg)
{
    f->rc = perr_set(f->e, code, "%s", msg);
}

/* The blob is published and linked: the serving module sends it. */
static void send_published(struct fetch *f, const char *state)
{
    f->out->outcome = CACHE_SEND;
    f->out->state = state;
}

/* ---- finishing from the published blob ---- */

static void finish_published(struct fetch *f, long long size)
{
    if (!f->headers_sent) {
        send_published(f, "miss");
        return;
    }
    char path[PATH_MAX];
    blobstore_blob_path(f->c->bs, f->digest, path);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || !file_to_client(f, fd, size) || f->sent != size) {
        log_error("cannot finish %s from %s", f->digest, path);
        fail_client(f, PIER_E_INTERNAL, "the published blob could not be read");
    }
    if (fd >= 0)
        close(fd);
}

/* ---- holder ---- */

static int holder_headers(void *arg, const struct upstream_resp *resp)
{
    struct fetch *f = arg;
    f->total = resp->content_length;
    if (f->total >= 0 && f->declared >= 0 && f->total != f->declared) {
        snprintf(f->why, sizeof f->why, "the upstream announced %lld bytes for a blob its manifest "
                 "declares as %lld bytes", f->total, f->declared);
        return 1;
    }
    if (f->total > f->limit) {
        snprintf(f->why, sizeof f->why, "the upstream announced %lld bytes; max_blob_size is %lld",
                 f->total, f->limit);
        return 1;
    }
    struct perr e;
    /* Room for the whole blob, or no byte of it is sent: the client gets an
     * error it can act on instead of a 200 with a broken body. */
    if (f->total > 0 &&
        blobstore_reserve(f->c->bs, f->total, f->c->cfg->min_free_space, &e) != PIER_OK) {
        f->local = e.code;
        snprintf(f->why, sizeof f->why, "%s", e.msg);
        return 1;
    }
    if (lease_progress(f->c, f->key, f->holder, f->tmp, f->total, 0, &f->followers, &e) ==
        PIER_E_CONFLICT)
        f->lost_lease = true;
    f->last_renew = now_ms();
    return 0;
}

/* While the upstream is slow or silent the lease is still renewed: it
 * expires only when this process is gone. */
static void holder_tick(void *arg)
{
    struct fetch *f = arg;
    int64_t now = now_ms();
    if (f->lost_lease || now - f->last_renew < lease_renew_ms(f->c))
        return;
    struct perr e;
    if (lease_renew(f->c, f->key, f->holder, &e) == PIER_E_CONFLICT) {
        log_warn("fetch lease for %s was taken over; finishing this download anyway", f->digest);
        f->lost_lease = true;
    }
    f->last_renew = now;
}

/* Send the previously held piece to the client, write the staged piece to
 * the file and the hash, and hold it back instead. The client's piece goes
 * first: Apache and the client work on it while this worker writes and
 * hashes (measured: a cold 512 MiB blob 15-20% sooner than the other order). */
static int flush_stage(struct fetch *f)
{
    if (f->stage_len == 0)
        return 0;
    struct perr e;
    if (f->pending_len)
        to_client(f, f->pending, f->pending_len, f->pending_off);
    if (blobstore_pwrite_all(f->fd, f->stage, f->stage_len, (off_t)f->written, &e) != PIER_OK) {
        f->local = e.code;
        snprintf(f->why, sizeof f->why, "%s", e.msg);
        return 1;
    }
    EVP_DigestUpdate(f->md, f->stage, f->stage_len);
    char *sent = f->pending;
    f->pending = f->stage;
    f->pending_len = f->stage_len;
    f->pending_off = f->written;
    f->written += (long long)f->stage_len;
    f->stage = sent;
    f->stage_len = 0;
    int64_t now = now_ms();
    if (!f->lost_lease && (f->written - f->synced >= SYNC_BYTES || now - f->last_sync >= SYNC_MS)) {
        /* Followers (maybe on other nodes, over NFS) read only durable bytes.
         * Without followers the lease is only renewed. */
        if (f->followers > 0) {
            fdatasync(f->fd);
            f->durable = f->written;
        } else {
            /* Start writing back without waiting, so the fsync before
             * publishing has little left to do. */
            sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        }
        f->last_sync = f->last_renew = now;
        f->synced = f->written;
        if (lease_progress(f->c, f->key, f->holder, NULL, -1, f->durable, &f->followers, &e) ==
            PIER_E_CONFLICT) {
            log_warn("fetch lease for %s was taken over; finishing this download anyway", f->digest);
            f->lost_lease = true;
        }
    }
    return 0;
}

static int holder_data(void *arg, const char *data, size_t n)
{
    struct fetch *f = arg;
    if (f->written + (long long)f->stage_len + (long long)n > f->limit) {
        snprintf(f->why, sizeof f->why, "the upstream sent more than the %lld bytes %s", f->limit,
                 f->declared >= 0 ? "the manifest declares" : "max_blob_size allows");
        return 1;
    }
    while (n) {
        size_t take = STAGE - f->stage_len < n ? STAGE - f->stage_len : n;
        memcpy(f->stage + f->stage_len, data, take);
        f->stage_len += take;
        data += take;
        n -= take;
        if (f->stage_len == STAGE && flush_stage(f) != 0)
            return 1;
    }
    return 0;
}

/* How long requests that come after a failed download get its error instead
 * of downloading again: a few seconds for a failure of the transfer (the
 * upstream may be back at once), the rule's negative-cache time for bytes
 * that were wrong (a lying or broken upstream does not heal in seconds). */
static int fail_keep_s(const struct fetch *f, bool bad_bytes)
{
    if (bad_bytes && f->rule->negative_seconds > LEASE_FAIL_SHARE_S)
        return f->rule->negative_seconds;
    return LEASE_FAIL_SHARE_S;
}

/* Give up the temporary file: nothing of it is published. */
static void discard_tmp(struct fetch *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    unlink(f->tmp);
}

/* The download could not be completed because of this node (blob root full
 * or unwritable): not the upstream's fault, counted apart. */
static void local_failure(struct fetch *f, pier_err code, const char *why)
{
    struct ctx *c = f->c;
    log_error("blob %s for %s not cached: %s", f->digest, f->name, why);
    lease_fail(c, f->key, f->holder, code, why, LEASE_FAIL_SHARE_S);
    stats_add(c->stats, f->rule->id, STAT_STORAGE_ERROR, 1);
    rules_note_storage_error(c, f->rule->id, why);
    fail_client(f, code, arena_printf(c->a, "%s; nothing was cached", why));
}

/* Publish the verified file and record it in the repository. The bytes are
 * good whatever the database says, so a database outage is waited out for a
 * while (each try bounded by db_timeout_ms) before giving up on the row. */
static pier_err record(struct fetch *f, struct perr *e)
{
    int64_t give_up = now_ms() + 15000;
    for (;;) {
        pier_err rc = repo_blob_publish(f->c, f->name, f->tmp, f->digest, f->written,
                                        f->rule->id, e);
        if (rc != PIER_E_UNAVAILABLE || now_ms() > give_up)
            return rc;
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Create the temporary file and the hash. False (the request failed) when
 * the blob root cannot take it. */
static bool hold_open(struct fetch *f, enum digest_alg *alg)
{
    struct ctx *c = f->c;
    char dir[PATH_MAX];
    char id[UUID_STR_LEN];
    bool named = uuid_v4(id);
    blobstore_tmp_dir(c->bs, BLOBSTORE_TMP_FETCH, dir);
    mkdir(dir, 0750);
    if (named)
        blobstore_fetch_path(c->bs, id, f->tmp);
    f->fd = named ? open(f->tmp, O_WRONLY | O_CREAT | O_EXCL, 0600) : -1;
    int open_errno = named ? errno : EIO;
    *alg = DIGEST_SHA256;
    (void)grammar_digest(f->digest, alg, NULL); /* checked by route_parse() */
    f->md = EVP_MD_CTX_new();
    if (f->fd >= 0 && f->md &&
        EVP_DigestInit_ex(f->md, *alg == DIGEST_SHA512 ? EVP_sha512() : EVP_sha256(), NULL))
        return true;
    log_error("cannot create %s: %s", f->tmp, strerror(open_errno));
    if (f->fd >= 0) {
        close(f->fd);
        unlink(f->tmp);
    }
    EVP_MD_CTX_free(f->md);
    f->md = NULL;
    bool full = f->fd < 0 && (open_errno == ENOSPC || open_errno == EDQUOT);
    f->fd = -1;
    local_failure(f, full ? PIER_E_STORAGE_FULL : PIER_E_UNAVAILABLE,
                  full ? "the blob store is full" : "the cache cannot write to its blob store");
    return false;
}

/* Download into the temporary file (and to the client as it comes); got
 * receives the digest of what arrived when the transfer completed. */
static pier_err hold_download(struct fetch *f, const char *upname, enum digest_alg alg,
                              struct upstream_resp *resp, char got[DIGEST_STR_MAX])
{
    struct ctx *c = f->c;
    struct perr e;
    f->written = f->durable = f->synced = 0;
    f->total = -1;
    f->last_sync = f->last_renew = now_ms();
    f->stage = stage_bufs[0];
    f->pending = stage_bufs[1];
    f->stage_len = f->pending_len = 0;
    /* A lost lease shows at the next progress report. */
    (void)lease_progress(c, f->key, f->holder, f->tmp, -1, 0, &f->followers, &e);
    char *path = arena_printf(c->a, "blobs/%s", f->digest);
    /* However slowly an upstream sends, the download ends: at the minimum
     * rate the largest blob it may send takes this long. */
    long long secs = c->cfg->upstream_connect_timeout + c->cfg->upstream_idle_timeout +
                     f->limit / c->cfg->upstream_min_rate;
    struct upstream_req q = {.rule = f->rule, .repo = upname, .path = path,
                             .on_headers = holder_headers, .on_data = holder_data,
                             .on_tick = holder_tick, .arg = f,
                             .deadline_ms = secs > LONG_MAX / 1000 ? LONG_MAX : (long)secs * 1000};
    pier_err rc = upstream_do(c, &q, resp, &e);
    if (rc != PIER_OK && resp->failure == UPF_ABORTED && f->why[0] && !f->local) {
        resp->failure = UPF_PROTOCOL;
        snprintf(resp->message, sizeof resp->message, "%s", f->why);
    }
    if (rc == PIER_OK && !f->local && flush_stage(f) != 0)
        rc = PIER_E_UNAVAILABLE;
    stats_add(c->stats, f->rule->id, STAT_UPSTREAM_BYTES, f->written);
    got[0] = '\0';
    if (rc == PIER_OK) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        EVP_DigestFinal_ex(f->md, md, &mdlen);
        snprintf(got, DIGEST_STR_MAX, "%s:", alg == DIGEST_SHA512 ? "sha512" : "sha256");
        hex_encode(md, mdlen, got + 7);
    }
    EVP_MD_CTX_free(f->md);
    f->md = NULL;
    return rc;
}

/* Why the bytes that arrived are not the blob (why[0] == '\0': they are). */
static void hold_verify(const struct fetch *f, pier_err rc, const struct upstream_resp *resp,
                        const char *got, char *why, size_t whysz)
{
    why[0] = '\0';
    if (rc != PIER_OK)
        snprintf(why, whysz, "upstream %s", resp->message);
    else if (strcmp(got, f->digest) != 0)
        snprintf(why, whysz, "the upstream sent %lld bytes with digest %s for blob %s",
                 f->written, got, f->digest);
    else if (f->total >= 0 && f->written != f->total)
        snprintf(why, whysz, "the upstream sent %lld of %lld bytes", f->written, f->total);
    else if (f->declared >= 0 && f->written != f->declared)
        snprintf(why, whysz, "the upstream sent %lld bytes for a blob its manifest declares "
                 "as %lld bytes", f->written, f->declared);
}

/* The bytes are the blob: make them durable, publish, record, release the
 * lease, and give the client the rest (or leave the answer to serve/). */
static void hold_publish(struct fetch *f)
{
    struct ctx *c = f->c;
    struct perr e;
    if (fsync(f->fd) != 0 && (errno == ENOSPC || errno == EDQUOT)) {
        discard_tmp(f);
        local_failure(f, PIER_E_STORAGE_FULL, "the blob store is full");
        return;
    }
    close(f->fd);
    f->fd = -1;
    if (record(f, &e) != PIER_OK) {
        /* The client still gets its verified bytes; the next request
         * downloads again. */
        log_error("blob %s for %s could not be stored or recorded: %s", f->digest, f->name,
                  e.msg);
        unlink(f->tmp);
        (void)lease_fail(c, f->key, f->holder, e.code, e.msg, 1);
        if (!f->headers_sent) {
            fail_client(f, e.code, e.msg);
            return;
        }
        if (f->pending_len)
            to_client(f, f->pending, f->pending_len, f->pending_off);
        return;
    }
    (void)lease_release(c, f->key, f->holder, &e);
    struct audit_event ev = {.action = "cache:Import", .repository = f->name, .target = f->digest};
    audit_record(c, &ev);
    stats_add(c->stats, f->rule->id, STAT_MISS, 1);
    stats_add(c->stats, f->rule->id, STAT_SERVED_BYTES, f->written);
    if (!f->headers_sent) {
        send_published(f, "miss");
        return;
    }
    if (f->pending_len)
        to_client(f, f->pending, f->pending_len, f->pending_off);
}

/* The upstream failed or sent wrong bytes: nothing is kept, the failure is
 * shared with the requests that wait for this download. */
static void hold_failed(struct fetch *f, pier_err rc, const struct upstream_resp *resp,
                        const char *why)
{
    struct ctx *c = f->c;
    discard_tmp(f);
    log_warn("blob %s for %s not cached (upstream %s): %s", f->digest, f->name,
             f->rule->upstream_url, why);
    stats_add(c->stats, f->rule->id, STAT_UPSTREAM_ERROR, 1);
    rules_note_error(c, f->rule->id, why);
    pier_err code;
    const char *msg;
    if (rc == PIER_OK) {
        code = PIER_E_UPSTREAM;
        msg = arena_printf(c->a, "the upstream of %s sent bad bytes: %s; nothing was cached",
                           f->rule->prefix, why);
    } else if (resp->failure == UPF_NOT_FOUND) {
        code = PIER_E_BLOB_UNKNOWN;
        msg = arena_printf(c->a, "blob not found upstream: %s", resp->message);
    } else {
        code = cache_upstream_error(resp->failure);
        msg = arena_printf(c->a, "the upstream of %s failed (%s) and the blob is not cached",
                           f->rule->prefix, resp->message);
    }
    /* Wrong bytes (a digest or size that does not match) are remembered
     * like a negative cache entry: nobody downloads them again soon. */
    /* "Not found" is an answer about one upstream repository, and the lease
     * is shared by every repository of the rule: not kept for anyone else. */
    (void)lease_fail(c, f->key, f->holder, code, msg,
                     code == PIER_E_BLOB_UNKNOWN ? 0 : fail_keep_s(f, rc == PIER_OK || f->why[0]));
    fail_client(f, code, msg);
}

/* This request holds the lease: download, verify, then publish or fail. */
static void hold(struct fetch *f, const char *upname)
{
    enum digest_alg alg;
    if (!hold_open(f, &alg))
        return;
    struct upstream_resp resp;
    char got[DIGEST_STR_MAX];
    pier_err rc = hold_download(f, upname, alg, &resp, got);
    if (f->local) {
        discard_tmp(f);
        local_failure(f, f->local, f->why);
        return;
    }
    char why[600];
    hold_verify(f, rc, &resp, got, why, sizeof why);
    if (!why[0])
        hold_publish(f);
    else
        hold_failed(f, rc, &resp, why);
}

/* ---- followers ---- */

static void follow_or_hold(struct fetch *f, const char *upname)
{
    struct ctx *c = f->c;
    struct perr e;
    int fd = -1;
    char open_path[PATH_MAX] = "";
    /* A follower waits as long as the holder lives (its lease is renewed)
     * and no longer than the holder's own download may take. */
    long long secs = 2LL * c->cfg->upstream_connect_timeout + c->cfg->upstream_idle_timeout +
                     c->cfg->lease_ttl + f->limit / c->cfg->upstream_min_rate;
    int64_t deadline = now_ms() + (secs > INT32_MAX ? INT32_MAX : secs) * 1000;
    for (;;) {
        bool mine = false;
        if (lease_acquire(c, f->key, f->holder, &mine, &e) != PIER_OK) {
            fail_client(f, e.code, e.msg);
            break;
        }
        if (mine) {
            if (fd >= 0)
                close(fd);
            /* Published meanwhile by the previous holder? Then no download,
             * if the caller may read it where it is (it may be somebody's
             * private layer that the upstream does not have at all). */
            long long size;
            if (repo_blob_readable(c, f->digest, &size, &e) == PIER_OK) {
                pier_err lrc = repo_blob_link(c, f->name, f->digest, size, f->rule->id, &e);
                if (lrc == PIER_OK) {
                    (void)lease_release(c, f->key, f->holder, &e);
                    finish_published(f, size);
                    return;
                }
                if (lrc != PIER_E_BLOB_UNKNOWN) { /* else: collected meanwhile, download it */
                    (void)lease_release(c, f->key, f->holder, &e);
                    fail_client(f, e.code, e.msg);
                    return;
                }
            }
            hold(f, upname);
            return;
        }
        struct lease l;
        if (lease_read(c, f->key, &l, &e) != PIER_OK) {
            fail_client(f, e.code, e.msg);
            break;
        }
        if (l.state == LEASE_NONE) {
            long long size;
            if (repo_blob_readable(c, f->digest, &size, &e) == PIER_OK) {
                pier_err lrc = repo_blob_link(c, f->name, f->digest, size, f->rule->id, &e);
                if (lrc == PIER_E_BLOB_UNKNOWN)
                    continue; /* collected meanwhile: take the lease and download it */
                if (lrc != PIER_OK) {
                    fail_client(f, e.code, e.msg);
                    break;
                }
                stats_add(c->stats, f->rule->id, STAT_HIT, 1);
                finish_published(f, size);
                break;
            }
            continue; /* released without publishing: try to take it */
        }
        if (l.state == LEASE_FAILED) {
            /* The download this request waited for (or one that just
             * failed) failed: the same answer, no second download. */
            fail_client(f, l.code, l.message[0] ? l.message : "the download failed");
            break;
        }
        if (l.expired)
            continue; /* the holder died: take over on the next turn */
        if (!f->following) {
            (void)lease_follow(c, f->key, &e); /* the holder syncs less often, no more */
            f->following = true;
        }
        if (l.total >= 0)
            f->total = l.total;
        long long upto = l.durable - 1; /* the last byte waits for verification */
        if (l.tmp_path[0] && upto > f->sent && !f->r->head) {
            if (strcmp(open_path, l.tmp_path) != 0) {
                if (fd >= 0)
                    close(fd);
                fd = open(l.tmp_path, O_RDONLY);
                snprintf(open_path, sizeof open_path, "%s", fd >= 0 ? l.tmp_path : "");
            }
            if (fd >= 0 && !file_to_client(f, fd, upto)) {
                /* Stale attributes (NFS) or renamed: reopen next time. */
                close(fd);
                fd = -1;
                open_path[0] = '\0';
            }
        }
        if (f->client_gone)
            break;
        if (now_ms() > deadline) {
            fail_client(f, PIER_E_UPSTREAM_TIMEOUT,
                        "timed out waiting for another request's download of this blob");
            break;
        }
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (fd >= 0)
        close(fd);
}

/* HEAD of a blob that is not cached: the upstream's answer, nothing fetched. */
static pier_err head_miss(struct ctx *c, struct req *r, const char *digest,
                          const struct cache_rule *rule, const char *upname, struct perr *e)
{
    struct upstream_resp resp;
    char *path = arena_printf(c->a, "blobs/%s", digest);
    struct upstream_req q = {.rule = rule, .repo = upname, .head = true, .path = path};
    if (upstream_do(c, &q, &resp, e) != PIER_OK) {
        if (resp.failure == UPF_NOT_FOUND)
            return perr_set(e, PIER_E_BLOB_UNKNOWN, "blob not found upstream: %s", resp.message);
        return perr_set(e, cache_upstream_error(resp.failure),
                        "the upstream of %s failed (%s) and the blob is not cached",
                        rule->prefix, resp.message);
    }
    resp_status(r, 200);
    resp_header(r, "Content-Type", "application/octet-stream");
    resp_header(r, "Docker-Content-Digest", "%s", digest);
    resp_header(r, "X-Pier-Cache", "miss");
    if (resp.content_length >= 0)
        resp_header(r, "Content-Length", "%lld", resp.content_length);
    resp_end(r);
    return PIER_OK;
}

pier_err cache_blob(struct ctx *c, struct req *r, const char *name, const char *digest,
                    const struct cache_rule *rule, struct cache_answer *out, struct perr *e)
{
    memset(out, 0, sizeof *out);
    out->outcome = CACHE_ANSWERED;
    char upname[NAME_MAX_LEN + 1];
    pier_err rc = rule_upstream_name(rule, name, upname, e);
    if (rc)
        return rc;
    /* Already in the store, in a repository this caller may read: link it,
     * no upstream traffic. Anything else comes from the upstream and is
     * verified there: neither a digest nor a manifest imported from an
     * upstream (which anyone can publish) proves that the caller may have
     * bytes another repository holds. */
    long long size;
    bool exists = true;
    if ((rc = repo_exists_named(c, name, &exists, e)) != PIER_OK)
        return rc;
    struct perr ig;
    if (exists && repo_blob_readable(c, digest, &size, &ig) == PIER_OK &&
        repo_blob_link(c, name, digest, size, rule->id, &ig) == PIER_OK) {
        stats_add(c->stats, rule->id, STAT_HIT, 1);
        out->outcome = CACHE_SEND;
        out->state = "hit";
        return PIER_OK;
    }
    /* Fetching from the upstream is an import, decided before any traffic. */
    if ((rc = authz_create_or_import(c, name, exists, true, e)) != PIER_OK)
        return rc;
    if (r->head)
        return head_miss(c, r, digest, rule, upname, e);
    struct fetch f;
    memset(&f, 0, sizeof f);
    f.c = c;
    f.r = r;
    f.name = name;
    f.digest = digest;
    f.rule = rule;
    f.out = out;
    f.e = e;
    f.fd = -1;
    f.total = -1;
    f.declared = -1;
    if ((rc = repo_blob_declared_size(c, name, digest, &f.declared, e)) != PIER_OK)
        return rc;
    f.limit = f.declared >= 0 ? f.declared : c->cfg->max_blob_size;
    /* One download per blob and rule: another rule's upstream (perhaps one
     * an attacker runs) never feeds its unverified bytes to this request. */
    snprintf(f.key, sizeof f.key, "b:%lld:%s", rule->id, digest);
    if (!uuid_v4(f.holder))
        return perr_set(e, PIER_E_INTERNAL, "the random number generator failed");
    follow_or_hold(&f, upname);
    return f.rc;
}

pier_err cache_upstream_error(int failure)
{
    switch (failure) {
    case UPF_TIMEOUT: return PIER_E_UPSTREAM_TIMEOUT;
    case UPF_RATE_LIMITED: return PIER_E_TOOMANYREQUESTS;
    default: return PIER_E_UPSTREAM;
    }
}
