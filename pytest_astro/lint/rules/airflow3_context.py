"""AST304 and AST306: task-context keys and attributes that Airflow 3 removed, in code, in inline
templates and in the template files the operators render. Like every AST3 rule, they run only when
the project targets Airflow 3.
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_astro.lint.core import (FileContext, Invalid, Rule, Valid, cst, dotted, is_dag_call, is_decorator, keyword,
                                    string_value)
from pytest_astro.lint.prefilter import SourceFacts

# Removed context keys -> exact replacement expression (None: no exact one)
REMOVED_CONTEXT: dict[str, str | None] = {
    "execution_date": "logical_date",
    "next_execution_date": "data_interval_end",
    "next_ds": "data_interval_end | ds",
    "next_ds_nodash": "data_interval_end | ds_nodash",
    "prev_ds": None, "prev_ds_nodash": None, "prev_execution_date": None,
    "prev_execution_date_success": "prev_data_interval_start_success",
    "tomorrow_ds": None, "tomorrow_ds_nodash": None, "yesterday_ds": None, "yesterday_ds_nodash": None,
    "conf": None,
}
# Attributes of context objects that Airflow 3 removed -> replacement (None: none exact).
REMOVED_ATTRIBUTES: dict[str, str | None] = {"execution_date": "logical_date", "external_trigger": None}
_ATTR_HINT = {"external_trigger": "check dag_run.run_type == \"manual\" instead"}
_ATTR = re.compile(r"(?<![\w.])(dag_run|ti|task_instance)\.(" + "|".join(REMOVED_ATTRIBUTES) + r")\b")
_JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_KEY = re.compile(r"(?<![\w.'\"])(" + "|".join(sorted(REMOVED_CONTEXT, key=len, reverse=True)) + r")(?![\w'\"(])")
_CONTEXT_NAMES = {"context", "kwargs", "ctx", "kw", "context_kwargs", "op_kwargs"}


def _replacement(key: str) -> str | None:
    """The replacement of a removed context key (``next_ds``) or attribute (``dag_run.execution_date``)."""
    if "." in key:
        owner, attr = key.split(".", 1)
        new = REMOVED_ATTRIBUTES.get(attr)
        return f"{owner}.{new}" if new else None
    return REMOVED_CONTEXT[key]


def replace_in_template(text: str) -> tuple[list[str], str]:
    """(removed keys found inside ``{{ }}``/``{% %}`` blocks, the text with the exact ones replaced)."""
    found: list[str] = []

    def block(m: re.Match) -> str:
        def key(k: re.Match) -> str:
            found.append(k.group(1))
            return REMOVED_CONTEXT[k.group(1)] or k.group(1)

        def attribute(k: re.Match) -> str:
            found.append(k.group(0))
            return _replacement(k.group(0)) or k.group(0)
        return _KEY.sub(key, _ATTR.sub(attribute, m.group(0)))

    return found, _JINJA_BLOCK.sub(block, text)


def context_message(keys: list[str]) -> str:
    parts = []
    for key in dict.fromkeys(keys):
        new = _replacement(key)
        hint = _ATTR_HINT.get(key.split(".")[-1]) if "." in key else None
        parts.append(f"{key} -> {new}" if new else f"{key} ({hint})" if hint else key)
    return "context key removed in Airflow 3: " + ", ".join(parts)


class RemovedContextKey(Rule):
    """A template variable or task-context key that Airflow 3 removed: ``execution_date``,
    ``next_ds``, ``next_execution_date``, ``prev_ds``, ``tomorrow_ds``, ``yesterday_ds``, ``conf``...

    Templates render them as undefined (or fail), and ``context["execution_date"]`` raises
    ``KeyError`` at run time. ``--fix`` rewrites the keys that have an exact replacement
    (``execution_date`` -> ``logical_date``, ``next_ds`` -> ``data_interval_end | ds`` in
    templates, ``next_execution_date`` -> ``data_interval_end``); for the others, use
    ``data_interval_start``/``data_interval_end`` or ``macros.ds_add(ds, 1)``.
    """

    CODE = "AST304"
    NAME = "airflow3-removed-context-key"
    MESSAGE = "context key removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("cmd = 'echo {{ ds }} {{ logical_date }} {{ dag_run.conf }}'\n"),
        Valid("execution_date = 1\nprint('execution_date is a word')\n"),
        Valid("def settings(**kwargs):\n    return kwargs['conf']\n"),
    ]
    INVALID = [
        Invalid("cmd = 'echo {{ execution_date }} {{ next_ds }}'\n",
                expected_fix="cmd = 'echo {{ logical_date }} {{ data_interval_end | ds }}'\n", unsafe_fix=True),
        Invalid("sql = \"select * from t where d = '{{ dag_run.execution_date }}'\"\n",
                expected_fix="sql = \"select * from t where d = '{{ dag_run.logical_date }}'\"\n", unsafe_fix=True),
        Invalid("from airflow.sdk import task\n\n@task\ndef f(dag_run=None):\n    return dag_run.external_trigger\n", line=5),
        Invalid("def on_failure(context):\n    return context['dag_run'].external_trigger\n", line=2),
        Invalid("def on_failure(context):\n    return context.get('next_ds')\n", line=2),
        Invalid("def f(**context):\n    return context['execution_date']\n",
                expected_fix="def f(**context):\n    return context['logical_date']\n", unsafe_fix=True),
        Invalid("cmd = '{{ yesterday_ds }}'\n", line=1),
        Invalid("from airflow.sdk import task\n\n@task\ndef f(prev_ds=None):\n    return prev_ds\n", line=4),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return facts.has_any(REMOVED_CONTEXT) or facts.has_any(REMOVED_ATTRIBUTES)

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if "{" not in node.value:
            return
        found, new_value = replace_in_template(node.value)
        if not found:
            return
        exact = all(_replacement(k) is not None for k in found)
        fix = node.with_changes(value=new_value) if exact else None
        # logical_date is None for manual and asset-triggered runs on Airflow 3: review the rewrite.
        self.report(node, self._message(found), replacement=fix, unsafe=True)

    def visit_Call(self, node: cst.Call) -> None:
        # context.get("next_ds")
        if not isinstance(node.func, cst.Attribute) or node.func.attr.value != "get" or not node.args:
            return
        if dotted(node.func.value).split(".")[-1] not in _CONTEXT_NAMES:
            return
        key = string_value(node.args[0].value)
        if key in REMOVED_CONTEXT and self._is_context(node.func.value, key):
            self.report(node.args[0].value, self._message([key]))

    def _is_context(self, mapping: cst.CSTNode, key: str) -> bool:
        """Whether ``mapping[key]`` reads Airflow's task context. ``conf`` is a common word: for it the
        mapping must be named ``context`` or be read inside a ``@task`` function."""
        if key != "conf" or dotted(mapping).split(".")[-1] == "context":
            return True
        return any(isinstance(n, cst.FunctionDef) and any(is_decorator(d, ("task",)) for d in n.decorators)
                   for n in self.walker.stack)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        attr = node.attr.value
        if attr not in REMOVED_ATTRIBUTES:
            return
        value = node.value
        owner = dotted(value).split(".")[-1]
        if isinstance(value, cst.Subscript) and len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Index):
            owner = string_value(value.slice[0].slice.value) or ""
        if owner == "dag_run" or (owner in ("ti", "task_instance") and attr == "execution_date"):
            self.report(node.attr, self._message([f"{owner}.{attr}"]))

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if dotted(node.value).split(".")[-1] not in _CONTEXT_NAMES or len(node.slice) != 1:
            return
        index = node.slice[0].slice
        if not isinstance(index, cst.Index):
            return
        key = string_value(index.value)
        if key in REMOVED_CONTEXT and self._is_context(node.value, key):
            new = REMOVED_CONTEXT[key]
            fix = None
            if new is not None and new.isidentifier() and isinstance(index.value, cst.SimpleString):
                quote = index.value.quote
                fix = index.value.with_changes(value=f"{index.value.prefix}{quote}{new}{quote}")
                self.report(index.value, self._message([key]), replacement=fix, unsafe=True)
            else:
                self.report(index.value, self._message([key]))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not any(is_decorator(d, ("task",)) for d in node.decorators):
            return
        for param in (*node.params.params, *node.params.kwonly_params):
            if param.name.value in REMOVED_CONTEXT:
                self.report(param, self._message([param.name.value]))

    @staticmethod
    def _message(keys: list[str]) -> str:
        return context_message(keys)


#: Extensions Airflow renders as template files in the operators' templated fields (template_ext).
TEMPLATE_EXTENSIONS = (".sql", ".sh", ".bash", ".hql", ".j2")
_EXTENSION_AT_END = re.compile("(?:" + "|".join(re.escape(e) for e in TEMPLATE_EXTENSIONS) + ")[\"']")
TEMPLATE_REF = re.compile(r"""["']([^"'\n]+(?:""" + "|".join(re.escape(e) for e in TEMPLATE_EXTENSIONS) + r"""))["']""")


def template_search_path(dag_file: Path, searchpath: list[str]) -> list[Path]:
    """Where Airflow looks for a DAG's template files: the DAG file's folder, then ``template_searchpath``."""
    folder = dag_file.parent
    return [folder] + [folder / p for p in searchpath]


class RemovedContextKeyInTemplateFile(Rule):
    """A template file that an operator renders (``sql="queries/report.sql"``,
    ``bash_command="scripts/load.sh"``) and that uses a context key Airflow 3 removed:
    ``{{ execution_date }}``, ``{{ next_ds }}``, ``{{ dag_run.execution_date }}``,
    ``{{ prev_ds }}``, ``{{ yesterday_ds }}``...

    The template file is found the way Airflow finds it: next to the DAG file, then in the DAG's
    ``template_searchpath``. Airflow 3 renders a removed key as undefined (an empty string, or an
    error with ``StrictUndefined``), so the query or script runs with a wrong value. Replace the key
    in the template file: ``execution_date`` -> ``logical_date``, ``next_ds`` ->
    ``data_interval_end | ds``, ``prev_ds`` -> ``data_interval_start | ds`` (no exact
    equivalent). Nothing is rewritten: the file may be shared by other DAGs.
    """

    CODE = "AST306"
    NAME = "airflow3-removed-context-key-in-template-file"
    MESSAGE = "template file uses a context key removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator\n"
              "SQLExecuteQueryOperator(task_id='q', conn_id='pg', sql='sql/daily_report_v3.sql')\n"),
        # No such file next to the DAG: nothing to check.
        Valid("from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator\n"
              "SQLExecuteQueryOperator(task_id='q', conn_id='pg', sql='no_such_query.sql')\n"),
        # A trailing space: Airflow runs the command instead of rendering a file.
        Valid("from airflow.providers.standard.operators.bash import BashOperator\n"
              "BashOperator(task_id='t', bash_command='no_such_script.sh ')\n"),
    ]
    INVALID = [
        # sql/daily_report.sql is one of FILES, next to the example DAG file.
        Invalid("from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator\n"
                "SQLExecuteQueryOperator(task_id='q', conn_id='pg', sql='sql/daily_report.sql')\n", line=2),
    ]
    FILES = {"sql/daily_report.sql": "select *\nfrom events\nwhere day = '{{ execution_date | ds }}'\n",
             "sql/daily_report_v3.sql": "select *\nfrom events\nwhere day = '{{ logical_date | ds }}'\n"}

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        # A string literal ending with a template extension: the extension, then its closing quote.
        return _EXTENSION_AT_END.search(facts.source) is not None

    def __init__(self, ctx, walker) -> None:
        super().__init__(ctx, walker)
        self.searchpath: list[str] = []

    def _collect_searchpath(self, call: cst.Call) -> None:
        arg = keyword(call, "template_searchpath")
        if arg is None:
            return
        values = [arg.value] if not isinstance(arg.value, (cst.List, cst.Tuple)) else [e.value for e in arg.value.elements]
        self.searchpath += [v for v in (string_value(x) for x in values) if v]

    def visit_Call(self, node: cst.Call) -> None:
        if is_dag_call(node) or dotted(node.func).split(".")[-1] == "dag":
            self._collect_searchpath(node)
            return
        if keyword(node, "task_id") is None:
            return
        for arg in node.args:
            value = string_value(arg.value) if arg.keyword is not None else None
            if value and value.endswith(TEMPLATE_EXTENSIONS):
                self._check_file(arg.value, value)

    def _check_file(self, node: cst.CSTNode, name: str) -> None:
        for folder in template_search_path(Path(self.ctx.path), self.searchpath):
            path = folder / name
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            where = []
            for number, line in enumerate(text.splitlines(), 1):
                found, _ = replace_in_template(line)
                where += [(number, key) for key in found]
            if where:
                keys = [key for _, key in where]
                lines = ", ".join(str(n) for n in dict.fromkeys(n for n, _ in where))
                self.report(node, f"template file {name} (line {lines}): " + context_message(keys))
            return  # Airflow renders the first file found


RULES = [RemovedContextKey, RemovedContextKeyInTemplateFile]
