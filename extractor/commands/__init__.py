"""One module per ``twelvetwenty`` subcommand: ``add_arguments(parser)`` and ``run(args)``."""
