/* mutability: ECR's image tag mutability settings — MUTABLE, IMMUTABLE, and
 * IMMUTABLE_WITH_EXCLUSION / MUTABLE_WITH_EXCLUSION, whose WILDCARD filters
 * name the tags that behave the other way. Checks a setting as the control
 * plane receives it and decides whether a tag may move; owns no table (the
 * settings live with repositories and creation templates). */
#ifndef PIER_MUTABILITY_H
#define PIER_MUTABILITY_H

#include <stdbool.h>
#include <jansson.h>
#include "lib/contract.h"
#include "lib/err.h"

#define MUTABILITY_FILTERS_MAX 5      /* filters per setting (ECR's limit) */
#define MUTABILITY_FILTER_LEN_MAX 128 /* characters per filter (ECR's limit) */

/* Is mode one of ECR's four values? */
bool mutability_mode_valid(const char *mode);

/* Check mode (one of the four) with ECR's imageTagMutabilityExclusionFilters
 * (a JSON array of {"filterType": "WILDCARD", "filter": "<[0-9a-zA-Z._*-]{1,128}>"},
 * NULL when absent). The modes with exclusions need 1 to 5 filters; MUTABLE
 * and IMMUTABLE take none (a filter sent with them is refused, not dropped).
 * On success *values is a new JSON array of the filter strings (empty for
 * MUTABLE and IMMUTABLE), duplicates removed; the caller decrefs it. On
 * failure PIER_E_BAD_REQUEST with a message naming the field, *values NULL. */
PIER_MUST_USE
pier_err mutability_parse(const char *mode, json_t *filters, json_t **values, struct perr *e);

/* ECR's filter objects for values (an array of strings, NULL: none): a new
 * array the caller decrefs. */
json_t *mutability_filters_json(const json_t *values);

/* Does pattern match all of tag? '*' matches any run of characters (also
 * none); every other character matches itself. */
bool mutability_wildcard_match(const char *pattern, const char *tag);

/* Once set, may tag not move to another image under mode and the filter
 * values (the JSON text of an array of strings; NULL, unparsable or not an
 * array: no filters)? MUTABLE: never; IMMUTABLE: always;
 * IMMUTABLE_WITH_EXCLUSION: unless a filter matches; MUTABLE_WITH_EXCLUSION:
 * when a filter matches. An unknown mode counts as IMMUTABLE (fail closed). */
bool mutability_tag_immutable(const char *mode, const char *values_json, const char *tag);

#endif
