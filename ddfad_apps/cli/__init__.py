"""The ``ddfad-apps`` command line: one module per sub-command, registered in :mod:`ddfad_apps.cli.main`."""
