"""Test support for the deploy gate: a fake `astro` executable, project builders, servers."""
