"""Validates an OpenAPI document with openapi-spec-validator (3.0 or 3.1)."""
import json
import sys

from openapi_spec_validator import validate

with open(sys.argv[1]) as f:
    doc = json.load(f)
validate(doc)
print(f"valid OpenAPI {doc['openapi']}: {len(doc['paths'])} paths")
