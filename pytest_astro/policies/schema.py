"""DAG006 validates each serialized DAG against Airflow's own JSON schema, as the DAG processor does,
with a compiled form of that same schema in front of Airflow's validator.

Airflow validates with ``jsonschema.Draft7Validator``, which interprets the schema on every call
(a validator object per keyword it descends into). ``install`` puts ``Fast`` in its place on the
serializer class: the same schema compiled to Python by ``fastjsonschema`` answers first; only what
it accepts is accepted without Airflow's validator, and everything it rejects is validated by
Airflow's validator, whose verdict and exception (the message DAG006 shows) are final. So the
verdicts stay exactly Airflow's as long as the compiled form never accepts what Draft 7 rejects:

- it is built only for schemas that use the keywords whose meaning in fastjsonschema was compared
  with jsonschema's (``_UNCHECKED`` lists the others: no compiled form, Airflow's validator alone);
- where fastjsonschema is laxer it is made strict: a tuple is an "array" to it and not to
  jsonschema; and ``probe`` rejects the build when a version of fastjsonschema answers one of the
  known differences (a tuple as array, ``1`` as ``const: true``) otherwise;
- where it is stricter (``$`` at the very end of a pattern, ``Decimal`` and ``Fraction`` as
  numbers), Airflow's validator decides.

Without fastjsonschema installed, nothing changes.
"""

from __future__ import annotations

from typing import Any

#: keywords either Draft 7 implementation acts on whose meanings were not compared: a schema that uses
#: one gets no compiled form. The compared ones: type, properties, additionalProperties, required,
#: anyOf, allOf, items, minItems, maxItems, minProperties, maxProperties, const and enum (of scalars),
#: pattern, the numeric bounds (beside a numeric type), dependencies (lists of names), uniqueItems
#: (fastjsonschema tells True from 1 as jsonschema does; items it cannot hash raise, and then
#: Airflow's validator decides), $ref, definitions; any other key ("$comment", a misspelt keyword)
#: is ignored by both.
_UNCHECKED = frozenset({
    "additionalItems", "contains", "format", "if", "then", "else", "maxLength", "minLength", "multipleOf", "not",
    "oneOf", "patternProperties", "propertyNames", "contentEncoding", "contentMediaType",
})
#: bounds that jsonschema applies to any numbers.Number and fastjsonschema to int/float/Decimal only:
#: used only beside a "type" that makes fastjsonschema refuse the other numbers
_BOUNDS = frozenset({"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"})
_SCALARS = (str, int, float, bool, type(None))


def _checked(node: Any) -> bool:
    """Whether the schema ``node`` (and below) uses no keyword of ``_UNCHECKED``, and the checked ones
    only as vetted."""
    if isinstance(node, bool):
        return True
    if not isinstance(node, dict):
        return False
    for key, value in node.items():
        if key in _UNCHECKED:
            return False
        if key in ("properties", "definitions"):
            if not isinstance(value, dict) or not all(_checked(v) for v in value.values()):
                return False
        elif key in ("anyOf", "allOf"):
            if not isinstance(value, list) or not all(_checked(v) for v in value):
                return False
        elif key in ("items", "additionalProperties"):
            items = value if isinstance(value, list) else [value]
            if not all(_checked(v) for v in items):
                return False
        elif key in ("const", "enum"):  # jsonschema compares containers element-wise, bool apart
            values = value if key == "enum" else [value]
            if not isinstance(values, list) or not all(isinstance(v, _SCALARS) for v in values):
                return False
        elif key in _BOUNDS and not set(_types(node)) <= {"integer", "number"}:
            return False
        elif key == "dependencies":  # only lists of names (a schema would need checking too)
            if not isinstance(value, dict) or not all(
                    isinstance(names, list) and all(isinstance(n, str) for n in names) for names in value.values()):
                return False
    return True


def _types(node: dict) -> list[str]:
    kind = node.get("type")
    return [kind] if isinstance(kind, str) else list(kind) if isinstance(kind, list) else ["any"]


def compile_schema(schema: dict):
    """The compiled validator of ``schema`` (raises ``JsonSchemaException`` on what it rejects), or
    None when it cannot be trusted to be at least as strict as Draft 7 (see the module doc)."""
    try:
        from fastjsonschema.draft07 import CodeGeneratorDraft07
        from fastjsonschema.generator import enforce_list
        from fastjsonschema.ref_resolver import RefResolver
    except ImportError:
        return None
    if not isinstance(schema, dict) or not _checked(schema):
        return None

    class Strict(CodeGeneratorDraft07):
        def generate_type(self):
            super().generate_type()
            if "array" in enforce_list(self._definition["type"]):  # jsonschema: a list, never a tuple
                with self.l("if isinstance({variable}, tuple):"):
                    self.exc("{name} must be array", rule="type")

    def build(definition: dict):
        resolver = RefResolver.from_schema(definition, handlers={}, store={})
        generator = Strict(definition, resolver=resolver, formats={}, use_default=False, use_formats=False)
        state = generator.global_state
        exec(generator.func_code, state)  # what fastjsonschema.compile does, with our generator
        return state[resolver.get_scope_name()]

    try:
        if not probe(build):
            return None
        return build(schema)
    except Exception:  # a schema or a fastjsonschema version it cannot compile: Airflow's validator alone
        return None


def probe(build) -> bool:
    """Whether validators made by ``build`` refuse what jsonschema's Draft 7 refuses in the places
    fastjsonschema is known to differ (a version that changed them is not used)."""
    refused = [({"type": "array"}, ()), ({"const": True}, 1), ({"const": 1}, True), ({"enum": [0]}, False),
               ({"type": "integer"}, True), ({"properties": {"a": {"type": "array"}}}, {"a": ("x",)})]
    for definition, instance in refused:
        try:
            build({"$schema": "http://json-schema.org/draft-07/schema#", **definition})(instance)
        except Exception:
            continue
        return False
    return True


class Fast:
    """Airflow's schema validator with the compiled schema in front (``validate``); everything else
    (``schema``, ``iter_errors``...) is Airflow's validator's."""

    def __init__(self, real: Any, compiled) -> None:
        self.real = real
        self.compiled = compiled

    def validate(self, instance: Any) -> None:
        try:
            self.compiled(instance)
            return
        except Exception:  # rejected, or the compiled code cannot tell: Airflow's validator decides
            pass
        self.real.validate(instance)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


_TRIED: set[type] = set()


def install(serializer: type) -> None:
    """Put ``Fast`` in front of ``serializer``'s schema validator (tried once per process)."""
    if serializer in _TRIED:
        return
    _TRIED.add(serializer)
    real = serializer.__dict__.get("_json_schema")
    if real is None or isinstance(real, Fast):
        return
    try:
        schema = real.schema
    except Exception:
        return
    compiled = compile_schema(schema)
    if compiled is not None:
        serializer._json_schema = Fast(real, compiled)
