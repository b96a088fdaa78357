"""Glue between the Snakemake workflow and the machines it runs on (job managers, launchers)."""
