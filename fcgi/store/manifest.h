/* manifest: parsing and structural validation of image manifests and indexes
 * (OCI image manifest/index, Docker schema 2 manifest/manifest list). Pure: no
 * database, no I/O, so it is unit-tested directly. */
#ifndef PIER_MANIFEST_H
#define PIER_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "lib/err.h"

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

/* Upper bound on descriptors in one manifest (layers or children). */
#define MANIFEST_MAX_DESCRIPTORS 10000

enum manifest_kind { MANIFEST_IMAGE, MANIFEST_INDEX };

struct descriptor {
    const char *media_type;
    const char *digest;
    long long size;
    bool external;   /* has "urls": a foreign/non-distributable layer, not stored here */
};

struct manifest {
    json_t *root;                   /* owned; strings below point into it */
    const char *media_type;         /* resolved media type */
    enum manifest_kind kind;
    struct descriptor config;       /* image manifests */
    struct descriptor *refs;        /* layers (image) or child manifests (index); owned */
    size_t nrefs;
    bool has_subject;
    struct descriptor subject;
    const char *artifact_type;      /* as the referrers API reports it, or NULL */
    json_t *annotations;            /* borrowed from root, or NULL */
};

/* True for the four media types above. */
bool manifest_type_known(const char *media_type);

/* Parse body (len bytes) pushed with Content-Type content_type (may be NULL;
 * parameters are ignored). The media type is the Content-Type when it is a
 * known manifest type, else the body's "mediaType", else inferred from the
 * structure when the Content-Type is absent or generic JSON. They must agree
 * when both are given. Errors are PIER_E_MANIFEST_INVALID (or
 * PIER_E_DIGEST_INVALID for a malformed descriptor digest) with the JSON path
 * of the offending element. On success the caller owns m (manifest_free). */
PIER_MUST_USE
pier_err manifest_parse(const char *body, size_t len, const char *content_type,
                        struct manifest *m, struct perr *e);
void manifest_free(struct manifest *m);

/* Does an Accept header value (comma-separated, possibly repeated, with
 * parameters) allow media_type? NULL or empty accepts everything, as does
 * "*" + "/" + "*" or a matching type/star. */
bool manifest_accepts(const char *accept, const char *media_type);

#endif
