#!/usr/bin/env python3
"""An OpenAPI 3.0 description of N operations (default 1,000), for the
benchmark of loading one that size: N/4 resources, each with list, get,
update and delete, and shared component schemas (one of them recursive).
Deterministic: the same N gives the same bytes.

    bench/openapi/gen_spec.py [N] > big.json
"""
import json
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
paths = {}
for i in range(n // 4):
    r = f"/resource{i:04d}"
    ref = {"$ref": "#/components/schemas/Item"}
    paths[r] = {
        "get": {"operationId": f"list{i:04d}", "tags": [f"group{i % 10}"], "summary": f"List resource {i}",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                               {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["a", "b", "c"]}}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": ref}}}}}},
    }
    paths[r + "/{id}"] = {
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,36}$"}}],
        "get": {"operationId": f"get{i:04d}", "summary": f"One item of resource {i}",
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": ref}}}}},
        "put": {"operationId": f"update{i:04d}", "summary": f"Replace an item of resource {i}",
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": ref}}}}},
        "delete": {"operationId": f"delete{i:04d}", "responses": {"204": {"description": "gone"}}},
    }
spec = {
    "openapi": "3.0.3",
    "info": {"title": f"Generated API of {n} operations", "version": "1.0.0"},
    "servers": [{"url": "http://127.0.0.1:4010"}],
    "paths": paths,
    "components": {"schemas": {
        "Item": {"type": "object", "required": ["id", "name"], "properties": {
            "id": {"type": "string"}, "name": {"type": "string", "maxLength": 80},
            "price": {"type": "number", "minimum": 0, "nullable": True},
            "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
            "parent": {"$ref": "#/components/schemas/Item"}}},
        "Tag": {"type": "object", "properties": {"name": {"type": "string"}}},
    }},
}
json.dump(spec, sys.stdout, indent=1)
