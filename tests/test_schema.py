"""DAG006's compiled schema (policies/schema.py) against Airflow's own validator: never more lenient,
and every refusal is Airflow's, with Airflow's message.

Runs in a subprocess (this process must not import Airflow): real serialized DAGs, then thousands of
variants of them that the schema refuses (a value of another type, a tuple where the schema wants an
array, ``1`` for ``true``, an unknown or a missing key, a colour that breaks its pattern, an item
twice...).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("fastjsonschema")

SCRIPT = textwrap.dedent('''
    import copy, json, random
    from datetime import datetime, timedelta

    from pytest_astro.parse.adapter import adapter, MAJOR
    from pytest_astro.policies import schema

    ad = adapter()
    if MAJOR >= 3:
        from airflow.serialization.serialized_objects import DagSerialization as Serializer
        from airflow.sdk import task
    else:
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer
        from airflow.decorators import task
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.empty import EmptyOperator


    class Coloured(EmptyOperator):
        ui_color = "#abc"

    real = Serializer.__dict__["_json_schema"]
    compiled = schema.compile_schema(real.schema)
    assert compiled is not None, "no compiled form of Airflow's schema"
    fast = schema.Fast(real, compiled)

    dags = []
    with ad.DAG("classic", start_date=datetime(2024, 1, 1), schedule="@daily", tags=["a"], params={"p": 1},
                default_args={"retries": 2, "retry_delay": timedelta(minutes=5)}) as dag:
        EmptyOperator(task_id="a") >> BashOperator(task_id="b", bash_command="echo 1", pool_slots=2)
    dags.append(dag)
    with ad.DAG("mapped", start_date=datetime(2024, 1, 1), schedule=timedelta(hours=1)) as dag:
        @task
        def listing():
            return [1, 2]

        @task
        def each(x):
            return x

        each.expand(x=listing()) >> Coloured(task_id="c")
    dags.append(dag)

    def paths(node, path=()):
        yield path
        if isinstance(node, dict):
            for key in list(node):
                yield from paths(node[key], path + (key,))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                yield from paths(value, path + (i,))

    def at(node, path):
        for key in path:
            node = node[key]
        return node

    def variants(value):
        out = [None, 1, 1.5, True, "x", "red", "#abc\\n", [], {}, {"zz_unknown": 1}]
        if isinstance(value, list):
            out += [tuple(value), value + [object()], value + value[:1], value + [[]], value + [{}]]
        if isinstance(value, dict):
            out += [{**value, "zz_unknown": 1}] + [{k: v for k, v in value.items() if k != drop} for drop in value]
        if value is True:
            out.append(1)
        if isinstance(value, int) and not isinstance(value, bool):
            out += [True, -1, 0, str(value)]
        return out

    def verdict(validate, instance):
        try:
            validate(instance)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    checked = refused = lenient = differ = 0
    for dag in dags:
        base = Serializer.to_dict(dag)  # validated by Airflow (and by the compiled form, installed or not)
        assert verdict(real.validate, base) is None and verdict(fast.validate, base) is None
        for path in list(paths(base)):
            if not path or isinstance(at(base, path[:-1]), tuple):  # a tuple's items cannot be replaced
                continue
            for value in variants(at(base, path)):
                instance = copy.deepcopy(base)
                at(instance, path[:-1])[path[-1]] = value
                airflow_says = verdict(real.validate, instance)
                checked += 1
                refused += airflow_says is not None
                if airflow_says is not None and verdict(compiled, instance) is None:
                    lenient += 1
                if verdict(fast.validate, instance) != airflow_says:
                    differ += 1
    print(json.dumps({"checked": checked, "refused": refused, "lenient": lenient, "differ": differ}))
''')


def test_the_compiled_schema_refuses_what_airflow_refuses_with_airflows_message(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True,
                          env={**__import__("os").environ, "AIRFLOW_HOME": str(tmp_path)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    # enough refusals to mean something, none accepted by the compiled form, every verdict Airflow's
    assert counts["refused"] > 300 and counts["checked"] > counts["refused"], counts
    assert counts["lenient"] == 0 and counts["differ"] == 0, counts


def test_a_lenient_compiled_form_is_not_used():
    """``probe`` refuses a build that takes a tuple for an array (fastjsonschema's own reading) or 1
    for ``const: true``: the unmodified fastjsonschema fails it, ours passes."""
    import fastjsonschema

    from pytest_astro.policies.schema import compile_schema, probe

    assert not probe(lambda definition: fastjsonschema.compile(definition, use_default=False))
    assert compile_schema({"type": "array"}) is not None
    with pytest.raises(fastjsonschema.JsonSchemaException):
        compile_schema({"type": "array"})(("a",))
    # keywords whose reading was not compared with jsonschema's: no compiled form
    assert compile_schema({"properties": {"a": {"not": {"type": "string"}}}}) is None
    assert compile_schema({"properties": {"a": {"type": "string", "minimum": 1}}}) is None
