"""Subcommands of ``hailo-ort``: one module each, discovered by :func:`hailo_ort.cli.build_parser`."""
