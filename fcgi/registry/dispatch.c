/* dispatch: the table of endpoints, methods and handlers. */
#include "registry/dispatch.h"

#include <string.h>
#include "auth/authn.h"
#include "auth/authz.h"
#include "db/db.h"
#include "registry/errors.h"
#include "registry/handlers.h"
#include "registry/route.h"

struct endpoint {
    enum route_kind kind;
    const char *methods; /* space-separated, also the Allow header */
    void (*fn)(struct ctx *, struct req *, const struct route *);
};

static void h_base(struct ctx *c, struct req *r, const struct route *rt)
{
    (void)rt;
    /* Clients read the login challenge only here: anyone not logged in gets it. */
    struct perr e;
    if (!c->who->authenticated || authz_principal_check(c, &e) != PIER_OK) {
        if (!c->who->authenticated)
            perr_set(&e, PIER_E_UNAUTHORIZED, "authentication required");
        authn_error(c, r, &e, NULL);
        return;
    }
    resp_status(r, 200);
    resp_send(r, "application/json", "{}", 2);
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

void registry_handle(struct ctx *c, struct authn_cache *ac, struct req *r)
{
    struct perr e;
    struct route rt;
    resp_header(r, "Docker-Distribution-API-Version", "registry/2.0");
    if (route_parse(r->path, &rt, &e) != PIER_OK) {
        req_refuse_body(r);
        oci_error(r, &e);
        return;
    }
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        const struct endpoint *ep = &endpoints[i];
        if (ep->kind != rt.kind)
            continue;
        if (!method_allowed(ep->methods, r->method)) {
            req_refuse_body(r);
            char allow[64];
            size_t j = 0;
            for (const char *p = ep->methods; *p && j < sizeof allow - 2; p++)
                allow[j++] = *p == ' ' ? ',' : *p;
            allow[j] = '\0';
            resp_header(r, "Allow", "%s", allow);
            perr_set(&e, PIER_E_METHOD, "method %s is not allowed here (allowed: %s)", r->method,
                     allow);
            oci_error(r, &e);
            return;
        }
        if (db_ensure(c->db, &e) != PIER_OK) {
            req_refuse_body(r);
            oci_error(r, &e);
            return;
        }
        /* Every request is authenticated and authorized before any work. */
        struct identity *id = arena_alloc(r->a, sizeof *id);
        pier_err rc = authn_identify(c, ac, r, id, &e);
        arena_defer(r->a, clear_identity, id);
        c->who = id;
        if (rc) {
            req_refuse_body(r);
            authn_error(c, r, &e, NULL);
            return;
        }
        const char *action = action_for(rt.kind, r->method);
        if (action && authz_check(c, action, rt.name, &e) != PIER_OK) {
            req_refuse_body(r);
            const char *scope = arena_printf(
                r->a, "repository:%s:%s", rt.name,
                !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD") ? "pull"
                : !strcmp(r->method, "DELETE") ? "delete" : "push,pull");
            authn_error(c, r, &e, scope);
            return;
        }
        ep->fn(c, r, &rt);
        return;
    }
    perr_set(&e, PIER_E_NOT_FOUND, "no such endpoint");
    oci_error(r, &e);
}
