"""The policy API: what a DAG policy is, what it returns, and what it is given.

A policy is a small object (a subclass of :class:`Policy`, or anything with the same attributes)
that looks at one parsed DAG, as plain data (:class:`~pytest_astro.results.DagSummary`), and
returns the violations it finds. Policies run in the pytest process and never import Airflow;
what needs the real DAG object is computed in the parse sandbox and read from ``dag.checks``.

```python
from pytest_astro.policies import Policy, Violation

class TeamPrefix(Policy):
    code = "TEAM001"
    name = "team_prefix"
    description = "dag_id starts with the team prefix"
    hint = "rename the DAG to start with the prefix"
    options = {"prefix": "acme_"}

    def check(self, dag, context):
        prefix = context.options["prefix"]
        if not dag.dag_id.startswith(prefix):
            return [Violation(f"dag_id {dag.dag_id!r} does not start with {prefix!r}")]
        return []
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pytest_astro.project import Project
    from pytest_astro.results import DagSummary, FileResult

CODE_PATTERN = re.compile(r"^[A-Z]+[0-9]+$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Violation:
    """One problem a policy found in one DAG.

    ``task_id`` names the offending task where there is one; ``file``/``line`` point somewhere
    more precise than the DAG's own line when the policy knows better.
    """

    message: str
    task_id: str | None = None
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        return f"task {self.task_id!r}: {self.message}" if self.task_id else self.message


class Policy:
    """Base class of DAG policies. Subclasses set the class attributes and implement ``check``.

    - ``code``: stable, unique, upper-case letters then digits (``DAG002``, ``TEAM001``); what users
      select, ignore and exempt.
    - ``name``: lower_snake_case; names its options table (``[tool.pytest-astro.policies.<name>]``).
    - ``description``: one line, what a passing DAG looks like.
    - ``hint``: one line, how to fix a violation.
    - ``options``: the defaults of the options users may set in
      ``[tool.pytest-astro.policies.<code or name>]``; ``context.options`` has them merged.
    - ``default``: on without being selected.
    """

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    hint: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    default: ClassVar[bool] = False
    example: ClassVar[str] = ""  # one-line example of a violation (documentation)

    def check(self, dag: DagSummary, context: PolicyContext) -> list[Violation]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<policy {self.code} {self.name}>"


@dataclass
class PolicyContext:
    """What a policy may look at besides the DAG itself.

    - ``options``: this policy's options (its defaults, overridden by the project's config).
    - ``result``: the ``FileResult`` of the DAG's file (``seconds``, ``errors``, other DAGs).
    - ``all_dags``: every parsed DAG of the run, by dag_id (a list: an id can be defined twice).
    - ``project``: the :class:`~pytest_astro.project.Project` (root, folders, settings).
    - ``pools`` / ``connections``: names the project defines (airflow_settings.yaml, .env,
      ``[tool.pytest-astro]``, ``AIRFLOW_CONN_*``); ``default_pool`` is always there.
    - ``config``: the pytest config (for plugins that need their own options).
    """

    options: dict[str, Any]
    result: FileResult
    all_dags: dict[str, list[DagSummary]]
    project: Project
    pools: set[str] = field(default_factory=set)
    connections: set[str] = field(default_factory=set)
    config: Any = None

    def source_lines(self, file: str) -> list[str]:
        """Lines of a project file (relative path), decoded as Python decodes it (coding cookie,
        byte-order mark, CRLF); [] when unreadable."""
        from pytest_astro.source import source_lines

        return source_lines(self.project.root / file)


def validate_policy(policy: Any, where: str) -> str | None:
    """Why ``policy`` cannot be used (None when it can): attributes a policy must have."""
    code = getattr(policy, "code", None)
    name = getattr(policy, "name", None)
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        return f"{where}: policy {policy!r} needs a code like 'TEAM001' (upper-case letters, then digits)"
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return f"{where}: policy {code} needs a name like 'team_prefix' (lower_snake_case: its options table's key)"
    if not callable(getattr(policy, "check", None)):
        return f"{where}: policy {code} needs a check(dag, context) method returning a list of Violation"
    return None
