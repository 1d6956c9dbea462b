"""The subcommands of ``pytest-astro`` (``pytest_astro.cli`` dispatches to them): one module per
subcommand, each with ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status)."""
