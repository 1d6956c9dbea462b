"""CI/CD pipelines for Astro projects: ``pytest-astro ci init`` (templates in ``templates/``)."""
