/* serve/push: the checks and steps a push takes on either API. */
#include "serve/push.h"

#include <string.h>
#include "auth/authz.h"
#include "lib/grammar.h"
#include "store/repo.h"

pier_err push_check(struct ctx *c, const char *name, struct perr *e)
{
    bool exists = true;
    pier_err rc = repo_check_push(c, name, &exists, e);
    if (rc)
        return rc;
    return authz_create_or_import(c, name, exists, false, e);
}

pier_err push_manifest(struct ctx *c, const char *name, const char *tag, const char *want,
                       const char *body, size_t len, const char *media_type,
                       char digest[DIGEST_STR_MAX], struct manifest *m, struct perr *e)
{
    memset(m, 0, sizeof *m);
    enum digest_alg alg = DIGEST_SHA256;
    pier_err rc;
    if (want && (rc = grammar_digest(want, &alg, e)) != PIER_OK)
        return rc;
    digest_buffer(alg, body, len, digest);
    if (want && strcmp(digest, want) != 0) {
        perr_set(e, PIER_E_DIGEST_INVALID, "the manifest's digest is %s, not %s", digest, want);
        perr_detail(e, "%s", digest);
        return e->code;
    }
    if ((rc = manifest_parse(body, len, media_type, m, e)) != PIER_OK)
        return rc;
    if ((rc = push_check(c, name, e)) == PIER_OK)
        rc = repo_manifest_put(c, name, tag, digest, m, body, len, 0, e);
    if (rc)
        manifest_free(m);
    return rc;
}
