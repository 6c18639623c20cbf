"""The promotion gate as a Modal app (see modal_app/README.md). Nothing here is imported by eval/ or the CLI."""
