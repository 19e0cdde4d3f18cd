/* Fuzz target: manifests and indexes as pushed or fetched from an upstream
 * (manifest_parse in store/manifest.c) and Accept headers
 * (manifest_accepts). Input: line 1 is the Content-Type (empty: none), also
 * used as an Accept value; the rest is the body.
 * Checks: an accepted manifest has a known media type that matches its kind,
 * well-formed descriptors within the limits, and parses again, to the same
 * result, from its own serialization. */
#include <string.h>
#include <strings.h>
#include "fuzz.h"
#include "lib/grammar.h"
#include "store/manifest.h"

static const char *const TYPES[] = {MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST,
                                    MT_DOCKER_LIST};

static void check_descriptor(const struct descriptor *d)
{
    struct perr e;
    FUZZ_ASSERT(d->media_type && grammar_media_type(d->media_type));
    FUZZ_ASSERT(d->digest && grammar_digest(d->digest, NULL, &e) == PIER_OK);
    FUZZ_ASSERT(d->size >= 0);
}

static void check_manifest(const struct manifest *m)
{
    FUZZ_ASSERT(m->root && json_is_object(m->root));
    FUZZ_ASSERT(manifest_type_known(m->media_type));
    bool index = !strcmp(m->media_type, MT_OCI_INDEX) || !strcmp(m->media_type, MT_DOCKER_LIST);
    FUZZ_ASSERT(m->kind == (index ? MANIFEST_INDEX : MANIFEST_IMAGE));
    FUZZ_ASSERT(m->nrefs <= MANIFEST_MAX_DESCRIPTORS);
    FUZZ_ASSERT(m->nrefs == 0 || m->refs);
    for (size_t i = 0; i < m->nrefs; i++)
        check_descriptor(&m->refs[i]);
    if (m->kind == MANIFEST_IMAGE) {
        check_descriptor(&m->config);
        FUZZ_ASSERT(m->artifact_type && grammar_media_type(m->artifact_type));
    } else if (m->artifact_type) {
        FUZZ_ASSERT(grammar_media_type(m->artifact_type));
    }
    if (m->has_subject)
        check_descriptor(&m->subject);
    FUZZ_ASSERT(!m->annotations || json_is_object(m->annotations));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ctlen = nl ? (size_t)(nl - data) : size;
    char *ct = fuzz_strdup(data, ctlen);
    const char *body = nl ? (const char *)nl + 1 : "";
    size_t blen = nl ? size - ctlen - 1 : 0;

    struct manifest m;
    struct perr e;
    if (manifest_parse(body, blen, ct[0] ? ct : NULL, &m, &e) == PIER_OK) {
        check_manifest(&m);
        char *again = json_dumps(m.root, JSON_COMPACT);
        FUZZ_ASSERT(again);
        struct manifest m2;
        struct perr e2;
        pier_err rc = manifest_parse(again, strlen(again), m.media_type, &m2, &e2);
        if (rc != PIER_OK)
            fprintf(stderr, "reparse: %s\n", e2.msg);
        FUZZ_ASSERT(rc == PIER_OK);
        FUZZ_ASSERT(m2.kind == m.kind && m2.nrefs == m.nrefs && m2.has_subject == m.has_subject);
        FUZZ_ASSERT(!strcmp(m2.media_type, m.media_type));
        manifest_free(&m2);
        free(again);
        manifest_free(&m);
        FUZZ_ASSERT(m.root == NULL && m.refs == NULL);
    } else {
        FUZZ_ASSERT(e.code == PIER_E_MANIFEST_INVALID || e.code == PIER_E_DIGEST_INVALID);
        FUZZ_ASSERT(memchr(e.msg, '\0', sizeof e.msg) != NULL);
        FUZZ_ASSERT(m.root == NULL && m.refs == NULL);
    }

    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        bool ok = manifest_accepts(ct, TYPES[i]);
        if (!ct[0] || !strcmp(ct, "*/*") || !strcasecmp(ct, TYPES[i]))
            FUZZ_ASSERT(ok);
        FUZZ_ASSERT(manifest_accepts(TYPES[i], TYPES[i]));
    }
    free(ct);
    return 0;
}
