"""DAG policies: checks on parsed DAGs (built-ins, the project's cluster policies, team rules).

- ``api.py``: ``Policy``, ``Violation``, ``PolicyContext`` (what plugins implement and receive)
- ``builtin.py``: the built-in policies (DAG0xx on by default, DAG1xx opt-in, DAG900 cluster policies)
- ``config.py``: ``[tool.pytest-astro.policies]``: select / ignore / options / exemptions
- ``items.py``: a DAG file's findings, for its one item (``dags/etl.py::astro``)
- ``sandbox.py``: what needs the real DAG object, computed inside the parse sandbox
"""

from pytest_astro.policies.api import Policy, PolicyContext, Violation

__all__ = ["Policy", "PolicyContext", "Violation"]
