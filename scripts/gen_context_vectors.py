#!/usr/bin/env python3
"""Writes tests/data/context_hash_vectors.json: contexts and the hash the Python
qortex-learning package stores for them (python3 stdlib only).

    context_hash(ctx) = "default" if not ctx else
        sha256(json.dumps(ctx, sort_keys=True, separators=(",", ":")).encode())[:16]

Each vector keeps the context as Python's JSON text (what a client would send as jsonb).
Contexts that jsonb cannot represent faithfully are left out: floats of 1e16 and more, which
Python writes as 1e+16 and jsonb keeps as the integer 10000000000000000 (and hashes as that),
-0.0 (jsonb: 0.0) and "\\u0000" (jsonb refuses it).
"""
import hashlib
import json
import pathlib


def context_hash(ctx):
    if not ctx:
        return "default"
    canonical = json.dumps(ctx, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


CONTEXTS = [
    {},
    {"task": "type-check"},
    {"task": "summarise", "lang": "en"},
    {"b": 1, "a": 2, "c": 3},
    {"nested": {"z": 1, "a": {"y": [3, 2, 1], "b": None}}},
    {"list": [1, "two", 3.0, None, True, False]},
    {"objs": [{"b": 1, "a": 2}, {"d": [], "c": {}}]},
    {"empty_list": [], "empty_obj": {}},
    {"unicode": "café"},
    {"cjk": "日本語のテキスト"},
    {"emoji": "rocket 🚀 and 😀"},
    {"astral_key_😀": "v"},
    {"quote": 'say "hi"'},
    {"backslash": "C:\\path\\to"},
    {"controls": "tab\tnewline\ncr\rbell\x07esc\x1b\x1f"},
    {"del": "\x7f", "slash": "a/b"},
    {"float": 0.1},
    {"float": 1.0},
    {"float": 1e-05},
    {"float": 2.5e-07},
    {"float": 123.456},
    {"floats": [0.5, 100.0, 1e-4, 1e15, 3.141592653589793, -2.5]},
    {"big_float": 1.5e+15, "tiny": 5e-324, "small": 1.7976931348623157e-300},
    {"int": 42},
    {"neg": -7},
    {"bigint": 123456789012345678901234567890},
    {"int64max": 9223372036854775807, "beyond": 18446744073709551616},
    {"bool_true": True, "bool_false": False},
    {"null": None},
    {"mixed": {"user": "u1", "k": 10, "temp": 0.7, "tags": ["x", "y"]}},
    {"deep": {"a": {"b": {"c": {"d": {"e": [1, [2, [3, {"f": "g"}]]]}}}}}},
    {"key with spaces": 1, "key:colon": 2, "": 3},
    {"Z": 1, "a": 2, "_": 3, "1": 4},
    {"é": 1, "e": 2, "f": 3},
]


def main():
    vectors = [
        {"context": json.dumps(c), "hash": context_hash(c),
         "canonical": json.dumps(c, sort_keys=True, separators=(",", ":"))}
        for c in CONTEXTS
    ]
    out = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data" / "context_hash_vectors.json"
    out.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    main()
