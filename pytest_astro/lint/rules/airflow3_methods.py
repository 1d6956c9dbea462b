"""AST307 and AST308: methods, attributes, decorators and plugin extensions that Airflow 3 removed or
renamed, in DAG, include/ and plugins/ code (ruff's AIR301 checks beyond imports). Like every AST3
rule, they run only when the project targets Airflow 3.
"""

from __future__ import annotations

from pytest_astro.lint.core import FileContext, ImportTrackingRule, Invalid, Valid, cst
from pytest_astro.lint.prefilter import SourceFacts

_DATASET_METHODS = {"iter_datasets": "iter_assets", "iter_dataset_aliases": "iter_asset_aliases"}
_DAG_METHODS: dict[str, str | None] = {"create_dagrun": None}
#: class (qualified) -> {removed method: its new name, or None}
METHODS: dict[str, dict[str, str | None]] = {
    "airflow.datasets.manager.DatasetManager": {
        "register_dataset_change": "register_asset_change", "create_datasets": "create_assets",
        "notify_dataset_created": "notify_asset_created", "notify_dataset_changed": "notify_asset_changed",
        "notify_dataset_alias_created": "notify_asset_alias_created"},
    "airflow.lineage.hook.HookLineageCollector": {
        "create_dataset": "create_asset", "add_input_dataset": "add_input_asset",
        "add_output_dataset": "add_output_asset", "collected_datasets": "collected_assets"},
    "airflow.models.dag.DAG": _DAG_METHODS, "airflow.models.DAG": _DAG_METHODS, "airflow.DAG": _DAG_METHODS,
    "airflow.providers_manager.ProvidersManager": {
        "initialize_providers_dataset_uri_resources": "initialize_providers_asset_uri_resources"},
    "airflow.secrets.local_filesystem.LocalFilesystemBackend": {"get_connections": "get_connection"},
    "airflow.Dataset": _DATASET_METHODS,
}
#: class (qualified) -> {removed attribute: its new name}
ATTRIBUTES: dict[str, dict[str, str]] = {
    "airflow.providers_manager.ProvidersManager": {
        "dataset_factories": "asset_factories", "dataset_uri_handlers": "asset_uri_handlers",
        "dataset_to_openlineage_converters": "asset_to_openlineage_converters"},
    "airflow.lineage.hook.DatasetLineageInfo": {"dataset": "asset"},
}
_SECRETS_METHODS = {"get_conn_uri": "get_conn_value", "get_connections": "get_connection"}
_HOOK_METHODS = {"get_connections": "get_connection"}
_APPLY_DEFAULTS = "airflow.utils.decorators.apply_defaults"
_WORDS = frozenset({*(m for table in METHODS.values() for m in table), *_DATASET_METHODS, *_SECRETS_METHODS,
                    *(a for table in ATTRIBUTES.values() for a in table), "apply_defaults"})


def _in_module(qualified: str, module: str, suffix: str) -> bool:
    """``airflow.<module>...<Name ending with suffix>`` or ``airflow.providers...<module>...<Name...>``
    (ruff's is_airflow_builtin_or_provider)."""
    parts = qualified.split(".")
    if len(parts) < 3 or parts[0] != "airflow" or not parts[-1].endswith(suffix):
        return False
    if parts[1] == "providers":
        return module in parts[2:-1]
    return parts[1] == module


def removed_method(qualified_class: str, method: str) -> tuple[bool, str | None]:
    """(removed, its new name or None) of ``method`` on the class ``qualified_class``."""
    table = METHODS.get(qualified_class)
    if table is None and qualified_class.startswith("airflow.datasets."):
        table = _DATASET_METHODS
    if table is None and _in_module(qualified_class, "secrets", "Backend"):
        table = _SECRETS_METHODS
    if table is None and _in_module(qualified_class, "hooks", "Hook"):
        table = _HOOK_METHODS
    if table is None or method not in table:
        return False, None
    return True, table[method]


class RemovedMethod(ImportTrackingRule):
    """A method, attribute or decorator that Airflow 3 removed or renamed: hooks' and secrets
    backends' ``get_connections`` (``get_connection``) and ``get_conn_uri`` (``get_conn_value``), the
    dataset methods of ``DatasetManager``, ``HookLineageCollector``, ``ProvidersManager`` and
    ``Dataset`` (``*_asset*`` now), ``DAG.create_dagrun``, and the ``@apply_defaults`` decorator.

    The call fails when it runs (an ``AttributeError``), in a custom hook, a secrets backend or a
    plugin as much as in a DAG. The receiver is known from the imports: a class imported from Airflow
    or a provider, or a variable assigned an instance of one. ``--fix`` renames the method where the
    new name is exact.
    """

    CODE = "AST307"
    NAME = "airflow3-removed-method"
    MESSAGE = "method or attribute removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.sdk import BaseHook\nconn = BaseHook.get_connection('pg')\n"),
        Valid("class Client:\n    def get_connections(self):\n        return []\nClient().get_connections()\n"),
        Valid("from airflow.providers.hashicorp.secrets.vault import NotABackendError\n"
              "NotABackendError().get_conn_uri()\n"),
    ]
    INVALID = [
        Invalid("from airflow.hooks.base import BaseHook\n\ndef hosts():\n"
                "    return [c.host for c in BaseHook.get_connections('pg')]\n", line=4,
                expected_fix="from airflow.hooks.base import BaseHook\n\ndef hosts():\n"
                             "    return [c.host for c in BaseHook.get_connection('pg')]\n"),
        Invalid("from airflow.providers.hashicorp.secrets.vault import VaultBackend\n\n"
                "backend = VaultBackend()\nuri = backend.get_conn_uri('pg')\n", line=4,
                expected_fix="from airflow.providers.hashicorp.secrets.vault import VaultBackend\n\n"
                             "backend = VaultBackend()\nuri = backend.get_conn_value('pg')\n"),
        Invalid("from airflow.datasets.manager import DatasetManager\n\ndef changed(ds):\n"
                "    DatasetManager().register_dataset_change(dataset=ds)\n", line=4,
                expected_fix="from airflow.datasets.manager import DatasetManager\n\ndef changed(ds):\n"
                             "    DatasetManager().register_asset_change(dataset=ds)\n"),
        Invalid("from airflow.providers_manager import ProvidersManager\nhandlers = ProvidersManager().dataset_uri_handlers\n",
                expected_fix="from airflow.providers_manager import ProvidersManager\n"
                             "handlers = ProvidersManager().asset_uri_handlers\n"),
        Invalid("from airflow.models.dag import DAG\ndag = DAG('d')\ndag.create_dagrun(run_id='r')\n", line=3),
        Invalid("from airflow.models.baseoperator import BaseOperator\nfrom airflow.utils.decorators import apply_defaults\n\n"
                "class Op(BaseOperator):\n    @apply_defaults\n    def __init__(self, **kwargs):\n"
                "        super().__init__(**kwargs)\n", line=5),
    ]

    def __init__(self, ctx, walker) -> None:
        super().__init__(ctx, walker)
        self.instances: dict[str, str] = {}  # variable -> qualified class of the instance assigned to it

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return "airflow" in facts.words and facts.has_any(_WORDS)

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Call) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            qualified = self.imported.qualified(node.value.func)
            if qualified:
                self.instances[node.targets[0].target.value] = qualified

    def _class_of(self, receiver: cst.CSTNode) -> str:
        """The qualified class of ``receiver``: an instance variable, ``Class(...)``, or the class."""
        if isinstance(receiver, cst.Name) and receiver.value in self.instances:
            return self.instances[receiver.value]
        if isinstance(receiver, cst.Call):
            return self.imported.qualified(receiver.func)
        return self.imported.qualified(receiver)

    def _report(self, attr: cst.Name, new: str | None, kind: str) -> None:
        fix = attr.with_changes(value=new) if new else None
        what = f"use {new}" if new else "no replacement; see the Airflow 3 release notes"
        self.report(attr, f"{kind} {attr.value} was removed in Airflow 3 (it fails when it runs); {what}", replacement=fix)

    def visit_Call(self, node: cst.Call) -> None:
        if not isinstance(node.func, cst.Attribute):
            return
        removed, new = removed_method(self._class_of(node.func.value), node.func.attr.value)
        if removed:
            self._report(node.func.attr, new, "the method")

    def visit_Attribute(self, node: cst.Attribute) -> None:
        table = ATTRIBUTES.get(self._class_of(node.value)) if node.attr.value in _WORDS else None
        if table and node.attr.value in table:
            self._report(node.attr, table[node.attr.value], "the attribute")

    def visit_Decorator(self, node: cst.Decorator) -> None:
        expr = node.decorator.func if isinstance(node.decorator, cst.Call) else node.decorator
        if self.imported.qualified(expr) == _APPLY_DEFAULTS:
            self.report(node, "@apply_defaults was removed in Airflow 3 (importing it fails); remove the decorator "
                              "and its import: operators apply their defaults themselves")


_PLUGIN_EXTENSIONS = frozenset({"executors", "operators", "sensors", "hooks"})


class RemovedPluginExtension(ImportTrackingRule):
    """An Airflow plugin (a subclass of ``AirflowPlugin``) that still lists ``operators``,
    ``sensors``, ``hooks`` or ``executors``.

    Airflow 3 no longer registers them through plugins: the classes are not found where the plugin
    put them (``airflow.operators.<plugin>``...). Import them as regular Python modules from
    ``plugins/`` or ``include/`` instead, and remove the attribute.
    """

    CODE = "AST308"
    NAME = "airflow3-removed-plugin-extension"
    MESSAGE = "plugin extension removed in Airflow 3"
    AIRFLOW3 = True
    VALID = [
        Valid("from airflow.plugins_manager import AirflowPlugin\n\nclass P(AirflowPlugin):\n"
              "    name = 'p'\n    macros = []\n", path="plugins/p.py"),
        Valid("class Registry:\n    operators = []\n", path="plugins/p.py"),
    ]
    INVALID = [
        Invalid("from airflow.plugins_manager import AirflowPlugin\nfrom include.ops import MyOperator\n\n"
                "class P(AirflowPlugin):\n    name = 'p'\n    operators = [MyOperator]\n", path="plugins/p.py", line=6),
    ]

    @classmethod
    def may_report(cls, facts: SourceFacts, ctx: FileContext) -> bool:
        return "AirflowPlugin" in facts.words and facts.has_any(_PLUGIN_EXTENSIONS)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not any(self.imported.qualified(base.value) == "airflow.plugins_manager.AirflowPlugin" for base in node.bases):
            return
        for stmt in node.body.body if isinstance(node.body, cst.IndentedBlock) else ():
            for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else ():
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else \
                    [small.target] if isinstance(small, cst.AnnAssign) else []
                for target in targets:
                    if isinstance(target, cst.Name) and target.value in _PLUGIN_EXTENSIONS:
                        self.report(target, f"the plugin extension {target.value} was removed in Airflow 3; import "
                                            f"these classes as regular modules and remove the attribute")


RULES = [RemovedMethod, RemovedPluginExtension]
