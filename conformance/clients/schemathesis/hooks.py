"""Schemathesis hooks for the admin API run (test_schemathesis.py).

Positive cases get a fresh `Idempotency-Key` each: the generator otherwise reuses short values
("0") across different requests, which the API rightly answers 422 IdempotencyKeyReused, and
Python's `$` lets it append a newline a header cannot carry. Negative cases keep the generated
value, so a malformed key is still sent and must be refused.
"""

import re
import uuid

import schemathesis


@schemathesis.hook
def map_case(ctx, case):
    meta = getattr(case, "meta", None)
    positive = meta is None or meta.generation.mode.is_positive
    if positive and case.headers:
        for name in list(case.headers):
            if name.lower() == "idempotency-key":
                case.headers[name] = uuid.uuid4().hex
    return case


IP_FORM = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


@schemathesis.hook
def filter_path_parameters(ctx, path_parameters):
    """Skips bucket names in IP address form: S3 refuses them (InvalidBucketName), the
    document says so in words, and a regular expression without look-ahead (which the
    generator lacks) cannot."""
    bucket = (path_parameters or {}).get("bucket")
    return not (isinstance(bucket, str) and IP_FORM.fullmatch(bucket))
