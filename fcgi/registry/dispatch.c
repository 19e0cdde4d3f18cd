/* dispatch: the table of endpoints, methods and handlers. */
#include "registry/dispatch.h"

#include <string.h>
#include <strings.h>
#include "auth/authn.h"
#include "auth/authz.h"
#include "auth/token.h"
#include "db/db.h"
#include "lib/log.h"
#include "registry/errors.h"
#include "registry/handlers.h"
#include "registry/mirror.h"
#include "registry/route.h"
#include "store/audit.h"

struct endpoint {
    enum route_kind kind;
    const char *methods; /* space-separated, also the Allow header */
    handler_fn *fn;
};

static pier_err h_base(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    (void)rt;
    /* Clients read the login challenge only here: anyone not logged in gets it. */
    if (!c->who->authenticated)
        return perr_set(e, PIER_E_UNAUTHORIZED, "authentication required");
    pier_err rc = authz_principal_check(c, e);
    if (rc)
        return rc;
    resp_status(r, 200);
    resp_send(r, "application/json", "{}", 2);
    return PIER_OK;
}

/* The scope a client asks the token endpoint for to be allowed this request
 * (the login challenge names it); NULL when none applies. A mirror request
 * names the repository as it was asked for (what runtimes ask a token for
 * anyway); its token covers the repository it maps to (authz). */
static const char *scope_for(struct req *r, const struct route *rt, const char *asked)
{
    switch (rt->kind) {
    case ROUTE_BASE: return NULL;
    case ROUTE_CATALOG: return "registry:catalog:*";
    /* Every upload request (status included) needs push: a pull token
     * would only earn the client a second 401. */
    case ROUTE_UPLOAD_START:
    case ROUTE_UPLOAD: return arena_printf(r->a, "repository:%s:push,pull", rt->name);
    default: break;
    }
    const char *m = r->method;
    return arena_printf(r->a, "repository:%s:%s", asked ? asked : rt->name,
                        !strcmp(m, "GET") || !strcmp(m, "HEAD") ? "pull"
                        : !strcmp(m, "DELETE")                  ? "delete"
                                                                : "push,pull");
}

/* The one place a failed registry request is answered. A response that
 * had begun (a streamed download) is broken off, so the client sees an
 * incomplete transfer; otherwise the rest of the body is refused, a 401
 * carries the login challenge (unless the handler set its own), a 429 with
 * a known wait carries Retry-After, and the error goes out as OCI JSON. */
static void fail(struct ctx *c, struct req *r, const char *scope, const struct perr *e)
{
    if (r->sent) {
        log_warn("%s %s broken off after the response began: %s", r->method, r->path, e->msg);
        resp_abort(r);
        return;
    }
    req_refuse_body(r);
    if (e->code == PIER_E_UNAUTHORIZED && !resp_has_header(r, "WWW-Authenticate"))
        authn_challenge(c, r, scope);
    if (e->code == PIER_E_TOOMANYREQUESTS && e->detail[0])
        resp_header(r, "Retry-After", "%s", e->detail);
    oci_error(r, e);
}

/* The token of a layer download URL (GET or HEAD of a blob with
 * ?download_token=), or NULL when the request is not one. A parameter that
 * does not decode is an empty token, which authn_download() refuses. */
static const char *download_token(struct req *r, const struct route *rt)
{
    if (rt->kind != ROUTE_BLOB || (strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) ||
        !strstr(r->query, AUTHN_DOWNLOAD_PARAM))
        return NULL;
    char *tok = arena_alloc(r->a, TOKEN_MAX + 2);
    int have = req_query(r, AUTHN_DOWNLOAD_PARAM, tok, TOKEN_MAX + 2);
    if (have == 0)
        return NULL;
    return have > 0 ? tok : "";
}

static void clear_identity(void *p)
{
    identity_clear(p);
}

/* The ECR action a request needs on its repository (NULL: decided by the
 * handler, as for the catalog). */
static const char *action_for(enum route_kind kind, const char *method)
{
    bool get = !strcmp(method, "GET"), head = !strcmp(method, "HEAD");
    switch (kind) {
    case ROUTE_MANIFEST:
        return get || head ? "ecr:BatchGetImage"
               : !strcmp(method, "PUT") ? "ecr:PutImage" : "ecr:BatchDeleteImage";
    case ROUTE_BLOB:
        return get ? "ecr:GetDownloadUrlForLayer"
               : head ? "ecr:BatchCheckLayerAvailability" : "ecr:BatchDeleteImage";
    case ROUTE_UPLOAD_START: return "ecr:InitiateLayerUpload";
    case ROUTE_UPLOAD:
        return !strcmp(method, "PUT") ? "ecr:CompleteLayerUpload" : "ecr:UploadLayerPart";
    case ROUTE_TAGS: return "ecr:ListImages";
    case ROUTE_REFERRERS: return "ecr:BatchGetImage";
    default: return NULL;
    }
}

static const struct endpoint endpoints[] = {
    {ROUTE_BASE, "GET HEAD", h_base},
    {ROUTE_CATALOG, "GET HEAD", h_catalog},
    {ROUTE_TAGS, "GET HEAD", h_tags},
    {ROUTE_MANIFEST, "GET HEAD PUT DELETE", h_manifest},
    {ROUTE_BLOB, "GET HEAD DELETE", h_blob},
    {ROUTE_UPLOAD_START, "POST", h_upload_start},
    {ROUTE_UPLOAD, "GET PATCH PUT DELETE", h_upload},
    {ROUTE_REFERRERS, "GET HEAD", h_referrers},
};

static bool method_allowed(const char *methods, const char *m)
{
    size_t ml = strlen(m);
    for (const char *p = methods; *p;) {
        size_t l = strcspn(p, " ");
        if (l == ml && memcmp(p, m, l) == 0)
            return true;
        p += l;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* Who a refused Basic login claimed to be, for the audit trail: "AWS" or an
 * access key id as sent; anything else ("unknown") might be a mistyped
 * secret, and secrets never reach the trail. */
static const char *claimed_user(struct req *r)
{
    const char *h = req_header(r, "Authorization");
    char *user, *pass;
    if (!h || strncasecmp(h, "Basic ", 6) != 0 || !authn_decode_basic(r->a, h + 6, &user, &pass))
        return "unknown";
    size_t n = strlen(user);
    bool key = n >= 16 && n <= 32;
    for (size_t i = 0; key && i < n; i++)
        key = (user[i] >= 'A' && user[i] <= 'Z') || (user[i] >= '0' && user[i] <= '9');
    return key || strcmp(user, "AWS") == 0 ? user : "unknown";
}

/* The registry's audit events: sign-ins (a login's GET /v2/ with Basic
 * credentials, refused credentials), denials of an authenticated caller,
 * and deletes. Pulls, pushes and anonymous challenges are not recorded. */
static void audit_registry(struct ctx *c, struct req *r, const struct route *rt, const char *action,
                           pier_err rc)
{
    struct audit_event ev = {.action = action, .result = rc ? oci_code(rc) : NULL};
    if (rt && rt->name[0]) {
        ev.repository = rt->name;
        ev.target = rt->ref[0] ? rt->ref : NULL;
    }
    if (rc == PIER_E_UNAUTHORIZED && !c->who->authenticated)
        ev.principal = claimed_user(r);
    audit_record(c, &ev);
}

void registry_handle(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    struct perr e;
    struct route rt;
    resp_header(r, "Docker-Distribution-API-Version", "registry/2.0");
    if (route_parse(r->path, &rt, &e) != PIER_OK) {
        /* The spec's endpoint table lists only 404 for GET and HEAD of a
         * manifest: a reference that is no tag or digest names nothing. */
        if (rt.kind == ROUTE_MANIFEST && rt.name[0] &&
            (e.code == PIER_E_MANIFEST_INVALID || e.code == PIER_E_DIGEST_INVALID) &&
            (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"))) {
            char msg[PERR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", e.msg);
            perr_set(&e, PIER_E_MANIFEST_UNKNOWN, "no manifest has that reference: %s", msg);
        }
        fail(c, r, NULL, &e);
        return;
    }
    const struct endpoint *ep = NULL;
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (endpoints[i].kind == rt.kind)
            ep = &endpoints[i];
    if (!ep) {
        perr_set(&e, PIER_E_NOT_FOUND, "no such endpoint");
        fail(c, r, NULL, &e);
        return;
    }
    if (!method_allowed(ep->methods, r->method)) {
        char allow[64];
        size_t j = 0;
        for (const char *p = ep->methods; *p && j < sizeof allow - 2; p++)
            allow[j++] = *p == ' ' ? ',' : *p;
        allow[j] = '\0';
        resp_header(r, "Allow", "%s", allow);
        perr_set(&e, PIER_E_METHOD, "method %s is not allowed here (allowed: %s)", r->method,
                 allow);
        fail(c, r, NULL, &e);
        return;
    }
    if (db_ensure(c->db, &e) != PIER_OK) {
        fail(c, r, NULL, &e);
        return;
    }
    /* Mirror mode: the repository a runtime's unprefixed pull means, before
     * anything is authorized (policies apply to that repository). */
    const char *asked = NULL;
    if (mirror_map(c, r, &rt, &asked, &e) != PIER_OK) {
        fail(c, r, NULL, &e);
        return;
    }
    /* Every request is authenticated and authorized before any work. */
    /* A download URL carries its own credential, the principal that asked
     * for it (GetDownloadUrlForLayer), and is authorized as that principal. */
    struct identity *id = arena_alloc(r->a, sizeof *id);
    const char *download = download_token(r, &rt);
    pier_err rc = download ? authn_download(c, ac, download, rt.name, rt.ref, id, &e)
                           : authn_identify(c, ac, r, id, &e);
    arena_defer(r->a, clear_identity, id);
    if (asked) {
        id->mirror_asked = asked;
        id->mirror_mapped = arena_strdup(r->a, rt.name);
    }
    c->who = id;
    if (rc) {
        if (rc == PIER_E_UNAUTHORIZED || rc == PIER_E_DENIED || rc == PIER_E_TOOMANYREQUESTS)
            audit_registry(c, r, &rt, "registry:SignIn", rc);
        fail(c, r, NULL, &e);
        return;
    }
    const char *action = action_for(rt.kind, r->method);
    if (action && authz_check(c, action, rt.name, &e) != PIER_OK) {
        /* The URL is the credential: no login challenge, whatever refused it. */
        if (download && e.code == PIER_E_UNAUTHORIZED)
            e.code = PIER_E_DENIED;
        if (c->who->authenticated)
            audit_registry(c, r, &rt, action, e.code);
        fail(c, r, scope_for(r, &rt, asked), &e);
        return;
    }
    rc = ep->fn(c, r, &rt, &e);
    bool del = !strcmp(r->method, "DELETE");
    if (del && rt.kind == ROUTE_MANIFEST)
        audit_registry(c, r, &rt, "registry:DeleteManifest", rc);
    else if (del && rt.kind == ROUTE_BLOB)
        audit_registry(c, r, &rt, "registry:DeleteBlob", rc);
    else if (rc == PIER_E_DENIED && c->who->authenticated)
        audit_registry(c, r, &rt, action ? action : "registry:Access", rc);
    else if (rt.kind == ROUTE_BASE && !rc &&
             (c->who->via == VIA_ACCESS_KEY || c->who->via == VIA_LOGIN_TOKEN))
        audit_registry(c, r, NULL, "registry:SignIn", rc);
    if (rc)
        fail(c, r, scope_for(r, &rt, asked), &e);
}

void registry_token(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    struct perr e;
    pier_err rc = authn_token_endpoint(c, ac, r, &e);
    /* A sign-in when credentials came (anonymous tokens are pulls), in the
     * Authorization header or in a posted form (refused: 401). */
    if (c->who->authenticated || (rc && req_header(r, "Authorization")) ||
        (rc == PIER_E_UNAUTHORIZED && strcmp(r->method, "POST") == 0))
        audit_registry(c, r, NULL, "registry:GetToken", rc);
    if (rc)
        fail(c, r, NULL, &e);
}
