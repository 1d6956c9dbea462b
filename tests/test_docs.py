"""The documentation site builds with --strict, its generated references cover the code, and the
package builds into a wheel and sdist that `twine check` accepts (the release check)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented():
    from pytest_astro.config import SETTINGS_HELP, Settings

    keys = {f.name for f in dataclasses.fields(Settings)} - {"root", "table"}
    assert keys == set(SETTINGS_HELP), "config.SETTINGS_HELP must describe every Settings field (and no other)"


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config_page = (site / "configuration" / "index.html").read_text()
    # generated from the code: every option and every setting appears
    for name in ("--astro-dags", "--astro-timeout", "astro_isolation", "missing_variables", "memory_limit"):
        assert name in config_page, name
    policies_page = (site / "policies" / "index.html").read_text()
    from pytest_astro.policies.builtin import BUILTIN_POLICIES

    for policy in BUILTIN_POLICIES:
        assert policy.code in policies_page and policy.name in policies_page, policy.code


def test_an_unknown_generated_block_fails_the_build(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import mkdocs_hooks
    finally:
        sys.path.remove(str(REPO / "scripts"))

    class Page:
        class file:
            src_uri = "x.md"

    assert "--astro-dags" in mkdocs_hooks.on_page_markdown("<!-- generate: options -->\n", Page, None, None)
    with pytest.raises(ValueError, match="x.md: unknown generated block 'nope'"):
        mkdocs_hooks.on_page_markdown("<!-- generate: nope -->\n", Page, None, None)


@pytest.mark.slow
def test_release_artifacts_pass_twine_check(tmp_path):
    dist = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    artifacts = sorted(dist.iterdir())
    assert sorted(p.suffix for p in artifacts) == [".gz", ".whl"], artifacts
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, artifacts)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheel = next(p for p in artifacts if p.suffix == ".whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pytest_astro/plugin.py" in names
    assert not any(n.startswith(("tests/", "docs/", "bench/")) for n in names), "the wheel ships only the package"
