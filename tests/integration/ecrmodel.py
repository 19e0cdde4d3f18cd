"""The installed botocore ECR model, for tests that check answers against it.

  operations()        every operation name of the model
  output_errors(op)   the exception names the model lists for op
  check_output(op, doc)  doc (the raw JSON an operation answered, not what
                      boto3 made of it) against op's output shape: members
                      the shape does not have, required members missing,
                      wrong types, enum values outside the enum, strings or
                      lists outside their bounds. Raises AssertionError
                      naming the JSON path of each problem.
  check_error(op, code)  the exception is one the model lists for op, or one
                      every AWS JSON API may answer (AccessDeniedException,
                      ValidationException, ...)

boto3 drops members it does not know and rarely checks types, so a wrong
answer can look right through it: check the wire document.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import re

from pierlib import PreconditionError, api_error_body, signed_api_request

# Errors any operation of an AWS JSON API may answer, beside its own.
COMMON_ERRORS = {"AccessDeniedException", "ValidationException", "ThrottlingException",
                 "UnrecognizedClientException", "InvalidSignatureException",
                 "MissingAuthenticationTokenException", "SerializationException", "ServerException"}

_MODEL: list[dict] = []


def model() -> dict:
    """The service model botocore uses (data/ecr/2015-09-21/service-2.json[.gz])."""
    if not _MODEL:
        try:
            import botocore
        except ImportError as e:
            raise PreconditionError(f"precondition missing: Python module botocore ({e})") from None
        base = os.path.join(os.path.dirname(botocore.__file__), "data", "ecr", "2015-09-21", "service-2.json")
        if os.path.exists(base):
            with open(base) as f:
                _MODEL.append(json.load(f))
        elif os.path.exists(base + ".gz"):
            with gzip.open(base + ".gz") as f:
                _MODEL.append(json.load(f))
        else:
            raise PreconditionError(f"precondition missing: no ECR model at {base}[.gz]")
    return _MODEL[0]


def operations() -> list[str]:
    return sorted(model()["operations"])


def output_errors(op: str) -> set[str]:
    return {e["shape"] for e in model()["operations"][op].get("errors", [])}


def check_error(op: str, code: str) -> None:
    allowed = output_errors(op) | COMMON_ERRORS
    assert code in allowed, f"{op} answered {code}, which its model does not list ({sorted(output_errors(op))})"


def check_output(op: str, doc) -> None:
    shape = model()["operations"][op].get("output", {}).get("shape")
    problems: list[str] = []
    if shape is None:
        if doc not in ({}, None):
            problems.append(f"{op} has no output in the model, answered {doc!r}")
    else:
        _check(shape, doc, op, problems)
    assert not problems, f"{op}'s answer does not fit the model: " + "; ".join(problems[:10])


def _check(name: str, v, path: str, problems: list[str]) -> None:
    s = model()["shapes"][name]
    t = s["type"]
    if t == "structure":
        if not isinstance(v, dict):
            problems.append(f"{path}: expected an object ({name}), got {v!r:.80}")
            return
        members = s.get("members", {})
        for k in v:
            # Pier's documented extension members (pierMaxBytes, pierUpstreamHealth, ...) are
            # named pier*: the SDKs and the CLIs ignore members their model lacks.
            if k not in members and not k.startswith("pier"):
                problems.append(f"{path}.{k}: not a member of {name}")
        for k in s.get("required", []):
            if k not in v:
                problems.append(f"{path}.{k}: required by {name}, missing")
        for k, m in members.items():
            if k in v and v[k] is not None:
                _check(m["shape"], v[k], f"{path}.{k}", problems)
    elif t == "list":
        if not isinstance(v, list):
            problems.append(f"{path}: expected a list ({name}), got {v!r:.80}")
            return
        if "min" in s and len(v) < s["min"] or "max" in s and len(v) > s["max"]:
            problems.append(f"{path}: {len(v)} items, {name} allows {s.get('min', 0)}..{s.get('max', '')}")
        for i, item in enumerate(v):
            _check(s["member"]["shape"], item, f"{path}[{i}]", problems)
    elif t == "map":
        if not isinstance(v, dict):
            problems.append(f"{path}: expected a map ({name}), got {v!r:.80}")
            return
        for k, item in v.items():
            _check(s["key"]["shape"], k, f"{path}<key {k}>", problems)
            _check(s["value"]["shape"], item, f"{path}.{k}", problems)
    elif t == "string":
        if not isinstance(v, str):
            problems.append(f"{path}: expected a string ({name}), got {v!r:.80}")
            return
        if "enum" in s and v not in s["enum"]:
            problems.append(f"{path}: {v!r} is not one of {s['enum']}")
        if "min" in s and len(v) < s["min"] or "max" in s and len(v) > s["max"]:
            problems.append(f"{path}: {len(v)} characters, {name} allows {s.get('min', 0)}..{s.get('max', '')}")
        if "pattern" in s and not re.search(s["pattern"], v):
            problems.append(f"{path}: {v!r} does not match {name}'s pattern {s['pattern']}")
    elif t in ("integer", "long"):
        if not isinstance(v, int) or isinstance(v, bool):
            problems.append(f"{path}: expected an integer ({name}), got {v!r:.80}")
        elif "min" in s and v < s["min"] or "max" in s and v > s["max"]:
            problems.append(f"{path}: {v} outside {s.get('min')}..{s.get('max')}")
    elif t in ("double", "float"):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            problems.append(f"{path}: expected a number ({name}), got {v!r:.80}")
    elif t == "boolean":
        if not isinstance(v, bool):
            problems.append(f"{path}: expected a boolean ({name}), got {v!r:.80}")
    elif t == "timestamp":
        # AWS JSON 1.1 sends epoch seconds (a number), or ISO 8601 text for some shapes.
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            problems.append(f"{path}: expected a timestamp ({name}), got {v!r:.80}")
        elif isinstance(v, str):
            try:
                datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"{path}: {v!r} is not a timestamp")
    elif t == "blob":
        if not isinstance(v, str):
            problems.append(f"{path}: expected base64 text ({name}), got {v!r:.80}")
    else:
        problems.append(f"{path}: the checker does not know shape type {t} ({name})")


def raw(op: str, body: dict, creds=None) -> dict:
    """The wire answer of op (a signed request, no SDK in between), checked against the
    model's output shape."""
    r = signed_api_request(op, body, creds=creds)
    assert r.status == 200, f"{op} {body}: {r.summary()}"
    doc = r.json()
    check_output(op, doc)
    return doc


def raw_error(op: str, body: dict, code: str, creds=None) -> str:
    """op fails with code (one the model lists for it, or a common one); returns the message."""
    msg = api_error_body(signed_api_request(op, body, creds=creds), code)
    check_error(op, code)
    return msg
