"""The web process: the API surfaces, the pages and the ``matomete`` command."""
