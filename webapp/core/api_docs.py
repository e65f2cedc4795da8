"""The REST API's reference, for signed-in users only and served from this site alone.

``/api/schema/`` is drf-spectacular's OpenAPI document (behind sign-in, see
``SPECTACULAR_SETTINGS``); ``/api/docs/`` lists its operations as a plain page. No Swagger UI:
it would load scripts from an outside CDN onto the patient-data origin.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete")


def operations(schema: dict) -> list[dict]:
    """One row per path and method: method, path, summary or description, tags."""
    rows = []
    for path, item in sorted(schema.get("paths", {}).items()):
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            text = op.get("summary") or (op.get("description") or "").strip().split("\n")[0]
            rows.append(
                {"method": method.upper(), "path": path, "summary": text, "tags": op.get("tags", [])}
            )
    return rows


@login_required
def api_docs(request: HttpRequest) -> HttpResponse:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    info = schema.get("info", {})
    return render(request, "core/api_docs.html", {"info": info, "operations": operations(schema)})
