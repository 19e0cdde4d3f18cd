/* Unit tests for manifest parsing, validation and Accept negotiation. */
#include "store/manifest.h"
#include "tap.h"

#define D1 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define D2 "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

static pier_err parse(const char *body, const char *ct, struct manifest *m, struct perr *e)
{
    return manifest_parse(body, strlen(body), ct, m, e);
}

int main(void)
{
    struct manifest m;
    struct perr e;
    const char *oci =
        "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1
        "\",\"size\":2},"
        "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D2
        "\",\"size\":3}],\"annotations\":{\"a\":\"b\"}}";
    CHECK("oci manifest parses", parse(oci, MT_OCI_MANIFEST, &m, &e) == PIER_OK);
    CHECK("oci manifest kind image", m.kind == MANIFEST_IMAGE && m.nrefs == 1);
    CHECK("oci manifest config digest", !strcmp(m.config.digest, D1));
    CHECK("artifactType falls back to config media type",
          !strcmp(m.artifact_type, "application/vnd.oci.image.config.v1+json"));
    CHECK("annotations kept", json_is_object(m.annotations));
    manifest_free(&m);
    CHECK("content-type with parameters", parse(oci, MT_OCI_MANIFEST "; charset=utf-8", &m, &e) == PIER_OK);
    manifest_free(&m);
    CHECK("no content-type uses mediaType", parse(oci, NULL, &m, &e) == PIER_OK &&
                                                !strcmp(m.media_type, MT_OCI_MANIFEST));
    manifest_free(&m);
    CHECK("content-type mismatch refused",
          parse(oci, MT_DOCKER_MANIFEST, &m, &e) == PIER_E_MANIFEST_INVALID &&
              strstr(e.msg, "does not match"));

    const char *nomt = "{\"schemaVersion\":2,\"manifests\":[]}";
    CHECK("index inferred without media type", parse(nomt, "application/json", &m, &e) == PIER_OK &&
                                                   m.kind == MANIFEST_INDEX && m.nrefs == 0);
    manifest_free(&m);

    const char *index =
        "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
        "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":10,"
        "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";
    CHECK("index parses", parse(index, MT_OCI_INDEX, &m, &e) == PIER_OK && m.kind == MANIFEST_INDEX &&
                              m.nrefs == 1 && m.artifact_type == NULL);
    manifest_free(&m);

    const char *docker = "{\"schemaVersion\":2,\"mediaType\":\"" MT_DOCKER_MANIFEST "\","
                         "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\","
                         "\"digest\":\"" D1 "\",\"size\":2},\"layers\":[]}";
    CHECK("docker manifest parses", parse(docker, MT_DOCKER_MANIFEST, &m, &e) == PIER_OK);
    manifest_free(&m);
    const char *docker_nomt = "{\"schemaVersion\":2,"
                              "\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":2},"
                              "\"layers\":[]}";
    CHECK("docker manifest without mediaType refused",
          parse(docker_nomt, MT_DOCKER_MANIFEST, &m, &e) == PIER_E_MANIFEST_INVALID);

    const char *artifact =
        "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"artifactType\":\"application/x.sig\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"" D1 "\",\"size\":2},"
        "\"layers\":[],\"subject\":{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":9}}";
    CHECK("artifact parses", parse(artifact, MT_OCI_MANIFEST, &m, &e) == PIER_OK);
    CHECK("artifact subject", m.has_subject && !strcmp(m.subject.digest, D2));
    CHECK("artifact type explicit", !strcmp(m.artifact_type, "application/x.sig"));
    manifest_free(&m);

    CHECK("invalid JSON", parse("{not json", MT_OCI_MANIFEST, &m, &e) == PIER_E_MANIFEST_INVALID &&
                              strstr(e.msg, "not valid JSON"));
    CHECK("JSON array refused", parse("[]", MT_OCI_MANIFEST, &m, &e) == PIER_E_MANIFEST_INVALID);
    CHECK("schema 1 refused",
          parse("{\"schemaVersion\":1}", NULL, &m, &e) == PIER_E_MANIFEST_INVALID &&
              strstr(e.msg, "schemaVersion"));
    CHECK("duplicate keys refused",
          parse("{\"schemaVersion\":2,\"schemaVersion\":2}", NULL, &m, &e) == PIER_E_MANIFEST_INVALID);
    CHECK("unknown media type refused",
          parse("{\"schemaVersion\":2,\"mediaType\":\"application/x.foo\"}", "application/x.foo", &m,
                &e) == PIER_E_MANIFEST_INVALID && strstr(e.msg, "unsupported"));
    const char *baddigest = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
                            "\"config\":{\"mediaType\":\"a/b\",\"digest\":\"sha256:xyz\",\"size\":2},"
                            "\"layers\":[]}";
    CHECK("bad descriptor digest names the path",
          parse(baddigest, NULL, &m, &e) == PIER_E_MANIFEST_INVALID && strstr(e.msg, "config.digest"));
    const char *badsize = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
                          "\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":2},"
                          "\"layers\":[{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":-1}]}";
    CHECK("negative layer size names the path",
          parse(badsize, NULL, &m, &e) == PIER_E_MANIFEST_INVALID && strstr(e.msg, "layers[0].size"));
    const char *nocfg = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\",\"layers\":[]}";
    CHECK("missing config refused", parse(nocfg, NULL, &m, &e) == PIER_E_MANIFEST_INVALID &&
                                        strstr(e.msg, "config"));
    const char *mixed = "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[],\"layers\":[]}";
    CHECK("index with layers refused", parse(mixed, NULL, &m, &e) == PIER_E_MANIFEST_INVALID);

    CHECK("accept: none", manifest_accepts(NULL, MT_OCI_MANIFEST));
    CHECK("accept: exact", manifest_accepts(MT_OCI_MANIFEST, MT_OCI_MANIFEST));
    CHECK("accept: list", manifest_accepts(MT_DOCKER_MANIFEST ", " MT_OCI_MANIFEST, MT_OCI_MANIFEST));
    CHECK("accept: q param", manifest_accepts(MT_OCI_INDEX ";q=0.5", MT_OCI_INDEX));
    CHECK("accept: other only", !manifest_accepts(MT_DOCKER_MANIFEST, MT_OCI_MANIFEST));
    CHECK("accept: star", manifest_accepts("*/*", MT_OCI_MANIFEST));
    CHECK("accept: type star", manifest_accepts("application/*", MT_OCI_MANIFEST));
    CHECK("accept: prefix is not a match", !manifest_accepts("application/vnd.oci.image.manifest.v1", MT_OCI_MANIFEST));
    return TAP_DONE();
}
