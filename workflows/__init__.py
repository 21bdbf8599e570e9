"""Dask workflows and the ``mcr`` command line."""
