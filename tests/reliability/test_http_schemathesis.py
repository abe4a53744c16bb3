"""R8: schemathesis over every operation of the OpenAPI schema, in process (ASGI), with API
keys on: no 5xx, every status, content type and body as the schema says, invalid data refused,
authentication enforced where it is declared.

Path parameters point at a seeded collection (`docs`, documents `cat`...) half of the time, so
the handlers run on real data and not only to a 404. Fast tier: a few examples per operation;
full tier (make reliability): 100. Failures found here are kept as explicit cases at the end.
"""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from service import auth
from service.app import create_app

from .http_support import DOCS, http_settings

RW, RO = "fuzz-rw-key", "fuzz-ro-key"
AUTH = {"Authorization": f"Bearer {RW}"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
    use_after_free,
    ensure_resource_availability,
]
CALLS: Counter[str] = Counter()  # cases run per operation, printed at the end
REAL = {"name": "docs", "doc_id": "cat", "topic": "softmax"}
FAST_EXAMPLES, FULL_EXAMPLES = 5, 100


def fuzz(max_examples: int, coverage: bool) -> settings:
    """Hypothesis settings; `coverage` adds schemathesis' coverage phase (boundary and invalid
    values of every parameter, tens of cases per operation), which rides on Phase.explicit."""
    phases = [Phase.explicit, Phase.generate] if coverage else [Phase.generate]
    return settings(
        max_examples=max_examples,
        phases=phases,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure is reproducible
        suppress_health_check=list(HealthCheck),
        database=None,
    )


def seed(app: FastAPI) -> None:
    """The `docs` collection with DOCS, through the lifespan schemathesis runs for the app."""
    with asgi.get_client(app) as c:
        url = "http://testserver/v1/collections"
        c.post(url, json={"name": "docs", "get_or_create": True}, headers=AUTH)
        r = c.put(f"{url}/docs/documents", json={"documents": DOCS}, headers=AUTH)
        assert r.status_code == 200, r.text


def point_at_seeded_data(case: Any) -> None:
    """For about half of the cases, path parameters name seeded data (`docs`, `cat`, ...);
    never for a case whose path was generated invalid on purpose (it must stay invalid)."""
    if not case.path_parameters or (
        case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)
    ):
        return
    for key, value in list(case.path_parameters.items()):
        if key in REAL and zlib.crc32(repr(value).encode()) % 2:
            case.path_parameters[key] = REAL[key]


def same_type_tuples_as_arrays(node: Any) -> Any:
    """`prefixItems` of n equal schemas with minItems = maxItems = n, written as `items`: the
    same schema, in a form schemathesis 4.32 can check responses against (it turns prefixItems
    into a draft-4 `items` list and then rejects that under OpenAPI 3.1, schemathesis#4099).

    >>> same_type_tuples_as_arrays({"prefixItems": [{"type": "number"}] * 2, "minItems": 2,
    ...     "maxItems": 2})
    {'minItems': 2, 'maxItems': 2, 'items': {'type': 'number'}}
    """
    if isinstance(node, list):
        return [same_type_tuples_as_arrays(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: same_type_tuples_as_arrays(v) for k, v in node.items()}
    prefix = out.get("prefixItems")
    if not isinstance(prefix, list) or not prefix or "items" in out:
        return out
    n = len(prefix)
    if out.get("minItems") == n == out.get("maxItems") and all(p == prefix[0] for p in prefix):
        del out["prefixItems"]
        out["items"] = prefix[0]
    return out


# Built at import (schemathesis parametrizes at collection) but cheap: the engine starts with the
# lifespan, which schemathesis runs on the first request and the fixture below stops.
DATA = Path(tempfile.mkdtemp(prefix="vp-schemathesis-"))
APP = create_app(http_settings(DATA, api_key=RW, read_only_api_key=RO))
schema = schemathesis.openapi.from_dict(same_type_tuples_as_arrays(copy.deepcopy(APP.openapi())))
schema.app, schema.location = APP, "/openapi.json"
atexit.register(shutil.rmtree, DATA, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def http_lifespan() -> Iterator[None]:
    seed(APP)  # on disk: it outlives the lifespans
    yield
    asgi.shutdown_lifespans()
    if CALLS:
        counts = sorted(CALLS.items(), key=lambda kv: kv[1])
        print(
            f"\nR8 schemathesis: {sum(CALLS.values())} cases over {len(CALLS)} operations, "
            f"fewest {counts[:3]}, most {counts[-1]} (probes of the checks not counted)"
        )


def wait_ready(app: FastAPI) -> None:
    """schemathesis ends the app's lifespan after each test item and the next request starts a
    new one; /readyz is a documented 503 until its warm-up is done, so wait for it."""
    with asgi.get_client(app) as c:
        deadline = time.monotonic() + 30
        while c.get("http://testserver/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready"
            time.sleep(0.02)


def run(case: Any) -> None:
    CALLS[case.operation.label] += 1
    wait_ready(APP)
    point_at_seeded_data(case)
    case.call_and_validate(headers=AUTH, checks=CHECKS)
    if auth.access_of(case.method.upper(), case.path) == "write":
        seed(APP)  # it may have dropped or emptied the collection the next cases use


@schema.parametrize()
@fuzz(FAST_EXAMPLES, coverage=False)
def test_every_operation_fast(case: Any) -> None:
    run(case)


@pytest.mark.reliability_full
@schema.parametrize()
@fuzz(FULL_EXAMPLES, coverage=True)
def test_every_operation_full(case: Any) -> None:
    run(case)


# ---- what the fuzzing found, kept as plain tests ---------------------------------------------
def test_every_422_is_documented_as_the_error_shape() -> None:
    """Found by response_schema_conformance: the math routes declared FastAPI's default
    HTTPValidationError for 422, but the service answers {error, detail, field}."""
    doc = APP.openapi()
    assert "HTTPValidationError" not in str(doc)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "422" in op["responses"]:
                content = op["responses"]["422"]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (
                    method,
                    path,
                )


def test_readyz_503_while_starting_is_documented() -> None:
    """Found by not_a_server_error in the first run: /readyz is 503 until the warm-up is done,
    by design (probes must not route traffic yet); the schema says so."""
    responses = APP.openapi()["paths"]["/readyz"]["get"]["responses"]
    assert "503" in responses
